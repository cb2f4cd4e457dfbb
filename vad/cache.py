"""HDF5 caches: one group per video, provenance in attrs, atomic writes, per-video resume.

Layout shared by every cache: a group `<split>/<video name>` per video (train and test clips
may share names, as Ped2's do), file attrs with the stage's settings as JSON.
A cache is written to `<path>.partial` and renamed only when complete, so an interrupted stage
never leaves a file that looks valid. Stages that work video by video keep the partial file
between runs and skip videos already marked complete, as long as the settings fingerprint
stored in the partial file still matches.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import h5py
import numpy as np

COMPLETE = "complete"


def video_key(split: str, name: str) -> str:
    return f"{split}/{name}"


def settings_fingerprint(settings: dict) -> str:
    return json.dumps(settings, sort_keys=True, default=str)


@contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextmanager
def write_h5(path: str | Path, settings: dict | None = None) -> Iterator[h5py.File]:
    """Open a new HDF5 file for writing that appears at `path` only once closed successfully."""
    with atomic_output(path) as tmp:
        with h5py.File(tmp, "w") as f:
            if settings is not None:
                f.attrs["settings"] = settings_fingerprint(settings)
            yield f


class ResumableCache:
    """A per-video HDF5 cache that survives interruption.

    Use: `with ResumableCache(path, settings) as cache:` then `cache.is_done(key)`,
    `group = cache.start(key)` ... `cache.finish(key)`; on leaving the block without error
    `cache.commit()` renames the partial file onto `path`.
    """

    def __init__(self, path: str | Path, settings: dict):
        self.path = Path(path)
        self.partial = self.path.with_name(self.path.name + ".partial")
        self.fingerprint = settings_fingerprint(settings)
        self.file: h5py.File | None = None

    def __enter__(self) -> ResumableCache:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.partial.exists():
            try:
                f = h5py.File(self.partial, "a")
            except OSError:  # a partial file broken mid-write: start again
                self.partial.unlink()
            else:
                if f.attrs.get("settings") == self.fingerprint:
                    self.file = f
                else:
                    f.close()
                    self.partial.unlink()
        if self.file is None:
            self.file = h5py.File(self.partial, "w")
            self.file.attrs["settings"] = self.fingerprint
        return self

    def is_done(self, key: str) -> bool:
        assert self.file is not None
        return key in self.file and bool(self.file[key].attrs.get(COMPLETE, False))

    def start(self, key: str) -> h5py.Group:
        """A fresh, empty group for `key` (an incomplete one from an earlier run is dropped)."""
        assert self.file is not None
        if key in self.file:
            del self.file[key]
        return self.file.create_group(key)

    def finish(self, key: str) -> None:
        assert self.file is not None
        self.file[key].attrs[COMPLETE] = True
        self.file.flush()

    def commit(self) -> None:
        assert self.file is not None
        self.file.close()
        self.file = None
        os.replace(self.partial, self.path)

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None
        if exc_type is None and self.partial.exists():
            os.replace(self.partial, self.path)


def iter_videos(f: h5py.File) -> Iterator[tuple[str, str, h5py.Group]]:
    """Yield (split, name, group) for every video group, train first, names sorted."""
    for split in ("train", "test"):
        if split in f:
            for name in sorted(f[split]):
                yield split, name, f[split][name]


def chunked_dataset(
    group: h5py.Group, name: str, data: np.ndarray, frames_per_chunk: int = 8
) -> h5py.Dataset:
    """Store a T×... array chunked along time, lightly compressed."""
    chunks = (min(frames_per_chunk, max(1, data.shape[0])),) + data.shape[1:]
    return group.create_dataset(name, data=data, chunks=chunks, compression="lzf")
