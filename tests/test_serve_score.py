"""`vad score` with a bundle of a small trained run: the round trip on a synthetic video, the
annotated MP4, Ctrl-C, and bad input (truncated or unreadable video, a stream that stops, frame
size and colour other than training, a method without streaming)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from serve_fixtures import baseline_run, scene_frames, video_frame_count, write_avi

from vad.cli import main
from vad.methods.base import StreamingUnsupported
from vad.methods.registry import get_method
from vad.serve.bundle import load_bundle
from vad.serve.command import score_input
from vad.serve.export import export_bundle
from vad.serve.loop import score_source
from vad.serve.scorers.build import build_scorer
from vad.serve.source import InputError, Source


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    run = baseline_run(tmp_path_factory.mktemp("run"))
    return export_bundle(tmp_path_factory.mktemp("export") / "bundle", root=run)


@pytest.fixture(scope="module")
def rgb_bundle(tmp_path_factory) -> Path:
    run = baseline_run(tmp_path_factory.mktemp("rgb_run"), color="rgb")
    return export_bundle(tmp_path_factory.mktemp("export") / "bundle", root=run)


def csv_rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_round_trip_on_a_video_file(bundle, tmp_path, capsys):
    video = write_avi(tmp_path / "walkway.avi", scene_frames(20))
    main(["score", str(video), "--run", str(bundle), "--out", str(tmp_path / "out")])
    out = tmp_path / "out"
    rows = csv_rows(out / "walkway.csv")
    assert [int(row["frame"]) for row in rows] == list(range(20))
    lines = [json.loads(line) for line in (out / "walkway.jsonl").read_text().splitlines()]
    assert [line["score"] for line in lines] == pytest.approx([float(r["score"]) for r in rows])
    threshold = load_bundle(bundle).entry("baseline")["threshold"]
    assert [line["alert"] for line in lines] == [int(line["score"] > threshold) for line in lines]
    for line in lines:  # the peak cell of the 3x4 grid of 28-pixel cells, in input pixels
        assert 0 <= line["peak_row"] < 3 and 0 <= line["peak_col"] < 4
        assert line["peak_x"] == pytest.approx((line["peak_col"] + 0.5) * 28)
    assert video_frame_count(out / "walkway.mp4") == 20
    assert not list(out.glob("*tmp*"))  # the temporary video was renamed
    events = json.loads((out / "events.json").read_text())
    assert events["videos"]["walkway"]["frames"] == 20
    assert "20 of 20 frames scored" in capsys.readouterr().out


def test_a_folder_of_frames_and_a_folder_of_videos(bundle, tmp_path):
    frames = scene_frames(8)
    folder = tmp_path / "frames"
    folder.mkdir()
    for index, frame in enumerate(frames):
        cv2.imwrite(str(folder / f"{index}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    (run,) = score_input(str(folder), bundle, tmp_path / "out1", progress=False)
    assert (run.name, run.scored) == ("frames", 8)
    videos = tmp_path / "videos"
    videos.mkdir()
    write_avi(videos / "a.avi", frames)
    write_avi(videos / "b.avi", scene_frames(6, seed=4))
    runs = score_input(str(videos), bundle, tmp_path / "out2", progress=False)
    assert [(run.name, run.scored) for run in runs] == [("a", 8), ("b", 6)]
    events = json.loads((tmp_path / "out2" / "events.json").read_text())
    assert set(events["videos"]) == {"a", "b"}


def interrupted_frames(frames: np.ndarray, after: int):
    for index, frame in enumerate(frames):
        if index == after:
            raise KeyboardInterrupt
        yield frame


def test_ctrl_c_leaves_valid_outputs_of_the_frames_scored(bundle, tmp_path):
    loaded = load_bundle(bundle)
    source = Source("live", "test source", 25.0, interrupted_frames(scene_frames(20), after=7))
    run = score_source(
        source,
        build_scorer(loaded, "baseline"),
        loaded.entry("baseline"),
        loaded.params,
        loaded.manifest["training_frames"],
        loaded.manifest["serve"],
        tmp_path,
        progress=False,
    )
    assert run.interrupted and run.frames == 7 and run.scored == 7
    assert [int(row["frame"]) for row in csv_rows(tmp_path / "live.csv")] == list(range(7))
    assert len((tmp_path / "live.jsonl").read_text().splitlines()) == 7
    assert video_frame_count(tmp_path / "live.mp4") == 7


def test_a_truncated_video_is_scored_as_far_as_it_decodes(bundle, tmp_path):
    data = write_avi(tmp_path / "full.avi", scene_frames(30)).read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) * 6 // 10])
    decodable = video_frame_count(cut)
    assert 0 < decodable < 30
    with pytest.raises(InputError, match=rf"cut\.avi: truncated .* frame {decodable - 1} .* 30"):
        score_input(str(cut), bundle, tmp_path / "out", progress=False)
    assert len(csv_rows(tmp_path / "out" / "cut.csv")) == decodable
    assert video_frame_count(tmp_path / "out" / "cut.mp4") == decodable
    events = json.loads((tmp_path / "out" / "events.json").read_text())
    assert "cut.avi: truncated" in events["videos"]["cut"]["error"]


def test_a_stream_that_stops_leaves_complete_outputs(bundle, tmp_path):
    data = write_avi(tmp_path / "full.avi", scene_frames(30)).read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) * 6 // 10])
    url = cut.resolve().as_uri()  # a URL: read as a live stream, which may end at any time
    (run,) = score_input(url, bundle, tmp_path / "out", progress=False)
    assert run.error is None and run.scored == run.frames == video_frame_count(cut)
    name = run.name
    assert len(csv_rows(tmp_path / "out" / f"{name}.csv")) == run.frames
    assert video_frame_count(tmp_path / "out" / f"{name}.mp4") == run.frames


def test_an_unreadable_video_is_named(bundle, tmp_path, capsys):
    junk = tmp_path / "junk.avi"
    junk.write_bytes(b"not a video at all" * 100)
    with pytest.raises(SystemExit) as exit_:
        main(["score", str(junk), "--run", str(bundle), "--out", str(tmp_path / "out")])
    assert exit_.value.code == 2
    assert "junk.avi: unreadable video" in capsys.readouterr().err


def test_another_frame_size_is_resized_with_a_warning(bundle, tmp_path, capsys):
    video = write_avi(tmp_path / "big.avi", scene_frames(6, size=(224, 168)))
    (run,) = score_input(str(video), bundle, tmp_path / "out", progress=False)
    assert run.scored == 6
    assert "frames are 224x168, the run was trained on 112x84" in capsys.readouterr().err


def test_colour_input_to_a_gray_run_and_gray_input_to_a_colour_run(
    bundle, rgb_bundle, tmp_path, capsys
):
    tinted = scene_frames(6)  # the synthetic scene is gray: tint it
    tinted[..., 0] = np.clip(tinted[..., 0].astype(int) + 40, 0, 255)
    colour = write_avi(tmp_path / "colour.avi", tinted)
    (run,) = score_input(str(colour), bundle, tmp_path / "out1", progress=False)
    assert run.scored == 6
    assert "colour input; converted to gray" in capsys.readouterr().err
    gray = write_avi(tmp_path / "gray.avi", scene_frames(6))
    (run,) = score_input(str(gray), rgb_bundle, tmp_path / "out2", progress=False)
    assert run.scored == 6
    assert "the input is gray but the run was trained on colour" in capsys.readouterr().err


def test_a_method_without_streaming_says_so(tmp_path):
    method = get_method("baseline")
    unsupported = type(method)()
    unsupported.streaming = None
    with pytest.raises(StreamingUnsupported, match="'baseline' does not support streaming"):
        unsupported.stream_scorer(tmp_path, {})


@pytest.mark.parametrize(
    "package", ["vad.methods.gmfc_vae", "vad.methods.baseline", "vad.methods.velocity"]
)
def test_streaming_code_is_no_part_of_a_methods_stage_fingerprint(package):
    """Methods name their streaming factory by string: editing vad/serve or the flow code it
    uses re-runs none of a method's prepare/train/score stages."""
    from vad.imports import closure_files

    files = {path.relative_to(path.parents[1]).as_posix() for path in closure_files(package)}
    assert not {path for path in files if path.startswith("serve/")}
    assert "motion/flow.py" not in files
