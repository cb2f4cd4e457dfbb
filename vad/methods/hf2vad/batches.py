"""Chunk-random minibatches of the training cubes, read from the prepared file as they are
needed, so that training holds a few chunks of cubes whatever the size of the dataset.

The cubes are stored in chunks of CUBES_PER_CHUNK (vad.stc.runner). An epoch visits the chunks
in a shuffled order, WINDOW_CHUNKS at a time, and shuffles the cubes within each window; its
order is a function of (seed, phase, epoch) only (vad.training.derived_seed), so a resumed run
sees the batches an uninterrupted one would. Reading keeps the chunks of the last two windows
decompressed (a batch may straddle two windows), so every chunk is read once per epoch.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import h5py
import numpy as np

from vad.cache import read_dataset
from vad.stc.runner import CUBES_PER_CHUNK
from vad.training import derived_seed, epoch_order

WINDOW_CHUNKS = 16  # chunks whose cubes are shuffled together (1,024 cubes)
WITHIN_WINDOW_STREAM = 2  # derived_seed stream of the shuffle within windows (0, 1: vad.training)


class TrainingCubes:
    """The cubes of `videos` (open groups of stc.h5's layout) as one sequence of rows, video
    after video, read a chunk at a time (`take`)."""

    def __init__(self, videos: Sequence[h5py.Group], fields: Sequence[str]):
        self.videos = list(videos)
        self.fields = tuple(fields)
        counts = [len(group["frame"]) for group in self.videos]
        self.offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        self.chunks = [
            (v, start, min(start + CUBES_PER_CHUNK, count))
            for v, count in enumerate(counts)
            for start in range(0, count, CUBES_PER_CHUNK)
        ]
        self.chunk_of_row = np.concatenate(
            [np.full(stop - start, c, np.int64) for c, (_, start, stop) in enumerate(self.chunks)]
            or [np.zeros(0, np.int64)]
        )
        self.cached: OrderedDict[int, dict[str, np.ndarray]] = OrderedDict()

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def epoch_order(self, seed: int, phase: int, epoch: int) -> np.ndarray:
        """Every row once: the chunks in a shuffled order, the rows of each window of
        WINDOW_CHUNKS chunks shuffled together."""
        chunks = epoch_order(seed, phase, epoch, len(self.chunks))
        rng = np.random.default_rng(derived_seed(seed, phase, epoch, WITHIN_WINDOW_STREAM))
        parts = []
        for first in range(0, len(chunks), WINDOW_CHUNKS):
            rows = np.concatenate([self._rows(c) for c in chunks[first : first + WINDOW_CHUNKS]])
            parts.append(rng.permutation(rows))
        return np.concatenate(parts) if parts else np.zeros(0, np.int64)

    def take(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        """Each field's values of `rows` (global row numbers), in that order."""
        rows = np.asarray(rows, np.int64)
        chunks = self.chunk_of_row[rows]
        parts = {}
        for c in np.unique(chunks).tolist():
            video, start, _ = self.chunks[c]
            chosen = np.flatnonzero(chunks == c)
            parts[c] = (chosen, rows[chosen] - self.offsets[video] - start, self._load(c))
        out = {}
        for field in self.fields:
            like = next(iter(parts.values()))[2][field]
            values = np.empty((len(rows),) + like.shape[1:], like.dtype)
            for chosen, local, cached in parts.values():
                values[chosen] = cached[field][local]
            out[field] = values
        return out

    def _rows(self, chunk: int) -> np.ndarray:
        video, start, stop = self.chunks[chunk]
        return np.arange(start, stop, dtype=np.int64) + self.offsets[video]

    def _load(self, chunk: int) -> dict[str, np.ndarray]:
        """The chunk's fields, read unless they are among the 2 * WINDOW_CHUNKS last used."""
        if chunk in self.cached:
            self.cached.move_to_end(chunk)
            return self.cached[chunk]
        video, start, stop = self.chunks[chunk]
        group = self.videos[video]
        self.cached[chunk] = {
            field: read_dataset(group[field], np.s_[start:stop]) for field in self.fields
        }
        while len(self.cached) > 2 * WINDOW_CHUNKS:
            self.cached.popitem(last=False)
        return self.cached[chunk]
