"""vad.streaming_stats: numpy's mean and standard deviation of data fed in pieces, bit for bit
(numpy itself, on the whole array, is the reference)."""

from __future__ import annotations

import numpy as np
import pytest

from vad.streaming_stats import flat_mean_std, pairwise_sum, row_mean_std


def pieces_of(values: np.ndarray, rng: np.random.Generator, most: int = 6) -> list[np.ndarray]:
    """`values` cut along its first axis at random places (empty pieces included)."""
    cuts = np.sort(rng.integers(0, len(values) + 1, size=rng.integers(0, most)))
    return np.split(values, cuts)


@pytest.mark.parametrize("count", [1, 7, 8, 9, 127, 128, 129, 136, 255, 1000, 4097, 65537])
def test_pairwise_sums_and_flat_statistics_equal_numpy_bit_for_bit(count):
    rng = np.random.default_rng(count)
    values = rng.standard_normal(count) * 1000 + 5  # large offset: rounding order shows
    pieces = pieces_of(values, rng)
    assert pairwise_sum(pieces, count) == np.add.reduce(values)
    single = values.astype(np.float32)
    assert pairwise_sum(pieces_of(single, rng), count, np.float32) == np.add.reduce(single)
    assert flat_mean_std(lambda: pieces) == (float(values.mean()), float(values.std()))


def test_a_sequential_sum_is_not_numpys_so_the_order_matters():
    """What the module is for: summed in another order, the bits differ."""
    values = np.random.default_rng(0).standard_normal(10_000) * 1000 + 5
    sequential = np.float64(0.0)
    for value in values:
        sequential += value
    assert sequential != np.add.reduce(values)
    assert pairwise_sum([values[:3], values[3:]], len(values)) == np.add.reduce(values)


@pytest.mark.parametrize("shape", [(1, 3), (5, 10, 15), (1000, 10, 15), (777, 7)])
def test_row_statistics_equal_numpy_over_the_first_axis(shape):
    rng = np.random.default_rng(len(shape))
    rows = rng.standard_normal(shape) * 100 + 3
    mean, std = row_mean_std(lambda: pieces_of(rows, rng))
    np.testing.assert_array_equal(mean, rows.mean(axis=0))
    np.testing.assert_array_equal(std, rows.std(axis=0))


def test_miscounted_or_empty_pieces_are_errors():
    with pytest.raises(ValueError, match="fewer values"):
        pairwise_sum([np.ones(3)], 4)
    with pytest.raises(ValueError, match="more values"):
        pairwise_sum([np.ones(3)], 2)
    with pytest.raises(ValueError, match="no values"):
        flat_mean_std(lambda: [np.zeros(0)])
    with pytest.raises(ValueError, match="no rows"):
        row_mean_std(lambda: [])
