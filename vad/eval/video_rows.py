"""A test video's score maps and ground-truth masks, read a range of frames at a time for the
evaluation that streams (vad.report.ReportEvaluation): `open_score_maps` and `open_masks` keep
the file open while one video is evaluated and give its dataset as `StoredRows`, sliced along
time like the array it holds and reading only the rows asked for.

Kept in vad/eval rather than beside the writers in vad/scores.py and vad/frame_cache.py: most
stages depend on those (dvc.yaml deps), so a change there would re-run them all for readers that
only `evaluate` uses.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import h5py
import numpy as np

from vad.cache import open_cache, read_dataset, video_key


class StoredRows:
    """A (T, ...) dataset of a cache as an array read a range of rows at a time: `shape`, and
    `rows[start:stop]`, which reads those rows only (`read_dataset`)."""

    def __init__(self, dataset: h5py.Dataset):
        self.dataset = dataset
        self.shape: tuple[int, ...] = dataset.shape

    def __getitem__(self, rows: slice) -> np.ndarray:
        if not isinstance(rows, slice) or rows.step not in (None, 1):
            raise TypeError(f"StoredRows reads a range of rows, not {rows!r}")
        return read_dataset(self.dataset, rows)


@contextmanager
def _open_rows(path: str | Path, key: str, dataset: str) -> Iterator[StoredRows]:
    with open_cache(path) as f:
        if key not in f or dataset not in f[key]:
            raise KeyError(f"{path}: no dataset '{dataset}' for video '{key}'")
        yield StoredRows(f[key][dataset])


def open_score_maps(
    path: str | Path, name: str, split: str = "test"
) -> AbstractContextManager[StoredRows]:
    """The score maps (T, h, w) of one video of a score file, open while the `with` block runs:
    `with open_score_maps(path, name) as maps: maps[first:end]`."""
    return _open_rows(path, video_key(split, name), "score_maps")


def open_masks(path: str | Path, name: str) -> AbstractContextManager[StoredRows]:
    """The ground-truth masks (T, H, W) bool of one test video of the ground-truth cache, open
    while the `with` block runs (what `vad.frame_cache.load_masks` reads whole)."""
    return _open_rows(path, video_key("test", name), "masks")
