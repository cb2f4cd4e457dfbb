"""What makes an object anomalous, in words: the attribute with the largest calibrated score
and, within it, the feature that lies furthest from the object's nearest normal neighbour (in
training standard deviations)."""

from __future__ import annotations

import numpy as np

SPEED_NAMES = ("mean speed", "90th-percentile speed")


def deviating_feature(value: np.ndarray, neighbour: np.ndarray, spread: np.ndarray) -> int:
    """Index of the feature whose difference to the nearest normal object is largest in units
    of the training standard deviation `spread`."""
    return int(np.argmax(np.abs(value - neighbour) / np.maximum(spread, 1e-9)))


def describe(attribute: str, feature: int, value: float, neighbour: float, bins: int) -> str:
    """One line, e.g. "speed: mean speed 3.1x that of the nearest normal object"."""
    ratio = value / neighbour if abs(neighbour) > 1e-6 else float("inf")
    times = f"{ratio:.1f}x" if np.isfinite(ratio) else f"{value:.2f} vs {neighbour:.2f}"
    if attribute == "direction":
        width = 360 / bins
        low = feature * width
        return (
            f"direction: motion toward {low:.0f}-{low + width:.0f} deg "
            f"{times} that of the nearest normal object"
        )
    if attribute == "speed":
        return f"speed: {SPEED_NAMES[feature]} {times} that of the nearest normal object"
    if attribute == "size":
        return f"size: box {('width', 'height')[feature]} {times} that of the nearest normal object"
    axis = ("horizontal", "vertical")[feature]
    return f"position: {axis} position {value:.2f} (nearest normal object {neighbour:.2f})"
