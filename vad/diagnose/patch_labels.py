"""Patch labels from pixel-level ground truth: which scoring-grid patches are anomalous.

A mask pixel (at the mask's own resolution) belongs to the grid cell that contains its centre
(a centre on a cell border goes to the later cell), so no mask is resampled. A patch's coverage
is the fraction of its pixels that are masked. With a fraction f in (0, 1]:

- anomalous: coverage >= f;
- normal: coverage == 0 (no masked pixel at all);
- ambiguous: 0 < coverage < f, left out of both classes (counted).
"""

from __future__ import annotations

import numpy as np

ANOMALOUS, NORMAL, AMBIGUOUS = 1, 0, -1
CLASS_NAMES = {ANOMALOUS: "anomalous", NORMAL: "normal", AMBIGUOUS: "ambiguous"}


def _cell_starts(length: int, cells: int) -> np.ndarray:
    """First pixel index of each of `cells` cells along an axis of `length` pixels."""
    if length < cells:
        raise ValueError(f"a mask side of {length} pixels cannot be cut into {cells} grid cells")
    cell_of_pixel = np.floor((np.arange(length) + 0.5) * cells / length).astype(np.int64)
    return np.searchsorted(cell_of_pixel, np.arange(cells))


def cell_coverage(masks: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """(T, H, W) bool masks -> (T, rows, cols) float64: fraction of each grid cell's mask pixels
    that are set (each pixel counted in the cell holding its centre)."""
    masks = np.asarray(masks)
    if masks.ndim != 3:
        raise ValueError(f"masks must be (T, H, W), got shape {masks.shape}")
    height, width = masks.shape[1:]
    row_starts, col_starts = _cell_starts(height, rows), _cell_starts(width, cols)
    per_row_band = np.add.reduceat(masks.astype(np.int32), row_starts, axis=1)
    counts = np.add.reduceat(per_row_band, col_starts, axis=2)
    heights = np.diff(np.append(row_starts, height))
    widths = np.diff(np.append(col_starts, width))
    return counts / np.outer(heights, widths)


def patch_classes(coverage: np.ndarray, fraction: float) -> np.ndarray:
    """Coverage -> int8 classes ANOMALOUS (>= `fraction`), NORMAL (0) or AMBIGUOUS (between)."""
    if not 0 < fraction <= 1:
        raise ValueError(f"the mask fraction must be in (0, 1], got {fraction}")
    classes = np.full(coverage.shape, AMBIGUOUS, dtype=np.int8)
    classes[coverage == 0] = NORMAL
    classes[coverage >= fraction] = ANOMALOUS
    return classes
