"""numpy's mean and standard deviation of data read piece by piece, bit for bit: the statistics
that normalise scores (fusion, evaluation) and model cells (the baseline) over all training
frames, in memory independent of how many there are.

numpy reduces in a fixed order of operations, reproduced here:
- over the first axis of a stack of rows (`np.mean(x, axis=0)`, `np.std(x, axis=0)` of a
  C-contiguous x): the rows are added one after the other (`row_mean_std`);
- over a whole contiguous 1-D array (`np.mean(x)`, `np.std(x)`): pairwise summation, blocks of
  at most 128 values each summed in 8 interleaved accumulators, and the sums of the two halves
  (split at a multiple of 8) added recursively (`pairwise_sum`, `flat_mean_std`). The tree
  depends on the number of values, which is therefore counted before they are summed.

The standard deviation is numpy's two-pass one: the mean, then the mean of the squared
deviations from it, then its square root. The functions take `pieces`, a callable that returns a
fresh iterable of the pieces each time, and read them two (rows) or three (flat: count, sum,
squared deviations) times. tests/test_streaming_stats.py checks them against numpy.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import numpy as np

Pieces = Callable[[], Iterable[np.ndarray]]
PAIRWISE_BLOCK = 128  # numpy's PW_BLOCKSIZE
LANES = 8  # its accumulators per block


class _Values:
    """The values of `pieces` (each flattened) in order, taken `count` at a time."""

    def __init__(self, pieces: Iterable[np.ndarray], dtype: np.dtype):
        self._pieces: Iterator[np.ndarray] = iter(pieces)
        self._dtype = dtype
        self._current = np.zeros(0, dtype)
        self._offset = 0

    def take(self, count: int) -> np.ndarray:
        parts = []
        while count:
            if self._offset == len(self._current):
                piece = next(self._pieces, None)
                if piece is None:
                    raise ValueError("the pieces hold fewer values than were counted")
                self._current = np.ravel(np.asarray(piece, self._dtype))
                self._offset = 0
                continue
            taken = min(count, len(self._current) - self._offset)
            parts.append(self._current[self._offset : self._offset + taken])
            self._offset += taken
            count -= taken
        if not parts:
            return np.zeros(0, self._dtype)
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def exhausted(self) -> bool:
        if self._offset < len(self._current):
            return False
        return all(np.size(piece) == 0 for piece in self._pieces)


def _block_sum(values: np.ndarray) -> np.floating:
    """numpy's sum of at most PAIRWISE_BLOCK values: 8 accumulators over the multiple of 8,
    combined as ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7)), then the rest one by one;
    fewer than 8 values one by one from -0.0."""
    total = values.dtype.type(-0.0)
    body = len(values) - len(values) % LANES if len(values) >= LANES else 0
    if body:
        lanes = np.add.reduce(values[:body].reshape(-1, LANES), axis=0)  # row after row
        total = ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + (
            (lanes[4] + lanes[5]) + (lanes[6] + lanes[7])
        )
    for value in values[body:]:
        total = total + value
    return total


def pairwise_sum(pieces: Iterable[np.ndarray], count: int, dtype: type = np.float64):
    """`np.sum` of the concatenation of `pieces` (`count` values in all, as `dtype`), as numpy
    sums a contiguous 1-D array: the same value, bit for bit; memory is one piece."""
    values = _Values(pieces, np.dtype(dtype))

    def node(size: int) -> np.floating:
        if size <= PAIRWISE_BLOCK:
            return _block_sum(values.take(size))
        half = size // 2
        half -= half % LANES
        left = node(half)
        return left + node(size - half)

    total = node(count)
    if not values.exhausted():
        raise ValueError(f"the pieces hold more values than the {count} counted")
    return total


def flat_mean_std(pieces: Pieces) -> tuple[float, float]:
    """(`np.mean(x)`, `np.std(x)`) of x, the concatenation of the float64 values of `pieces()`,
    bit for bit, reading the pieces three times. No values: a ValueError."""
    count = sum(int(np.size(piece)) for piece in pieces())
    if count == 0:
        raise ValueError("mean and standard deviation of no values")
    mean = pairwise_sum(pieces(), count) / np.intp(count)

    def squared_deviations() -> Iterator[np.ndarray]:
        for piece in pieces():
            deviation = np.ravel(np.asarray(piece, np.float64)) - mean
            yield deviation * deviation

    variance = pairwise_sum(squared_deviations(), count) / np.intp(count)
    return float(mean), float(np.sqrt(variance))


def row_mean_std(pieces: Pieces) -> tuple[np.ndarray, np.ndarray]:
    """(`np.mean(x, axis=0)`, `np.std(x, axis=0)`) of x, the float64 stack of the blocks of
    rows `pieces()` yields (each (n, ...)), bit for bit, reading them twice. No rows: a
    ValueError."""

    def add_rows(total: np.ndarray | None, rows: np.ndarray) -> np.ndarray:
        stacked = rows if total is None else np.concatenate([total[None], rows])
        return np.add.reduce(stacked, axis=0)  # row after row, as numpy reduces axis 0

    total, count = None, 0
    for block in pieces():
        block = np.asarray(block, np.float64)
        if len(block):
            total, count = add_rows(total, block), count + len(block)
    if total is None:
        raise ValueError("mean and standard deviation of no rows")
    mean = total / np.intp(count)
    squares = None
    for block in pieces():
        block = np.asarray(block, np.float64)
        if len(block):
            deviation = block - mean
            squares = add_rows(squares, deviation * deviation)
    assert squares is not None
    return mean, np.sqrt(squares / np.intp(count))
