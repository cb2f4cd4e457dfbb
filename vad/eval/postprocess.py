"""Post-processing of anomaly scores before the metrics: temporal smoothing, then normalization.

Smoothing runs along time, per video, with edges handled by reflection (scipy's "reflect":
the sequence is mirrored about its end, d c b a | a b c d | d c b a):
- `none`;
- `median`: running median over `window` frames (odd);
- `gaussian`: Gaussian kernel with standard deviation `sigma` frames (truncated at 4 sigma).

Normalization is an affine map per video, fitted on the (smoothed) frame scores:
- `none`;
- `minmax`: (s - min) / (max - min) over the video, so it spans [0, 1]; a constant video -> 0.
  It uses each test video's own minimum and maximum, i.e. statistics of the test data
  (transductive): `Protocol.uses_test_statistics` says so and the metrics record it.

There is no z-score with training statistics: one affine map x -> (x - mean) / std with std > 0,
common to every video, keeps the order of all scores, so no ROC-based metric (frame AUC micro
or macro, EER, pixel AUC or EER) can change; the option only suggested otherwise and was removed
(`REMOVED_NORMALIZATIONS` says why when a protocol asks for it).

Score maps (T, h, w) get the same smoothing along time (pixel by pixel) and the very affine
map of their video's frame scores, so pixel-level numbers use maps processed consistently with
the frame scores. A `Protocol` holds the choice and is written next to the metrics it produced.

A video's map need not be in memory whole: `Protocol.map_rows` gives a block of frames of the
post-processed map, equal bit for bit to those rows of the whole one, reading only the block and
the `smoothing_halo` frames on either side that its smoothing reaches.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import NamedTuple
from typing import Protocol as Interface

import numpy as np
from scipy.ndimage import gaussian_filter1d, median_filter

SMOOTHINGS = ("none", "median", "gaussian")
NORMALIZATIONS = ("none", "minmax")
REMOVED_NORMALIZATIONS = {
    "zscore": (
        "was removed: z-scoring with the training mean and std is one increasing affine map "
        "common to every video, which leaves every ROC-based metric (frame and pixel AUC, EER) "
        "unchanged; use `none` (the same numbers) or `minmax` (per test video)"
    )
}


class Affine(NamedTuple):
    """x -> (x - shift) / spread; a spread of 0 (a constant video) maps everything to 0."""

    shift: float
    spread: float

    def __call__(self, values: np.ndarray) -> np.ndarray:
        if self.spread == 0:
            return np.zeros_like(values)
        return (values - self.shift) / self.spread


IDENTITY = Affine(0.0, 1.0)
# scipy's default: the Gaussian kernel reaches int(4 sigma + 0.5) frames to either side.
GAUSSIAN_TRUNCATE = 4.0


class TimeRows(Interface):
    """A (T, h, w) score map, or anything sliced like one along time (an HDF5 dataset): rows
    are read only when sliced."""

    @property
    def shape(self) -> tuple[int, ...]: ...

    def __getitem__(self, rows: slice) -> np.ndarray: ...


def _as_float(values: np.ndarray) -> np.ndarray:
    """Keep float32/float64 as they are (maps can be large); anything else becomes float64."""
    values = np.asarray(values)
    return values if values.dtype in (np.float32, np.float64) else values.astype(np.float64)


def smooth_along_time(
    values: np.ndarray, smoothing: str, *, window: int | None = None, sigma: float | None = None
) -> np.ndarray:
    """Smooth a (T,) score sequence or (T, h, w) maps along axis 0, with reflected edges."""
    values = _as_float(values)
    if smoothing == "none":
        return values.copy()
    if smoothing == "median":
        if window is None:
            raise ValueError("median smoothing needs a window")
        return median_filter(values, size=(window,) + (1,) * (values.ndim - 1), mode="reflect")
    if smoothing == "gaussian":
        if sigma is None:
            raise ValueError("gaussian smoothing needs a sigma")
        return gaussian_filter1d(values, sigma, axis=0, mode="reflect", truncate=GAUSSIAN_TRUNCATE)
    raise ValueError(f"smoothing must be one of {', '.join(SMOOTHINGS)}; got {smoothing!r}")


def smoothing_halo(smoothing: str, *, window: int | None = None, sigma: float | None = None) -> int:
    """How many frames before and after a frame its smoothed value depends on: a block of
    frames smoothed with this many more on either side (clipped to the video) has the rows of
    the whole video smoothed. scipy centres a median window of w frames on frame w // 2 of it
    (w // 2 frames before, (w - 1) // 2 after); gaussian_filter1d's kernel has radius
    int(truncate * sigma + 0.5). Where a block's frames reach the end of the video, so does
    what is read, and the reflected edge is the video's own."""
    if smoothing == "median":
        return int(window) // 2
    if smoothing == "gaussian":
        return int(GAUSSIAN_TRUNCATE * sigma + 0.5)
    return 0


def _check_normalization(normalization: str) -> None:
    if normalization in REMOVED_NORMALIZATIONS:
        raise ValueError(f"normalization {normalization!r} {REMOVED_NORMALIZATIONS[normalization]}")
    if normalization not in NORMALIZATIONS:
        raise ValueError(
            f"normalization must be one of {', '.join(NORMALIZATIONS)}; got {normalization!r}"
        )


def normalization_affine(scores: np.ndarray, normalization: str) -> Affine:
    """The affine map that normalizes one video's frame scores."""
    _check_normalization(normalization)
    if normalization == "minmax":
        low, high = float(np.min(scores)), float(np.max(scores))
        return Affine(low, high - low)
    return IDENTITY


def _check_video_scores(name: str, scores: np.ndarray) -> np.ndarray:
    scores = _as_float(scores)
    if scores.ndim != 1 or scores.size == 0:
        raise ValueError(
            f"video {name!r}: scores must be a non-empty 1-D array, got {scores.shape}"
        )
    if not np.isfinite(scores).all():
        raise ValueError(f"video {name!r}: scores contain NaN or infinite values")
    return scores


def check_map_shape(name: str, shape: tuple[int, ...], n_frames: int) -> None:
    """A video's score map must be (T, h, w), T its number of frame scores."""
    if len(shape) != 3 or shape[0] != n_frames:
        raise ValueError(
            f"video {name!r}: score map must be ({n_frames}, h, w) to match its scores, "
            f"got {tuple(shape)}"
        )


def _check_map_rows(name: str, rows: np.ndarray, first: int) -> np.ndarray:
    """Rows of a video's map from frame `first` on, finite (else the first bad frame is named)."""
    rows = _as_float(rows)
    finite = np.isfinite(rows).all(axis=(1, 2))
    if not finite.all():
        frame = first + int(np.argmin(finite))
        raise ValueError(
            f"video {name!r}: score map contains NaN or infinite values (frame {frame})"
        )
    return rows


def _is_number(value: object) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(
        value, bool | np.bool_
    )


def _valid_window(window: object) -> int:
    if not (_is_number(window) and float(window).is_integer() and window >= 1 and window % 2):
        raise ValueError(f"window must be an odd integer >= 1 for median smoothing, got {window!r}")
    return int(window)


def _valid_sigma(sigma: object) -> float:
    if not (_is_number(sigma) and math.isfinite(sigma) and sigma > 0):
        raise ValueError(f"sigma must be a positive number for gaussian smoothing, got {sigma!r}")
    return float(sigma)


@dataclass(frozen=True)
class Protocol:
    """How scores are post-processed; `window` is used by median, `sigma` by gaussian only.

    The constructor is strict (a window without median smoothing is an error); `from_params`
    accepts both and keeps the one the smoothing uses.
    """

    smoothing: str = "none"
    window: int | None = None
    sigma: float | None = None
    normalization: str = "none"

    def __post_init__(self) -> None:
        if self.smoothing not in SMOOTHINGS:
            raise ValueError(
                f"smoothing must be one of {', '.join(SMOOTHINGS)}; got {self.smoothing!r}"
            )
        _check_normalization(self.normalization)
        self._check_window()
        self._check_sigma()

    def _check_window(self) -> None:
        if self.smoothing == "median":
            object.__setattr__(self, "window", _valid_window(self.window))
        elif self.window is not None:
            raise ValueError(f"window is used by median smoothing only, not {self.smoothing!r}")

    def _check_sigma(self) -> None:
        if self.smoothing == "gaussian":
            object.__setattr__(self, "sigma", _valid_sigma(self.sigma))
        elif self.sigma is not None:
            raise ValueError(f"sigma is used by gaussian smoothing only, not {self.smoothing!r}")

    @classmethod
    def from_params(cls, params: Mapping[str, object]) -> Protocol:
        """Build from a params mapping (e.g. params.yaml); missing keys default, null = absent.

        `window` and `sigma` may both be present whatever the smoothing (so a params file can
        switch between them): each given one is validated, and the unused one is dropped.
        """
        if not isinstance(params, Mapping):
            raise ValueError(f"protocol params must be a mapping, got {type(params).__name__}")
        known = ("smoothing", "window", "sigma", "normalization")
        unknown = sorted(str(key) for key in params if key not in known)
        if unknown:
            raise ValueError(
                f"unknown protocol key(s) {', '.join(unknown)}; expected {', '.join(known)}"
            )
        given = {key: value for key, value in params.items() if value is not None}
        if "window" in given:
            _valid_window(given["window"])
        if "sigma" in given:
            _valid_sigma(given["sigma"])
        smoothing = given.get("smoothing", "none")
        if smoothing != "median":
            given.pop("window", None)
        if smoothing != "gaussian":
            given.pop("sigma", None)
        return cls(**given)

    def as_dict(self) -> dict[str, object]:
        """The settings that apply, for writing next to the metrics; from_params reads it back."""
        settings: dict[str, object] = {"smoothing": self.smoothing}
        if self.smoothing == "median":
            settings["window"] = self.window
        if self.smoothing == "gaussian":
            settings["sigma"] = self.sigma
        settings["normalization"] = self.normalization
        return settings

    @property
    def uses_test_statistics(self) -> bool:
        """Whether the scores of a test video are normalized with statistics of that test video
        (per-video min-max): a transductive protocol, recorded beside the metrics."""
        return self.normalization == "minmax"

    def record(self) -> dict[str, object]:
        """`as_dict` and whether the protocol uses test statistics: written into each metrics
        entry, so a transductive number cannot pass for an inductive one."""
        return {**self.as_dict(), "uses_test_statistics": self.uses_test_statistics}

    def apply(
        self, scores: Mapping[str, np.ndarray], maps: Mapping[str, np.ndarray] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray] | None]:
        """Post-process frame scores and, consistently, the score maps of the same videos.

        Every video in `maps` must have frame scores: its normalization is fitted on them.
        """
        missing = sorted(set(maps or {}) - set(scores))
        if missing:
            raise ValueError(f"score maps without frame scores for video(s) {', '.join(missing)}")
        out_scores: dict[str, np.ndarray] = {}
        out_maps: dict[str, np.ndarray] | None = None if maps is None else {}
        for name in sorted(scores):
            video_map = None if maps is None else maps.get(name)
            out_scores[name], processed_map = self.apply_video(name, scores[name], video_map)
            if processed_map is not None:
                out_maps[name] = processed_map
        return out_scores, out_maps

    def apply_video(
        self, name: str, scores: np.ndarray, score_map: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """One video's post-processed frame scores and, with the same affine map, its score
        map (None without one): what `apply` does per video, for evaluating one at a time."""
        processed, affine = self.frame_scores(name, scores)
        if score_map is None:
            return processed, None
        score_map = np.asarray(score_map)
        check_map_shape(name, score_map.shape, processed.size)
        return processed, self.map_rows(name, score_map, affine, 0, processed.size)

    def frame_scores(self, name: str, scores: np.ndarray) -> tuple[np.ndarray, Affine]:
        """One video's post-processed frame scores, and the affine map of its normalization
        (fitted on its smoothed frame scores), which `map_rows` applies to its score map."""
        smoothed = self._smooth(_check_video_scores(name, scores))
        affine = normalization_affine(smoothed, self.normalization)
        return affine(smoothed), affine

    @property
    def halo(self) -> int:
        """The frames on either side of a block that `map_rows` reads with it."""
        return smoothing_halo(self.smoothing, window=self.window, sigma=self.sigma)

    def map_rows(
        self, name: str, score_map: TimeRows, affine: Affine, first: int, end: int
    ) -> np.ndarray:
        """Frames first .. end - 1 of one video's post-processed score map, equal bit for bit
        to those rows of `apply_video`'s: the block is read with `halo` frames on either side
        (clipped to the video), smoothed, cut back to the block and mapped with the video's
        `affine` (`frame_scores`). Of `score_map` only those rows are read."""
        start, stop = max(0, first - self.halo), min(score_map.shape[0], end + self.halo)
        rows = _check_map_rows(name, score_map[start:stop], start)
        return affine(self._smooth(rows)[first - start : end - start])

    def _smooth(self, values: np.ndarray) -> np.ndarray:
        return smooth_along_time(values, self.smoothing, window=self.window, sigma=self.sigma)
