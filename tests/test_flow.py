"""Classical optical flow (vad.motion.flow) and the parallel, resumable flow stage."""

from __future__ import annotations

import json
import sys
import types

import cv2
import h5py
import numpy as np
import pytest

from vad.motion import flow_runner
from vad.motion.flow import (
    check_finite,
    default_options,
    make_flow_estimator,
    prepare_frames,
    prepare_rgb_frames,
    video_flows,
)
from vad.motion.flow_runner import (
    end_point_difference,
    run_flow_stage,
    time_flow_methods,
    time_parallel_vs_sequential,
)

SHIFT = (2, 1)  # (dx, dy) in pixels: content moves right by 2 and down by 1
TOLERANCE = 0.3  # px, on the median displacement over the interior
LIGHT_TVL1 = {"scales_number": 3, "warpings_number": 3, "outer_iterations": 5}


def smooth_texture(height: int, width: int, seed: int = 0) -> np.ndarray:
    """Blurred uniform noise stretched to 0..255 (float32): rich, smooth, trackable."""
    noise = np.random.default_rng(seed).random((height, width)).astype(np.float32)
    blurred = cv2.GaussianBlur(noise, (0, 0), 2.0)
    return (blurred - blurred.min()) / (blurred.max() - blurred.min()) * 255


def translated_video(count: int, height: int, width: int, shift=SHIFT, seed=0) -> np.ndarray:
    """T×H×W uint8 frames of one texture moving by `shift` (dx, dy) per frame."""
    dx, dy = shift
    margin = 4 + max(abs(dx), abs(dy)) * count
    big = smooth_texture(height + 2 * margin, width + 2 * margin, seed)
    frames = [
        big[margin - t * dy : margin - t * dy + height, margin - t * dx : margin - t * dx + width]
        for t in range(count)
    ]
    return np.stack(frames).round().astype(np.uint8)


# ---------------------------------------------------------------------------------------------
# Estimators


@pytest.mark.parametrize(
    ("method", "options"),
    [
        ("tvl1", LIGHT_TVL1),
        ("dis", {"preset": "ultrafast"}),
        ("dis", {"preset": "fast"}),
        ("dis", {"preset": "medium"}),
        ("farneback", {}),
    ],
)
def test_estimator_recovers_known_translation(method, options):
    first, second = translated_video(2, 64, 64)
    flow = make_flow_estimator(method, options)(first, second)
    assert flow.shape == (64, 64, 2) and flow.dtype == np.float32
    interior = flow[12:-12, 12:-12].reshape(-1, 2)
    np.testing.assert_allclose(np.median(interior, axis=0), SHIFT, atol=TOLERANCE)


def test_tvl1_defaults_come_from_opencv_and_options_reach_the_setters():
    fresh = cv2.optflow.DualTVL1OpticalFlow_create()
    defaults = default_options("tvl1")
    assert defaults["epsilon"] == pytest.approx(fresh.getEpsilon())
    assert defaults["scales_number"] == fresh.getScalesNumber()
    assert defaults["median_filtering"] == fresh.getMedianFiltering()

    estimator = make_flow_estimator("tvl1", {"epsilon": 0.05, "inner_iterations": 7, "tau": 0.2})
    assert estimator.algorithm.getEpsilon() == pytest.approx(0.05)
    assert estimator.algorithm.getInnerIterations() == 7
    assert estimator.algorithm.getTau() == pytest.approx(0.2)
    assert estimator.algorithm.getOuterIterations() == fresh.getOuterIterations()


def test_dis_preset_with_override():
    estimator = make_flow_estimator("dis", {"preset": "medium", "patch_size": 12})
    medium = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    assert estimator.algorithm.getPatchSize() == 12
    assert estimator.algorithm.getPatchStride() == medium.getPatchStride()
    assert estimator.algorithm.getFinestScale() == medium.getFinestScale()


def test_tvl1_with_initial_flow_warm_starts_and_resets_per_video():
    frames = translated_video(4, 48, 48)
    estimator = make_flow_estimator("tvl1", {**LIGHT_TVL1, "use_initial_flow": True})
    flows = video_flows(frames, estimator)
    interior = flows[:, 10:-10, 10:-10].reshape(len(flows), -1, 2)
    np.testing.assert_allclose(np.median(interior, axis=1), [SHIFT] * 3, atol=TOLERANCE)
    np.testing.assert_array_equal(video_flows(frames, estimator), flows)  # reset, same result


def test_unknown_method_names_it_and_lists_the_valid_ones():
    with pytest.raises(ValueError, match=r"'lucas'.*tvl1, dis, farneback"):
        make_flow_estimator("lucas", {})


@pytest.mark.parametrize(
    ("method", "options", "pattern"),
    [
        ("tvl1", {"scales": 3}, r"'scales'.*valid options: tau, lambda"),
        ("dis", {"epsilon": 0.1}, r"'epsilon'.*valid options: preset, finest_scale"),
        ("farneback", {"window": 9}, r"'window'.*valid options: pyr_scale"),
        ("dis", {"preset": "slow"}, r"'preset'.*'slow'.*ultrafast, fast, medium"),
        ("tvl1", {"scales_number": 2.5}, r"'scales_number' must be an integer"),
        ("tvl1", {"epsilon": "small"}, r"'epsilon' must be a number"),
        ("tvl1", {"use_initial_flow": "yes"}, r"'use_initial_flow' must be true or false"),
    ],
)
def test_bad_options_are_named(method, options, pattern):
    with pytest.raises(ValueError, match=pattern):
        make_flow_estimator(method, options)


def test_estimator_rejects_bad_frames():
    estimator = make_flow_estimator("farneback", {})
    gray = np.zeros((16, 16), np.uint8)
    with pytest.raises(ValueError, match="uint8 gray"):
        estimator(gray, np.zeros((16, 16, 3), np.uint8))
    with pytest.raises(ValueError, match="sizes differ"):
        estimator(gray, np.zeros((16, 17), np.uint8))


def test_video_flows_follow_consecutive_pairs():
    frames = translated_video(3, 48, 48)
    frames[2] = frames[1]  # the second pair does not move
    flows = video_flows(frames, make_flow_estimator("dis", {"preset": "fast"}))
    assert flows.shape == (2, 48, 48, 2) and flows.dtype == np.float32
    np.testing.assert_allclose(np.median(flows[0, 10:-10, 10:-10].reshape(-1, 2), 0), SHIFT, 0.3)
    assert np.abs(flows[1]).max() < 0.05


def test_check_finite_names_video_and_pair():
    flows = np.zeros((4, 8, 8, 2), np.float16)
    check_finite(flows, "train/01")  # finite: no error
    flows[2, 3, 3, 1] = np.nan
    with pytest.raises(ValueError, match=r"train/01.*pair 2"):
        check_finite(flows, "train/01")
    flows[2, 3, 3, 1] = 0
    flows[1, 0, 0, 0] = np.inf
    with pytest.raises(ValueError, match=r"test/05.*pair 1"):
        check_finite(flows, "test/05")
    with pytest.raises(ValueError, match="test/05"):
        check_finite(np.full((8, 8, 2), -np.inf, np.float32), "test/05")


# ---------------------------------------------------------------------------------------------
# Frame preparation


def test_prepare_frames_grays_and_resizes_with_the_right_interpolation():
    rgb = np.random.default_rng(1).integers(0, 256, (2, 40, 60, 3), dtype=np.uint8)
    gray0 = cv2.cvtColor(rgb[0], cv2.COLOR_RGB2GRAY)

    small = prepare_frames(rgb, (30, 20))
    assert small.shape == (2, 20, 30) and small.dtype == np.uint8
    np.testing.assert_array_equal(
        small[0], cv2.resize(gray0, (30, 20), interpolation=cv2.INTER_AREA)
    )

    large = prepare_frames(rgb, (90, 60))
    np.testing.assert_array_equal(
        large[0], cv2.resize(gray0, (90, 60), interpolation=cv2.INTER_LINEAR)
    )

    one_channel = prepare_frames(rgb[..., :1], (60, 40))
    np.testing.assert_array_equal(one_channel, rgb[..., 0])


def test_prepare_rgb_frames_makes_three_channels():
    gray = np.random.default_rng(2).integers(0, 256, (3, 40, 60, 1), dtype=np.uint8)
    rgb = prepare_rgb_frames(gray, (30, 20))
    assert rgb.shape == (3, 20, 30, 3)
    np.testing.assert_array_equal(rgb[..., 0], rgb[..., 2])


def test_prepare_frames_rejects_bad_input():
    with pytest.raises(ValueError, match=r"train/03.*T×H×W×C uint8"):
        prepare_frames(np.zeros((2, 8, 8), np.uint8), (8, 8), where="train/03")
    with pytest.raises(ValueError, match="size"):
        prepare_frames(np.zeros((2, 8, 8, 3), np.uint8), (0, 8))


# ---------------------------------------------------------------------------------------------
# The stage

VIDEOS = {"train/01": (0, (2, 1)), "train/02": (1, (-1, 2)), "test/01": (2, (1, -1))}
SIZE = (40, 28)  # (width, height): frames are brought from 48×32 to 40×28
STAGE_TVL1 = {"scales_number": 2, "warpings_number": 2, "outer_iterations": 3}


@pytest.fixture
def frames_h5(tmp_path):
    """A tiny frames.h5: 3 videos × 5 RGB frames × 32×48, each a translating texture."""
    path = tmp_path / "frames.h5"
    with h5py.File(path, "w") as f:
        f.attrs["settings"] = json.dumps({"source": "synthetic"})
        for key, (seed, shift) in VIDEOS.items():
            gray = translated_video(5, 32, 48, shift, seed)
            f.create_group(key).create_dataset("frames", data=np.repeat(gray[..., None], 3, -1))
    return path


def read_flows(path) -> dict[str, np.ndarray]:
    with h5py.File(path, "r") as f:
        return {key: f[key]["flow"][()] for key in VIDEOS}


def test_stage_writes_every_video_with_its_layout_and_provenance(frames_h5, tmp_path):
    out = run_flow_stage(frames_h5, tmp_path / "flow.h5", "tvl1", STAGE_TVL1, SIZE, 1, False)
    with h5py.File(out, "r") as f:
        assert json.loads(f.attrs["options"])["scales_number"] == 2
        assert json.loads(f.attrs["options"])["tau"] == default_options("tvl1")["tau"]
        assert f.attrs["method"] == "tvl1" and json.loads(f.attrs["size"]) == list(SIZE)
        for key, (_, shift) in VIDEOS.items():
            flow = f[key]["flow"]
            assert flow.shape == (4, 28, 40, 2) and flow.dtype == np.float16
            assert flow.chunks[0] == 1
            assert (f[key].attrs["split"], f[key].attrs["name"]) == tuple(key.split("/"))
            scale = np.array([40 / 48, 28 / 32])  # flow is in pixels of the resized frames
            median = np.median(flow[:, 8:-8, 8:-8].astype(np.float32).reshape(-1, 2), axis=0)
            np.testing.assert_allclose(median, np.array(shift) * scale, atol=TOLERANCE)
    assert not (tmp_path / "flow.h5.partial").exists()


def test_parallel_and_sequential_runs_are_identical(frames_h5, tmp_path):
    one = run_flow_stage(frames_h5, tmp_path / "one.h5", "tvl1", STAGE_TVL1, SIZE, 1, False)
    two = run_flow_stage(frames_h5, tmp_path / "two.h5", "tvl1", STAGE_TVL1, SIZE, 2, False)
    flows_one, flows_two = read_flows(one), read_flows(two)
    for key in VIDEOS:
        np.testing.assert_array_equal(flows_one[key], flows_two[key])


def test_interrupted_run_resumes_without_recomputing_finished_videos(
    frames_h5, tmp_path, monkeypatch
):
    reference = read_flows(
        run_flow_stage(frames_h5, tmp_path / "ref.h5", "tvl1", STAGE_TVL1, SIZE, 1, False)
    )
    real_compute = flow_runner.compute_video_flow
    computed: list[str] = []

    def crash_on_second_video(frames_path, key, *args, **kwargs):
        if computed:
            raise KeyboardInterrupt  # as if the user pressed Ctrl-C
        computed.append(key)
        return real_compute(frames_path, key, *args, **kwargs)

    out = tmp_path / "flow.h5"
    monkeypatch.setattr(flow_runner, "compute_video_flow", crash_on_second_video)
    with pytest.raises(KeyboardInterrupt):
        run_flow_stage(frames_h5, out, "tvl1", STAGE_TVL1, SIZE, 1, False)
    assert not out.exists() and (tmp_path / "flow.h5.partial").exists()
    first_video = computed[0]

    def spy(frames_path, key, *args, **kwargs):
        computed.append(key)
        return real_compute(frames_path, key, *args, **kwargs)

    computed.clear()
    monkeypatch.setattr(flow_runner, "compute_video_flow", spy)
    run_flow_stage(frames_h5, out, "tvl1", STAGE_TVL1, SIZE, 1, False)
    assert sorted(computed) == sorted(set(VIDEOS) - {first_video})
    resumed = read_flows(out)
    for key in VIDEOS:
        np.testing.assert_array_equal(resumed[key], reference[key])
    assert not (tmp_path / "flow.h5.partial").exists()


def test_changed_settings_do_not_resume_an_old_partial(frames_h5, tmp_path, monkeypatch):
    out = tmp_path / "flow.h5"
    real_compute = flow_runner.compute_video_flow

    def crash_after_first(frames_path, key, *args, **kwargs):
        monkeypatch.setattr(flow_runner, "compute_video_flow", crash)
        return real_compute(frames_path, key, *args, **kwargs)

    def crash(*args, **kwargs):
        raise RuntimeError("interrupted")

    monkeypatch.setattr(flow_runner, "compute_video_flow", crash_after_first)
    with pytest.raises(RuntimeError):
        run_flow_stage(frames_h5, out, "tvl1", STAGE_TVL1, SIZE, 1, False)

    computed: list[str] = []

    def spy(frames_path, key, *args, **kwargs):
        computed.append(key)
        return real_compute(frames_path, key, *args, **kwargs)

    monkeypatch.setattr(flow_runner, "compute_video_flow", spy)
    run_flow_stage(frames_h5, out, "tvl1", STAGE_TVL1, (24, 16), 1, False)  # another size
    assert sorted(computed) == sorted(VIDEOS)


def test_nan_flow_fails_naming_video_and_pair_and_leaves_no_output(
    frames_h5, tmp_path, monkeypatch
):
    real_compute = flow_runner.compute_video_flow

    def nan_in_train_02(frames_path, key, *args, **kwargs):
        flows = real_compute(frames_path, key, *args, **kwargs)
        if key == "train/02":
            flows[3, 5, 5, 0] = np.nan
        return flows

    monkeypatch.setattr(flow_runner, "compute_video_flow", nan_in_train_02)
    out = tmp_path / "flow.h5"
    with pytest.raises(ValueError, match=r"train/02.*pair 3"):
        run_flow_stage(frames_h5, out, "dis", {"preset": "ultrafast"}, SIZE, 1, False)
    assert not out.exists()
    with h5py.File(tmp_path / "flow.h5.partial", "r") as partial:
        assert "train/02" not in partial  # nothing written for the bad video


def test_stage_rejects_bad_input(frames_h5, tmp_path):
    out = tmp_path / "flow.h5"
    with pytest.raises(FileNotFoundError, match="missing.h5"):
        run_flow_stage(tmp_path / "missing.h5", out, "dis", {}, SIZE, 1, False)
    with pytest.raises(ValueError, match=r"'lucas'.*flownet2"):
        run_flow_stage(frames_h5, out, "lucas", {}, SIZE, 1, False)
    with pytest.raises(ValueError, match="n_jobs"):
        run_flow_stage(frames_h5, out, "dis", {}, SIZE, 0, False)
    with pytest.raises(ValueError, match="'checkpoint' is required"):
        run_flow_stage(frames_h5, out, "flownet2", {}, SIZE, 1, False)
    with pytest.raises(ValueError, match=r"'weights'.*checkpoint, device, batch_size"):
        run_flow_stage(frames_h5, out, "flownet2", {"weights": "x"}, SIZE, 1, False)
    with h5py.File(frames_h5, "a") as f:
        f.create_group("test/02").create_dataset("pixels", data=np.zeros(3))
    with pytest.raises(ValueError, match=r"frames.h5.*test/02.*'frames'"):
        run_flow_stage(frames_h5, out, "dis", {}, SIZE, 1, False)
    assert not out.exists()


def test_flownet2_runs_in_process_in_aligned_batches(frames_h5, tmp_path, monkeypatch):
    """A stand-in FlowNet2 whose flow encodes which frames it was given."""
    calls: list[tuple[int, ...]] = []

    class FakeFlowNet2:
        def __init__(self, checkpoint, device="auto", batch_size=4):
            self.checkpoint = checkpoint

        def __call__(self, first, second):
            assert first.shape == second.shape and first.shape[1:] == (28, 40, 3)
            calls.append(first.shape)
            flow = np.empty(first.shape[:3] + (2,), np.float32)
            flow[..., 0] = first.reshape(len(first), -1).mean(1)[:, None, None]
            flow[..., 1] = second.reshape(len(second), -1).mean(1)[:, None, None]
            return flow

    monkeypatch.setitem(
        sys.modules, "vad.motion.flownet2", types.SimpleNamespace(FlowNet2Estimator=FakeFlowNet2)
    )
    with h5py.File(frames_h5, "a") as f:  # frame t of train/01 is flat gray 10 * t
        del f["train/01/frames"]
        levels = np.arange(0, 50, 10, dtype=np.uint8)[:, None, None, None]
        f["train/01"].create_dataset("frames", data=np.broadcast_to(levels, (5, 32, 48, 3)))
    options = {"checkpoint": "fake.pth", "batch_size": 3}
    out = run_flow_stage(frames_h5, tmp_path / "flow.h5", "flownet2", options, SIZE, 2, False)
    assert [shape[0] for shape in calls] == [3, 1] * 3
    flow = read_flows(out)["train/01"]
    np.testing.assert_array_equal(flow[:, 0, 0, 0], [0, 10, 20, 30])
    np.testing.assert_array_equal(flow[:, 0, 0, 1], [10, 20, 30, 40])


# ---------------------------------------------------------------------------------------------
# Benchmark helpers


def test_time_flow_methods_times_each_labelled_method(frames_h5):
    methods = {"farneback": {}, "dis:ultrafast": {"preset": "ultrafast"}}
    results = time_flow_methods(frames_h5, ["train/01", "train/02"], SIZE, methods, n_pairs=6)
    assert set(results) == set(methods)
    assert results["dis:ultrafast"]["method"] == "dis"
    assert results["dis:ultrafast"]["options"]["preset"] == "ultrafast"
    for result in results.values():
        assert result["pairs"] == 6 and result["seconds"] > 0
        assert result["pairs_per_second"] == pytest.approx(6 / result["seconds"])
        assert "end_point_difference" not in result
    with pytest.raises(ValueError, match="fewer than 50 frame pairs"):
        time_flow_methods(frames_h5, ["train/01"], SIZE, methods, n_pairs=50)


def test_time_flow_methods_compares_each_method_to_the_reference(frames_h5):
    methods = {"dis:medium": {"preset": "medium"}, "dis:ultrafast": {"preset": "ultrafast"}}
    results = time_flow_methods(
        frames_h5, ["train/01"], SIZE, methods, n_pairs=3, reference="dis:medium"
    )
    assert "end_point_difference" not in results["dis:medium"]
    difference = results["dis:ultrafast"]["end_point_difference"]
    assert difference["to"] == "dis:medium"
    assert difference["mean_all_px"] > 0
    with pytest.raises(ValueError, match="reference 'tvl1' is not one of the methods"):
        time_flow_methods(frames_h5, ["train/01"], SIZE, methods, n_pairs=3, reference="tvl1")


def test_end_point_difference_on_known_flows():
    reference = np.zeros((2, 2, 2, 2), np.float32)
    reference[0, 0, 0] = (3.0, 4.0)  # the one moving pixel
    ours = reference.copy()
    ours[0, 0, 0] = (0.0, 0.0)  # misses it by 5 px
    ours[1, 1, 1] = (0.0, 0.2)  # 0.2 px off on a static pixel
    difference = end_point_difference([ours], [reference])
    assert difference["mean_all_px"] == pytest.approx(5.2 / 8)
    assert difference["mean_moving_px"] == pytest.approx(5.0)
    assert difference["moving_fraction"] == pytest.approx(1 / 8)


def test_time_parallel_vs_sequential_runs_both_over_all_videos(frames_h5, tmp_path):
    threads = cv2.getNumThreads()
    result = time_parallel_vs_sequential(
        frames_h5, tmp_path / "flow.h5", "dis", {"preset": "ultrafast"}, SIZE, n_jobs=2
    )
    assert (result["videos"], result["pairs"], result["n_jobs"]) == (3, 12, 2)
    assert result["speedup_vs_threaded_loop"] == pytest.approx(
        result["sequential_threaded_seconds"] / result["parallel_seconds"]
    )
    assert result["speedup_vs_single_thread_loop"] == pytest.approx(
        result["sequential_single_thread_seconds"] / result["parallel_seconds"]
    )
    assert result["sequential_threaded_opencv_threads"] == threads
    assert cv2.getNumThreads() == threads  # the 1-thread loop restores OpenCV's setting
    assert set(read_flows(tmp_path / "flow.h5")) == set(VIDEOS)
