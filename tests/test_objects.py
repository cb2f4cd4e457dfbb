"""The `objects` stage: motion-foreground boxes of synthetic clips, HF2-VAD's box filters, the
ONNX detector (a tiny model built by the test), the empty video and resume."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from onnx_model import constant_detector

from vad.cache import DIGEST, ResumableCache, array_digest, video_digests, write_h5
from vad.objects import boxes as B
from vad.objects import runner
from vad.objects.detectors import HogPeople, OnnxDetector
from vad.objects.foreground import difference_masks, stream_motion_masks, subtractor_masks
from vad.objects.runner import boxes_by_frame, read_objects, run_objects_stage, video_objects
from vad.objects.settings import PRESETS, resolve_settings

H, W, T = 96, 128, 12


def settings(**objects):
    return resolve_settings({"data": {"name": "synthetic"}, "objects": objects})


def background(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (100 + rng.integers(-3, 4, (T, H, W))).astype(np.uint8)


def moving_squares(squares: list[tuple[int, int, int, int, int]], seed: int = 0) -> np.ndarray:
    """Video with textured bright squares (x0, y0, size, dx, dy) moving by (dx, dy) per frame
    (textured: the inside of a flat square would not change as it moves)."""
    video = background(seed)
    rng = np.random.default_rng(seed + 100)
    for x0, y0, size, dx, dy in squares:
        texture = rng.integers(150, 256, (size, size)).astype(np.uint8)
        for t in range(T):
            x, y = x0 + dx * t, y0 + dy * t
            cut = texture[max(-y, 0) :, max(-x, 0) :]
            patch = video[t, max(y, 0) : y + size, max(x, 0) : x + size]
            patch[...] = cut[: patch.shape[0], : patch.shape[1]]
    return video


def iou(a: np.ndarray, b: np.ndarray) -> float:
    inter = B.intersections(a, b[None])[0]
    return float(inter / (B.areas(a[None])[0] + B.areas(b[None])[0] - inter))


@pytest.mark.parametrize("frames", [T, 2, 1])
def test_masks_fed_frame_by_frame_equal_the_whole_video_formulas(frames):
    """The stage feeds a video one frame at a time (frame t's mask once t+1 has come): the
    masks are the OR of the whole-video difference and subtractor masks, first and last frame
    included, for a clip of 12, 2 and 1 frames."""
    video = moving_squares([(10, 20, 14, 3, 1), (80, 50, 10, -2, 0)])[:frames]
    chosen = settings(foreground=["difference", "mog2", "knn"])
    expected = (
        difference_masks(video, chosen.blur, chosen.binary_threshold)
        | subtractor_masks(video, "mog2")
        | subtractor_masks(video, "knn")
    )
    streamed = np.stack(list(stream_motion_masks(iter(video), chosen)))
    np.testing.assert_array_equal(streamed, expected)
    assert expected[: frames - 1].any() or frames == 1  # the moving squares are found


def test_boxes_recover_the_moving_blobs_of_a_synthetic_clip():
    video = moving_squares([(10, 20, 14, 3, 0), (80, 50, 16, 0, -2)])
    objects = video_objects(video, settings())
    index = boxes_by_frame(objects, T)
    for t in range(2, T - 2):
        boxes = objects["box"][index[t]]
        assert len(boxes) == 2, f"frame {t}: {boxes}"
        # the difference mask spans the blob at t-1, t and t+1: the box holds the blob at t
        for x0, y0, size, dx, dy in [(10, 20, 14, 3, 0), (80, 50, 16, 0, -2)]:
            truth = np.array([x0 + dx * t, y0 + dy * t, x0 + dx * t + size, y0 + dy * t + size])
            best = max(boxes, key=lambda b, truth=truth: iou(b, truth))
            assert best[0] <= truth[0] and best[1] <= truth[1]
            assert best[2] >= truth[2] and best[3] >= truth[3]
            # ... and no more than the blob's path over t-1..t+1, the blur (1 px) and the 2 px
            # extension
            margin = np.array([abs(dx), abs(dy)] * 2) + 3
            assert np.all(np.abs(best - truth) <= margin)
    assert set(objects["source"]) == {0}
    assert np.all((objects["score"] > 0) & (objects["score"] <= 1))


def test_a_still_video_has_no_boxes_and_is_stored_as_empty_datasets(tmp_path):
    frames = tmp_path / "frames.h5"
    write_frames(
        frames, {"train/still": background(), "test/moving": moving_squares([(5, 5, 12, 2, 2)])}
    )
    out = run_objects_stage(frames, tmp_path / "objects.h5", settings(), n_jobs=1, progress=False)
    still = read_objects(out, "train/still")
    assert still["box"].shape == (0, 4) and len(still["frame"]) == 0
    assert boxes_by_frame(still, T) == [] or all(len(i) == 0 for i in boxes_by_frame(still, T))
    with h5py.File(out, "r") as f:
        assert f["train/still"].attrs["complete"] and f["train/still"].attrs["num_frames"] == T
    assert len(read_objects(out, "test/moving")["frame"]) > 0


def test_a_blob_at_the_border_gets_a_box_clipped_to_the_frame():
    video = moving_squares([(-4, 30, 12, 0, 2), (W - 10, 60, 14, 0, -2)])  # cut by both sides
    objects = video_objects(video, settings())
    index = boxes_by_frame(objects, T)
    boxes = objects["box"][index[5]]
    assert len(boxes) == 2
    left, right = sorted(boxes.tolist())
    assert left[0] == 0 and right[2] == W
    assert np.all(objects["box"][:, [1, 3]] >= 0) and np.all(objects["box"][:, [1, 3]] <= H)


def test_touching_parts_merge_into_one_box_and_distant_ones_do_not():
    video = moving_squares([(20, 20, 10, 2, 0), (20, 31, 10, 2, 0), (90, 20, 10, 2, 0)])
    objects = video_objects(video, settings(close=0))
    boxes = objects["box"][boxes_by_frame(objects, T)[5]]
    assert len(boxes) == 2
    # heights: 10 and 21 px squares, + 1 px of blur and 2 px of extension per side
    assert sorted(np.round(b[3] - b[1]) for b in boxes) == [16, 27]


def test_hf2vad_detector_filter_drops_low_scores_small_and_covered_boxes():
    boxes = B.as_boxes([[0, 0, 40, 40], [5, 5, 25, 25], [50, 50, 55, 55], [60, 0, 100, 40]])
    scores = np.array([0.9, 0.8, 0.9, 0.3], np.float32)
    kept, kept_scores = B.filter_detections(boxes, scores, confidence=0.5, min_area=100, cover=0.6)
    np.testing.assert_array_equal(kept, boxes[[0]])  # [1] inside [0], [2] small, [3] low score
    np.testing.assert_array_equal(kept_scores, scores[[0]])


def test_presets_follow_the_dataset_and_nulls_take_the_preset():
    ped2 = resolve_settings({"data": {"name": "ped2"}, "objects": {"binary_threshold": None}})
    avenue = resolve_settings({"data": {"name": "avenue"}, "objects": {"blur": 7}})
    assert ped2.binary_threshold == PRESETS["ped2"]["binary_threshold"] and ped2.blur == 3
    assert avenue.contour_min_area == 1600 and avenue.blur == 7
    with pytest.raises(Exception, match="objects.blur"):
        settings(blur=4)


def test_a_missing_onnx_file_is_an_error_naming_the_key_and_path(tmp_path):
    missing = tmp_path / "nowhere" / "detector.onnx"
    with pytest.raises(FileNotFoundError, match=r"objects\.onnx.*nowhere/detector\.onnx"):
        OnnxDetector(missing, (64, 48))
    frames = tmp_path / "frames.h5"
    write_frames(frames, {"train/a": background()})
    with pytest.raises(FileNotFoundError, match="detector.onnx"):
        run_objects_stage(frames, tmp_path / "o.h5", settings(onnx=str(missing)), 1, progress=False)
    assert not (tmp_path / "o.h5").exists()


def test_an_unreadable_onnx_file_is_an_error_naming_it(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"this is not a protobuf")
    with pytest.raises(ValueError, match=r"objects\.onnx.*bad\.onnx.*not a readable ONNX"):
        OnnxDetector(bad, (64, 48))


def test_onnx_detections_are_scaled_to_the_frame_and_filtered(tmp_path):
    path = tmp_path / "tiny.onnx"
    rows = [[16, 12, 48, 36, 0.9], [0, 0, 64, 48, 0.2], [20, 14, 30, 20, 0.8]]
    path.write_bytes(constant_detector(np.array(rows, np.float32), (64, 48)))
    boxes, scores = OnnxDetector(path, (64, 48))(background()[0])  # frame 128x96 = 2x input
    np.testing.assert_allclose(boxes, np.array(rows)[:, :4] * 2)
    np.testing.assert_allclose(scores, [0.9, 0.2, 0.8], rtol=1e-6)
    chosen = settings(onnx=str(path), onnx_size=[64, 48], confidence=0.5, min_area=100, cover=0.6)
    runner.init_detectors(chosen)
    try:
        objects = video_objects(background(), chosen)
    finally:
        runner._detectors.clear()
    onnx = objects["source"] == runner.SOURCES.index("onnx")
    assert onnx.sum() == T  # one box per frame: [2] lies inside [0], [1] scores too low
    np.testing.assert_allclose(objects["box"][onnx], np.tile([[32, 24, 96, 72]], (T, 1)))
    assert not np.any(objects["source"] == 0)  # a still background: no foreground box


def test_resume_skips_finished_videos_and_equals_a_clean_run(tmp_path, monkeypatch):
    frames = tmp_path / "frames.h5"
    videos = {
        "train/a": moving_squares([(5, 5, 12, 2, 2)]),
        "train/b": moving_squares([(40, 30, 12, -2, 1)], seed=1),
        "test/c": moving_squares([(60, 10, 14, 1, 3)], seed=2),
    }
    write_frames(frames, videos)
    chosen = settings()
    clean = run_objects_stage(frames, tmp_path / "clean.h5", chosen, n_jobs=1, progress=False)
    out = tmp_path / "objects.h5"
    with pytest.raises(RuntimeError):  # an interrupted run that finished one video
        with ResumableCache(out, chosen.to_json()) as cache:
            group = cache.start("train/a")
            first = read_objects(clean, "train/a")
            for field, values in first.items():
                group.create_dataset(field, data=values)
            digest = runner.objects_digest(first)
            cache.finish("train/a", digest=digest, input_digest=video_digests(frames)["train/a"])
            raise RuntimeError("interrupted")
    computed = []
    real_task = runner._task
    monkeypatch.setattr(
        runner, "_task", lambda key, **kw: computed.append(key) or real_task(key, **kw)
    )
    run_objects_stage(frames, out, chosen, n_jobs=1, progress=False)
    assert sorted(computed) == ["test/c", "train/b"]
    assert video_digests(out) == video_digests(clean)
    for key in videos:
        for field, values in read_objects(clean, key).items():
            np.testing.assert_array_equal(read_objects(out, key)[field], values)


def write_frames(path, videos: dict[str, np.ndarray]) -> None:
    """A frames.h5 of gray videos (T×H×W uint8) by key, with content digests."""
    with write_h5(path, {"dataset": "test"}) as f:
        for key, video in videos.items():
            stored = video[..., None]
            group = f.create_group(key)
            group.create_dataset("frames", data=stored)
            group.attrs[DIGEST] = array_digest(stored)
            group.attrs.update(name=key.split("/")[1], split=key.split("/")[0])


def test_hog_people_detector_runs_inside_the_stage_and_finds_no_one_in_a_flat_scene():
    """OpenCV's HOG people detector (weights inside OpenCV): a scene without people has no HOG
    box; its blobs still get foreground boxes."""
    detector = HogPeople(upscale=2.0, threshold=0.5)
    boxes, scores = detector(np.full((H, W), 100, np.uint8))
    assert boxes.shape == (0, 4) and scores.shape == (0,)
    chosen = settings(hog=True)
    runner.init_detectors(chosen)
    try:
        objects = video_objects(moving_squares([(10, 20, 14, 3, 0)]), chosen)
    finally:
        runner._detectors.clear()
    assert set(objects["source"]) == {0} and len(objects["frame"]) >= T - 2
