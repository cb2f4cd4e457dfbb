"""The `evaluate` stage's work: metrics, ROC plot data, figures and the summary table for every
evaluated score set (methods and fused models)."""

from __future__ import annotations

import json
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vad.cache import atomic_directory, atomic_output, open_cache, read_dataset, video_key
from vad.eval.postprocess import Protocol
from vad.eval.score_reader import read_video_scores, score_index
from vad.eval.stream import StreamedEvaluation, StreamedVideo
from vad.eval.video_rows import StoredRows, open_masks, open_score_maps
from vad.frame_cache import load_ground_truth
from vad.viz import overlay_detection, plot_roc, plot_score_curves, save_overlay

# Frames of a test video whose score maps and masks are read, and held, at a time.
BLOCK_FRAMES = 64


@dataclass(frozen=True)
class OverlayFrame:
    """What the overlay figure of one frame needs: its post-processed score map, its
    ground-truth mask, its label and the method's explanation of it (or "")."""

    video: str
    index: int
    score_map: np.ndarray  # (h, w)
    mask: np.ndarray | None  # (H, W) bool, None when the video has no masks
    anomalous: bool
    explanation: str


@dataclass
class ModelResult:
    metrics: dict
    frame_roc: tuple[np.ndarray, np.ndarray, np.ndarray]  # fpr, tpr, thresholds
    scores: dict[str, np.ndarray]  # post-processed frame scores per test video
    overlays: list[OverlayFrame]  # the frames drawn in reports/figures/overlays


class OverlayRows:
    """The overlay frames of one video under one score set, the `per_video` highest-scoring
    ones, picked from its post-processed frame scores before its map is read; their rows of
    the post-processed map and of the mask are copied out as the blocks of frames pass."""

    def __init__(
        self,
        video: str,
        scores: np.ndarray,
        labels: np.ndarray,
        explanations: np.ndarray | None,
        per_video: int,
    ):
        self.video = video
        self.labels = labels
        self.explanations = explanations
        self.indices = [int(index) for index in np.argsort(-scores, kind="stable")[:per_video]]
        self._rows: dict[int, tuple[np.ndarray, np.ndarray | None]] = {}

    def take(self, first: int, score_map: np.ndarray, mask: np.ndarray | None) -> None:
        """A block of the post-processed map from frame `first` on, and its mask (or None)."""
        for index in self.indices:
            if first <= index < first + len(score_map):
                row = index - first
                self._rows[index] = (
                    score_map[row].copy(),
                    None if mask is None else mask[row].copy(),
                )

    def frames(self) -> list[OverlayFrame]:
        """The overlay frames, highest score first, once every block has passed."""
        frames = []
        for index in self.indices:
            score_map, mask = self._rows[index]
            why = self.explanations[index] if self.explanations is not None else ""
            frames.append(
                OverlayFrame(
                    video=self.video,
                    index=index,
                    score_map=score_map,
                    mask=mask,
                    anomalous=bool(self.labels[index]),
                    explanation=str(why) if why else "",
                )
            )
        return frames


class ReportEvaluation:
    """Every score set of a report evaluated in one pass over the test videos, one video at a
    time and each video a block of BLOCK_FRAMES frames at a time: every score set's frame
    scores of the video are read whole (one float per frame) and post-processed; then, block
    after block, the block's mask is read once for all sets, and each set's map of the block
    (with the frames on either side its smoothing reaches) is read, post-processed and taken
    in by the set's `StreamedEvaluation` (and that of its paper protocol, if any), and all of
    them are dropped before the next block. What stays is small: post-processed frame scores,
    each frame's pixel-level critical value, and the few frames the overlay figures show.
    Memory holds one block of frames per score set, whatever the number and length of the
    videos."""

    def __init__(
        self,
        sources: dict[str, str],
        kinds: dict[str, str],
        ground_truth_path: str,
        protocol: Protocol,
        paper_protocols: dict[str, Protocol],
        interpolation: str,
        figures_per_video: int,
    ):
        self.ground_truth_path = ground_truth_path
        self.labels, self.with_masks = load_ground_truth(ground_truth_path)
        if not self.labels:
            raise ValueError(f"{ground_truth_path}: the dataset has no ground truth to evaluate")
        self.indexes = {name: score_index(path, name) for name, path in sources.items()}
        self.pixels = {
            name: bool(self.with_masks) and bool(index.test_maps)
            for name, index in self.indexes.items()
        }
        self.evaluations = {
            name: StreamedEvaluation(
                protocol, self.labels, pixels=self.pixels[name], interpolation=interpolation
            )
            for name in self.indexes
        }
        self.paper_evaluations = {
            name: StreamedEvaluation(
                paper_protocols[name],
                self.labels,
                pixels=self.pixels[name],
                interpolation=interpolation,
            )
            for name in paper_protocols
            if name in self.indexes
        }
        self.figures_per_video = figures_per_video
        self.drawn = {  # overlays are drawn for all but the parts of a fused model
            name
            for name, index in self.indexes.items()
            if not kinds[name].startswith("part of") and index.test_maps and figures_per_video >= 1
        }
        self.overlays: dict[str, list[OverlayFrame]] = {name: [] for name in self.drawn}

    def run(self) -> tuple[dict[str, ModelResult], dict[str, dict]]:
        """Results per score set, and the metrics of each set under its paper protocol."""
        videos = set(self.labels).union(*(index.test for index in self.indexes.values()))
        for video in sorted(videos):
            self._add_video(video)
        results = {}
        for name, evaluation in self.evaluations.items():
            metrics, curves = evaluation.result()
            frame = curves["frame"]
            results[name] = ModelResult(
                metrics,
                (frame.fpr, frame.tpr, frame.thresholds),
                evaluation.scores,
                self.overlays.get(name, []),
            )
        paper = {name: e.result()[0] for name, e in self.paper_evaluations.items()}
        return results, paper

    def _needs_map(self, name: str, video: str) -> bool:
        index = self.indexes[name]
        return (
            video in self.labels
            and video in index.test_maps
            and (self.pixels[name] or name in self.drawn)
        )

    def _add_video(self, video: str) -> None:
        needs_map = {name: self._needs_map(name, video) for name in self.indexes}
        overlays: dict[str, OverlayRows] = {}
        with ExitStack() as stack:
            masks = None
            if video in self.with_masks and any(needs_map.values()):
                masks = stack.enter_context(open_masks(self.ground_truth_path, video))
            mask_shape = None if masks is None else masks.shape
            # The open videos that take each block of the map, and their overlays.
            mapped: list[tuple[StreamedVideo, OverlayRows | None]] = []
            for name, index in self.indexes.items():
                if video not in index.test:
                    continue
                raw = read_video_scores(index.path, video, maps=False)
                score_map = None
                if needs_map[name]:
                    score_map = stack.enter_context(open_score_maps(index.path, video))
                streamed = stack.enter_context(
                    self.evaluations[name].video(video, raw.frame_scores, score_map, mask_shape)
                )
                if score_map is not None:
                    if name in self.drawn:
                        overlays[name] = OverlayRows(
                            video,
                            streamed.scores,
                            self.labels[video],
                            raw.extras.get("explanation"),
                            self.figures_per_video,
                        )
                    mapped.append((streamed, overlays.get(name)))
                if name in self.paper_evaluations:
                    paper_map = score_map if self.pixels[name] else None
                    paper = stack.enter_context(
                        self.paper_evaluations[name].video(
                            video, raw.frame_scores, paper_map, mask_shape
                        )
                    )
                    if paper_map is not None:
                        mapped.append((paper, None))
            if mapped:  # then the video has labels, and all its maps as many frames
                n_frames = len(self.labels[video])
                for first in range(0, n_frames, BLOCK_FRAMES):
                    add_block(mapped, masks, first, min(first + BLOCK_FRAMES, n_frames))
        for name, rows in overlays.items():
            self.overlays[name] += rows.frames()


def add_block(
    mapped: list[tuple[StreamedVideo, OverlayRows | None]],
    masks: StoredRows | None,
    first: int,
    end: int,
) -> None:
    """Frames first .. end - 1 of one video: its mask read once for every open score set, whose
    map of the block is read, post-processed and taken in, its overlay rows copied out; all of
    it is dropped on return."""
    mask = None if masks is None else masks[first:end]
    for streamed, overlays in mapped:
        rows = streamed.add_block(first, end, mask)
        if overlays is not None:
            overlays.take(first, rows, mask)


def eer_threshold(fpr: np.ndarray, tpr: np.ndarray, thresholds: np.ndarray) -> float:
    """The ROC threshold closest to the equal-error point (used to draw detections)."""
    index = int(np.argmin(np.abs(fpr - (1 - tpr))))
    return float(thresholds[max(index, 1)])  # thresholds[0] is +inf


def strict_json(value: object) -> object:
    """NaN and infinities (e.g. an undefined macro AUC) become null: JSON has no NaN."""
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: strict_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(item) for item in value]
    return value


def json_text(data: object) -> str:
    return json.dumps(strict_json(data), indent=2, allow_nan=False) + "\n"


def write_json(path: Path, data: object) -> None:
    with atomic_output(path) as tmp:
        tmp.write_text(json_text(data))


SUMMARY_COLUMNS = {
    "frame_auc_micro": "frame AUC",
    "frame_auc_macro": "frame AUC macro",
    "frame_eer": "frame EER",
    "pixel_auc": "pixel AUC ¹",
    "pixel_eer": "pixel EER ¹",
}
PIXEL_FOOTNOTE = (
    "¹ Pixel level, 40% criterion (Mahadevan et al. 2010): a normal frame is judged on its "
    "highest score, an anomalous frame on the ceil(0.4·n)-th highest score among its n "
    "ground-truth pixels. The two classes are not judged alike, so a map that carries no "
    "information (scores independent of the anomaly) scores below 0.5 pixel AUC, the further "
    "below the more cells a map has: 0.5 is not chance level here."
)
TRANSDUCTIVE_NOTE = (
    "Normalization minmax scales each test video by its own minimum and maximum: it uses "
    "statistics of the test videos (a transductive protocol; `uses_test_statistics` in the "
    "metrics)."
)


def summary_table(metrics: dict, kinds: dict[str, str]) -> str:
    """A Markdown table: one row per evaluated score set, the headline metrics as columns;
    under it, the footnote on the pixel columns and the protocol."""
    header = ["score set", "kind", *SUMMARY_COLUMNS.values()]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, kind in kinds.items():
        values = [metrics[name].get(key) for key in SUMMARY_COLUMNS]
        cells = ["—" if value is None else f"{value:.3f}" for value in values]
        lines.append("| " + " | ".join([name, kind, *cells]) + " |")
    protocol = dict(metrics["protocol"])
    transductive = protocol.pop("uses_test_statistics")
    settings = ", ".join(f"{key} {value}" for key, value in protocol.items())
    note = f" {TRANSDUCTIVE_NOTE}" if transductive else ""
    return "\n".join(lines) + f"\n\n{PIXEL_FOOTNOTE}\n\nProtocol: {settings}.{note}\n"


def write_report(
    sources: dict[str, str],
    kinds: dict[str, str],
    ground_truth_path: str,
    frames_path: str,
    protocol: Protocol,
    metrics_path: str,
    plots_dir: str,
    figures_dir: str,
    summary_path: str,
    interpolation: str = "nearest",
    figures_per_video: int = 1,
    paper_protocols: dict[str, Protocol] | None = None,
    paper_metrics_path: str | None = None,
) -> dict:
    """Evaluate every score file of `sources` (name -> path, in report order) and write every
    report. `kinds` says what each is ("method", "fused", "part of <fused>"); overlays are drawn
    for all but the parts of a fused model. With `paper_metrics_path`, the score sets named in
    `paper_protocols` are also judged under their paper's own protocol (params
    `evaluate.paper_protocols`, e.g. the smoothing a paper reports with) into that file, for
    comparison with the paper's numbers; `metrics_path` keeps the strict protocol shared by all.
    Every entry of either file records its protocol, with `uses_test_statistics` true when the
    scores were normalized with statistics of the test videos (per-video min-max).

    The evaluation streams one test video at a time, and each video a block of frames at a time
    (`ReportEvaluation`): memory grows with neither the number nor the length of the videos."""
    protocols = (paper_protocols or {}) if paper_metrics_path is not None else {}
    evaluation = ReportEvaluation(
        sources, kinds, ground_truth_path, protocol, protocols, interpolation, figures_per_video
    )
    results, paper_results = evaluation.run()
    labels = evaluation.labels

    metrics = {
        "protocol": {
            **protocol.record(),
            "frame_auc": "micro and macro",
            "pixel_criterion": "40% of ground-truth pixels detected",
            "pixel_interpolation": interpolation,
        }
    }
    per_video = {}
    for name, result in results.items():
        summary = dict(result.metrics)
        per_video[name] = summary.pop("frame_auc_per_video")
        metrics[name] = {"protocol": protocol.record(), **summary}
    # Everything is computed and serialised before anything is written; then the plot data and
    # figures, each folder replaced whole only once complete, and last the metrics, per-video
    # AUCs and summary: a failure on the way leaves no fresh metrics beside stale figures.
    texts = {
        Path(metrics_path): json_text(metrics),
        Path(metrics_path).with_name("per_video_auc.json"): json_text(per_video),
        Path(summary_path): summary_table(metrics, kinds),
    }
    if paper_metrics_path is not None:
        paper: dict = {"protocols": {name: p.as_dict() for name, p in protocols.items()}}
        for name, paper_metrics in paper_results.items():
            paper[name] = {
                "protocol": protocols[name].record(),
                **{k: v for k, v in paper_metrics.items() if k != "frame_auc_per_video"},
            }
        texts[Path(paper_metrics_path)] = json_text(paper)
    with atomic_directory(plots_dir) as plots, atomic_directory(figures_dir) as figures:
        for name, result in results.items():
            fpr, tpr, _ = result.frame_roc
            write_json(
                plots / f"roc_{name}.json",
                [{"fpr": float(f), "tpr": float(t)} for f, t in zip(fpr, tpr, strict=True)],
            )
        plot_roc(
            {
                name: (r.frame_roc[0], r.frame_roc[1], r.metrics["frame_auc_micro"])
                for name, r in results.items()
            },
            figures / "roc.png",
        )
        write_score_figures(results, labels, figures)
        write_overlays(results, frames_path, figures)
    for path, text in texts.items():
        with atomic_output(path) as tmp:
            tmp.write_text(text)
    return metrics


def write_score_figures(
    results: dict[str, ModelResult], labels: dict[str, np.ndarray], figures: Path
) -> None:
    """Per test video, every model's and stream's score curve (min-max scaled for display)."""
    for video in sorted(labels):
        curves = {}
        for name, result in results.items():
            if video in result.scores:
                s = result.scores[video]
                curves[name] = (s - s.min()) / max(float(s.max() - s.min()), 1e-12)
        plot_score_curves(video, curves, labels[video], figures / "scores" / f"{video}.png")


def write_overlays(results: dict[str, ModelResult], frames_path: str, figures: Path) -> None:
    """The highest-scoring frames of each test video (`ModelResult.overlays`), cells above
    the EER threshold of their score set in red; frames are read from the cache only those."""
    wanted: dict[str, set[int]] = {}
    for result in results.values():
        for frame in result.overlays:
            wanted.setdefault(frame.video, set()).add(frame.index)
    for video, indices in sorted(wanted.items()):
        images = read_frames_at(frames_path, video_key("test", video), sorted(indices))
        for model, result in results.items():
            if not result.overlays:
                continue
            threshold = eer_threshold(*result.frame_roc)
            for frame in (f for f in result.overlays if f.video == video):
                image = overlay_detection(
                    images[frame.index], frame.score_map, threshold, frame.mask
                )
                label = "anomalous" if frame.anomalous else "normal"
                note = f"\n{frame.explanation}" if frame.explanation else ""
                save_overlay(
                    image,
                    f"{model} · video {video} · frame {frame.index} ({label}; red: detected, "
                    f"green: ground truth){note}",
                    figures / "overlays" / f"{model}_{video}_{frame.index:04d}.png",
                )


def read_frames_at(path: str, key: str, indices: list[int]) -> dict[int, np.ndarray]:
    """Some frames of one video of the frame cache, as stored (what `load_frames` gives)."""
    with open_cache(path) as f:
        if key not in f:
            raise KeyError(f"{path}: no video '{key}'")
        frames = f[key]["frames"]
        return {index: read_dataset(frames, index) for index in indices}
