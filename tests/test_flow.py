"""Classical optical flow (vad.motion.flow) and the parallel, resumable flow stage."""

from __future__ import annotations

import json
import sys
import types

import cv2
import h5py
import numpy as np
import pytest

from vad.bench.flow_timing import (
    end_point_difference,
    time_flow_methods,
    time_parallel_vs_sequential,
)
from vad.cache import DIGEST, INPUT_DIGEST, array_digest, video_digests
from vad.datasets.synthetic import open_synthetic
from vad.frame_cache import write_frame_cache
from vad.motion import flow_runner
from vad.motion.flow import (
    check_finite,
    default_options,
    make_flow_estimator,
    prepare_frames,
    prepare_rgb_frames,
    video_flows,
)
from vad.motion.flow_runner import run_flow_stage

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


def store_frames(f: h5py.File, key: str, frames: np.ndarray) -> None:
    """Put (or replace) one video's frames and their digest in an open frames.h5."""
    if key in f:
        del f[key]
    f.create_group(key).create_dataset("frames", data=frames)
    f[key].attrs[DIGEST] = array_digest(frames)


def texture_frames(seed: int, shift: tuple[int, int]) -> np.ndarray:
    """5 RGB frames × 32×48 of one texture translating by `shift`."""
    gray = translated_video(5, 32, 48, shift, seed)
    return np.repeat(gray[..., None], 3, -1)


@pytest.fixture
def frames_h5(tmp_path):
    """A tiny frames.h5: 3 videos × 5 RGB frames × 32×48, each a translating texture."""
    path = tmp_path / "frames.h5"
    with h5py.File(path, "w") as f:
        f.attrs["settings"] = json.dumps({"source": "synthetic"})
        for key, (seed, shift) in VIDEOS.items():
            store_frames(f, key, texture_frames(seed, shift))
    return path


def read_flows(path, keys=VIDEOS) -> dict[str, np.ndarray]:
    with h5py.File(path, "r") as f:
        return {key: f[key]["flow"][()] for key in keys}


REAL_COMPUTE = flow_runner.compute_video_flow


def interrupt_after(monkeypatch, videos: int) -> list[str]:
    """Make the flow stage compute `videos` videos, then fail as Ctrl-C would; returns the keys
    computed (the list keeps growing if the spy is left in place for the next run)."""
    computed: list[str] = []

    def compute(frames_path, key, *args, **kwargs):
        if len(computed) >= videos:
            raise KeyboardInterrupt
        computed.append(key)
        return REAL_COMPUTE(frames_path, key, *args, **kwargs)

    monkeypatch.setattr(flow_runner, "compute_video_flow", compute)
    return computed


def spy_on_compute(monkeypatch) -> list[str]:
    """Record the keys the flow stage computes (and let it compute them)."""
    return interrupt_after(monkeypatch, videos=10**9)


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
            assert f[key].attrs[DIGEST] == array_digest(flow[()])
            assert f[key].attrs[INPUT_DIGEST] == video_digests(frames_h5)[key]
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


def test_a_video_computed_in_blocks_of_pairs_equals_one_pass_over_it(
    frames_h5, tmp_path, monkeypatch
):
    """The stage reads, computes and writes BLOCK_PAIRS pairs at a time (here 3: a video's 4
    pairs are 2 blocks); TV-L1 starting each pair from the previous flow carries it across
    blocks, so the flows are those of one pass over the whole video."""
    options = {**STAGE_TVL1, "use_initial_flow": True}
    monkeypatch.setattr(flow_runner, "BLOCK_PAIRS", 3)
    out = run_flow_stage(frames_h5, tmp_path / "f.h5", "tvl1", options, SIZE, 1, False)
    flows = read_flows(out)
    for key in VIDEOS:
        gray = prepare_frames(flow_runner.read_frames(frames_h5, key), SIZE)
        whole = video_flows(gray, make_flow_estimator("tvl1", options))
        np.testing.assert_array_equal(flows[key], whole.astype(np.float16))


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


STAGE_DIS = {"preset": "ultrafast"}
TINY_SCENE = dict(width=64, height=48, train_videos=1, test_videos=2, frames_per_video=4)


def test_resume_after_the_frames_content_changed_equals_a_clean_run(tmp_path, monkeypatch):
    """The hostile case: interrupted flow, frames re-extracted from another synthetic seed (same
    shapes, same frames settings attr), resumed flow: nothing computed from the old frames stays."""
    frames, truth = tmp_path / "frames.h5", tmp_path / "gt.h5"
    write_frame_cache(open_synthetic(**TINY_SCENE, seed=0), frames, truth, progress=False)
    old_flows = read_flows(
        run_flow_stage(frames, tmp_path / "old.h5", "tvl1", STAGE_TVL1, SIZE, 1, False),
        video_digests(frames),
    )
    out = tmp_path / "flow.h5"
    computed = interrupt_after(monkeypatch, videos=1)
    with pytest.raises(KeyboardInterrupt):
        run_flow_stage(frames, out, "tvl1", STAGE_TVL1, SIZE, 1, False)
    assert computed == ["train/train_00"] and not out.exists()
    with h5py.File(frames, "r") as f:
        frames_settings = f.attrs["settings"]

    write_frame_cache(open_synthetic(**TINY_SCENE, seed=1), frames, truth, progress=False)
    with h5py.File(frames, "r") as f:
        assert f.attrs["settings"] == frames_settings  # only the content tells them apart
    computed = spy_on_compute(monkeypatch)
    run_flow_stage(frames, out, "tvl1", STAGE_TVL1, SIZE, 1, False)
    assert sorted(computed) == sorted(video_digests(frames))  # every video redone

    monkeypatch.undo()
    clean = run_flow_stage(frames, tmp_path / "clean.h5", "tvl1", STAGE_TVL1, SIZE, 1, False)
    resumed, expected = read_flows(out, old_flows), read_flows(clean, old_flows)
    for key in old_flows:
        np.testing.assert_array_equal(resumed[key], expected[key])
    assert not np.array_equal(resumed["train/train_00"], old_flows["train/train_00"])
    assert video_digests(out) == video_digests(clean)


def test_resume_redoes_only_the_videos_whose_frames_changed(frames_h5, tmp_path, monkeypatch):
    out = tmp_path / "flow.h5"
    done = interrupt_after(monkeypatch, videos=2)
    with pytest.raises(KeyboardInterrupt):
        run_flow_stage(frames_h5, out, "dis", STAGE_DIS, SIZE, 1, False)
    assert done == ["train/01", "train/02"]
    with h5py.File(frames_h5, "a") as f:  # train/01 gets new pixels, same shape
        store_frames(f, "train/01", texture_frames(7, (1, 1)))

    computed = spy_on_compute(monkeypatch)
    run_flow_stage(frames_h5, out, "dis", STAGE_DIS, SIZE, 1, False)
    assert sorted(computed) == ["test/01", "train/01"]  # train/02 is reused, unchanged
    monkeypatch.undo()
    clean = run_flow_stage(frames_h5, tmp_path / "clean.h5", "dis", STAGE_DIS, SIZE, 1, False)
    resumed, expected = read_flows(out), read_flows(clean)
    for key in VIDEOS:
        np.testing.assert_array_equal(resumed[key], expected[key])


def test_resume_drops_a_video_the_frames_no_longer_have(frames_h5, tmp_path, monkeypatch):
    out = tmp_path / "flow.h5"
    interrupt_after(monkeypatch, videos=2)
    with pytest.raises(KeyboardInterrupt):
        run_flow_stage(frames_h5, out, "dis", STAGE_DIS, SIZE, 1, False)
    with h5py.File(frames_h5, "a") as f:
        del f["train/02"]
    monkeypatch.undo()
    run_flow_stage(frames_h5, out, "dis", STAGE_DIS, SIZE, 1, False)
    assert set(video_digests(out)) == {"train/01", "test/01"}


def test_frames_without_digests_fail_and_say_to_rerun_the_frames_stage(frames_h5, tmp_path):
    with h5py.File(frames_h5, "a") as f:  # a frame cache from before digests existed
        del f["train/02"].attrs[DIGEST]
    with pytest.raises(ValueError, match=r"frames\.h5: video 'train/02'.*dvc repro -f frames"):
        run_flow_stage(frames_h5, tmp_path / "flow.h5", "dis", STAGE_DIS, SIZE, 1, False)
    assert not (tmp_path / "flow.h5").exists()


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
    real_estimator = flow_runner.make_flow_estimator

    def nan_at_the_eighth_pair(method, options):
        """An estimator whose 8th pair (train/02's pair 3: train/01 has 4 pairs) is NaN."""
        estimator, calls = real_estimator(method, options), []

        def estimate(first, second):
            calls.append(1)
            flow = estimator(first, second)
            if len(calls) == 8:
                flow[5, 5, 0] = np.nan
            return flow

        return estimate

    monkeypatch.setattr(flow_runner, "make_flow_estimator", nan_at_the_eighth_pair)
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
        levels = np.arange(0, 50, 10, dtype=np.uint8)[:, None, None, None]
        store_frames(f, "train/01", np.broadcast_to(levels, (5, 32, 48, 3)))
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
