from __future__ import annotations

from dataclasses import asdict

import h5py
import numpy as np
import pytest

from vad.cache import (
    DIGEST,
    INPUT_DIGEST,
    ResumableCache,
    array_digest,
    chunked_dataset,
    video_digests,
    video_key,
    write_h5,
)
from vad.datasets.synthetic import open_synthetic
from vad.frame_cache import write_frame_cache
from vad.motion import dynflow_runner
from vad.motion.dynamic_flow import dynamic_flows
from vad.motion.dynflow_runner import DynamicFlowSettings, run_dynamic_flow_stage
from vad.motion.flow_runner import run_flow_stage

SETTINGS = DynamicFlowSettings(window=4)
REAL_VIDEO_DYNAMIC_FLOW = dynflow_runner.video_dynamic_flow


def store_flow(f, key: str, flows: np.ndarray) -> None:
    """One video's float16 flow, its digest and its name/split attrs, as the flow stage has them."""
    split, name = key.split("/")
    group = f.create_group(key)
    stored = flows.astype(np.float16)
    chunked_dataset(group, "flow", stored)
    group.attrs.update(name=name, split=split, **{DIGEST: array_digest(stored)})


def write_flow_file(path, seed: int = 0, drift_to: float = 2.0) -> None:
    """Three videos of noisy flow drifting from 0 to `drift_to` px."""
    rng = np.random.default_rng(seed)
    with write_h5(path, {"method": "test"}) as f:
        for split, name, frames in [("train", "a", 7), ("test", "b", 5), ("test", "c", 3)]:
            drift = np.linspace(0, drift_to, frames - 1)[:, None, None, None]
            flows = drift + 0.1 * rng.standard_normal((frames - 1, 6, 8, 2))
            store_flow(f, video_key(split, name), flows)


@pytest.fixture
def flow_file(tmp_path):
    path = tmp_path / "flow.h5"
    write_flow_file(path)
    return path


def spy_on_videos(monkeypatch, interrupt_after: int | None = None) -> list[str]:
    """Record the keys the stage computes; with `interrupt_after`, fail as Ctrl-C would once
    that many are done."""
    computed: list[str] = []

    def spy(key, **kwargs):
        if interrupt_after is not None and len(computed) >= interrupt_after:
            raise KeyboardInterrupt
        computed.append(key)
        return REAL_VIDEO_DYNAMIC_FLOW(key, **kwargs)

    monkeypatch.setattr(dynflow_runner, "video_dynamic_flow", spy)
    return computed


def read_all(path):
    with h5py.File(path) as f:
        return {key: f[key]["dynflow"][()] for key in ("train/a", "test/b", "test/c")}


def read_dynflow(path, key: str) -> np.ndarray:
    with h5py.File(path, "r") as f:
        return f[key]["dynflow"][()]


def test_one_map_per_frame_and_any_n_jobs_gives_the_same(flow_file, tmp_path):
    run_dynamic_flow_stage(flow_file, tmp_path / "one.h5", SETTINGS, n_jobs=1, progress=False)
    run_dynamic_flow_stage(flow_file, tmp_path / "two.h5", SETTINGS, n_jobs=2, progress=False)
    one, two = read_all(tmp_path / "one.h5"), read_all(tmp_path / "two.h5")
    assert {k: v.shape for k, v in one.items()} == {
        "train/a": (7, 6, 8, 3),
        "test/b": (5, 6, 8, 3),
        "test/c": (3, 6, 8, 3),
    }
    for key in one:
        assert one[key].dtype == np.uint8
        np.testing.assert_array_equal(one[key], two[key])
    with h5py.File(tmp_path / "one.h5") as f:
        assert f["test/b"].attrs["split"] == "test"
        for key in one:
            assert f[key].attrs[DIGEST] == array_digest(one[key])
            assert f[key].attrs[INPUT_DIGEST] == video_digests(flow_file)[key]


def test_videos_computed_a_few_windows_at_a_time_equal_their_whole_dynamic_flow(
    flow_file, tmp_path, monkeypatch
):
    """The stage reads flows and writes maps a block of windows at a time (here 2: train/a's 3
    windows of 4 flows span 2 blocks, with the frames that repeat the last window); the maps
    are those of the whole video's flows, for both rank poolings."""
    monkeypatch.setattr(dynflow_runner, "BLOCK_WINDOWS", 2)
    for method in ("ranksvm", "approx"):
        settings = DynamicFlowSettings(window=4, method=method)
        out = tmp_path / f"{method}.h5"
        run_dynamic_flow_stage(flow_file, out, settings, n_jobs=1, progress=False)
        with h5py.File(flow_file) as f:
            whole = {key: f[key]["flow"][()].astype(np.float32) for key in read_all(out)}
        for key, maps in read_all(out).items():
            expected = dynamic_flows(whole[key], window=4, method=method)
            np.testing.assert_array_equal(maps, expected)


def test_resume_skips_finished_videos(flow_file, tmp_path, monkeypatch):
    out = tmp_path / "dyn.h5"
    run_dynamic_flow_stage(flow_file, tmp_path / "full.h5", SETTINGS, progress=False)
    full = read_all(tmp_path / "full.h5")
    with pytest.raises(RuntimeError):  # an interrupted run that finished one video
        with ResumableCache(out, asdict(SETTINGS)) as cache:
            group = cache.start("train/a")
            group.create_dataset("dynflow", data=full["train/a"])
            input_digest = video_digests(flow_file)["train/a"]
            cache.finish("train/a", digest=array_digest(full["train/a"]), input_digest=input_digest)
            raise RuntimeError("interrupted")
    computed = spy_on_videos(monkeypatch)
    run_dynamic_flow_stage(flow_file, out, SETTINGS, n_jobs=1, progress=False)
    assert sorted(computed) == ["test/b", "test/c"]
    resumed = read_all(out)
    for key in full:
        np.testing.assert_array_equal(full[key], resumed[key])


def test_resume_after_the_flow_content_changed_equals_a_clean_run(flow_file, tmp_path, monkeypatch):
    """Interrupted dynamic flow, then flow.h5 rewritten with other flows at the same path and
    shapes, then resumed: nothing computed from the old flows stays."""
    out = tmp_path / "dyn.h5"
    run_dynamic_flow_stage(flow_file, tmp_path / "old.h5", SETTINGS, progress=False)
    old = read_all(tmp_path / "old.h5")
    done = spy_on_videos(monkeypatch, interrupt_after=1)
    with pytest.raises(KeyboardInterrupt):
        run_dynamic_flow_stage(flow_file, out, SETTINGS, n_jobs=1, progress=False)
    assert done == ["train/a"] and not out.exists()

    write_flow_file(flow_file, seed=1, drift_to=-2.0)  # other content, same path and shapes
    computed = spy_on_videos(monkeypatch)
    run_dynamic_flow_stage(flow_file, out, SETTINGS, n_jobs=1, progress=False)
    assert sorted(computed) == ["test/b", "test/c", "train/a"]

    monkeypatch.undo()
    run_dynamic_flow_stage(flow_file, tmp_path / "clean.h5", SETTINGS, progress=False)
    resumed, clean = read_all(out), read_all(tmp_path / "clean.h5")
    for key in clean:
        np.testing.assert_array_equal(resumed[key], clean[key])
    assert not np.array_equal(resumed["train/a"], old["train/a"])


def test_resume_after_the_flow_method_changed_equals_a_clean_run(tmp_path, monkeypatch):
    """The hostile case end to end: interrupted dynamic flow, `flow.method` changed (flow.h5
    recomputed at the same path), resumed dynamic flow equals a clean run on the new flows."""
    frames, flow = tmp_path / "frames.h5", tmp_path / "flow.h5"
    scene = open_synthetic(width=64, height=48, train_videos=1, test_videos=1, frames_per_video=6)
    write_frame_cache(scene, frames, tmp_path / "gt.h5", progress=False)
    run_flow_stage(frames, flow, "dis", {"preset": "ultrafast"}, (32, 24), 1, progress=False)
    out = tmp_path / "dyn.h5"
    done = spy_on_videos(monkeypatch, interrupt_after=1)
    with pytest.raises(KeyboardInterrupt):
        run_dynamic_flow_stage(flow, out, SETTINGS, n_jobs=1, progress=False)
    old_maps = {key: read_dynflow(tmp_path / "dyn.h5.partial", key) for key in done}

    run_flow_stage(frames, flow, "farneback", {}, (32, 24), 1, progress=False)
    computed = spy_on_videos(monkeypatch)
    run_dynamic_flow_stage(flow, out, SETTINGS, n_jobs=1, progress=False)
    assert sorted(computed) == sorted(video_digests(flow))  # every video redone

    monkeypatch.undo()
    run_dynamic_flow_stage(flow, tmp_path / "clean.h5", SETTINGS, progress=False)
    for key in video_digests(flow):
        np.testing.assert_array_equal(
            read_dynflow(out, key), read_dynflow(tmp_path / "clean.h5", key)
        )
    for key, maps in old_maps.items():
        assert not np.array_equal(read_dynflow(out, key), maps)
    assert video_digests(out) == video_digests(tmp_path / "clean.h5")


def test_flow_without_digests_fails_and_says_to_rerun_the_flow_stage(flow_file, tmp_path):
    with h5py.File(flow_file, "a") as f:  # a flow cache from before digests existed
        del f["test/c"].attrs[DIGEST]
    with pytest.raises(ValueError, match=r"flow\.h5: video 'test/c'.*dvc repro -f flow"):
        run_dynamic_flow_stage(flow_file, tmp_path / "dyn.h5", SETTINGS, progress=False)
    assert not (tmp_path / "dyn.h5").exists()


def test_non_finite_flow_is_rejected_with_its_video(tmp_path):
    path = tmp_path / "flow.h5"
    with write_h5(path, {}) as f:
        flows = np.zeros((4, 6, 8, 2), np.float16)
        flows[2, 1, 1, 0] = np.nan
        store_flow(f, "test/bad", flows)
    with pytest.raises(ValueError, match="test/bad"):
        run_dynamic_flow_stage(path, tmp_path / "dyn.h5", SETTINGS, progress=False)
    assert not (tmp_path / "dyn.h5").exists()
