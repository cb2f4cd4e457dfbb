from __future__ import annotations

import h5py
import numpy as np
import pytest

from vad.cache import ResumableCache, chunked_dataset, video_key, write_h5
from vad.motion import dynflow_runner
from vad.motion.dynflow_runner import DynamicFlowSettings, run_dynamic_flow_stage

SETTINGS = DynamicFlowSettings(window=4)


@pytest.fixture
def flow_file(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "flow.h5"
    with write_h5(path, {"method": "test"}) as f:
        for split, name, frames in [("train", "a", 7), ("test", "b", 5), ("test", "c", 3)]:
            group = f.create_group(video_key(split, name))
            drift = np.linspace(0, 2, frames - 1)[:, None, None, None]
            flows = drift + 0.1 * rng.standard_normal((frames - 1, 6, 8, 2))
            chunked_dataset(group, "flow", flows.astype(np.float16))
            group.attrs.update(name=name, split=split)
    return path


def read_all(path):
    with h5py.File(path) as f:
        return {key: f[key]["dynflow"][()] for key in ("train/a", "test/b", "test/c")}


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


def test_resume_skips_finished_videos(flow_file, tmp_path, monkeypatch):
    out = tmp_path / "dyn.h5"
    run_dynamic_flow_stage(flow_file, tmp_path / "full.h5", SETTINGS, progress=False)
    settings = {**SETTINGS.__dict__, "flow": str(flow_file)}
    with pytest.raises(RuntimeError):  # an interrupted run that finished one video
        with ResumableCache(out, settings) as cache:
            group = cache.start("train/a")
            group.create_dataset("dynflow", data=read_all(tmp_path / "full.h5")["train/a"])
            cache.finish("train/a")
            raise RuntimeError("interrupted")
    computed = []
    original = dynflow_runner.video_dynamic_flow

    def spy(key, **kwargs):
        computed.append(key)
        return original(key, **kwargs)

    monkeypatch.setattr(dynflow_runner, "video_dynamic_flow", spy)
    run_dynamic_flow_stage(flow_file, out, SETTINGS, n_jobs=1, progress=False)
    assert sorted(computed) == ["test/b", "test/c"]
    full, resumed = read_all(tmp_path / "full.h5"), read_all(out)
    for key in full:
        np.testing.assert_array_equal(full[key], resumed[key])


def test_non_finite_flow_is_rejected_with_its_video(tmp_path):
    path = tmp_path / "flow.h5"
    with write_h5(path, {}) as f:
        flows = np.zeros((4, 6, 8, 2), np.float16)
        flows[2, 1, 1, 0] = np.nan
        chunked_dataset(f.create_group("test/bad"), "flow", flows)
    with pytest.raises(ValueError, match="test/bad"):
        run_dynamic_flow_stage(path, tmp_path / "dyn.h5", SETTINGS, progress=False)
    assert not (tmp_path / "dyn.h5").exists()
