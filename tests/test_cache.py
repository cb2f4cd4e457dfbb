from __future__ import annotations

import h5py
import numpy as np
import pytest

from vad.cache import ResumableCache, atomic_output, write_h5


def test_atomic_output_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.json"
    with pytest.raises(RuntimeError):
        with atomic_output(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_write_h5_appears_only_when_closed(tmp_path):
    target = tmp_path / "cache.h5"
    with write_h5(target, {"a": 1}) as f:
        f.create_dataset("x", data=np.arange(3))
        assert not target.exists()
    with h5py.File(target) as f:
        assert f["x"][()].tolist() == [0, 1, 2]
        assert '"a": 1' in f.attrs["settings"]


def _fill(cache: ResumableCache, key: str, value: int) -> None:
    group = cache.start(key)
    group.create_dataset("x", data=np.full(2, value))
    cache.finish(key)


def test_resumable_cache_keeps_complete_videos(tmp_path):
    target = tmp_path / "flow.h5"
    with pytest.raises(RuntimeError):
        with ResumableCache(target, {"method": "dis"}) as cache:
            _fill(cache, "train/01", 1)
            cache.start("train/02")  # started, never finished
            raise RuntimeError("interrupted")
    assert not target.exists()
    with ResumableCache(target, {"method": "dis"}) as cache:
        assert cache.is_done("train/01")
        assert not cache.is_done("train/02")
        _fill(cache, "train/02", 2)
    with h5py.File(target) as f:
        assert f["train/01/x"][()].tolist() == [1, 1]
        assert f["train/02/x"][()].tolist() == [2, 2]


def test_resumable_cache_discards_partial_with_other_settings(tmp_path):
    target = tmp_path / "flow.h5"
    with pytest.raises(RuntimeError):
        with ResumableCache(target, {"method": "dis"}) as cache:
            _fill(cache, "train/01", 1)
            raise RuntimeError("interrupted")
    with ResumableCache(target, {"method": "tvl1"}) as cache:
        assert not cache.is_done("train/01")
