"""The `evaluate` stage's report (vad.report.write_report), which streams the evaluation one
video at a time, each video a block of frames at a time: its numbers against the in-memory
evaluation of everything at once, whatever the block size, and the memory it holds."""

from __future__ import annotations

import json
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from report_fixtures import (
    KINDS,
    write_frame_scores,
    write_ground_truth_and_frames,
    write_labels_only,
    write_score_files,
)

import vad.report
from vad.eval.metrics import evaluate
from vad.eval.postprocess import Protocol
from vad.eval.score_reader import read_video_scores, score_index
from vad.eval.video_rows import StoredRows, open_masks, open_score_maps
from vad.frame_cache import load_ground_truth, load_masks
from vad.report import ReportEvaluation, write_report
from vad.scores import read_scores

PROTOCOL = Protocol(smoothing="gaussian", sigma=2.0, normalization="minmax")
PAPER = {"maps": Protocol(smoothing="median", window=3), "frames_only": Protocol()}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("inputs")
    frames, ground_truth = write_ground_truth_and_frames(root)
    return {"frames": frames, "ground_truth": ground_truth, "sources": write_score_files(root)}


@pytest.fixture
def drawn(monkeypatch) -> list[Path]:
    """Figures are not drawn (matplotlib is slow; the streamed report was compared byte for
    byte, PNGs included, with the in-memory one it replaced): the paths are recorded."""
    paths: list[Path] = []

    def record(*args) -> None:
        paths.append(Path(args[-1]))

    for function in ("plot_roc", "plot_score_curves", "save_overlay"):
        monkeypatch.setattr(vad.report, function, record)
    return paths


def report(
    inputs: dict, out: Path, protocol: Protocol = PROTOCOL, kinds: dict = KINDS, **options
) -> dict:
    """write_report over `inputs` into `out`; the JSON reports it wrote."""
    options = {"figures_per_video": 2, "paper_protocols": PAPER, **options}
    write_report(
        inputs["sources"],
        kinds,
        str(inputs["ground_truth"]),
        str(inputs["frames"]),
        protocol,
        str(out / "metrics.json"),
        str(out / "plots"),
        str(out / "figures"),
        str(out / "summary.md"),
        paper_metrics_path=str(out / "metrics_paper.json"),
        **options,
    )
    return {
        name: json.loads((out / f"{name}.json").read_text())
        for name in ("metrics", "metrics_paper", "per_video_auc")
    }


def in_memory(inputs: dict, protocol: Protocol, interpolation: str) -> dict:
    """Each score set evaluated the way the stage did before it streamed: every score file,
    map and mask loaded, post-processed and evaluated at once."""
    labels, with_masks = load_ground_truth(inputs["ground_truth"])
    masks = {name: load_masks(inputs["ground_truth"], name) for name in sorted(with_masks)}
    evaluated = {}
    for name, path in inputs["sources"].items():
        scores = read_scores(path, name)
        maps = {n: v.score_maps for n, v in scores.test.items() if v.score_maps is not None}
        processed, processed_maps = protocol.apply(
            {n: v.frame_scores for n, v in scores.test.items()}, maps or None
        )
        use_pixels = bool(masks) and bool(processed_maps)
        evaluated[name] = evaluate(
            processed,
            labels,
            processed_maps if use_pixels else None,
            masks if use_pixels else None,
            interpolation=interpolation,
        )
    return evaluated


def as_json(value: object) -> object:
    return json.loads(vad.report.json_text(value))


@pytest.mark.parametrize(
    ("interpolation", "block"), [("nearest", 64), ("bilinear", 64), ("nearest", 1), ("bilinear", 5)]
)
def test_the_streamed_report_equals_the_in_memory_evaluation(
    inputs, tmp_path, drawn, monkeypatch, interpolation, block
):
    """Videos of 16 frames, in one block or several, smoothed over 8 frames on either side
    (PROTOCOL) or 1 (PAPER["maps"]): the numbers of the whole videos at once."""
    monkeypatch.setattr(vad.report, "BLOCK_FRAMES", block)
    written = report(inputs, tmp_path, interpolation=interpolation)
    expected = in_memory(inputs, PROTOCOL, interpolation)
    paper = {name: in_memory(inputs, PAPER[name], interpolation)[name] for name in PAPER}
    assert list(written["metrics"]) == ["protocol", *KINDS]
    for name, (metrics, curves) in expected.items():
        per_video = metrics.pop("frame_auc_per_video")
        assert written["metrics"][name] == as_json({"protocol": PROTOCOL.record(), **metrics})
        assert written["per_video_auc"][name] == as_json(per_video)
        roc = json.loads((tmp_path / "plots" / f"roc_{name}.json").read_text())
        assert roc == [{"fpr": f, "tpr": t} for f, t in zip(*curves["frame"][:2], strict=True)]
    for name, (metrics, _) in paper.items():
        metrics.pop("frame_auc_per_video")
        assert written["metrics_paper"][name] == as_json(
            {"protocol": PAPER[name].record(), **metrics}
        )
    # Every awkward case of the ground truth is in there, and counted.
    maps = written["metrics"]["maps"]
    assert maps["pixel_n_anomalous_empty_mask"] == 1 and maps["pixel_n_normal_with_mask"] == 1
    assert maps["n_videos_without_labels"] == 1 and maps["pixel_n_videos"] == 2
    assert written["metrics"]["frames_only"]["n_videos_without_scores"] == 1


def test_overlays_show_each_videos_top_frames_of_every_drawn_score_set(inputs, tmp_path, drawn):
    report(inputs, tmp_path, interpolation="nearest")
    labels, _ = load_ground_truth(inputs["ground_truth"])
    expected = set()
    for name in ("maps", "fused"):  # frames_only has no maps; parts of a fused set are not drawn
        scores = read_scores(inputs["sources"][name])
        processed, _ = PROTOCOL.apply({n: v.frame_scores for n, v in scores.test.items()})
        for video in labels:
            for index in np.argsort(-processed[video], kind="stable")[:2]:
                expected.add(f"{name}_{video}_{index:04d}.png")
    assert {path.name for path in drawn if path.parent.name == "overlays"} == expected


def test_overlays_and_metrics_do_not_depend_on_the_block_size(inputs, monkeypatch):
    """The overlay frames carry the same rows of the post-processed maps and masks, and every
    number is the same, in blocks of 2 frames as in one block per video."""

    def evaluated(block: int) -> tuple[dict, dict]:
        monkeypatch.setattr(vad.report, "BLOCK_FRAMES", block)
        evaluation = ReportEvaluation(
            inputs["sources"], KINDS, str(inputs["ground_truth"]), PROTOCOL, PAPER, "nearest", 3
        )
        return evaluation.run()

    (small, small_paper), (whole, whole_paper) = evaluated(2), evaluated(1000)
    assert as_json(small_paper) == as_json(whole_paper)
    assert small.keys() == whole.keys()
    for name, result in whole.items():
        assert as_json(small[name].metrics) == as_json(result.metrics)
        for got, want in zip(small[name].frame_roc, result.frame_roc, strict=True):
            np.testing.assert_array_equal(got, want)
        assert len(small[name].overlays) == len(result.overlays)
        for got, want in zip(small[name].overlays, result.overlays, strict=True):
            assert (got.video, got.index, got.anomalous, got.explanation) == (
                want.video,
                want.index,
                want.anomalous,
                want.explanation,
            )
            np.testing.assert_array_equal(got.score_map, want.score_map)
            np.testing.assert_array_equal(got.mask, want.mask)
    overlays = whole["maps"].overlays
    assert len(overlays) == 9 and sum(frame.mask is not None for frame in overlays) == 6
    assert any(frame.explanation for frame in overlays)


@dataclass
class Read:
    kind: str  # "mask" or "map"
    source: str  # file and video
    rows: slice
    array: weakref.ref


class TrackedRows:
    """`StoredRows` that records every read, and checks, before it, that of all that was read
    before only the mask of the block being read may still be alive."""

    def __init__(self, rows: StoredRows, kind: str, source: str, reads: list[Read]):
        self.rows, self.kind, self.source, self.reads = rows, kind, source, reads
        self.shape = rows.shape

    def __getitem__(self, rows: slice):
        alive = [read for read in self.reads if read.array() is not None]
        masks = [read for read in self.reads if read.kind == "mask"]
        may_live = masks[-1:] if self.kind == "map" else []
        assert alive in ([], may_live), f"reading {self.source} {rows}: {alive} still held"
        array = self.rows[rows]
        self.reads.append(Read(self.kind, self.source, rows, weakref.ref(array)))
        return array


def test_the_report_reads_and_holds_one_block_of_frames_at_a_time(
    inputs, tmp_path, monkeypatch, drawn
):
    """Memory grows with neither the number nor the length of the videos: a video's masks and
    maps are read a block of frames at a time (a map with the frames on either side its
    smoothing reaches), each mask block once for every score set, and nothing read before is
    held when the next read comes but the mask of the block whose maps are read."""
    block, protocol = 3, Protocol(smoothing="median", window=3, normalization="minmax")
    halo = max(protocol.halo, PAPER["maps"].halo)
    monkeypatch.setattr(vad.report, "BLOCK_FRAMES", block)
    reads: list[Read] = []

    def tracked(kind: str, opener):
        @contextmanager
        def open_tracked(path, video) -> Iterator[TrackedRows]:
            with opener(path, video) as rows:
                yield TrackedRows(rows, kind, f"{Path(path).name} {video}", reads)

        return open_tracked

    monkeypatch.setattr(vad.report, "open_masks", tracked("mask", open_masks))
    monkeypatch.setattr(vad.report, "open_score_maps", tracked("map", open_score_maps))
    report(inputs, tmp_path, protocol)
    masks = [read for read in reads if read.kind == "mask"]
    assert {read.source for read in masks} == {"gt.h5 test_00", "gt.h5 test_02"}
    for source in ("gt.h5 test_00", "gt.h5 test_02"):  # 16 frames: each block once, in order
        blocks = [(read.rows.start, read.rows.stop) for read in masks if read.source == source]
        assert blocks == [(first, min(first + block, 16)) for first in range(0, 16, block)]
    maps = [read for read in reads if read.kind == "map"]
    assert {read.source.split()[1] for read in maps} == {"test_00", "test_01", "test_02"}
    assert all(read.rows.stop - read.rows.start <= block + 2 * halo < 16 for read in maps)


def test_per_video_min_max_is_recorded_as_using_test_statistics(tmp_path, drawn):
    """Two videos of 4 frames: a = 1 2 3 5 (labels 0 0 1 1), b = 10 20 30 40 (0 1 0 0).
    Min-max per video gives a = 0 .25 .5 1, b = 0 1/3 2/3 1; positives .5, 1, 1/3 against
    negatives 0, .25, 0, 2/3, 1 rank 3 + 4.5 (a tie) + 3 of 15 pairs right: AUC 0.7. Raw, the
    positives 3, 5, 20 beat 2 + 2 + 3 of the negatives 1, 2, 10, 30, 40: AUC 7/15."""
    frames, ground_truth = write_labels_only(tmp_path, [[0, 0, 1, 1], [0, 1, 0, 0]])
    scores = {"test_00": [1.0, 2.0, 3.0, 5.0], "test_01": [10.0, 20.0, 30.0, 40.0]}
    sources = {"s": write_frame_scores(tmp_path / "s.h5", scores)}
    inputs = {"frames": frames, "ground_truth": ground_truth, "sources": sources}
    minmax, none = Protocol(normalization="minmax"), Protocol()
    kinds = {"s": "method"}
    options = {"paper_protocols": {"s": none}, "figures_per_video": 0}

    def run(protocol: Protocol, out: Path) -> dict:
        return report(inputs, out, protocol, kinds, **options)

    written = run(minmax, tmp_path / "minmax")
    assert written["metrics"]["s"]["frame_auc_micro"] == pytest.approx(0.7)
    assert written["metrics"]["s"]["protocol"] == {
        "smoothing": "none",
        "normalization": "minmax",
        "uses_test_statistics": True,
    }
    assert written["metrics"]["protocol"]["uses_test_statistics"] is True
    assert written["metrics_paper"]["s"]["frame_auc_micro"] == pytest.approx(7 / 15)
    assert written["metrics_paper"]["s"]["protocol"]["uses_test_statistics"] is False
    summary = (tmp_path / "minmax" / "summary.md").read_text()
    assert "scales each test video by its own minimum and maximum" in summary
    assert "transductive" in summary

    written = run(none, tmp_path / "none")
    assert written["metrics"]["s"]["frame_auc_micro"] == pytest.approx(7 / 15)
    assert written["metrics"]["s"]["protocol"]["uses_test_statistics"] is False
    assert "transductive" not in (tmp_path / "none" / "summary.md").read_text()


def test_the_summary_footnotes_the_pixel_columns(inputs, tmp_path, drawn):
    report(inputs, tmp_path)
    summary = (tmp_path / "summary.md").read_text()
    header = summary.splitlines()[0]
    assert "| pixel AUC ¹ | pixel EER ¹ |" in header
    footnote = next(line for line in summary.splitlines() if line.startswith("¹ "))
    assert "a map that carries no information" in footnote and "below 0.5 pixel AUC" in footnote


def test_a_score_file_read_one_video_at_a_time_gives_what_read_scores_gives(inputs):
    path = inputs["sources"]["maps"]
    whole = read_scores(path)
    index = score_index(path)
    assert index.test == tuple(sorted(whole.test)) and index.model == whole.model
    assert index.test_maps == frozenset(whole.test)
    assert score_index(inputs["sources"]["frames_only"]).test_maps == frozenset()
    for name, video in whole.test.items():
        one = read_video_scores(path, name)
        np.testing.assert_array_equal(one.frame_scores, video.frame_scores)
        np.testing.assert_array_equal(one.score_maps, video.score_maps)
        np.testing.assert_array_equal(one.extras["explanation"], video.extras["explanation"])
        assert read_video_scores(path, name, maps=False).score_maps is None
    train = read_video_scores(path, "train_00", "train")
    np.testing.assert_array_equal(train.frame_scores, whole.train["train_00"].frame_scores)
    with pytest.raises(KeyError, match="maps.h5: no scores for video 'test/nope'"):
        read_video_scores(path, "nope")
