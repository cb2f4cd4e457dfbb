"""Frame- and pixel-level anomaly detection metrics, the same for every model.

Inputs are per video: frame scores (T,) float, higher = more anomalous; labels (T,) bool,
True = anomalous; for the pixel level, score maps (T, h, w) on any grid and ground-truth masks
(T, H, W) bool at frame size. Only videos present in every given dict are evaluated, in sorted
name order.

Frame level: the ROC of the frame scores against the labels, either over all frames of all
videos together (micro) or per video and averaged (macro). A video that holds one class only
has no AUC; macro leaves it out of the mean and says so. Micro AUC on raw scores is not by
itself any cited paper's protocol: see "Protocols of the cited papers" below.

Pixel level (Mahadevan et al. CVPR 2010, Li et al. TPAMI 2014): at threshold θ a frame is
detected when any of its pixel scores is ≥ θ. A detected normal frame is a false positive; an
anomalous frame is a true positive only when the pixels scoring ≥ θ cover at least 40% of its
ground-truth pixels. Each frame therefore has one critical value (the largest θ at which it
counts): for a normal frame its maximum score, for an anomalous frame with n ground-truth
pixels the ceil(0.4·n)-th largest score among them. The pixel ROC is the ROC of those values.
Rules where labels and masks disagree: an anomalous-labelled frame with an empty mask cannot be
localized and is left out of the pixel-level count; a normal-labelled frame with mask pixels is
treated as normal (labels decide the class). Both are counted in the result.
Each frame's critical value depends on that frame alone, so `PixelRocAccumulator` takes a video
a block of frames at a time and holds one block of its map and mask, never the whole video.

An uninformative map scores below 0.5 pixel AUC, not 0.5: the two classes are judged on
different statistics (a normal frame on its maximum over all pixels, an anomalous one on an
order statistic of a subset of them), so with scores independent of the anomaly a normal
frame's critical value is stochastically the larger; the more cells a map has, the lower.

EER is the rate at which FPR = 1 - TPR (false alarms equal misses), interpolated linearly
between the two ROC points that bracket it.

Protocols of the cited papers (what their evaluation code or text does; "not verified" where
neither says). Affine maps common to all test videos change no AUC and are left out.
- MNAD (Park et al. CVPR 2020; code cvlab-yonsei/MNAD, Evaluate.py and utils.py): per test
  video, PSNR and feature distance are each min-max normalized with that video's own min and
  max (transductive), combined with weight alpha; then one AUC over the concatenated frames of
  all videos (micro; with the prediction model the first 4 frames of each video are dropped).
  No smoothing. Our nearest setting: normalization minmax, micro.
- HF2-VAD (Liu et al. ICCV 2021; code LiUzHiAn/hf2vad, eval.py and utils/eval_utils.py):
  frame score = maximum over its objects of w_r·z(flow error) + w_p·z(prediction error), z
  with the training mean and std of each error (eq. 9; per stream, so it matters for the sum);
  the first 4 frames of each video dropped; per video a median filter of 17 frames
  (scipy.signal.medfilt, whose edges are zero-padded, not reflected as ours); no per-video
  min-max; one AUC over the concatenated frames (micro). Ours: smoothing median, window 17.
- Reiss & Hoshen (arXiv 2212.00789; code talreiss/Accurate-Interpretable-VAD, evaluate.py):
  each attribute's frame scores are min-max scaled with TRAINING statistics (min, and the 99.9th
  percentile as max: common to all videos, so it matters only for their sum), summed, then
  Gaussian-smoothed per video with sigma 3 (scipy gaussian_filter1d: reflected edges, as ours);
  micro AUC, and a macro AUC in which every video gets one extra normal frame scored 0 and one
  extra anomalous frame scored at the float maximum (so one-class videos count, unlike our
  macro, which leaves them out). Ours: smoothing gaussian, sigma 3, micro.
- ITAE (Cho et al., Pattern Recognition 2022; paper text only, no official code found): eq. 9
  sums reconstruction error and NLL, each min-max normalized "within a video clip"
  (transductive); the AUC is called "average AUC" (micro or macro: not verified); smoothing:
  not verified (the paper text mentions none).
- GMFC-VAE (Fan et al., arXiv 1805.11223, Sec. IV-B, Table III; paper text only, no official
  code found): ROCs by varying the threshold on patch energy (eq. 19): a frame is detected when
  a patch exceeds it (frame level), and an anomalous frame is a true positive when 40% of its
  ground truth is detected (pixel level); rates are over frames (pooling across videos: not
  verified). No smoothing or normalization is mentioned (not verified beyond the text).
- Chang et al. (Pattern Recognition 2022; paper text only, no official code found): eq. 14
  min-max normalizes the score within each test video (transductive); frame-level AUC, micro
  or macro: not verified; smoothing: not verified.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from typing import NamedTuple

import cv2
import numpy as np
from sklearn.metrics import auc, roc_auc_score, roc_curve

PIXEL_COVERAGE = 0.4
INTERPOLATIONS = {"nearest": cv2.INTER_NEAREST, "bilinear": cv2.INTER_LINEAR}


class RocCurve(NamedTuple):
    """ROC points sorted by decreasing threshold; the first threshold is +inf, at (0, 0)."""

    fpr: np.ndarray
    tpr: np.ndarray
    thresholds: np.ndarray


# --- input checks ---------------------------------------------------------------------------


def _check_scores(name: str, scores: np.ndarray) -> np.ndarray:
    scores = np.asarray(scores)
    if scores.ndim != 1 or scores.size == 0:
        raise ValueError(
            f"video {name!r}: scores must be a non-empty 1-D array, got {scores.shape}"
        )
    if not np.issubdtype(scores.dtype, np.number):
        raise ValueError(f"video {name!r}: scores must be numeric, got dtype {scores.dtype}")
    if not np.isfinite(scores).all():
        raise ValueError(f"video {name!r}: scores contain NaN or infinite values")
    return scores.astype(np.float64, copy=False)


def _check_labels(name: str, labels: np.ndarray) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"video {name!r}: labels must be a 1-D array, got shape {labels.shape}")
    if labels.dtype != bool:
        if not np.issubdtype(labels.dtype, np.number) or not np.isin(labels, (0, 1)).all():
            raise ValueError(
                f"video {name!r}: labels must be bool or 0/1, got dtype {labels.dtype}"
            )
        labels = labels.astype(bool)
    return labels


def _check_mask(name: str, mask: np.ndarray) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.ndim != 3:
        raise ValueError(f"video {name!r}: mask must be (T, H, W), got shape {mask.shape}")
    if mask.dtype == bool:
        return mask
    if np.issubdtype(mask.dtype, np.integer) and mask.size and 0 <= mask.min() and mask.max() <= 1:
        return mask.astype(bool)
    raise ValueError(
        f"video {name!r}: mask must be bool or 0/1, got dtype {mask.dtype} "
        "(for 0/255 images use mask > 0)"
    )


def _check_score_map(name: str, score_map: np.ndarray, first: int = 0) -> np.ndarray:
    """A (T, h, w) map, numeric and finite; `first`: the video's frame its first row is."""
    score_map = np.asarray(score_map)
    if score_map.ndim != 3 or 0 in score_map.shape:
        raise ValueError(
            f"video {name!r}: score map must be a non-empty (T, h, w) array, got {score_map.shape}"
        )
    if not np.issubdtype(score_map.dtype, np.number):
        raise ValueError(f"video {name!r}: score map must be numeric, got {score_map.dtype}")
    finite = np.isfinite(score_map).all(axis=(1, 2))
    if not finite.all():
        frame = first + int(np.argmin(finite))
        raise ValueError(
            f"video {name!r}: score map contains NaN or infinite values (frame {frame})"
        )
    return score_map


def aligned_videos(
    scores: Mapping[str, np.ndarray], labels: Mapping[str, np.ndarray]
) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, scores, labels) of the videos in both dicts, sorted by name, checked."""
    names = sorted(set(scores) & set(labels))
    if not names:
        raise ValueError("no video has both scores and labels")
    videos = []
    for name in names:
        video_scores = _check_scores(name, scores[name])
        video_labels = _check_labels(name, labels[name])
        if video_scores.shape != video_labels.shape:
            raise ValueError(
                f"video {name!r}: {video_scores.size} scores but {video_labels.size} labels"
            )
        videos.append((name, video_scores, video_labels))
    return videos


def _require_both_classes(labels: np.ndarray, what: str) -> None:
    n_anomalous = int(labels.sum())
    if n_anomalous in (0, labels.size):
        kind = "normal" if n_anomalous == 0 else "anomalous"
        raise ValueError(f"{what} AUC is undefined: all {labels.size} frames are {kind}")


def _concatenated(
    scores: Mapping[str, np.ndarray], labels: Mapping[str, np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    videos = aligned_videos(scores, labels)
    all_scores = np.concatenate([video_scores for _, video_scores, _ in videos])
    all_labels = np.concatenate([video_labels for _, _, video_labels in videos])
    return all_scores, all_labels


# --- frame level ----------------------------------------------------------------------------


def frame_auc_micro(scores: Mapping[str, np.ndarray], labels: Mapping[str, np.ndarray]) -> float:
    """AUC over all frames of all videos concatenated (videos in sorted name order)."""
    all_scores, all_labels = _concatenated(scores, labels)
    _require_both_classes(all_labels, "frame-level")
    return float(roc_auc_score(all_labels, all_scores))


def frame_auc_macro(
    scores: Mapping[str, np.ndarray], labels: Mapping[str, np.ndarray]
) -> tuple[float, dict]:
    """Mean of per-video AUCs, leaving out videos that hold one class only.

    Returns the mean (NaN when no video has both classes) and
    {"per_video": {name: auc or None}, "n_excluded": int, "excluded": [names]}.
    """
    per_video: dict[str, float | None] = {}
    for name, video_scores, video_labels in aligned_videos(scores, labels):
        one_class = video_labels.all() or not video_labels.any()
        per_video[name] = None if one_class else float(roc_auc_score(video_labels, video_scores))
    defined = [value for value in per_video.values() if value is not None]
    excluded = [name for name, value in per_video.items() if value is None]
    mean = float(np.mean(defined)) if defined else float("nan")
    return mean, {"per_video": per_video, "n_excluded": len(excluded), "excluded": excluded}


def roc(scores: Mapping[str, np.ndarray], labels: Mapping[str, np.ndarray]) -> RocCurve:
    """Frame-level ROC over all frames of all videos (the micro protocol)."""
    all_scores, all_labels = _concatenated(scores, labels)
    _require_both_classes(all_labels, "frame-level")
    return RocCurve(*roc_curve(all_labels, all_scores))


def eer(fpr: np.ndarray, tpr: np.ndarray) -> float:
    """The FPR at which FPR = 1 - TPR, linearly interpolated between the bracketing ROC points.

    `fpr` and `tpr` are an ROC curve in increasing order, from (0, 0)-side to (1, 1)-side.
    """
    fpr = np.asarray(fpr, dtype=np.float64)
    tpr = np.asarray(tpr, dtype=np.float64)
    if fpr.ndim != 1 or fpr.shape != tpr.shape or fpr.size < 2:
        raise ValueError(
            f"fpr and tpr must be 1-D of equal length >= 2, got {fpr.shape}, {tpr.shape}"
        )
    if not (np.isfinite(fpr).all() and np.isfinite(tpr).all()):
        raise ValueError("fpr and tpr must be finite")
    if np.any(np.diff(fpr) < 0) or np.any(np.diff(tpr) < 0):
        raise ValueError("fpr and tpr must be non-decreasing (an ROC curve in threshold order)")
    gap = (1.0 - tpr) - fpr  # miss rate minus false alarm rate: non-increasing along the curve
    if gap[0] < 0 or gap[-1] > 0:
        raise ValueError("the ROC curve does not cross FPR = 1 - TPR; pass the full curve")
    after = int(np.argmax(gap <= 0))  # first point on or past the crossing
    if gap[after] == 0:
        return float(fpr[after])
    before = after - 1
    fraction = gap[before] / (gap[before] - gap[after])
    return float(fpr[before] + fraction * (fpr[after] - fpr[before]))


# --- pixel level ----------------------------------------------------------------------------


def _covered_rank(n_pixels: np.ndarray, coverage: float) -> np.ndarray:
    """ceil(coverage · n) in exact arithmetic, so 40% of 5 pixels is 2, not 3."""
    fraction = Fraction(coverage).limit_denominator(10**6)
    return -((-n_pixels * fraction.numerator) // fraction.denominator)


def _frame_values(
    name: str,
    score_map: np.ndarray,
    mask: np.ndarray,
    coverage: float,
    interpolation: str,
    first: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per frame: the critical coverage score (NaN for an empty mask), the max score, n GT pixels.

    `score_map` and `mask` are a whole video's, or (`first` given) a block of its frames from
    frame `first` on. Frames are resized to mask size one at a time, so memory stays at one frame.
    """
    if not 0 < coverage <= 1:
        raise ValueError(f"coverage must be in (0, 1], got {coverage}")
    if interpolation not in INTERPOLATIONS:
        raise ValueError(
            f"interpolation must be one of {sorted(INTERPOLATIONS)}, got {interpolation!r}"
        )
    score_map = _check_score_map(name, score_map, first or 0)
    mask = _check_mask(name, mask)
    if score_map.shape[0] != mask.shape[0]:
        block = "" if first is None else f" (in the block from frame {first})"
        raise ValueError(
            f"video {name!r}: score map has {score_map.shape[0]} frames, mask "
            f"{mask.shape[0]}{block}"
        )
    height, width = mask.shape[1:]
    n_gt = mask.reshape(mask.shape[0], -1).sum(axis=1)
    ranks = _covered_rank(n_gt, coverage)
    critical = np.full(mask.shape[0], np.nan)
    frame_max = np.empty(mask.shape[0])
    for index, coarse in enumerate(score_map):
        frame = coarse.astype(np.float64)
        if frame.shape != (height, width):
            frame = cv2.resize(frame, (width, height), interpolation=INTERPOLATIONS[interpolation])
        frame_max[index] = frame.max()
        if n_gt[index]:
            kth_smallest = n_gt[index] - ranks[index]  # = the ranks[index]-th largest
            critical[index] = np.partition(frame[mask[index]], kth_smallest)[kth_smallest]
    return critical, frame_max, n_gt


def pixel_critical_scores(
    score_map: np.ndarray,
    mask: np.ndarray,
    *,
    coverage: float = PIXEL_COVERAGE,
    interpolation: str = "nearest",
    name: str = "<video>",
) -> np.ndarray:
    """Per frame of one video, the largest θ at which the frame counts as detected.

    With ground-truth pixels: the ceil(coverage·n)-th largest score among its n GT pixels (a TP
    iff θ ≤ it). Without: its maximum score (detected iff θ ≤ it). Maps are resized to mask size.
    """
    critical, frame_max, n_gt = _frame_values(name, score_map, mask, coverage, interpolation)
    return np.where(n_gt > 0, critical, frame_max)


@dataclass(frozen=True)
class PixelRoc:
    """Pixel-level ROC and the frame counts behind it."""

    curve: RocCurve
    n_videos: int
    n_anomalous: int  # anomalous frames with a non-empty mask: the TPR denominator
    n_normal: int  # normal frames: the FPR denominator
    n_anomalous_empty_mask: int  # anomalous-labelled, empty mask: left out
    n_normal_with_mask: int  # normal-labelled, mask pixels present: counted as normal

    def counts(self) -> dict[str, int]:
        return {
            "pixel_n_videos": self.n_videos,
            "pixel_n_anomalous": self.n_anomalous,
            "pixel_n_normal": self.n_normal,
            "pixel_n_anomalous_empty_mask": self.n_anomalous_empty_mask,
            "pixel_n_normal_with_mask": self.n_normal_with_mask,
        }


def pixel_roc(
    score_maps: Mapping[str, np.ndarray],
    masks: Mapping[str, np.ndarray],
    labels: Mapping[str, np.ndarray],
    *,
    coverage: float = PIXEL_COVERAGE,
    interpolation: str = "nearest",
) -> PixelRoc:
    """Pixel-level ROC (40% coverage criterion) over the videos in all three dicts."""
    names = sorted(set(score_maps) & set(masks) & set(labels))
    if not names:
        raise ValueError("no video has a score map, a mask and labels")
    values, positives = [], []
    n_empty = n_normal_with_mask = 0
    for name in names:
        video_labels = _check_labels(name, labels[name])
        critical, frame_max, n_gt = _frame_values(
            name, score_maps[name], masks[name], coverage, interpolation
        )
        if video_labels.size != n_gt.size:
            raise ValueError(f"video {name!r}: {n_gt.size} masks but {video_labels.size} labels")
        localizable = video_labels & (n_gt > 0)
        n_empty += int((video_labels & (n_gt == 0)).sum())
        n_normal_with_mask += int((~video_labels & (n_gt > 0)).sum())
        values += [critical[localizable], frame_max[~video_labels]]
        positives += [np.ones(localizable.sum(), bool), np.zeros((~video_labels).sum(), bool)]
    all_values, all_positives = np.concatenate(values), np.concatenate(positives)
    _require_both_classes(all_positives, "pixel-level")
    return PixelRoc(
        curve=RocCurve(*roc_curve(all_positives, all_values)),
        n_videos=len(names),
        n_anomalous=int(all_positives.sum()),
        n_normal=int((~all_positives).sum()),
        n_anomalous_empty_mask=n_empty,
        n_normal_with_mask=n_normal_with_mask,
    )


class PixelVideo:
    """One video open in a `PixelRocAccumulator`: its map and mask taken a block of frames at a
    time, in order; of each frame only its critical value, maximum and mask size are kept."""

    def __init__(self, name: str, coverage: float, interpolation: str):
        self.name = name
        self.coverage = coverage
        self.interpolation = interpolation
        self.n_frames = 0  # taken so far: the next block starts at this frame
        self._blocks: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    def add_block(self, score_map: np.ndarray, mask: np.ndarray) -> None:
        """The video's next frames: their (t, h, w) score map and (t, H, W) mask."""
        values = _frame_values(
            self.name, score_map, mask, self.coverage, self.interpolation, self.n_frames
        )
        self._blocks.append(values)
        self.n_frames += values[2].size

    def values(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per frame taken: critical value, maximum score, number of ground-truth pixels."""
        empty = (np.empty(0), np.empty(0), np.empty(0, np.int64))
        return tuple(np.concatenate(part) for part in zip(empty, *self._blocks, strict=True))


class PixelRocAccumulator:
    """`pixel_roc` fed one video at a time, and each video a block of frames at a time
    (`video`), so that memory holds one block of one video's map and mask: of each video only
    what the ROC needs is kept, every counted frame's critical value (a float) and class.
    `result()` equals `pixel_roc` over the same videos, whatever the blocks."""

    def __init__(self, *, coverage: float = PIXEL_COVERAGE, interpolation: str = "nearest"):
        self.coverage = coverage
        self.interpolation = interpolation
        self._names: set[str] = set()
        self._values: list[np.ndarray] = []
        self._positives: list[np.ndarray] = []
        self._n_anomalous_empty_mask = 0
        self._n_normal_with_mask = 0

    def add(self, name: str, score_map: np.ndarray, mask: np.ndarray, labels: np.ndarray) -> None:
        """One whole video: its (T, h, w) score map, (T, H, W) mask and (T,) labels, as one
        block."""
        with self.video(name, labels, np.shape(mask)) as video:
            video.add_block(score_map, mask)

    @contextmanager
    def video(
        self, name: str, labels: np.ndarray, mask_shape: tuple[int, ...]
    ) -> Iterator[PixelVideo]:
        """Open one video of (T,) `labels`, whose masks are (T, H, W) (`mask_shape`): its map
        and mask come a block of frames at a time (`PixelVideo.add_block`). It counts when the
        `with` block ends without an error, once its blocks have given all its T frames."""
        if name in self._names:
            raise ValueError(f"video {name!r} was added twice to the pixel-level ROC")
        video_labels = _check_labels(name, labels)
        if len(mask_shape) != 3:
            raise ValueError(f"video {name!r}: mask must be (T, H, W), got shape {mask_shape}")
        if mask_shape[0] != video_labels.size:
            raise ValueError(
                f"video {name!r}: {mask_shape[0]} masks but {video_labels.size} labels"
            )
        video = PixelVideo(name, self.coverage, self.interpolation)
        yield video
        if video.n_frames != video_labels.size:
            raise ValueError(
                f"video {name!r}: its blocks gave {video.n_frames} of its "
                f"{video_labels.size} frames"
            )
        self._take(name, video_labels, *video.values())

    def _take(
        self,
        name: str,
        video_labels: np.ndarray,
        critical: np.ndarray,
        frame_max: np.ndarray,
        n_gt: np.ndarray,
    ) -> None:
        self._names.add(name)
        localizable = video_labels & (n_gt > 0)
        self._n_anomalous_empty_mask += int((video_labels & (n_gt == 0)).sum())
        self._n_normal_with_mask += int((~video_labels & (n_gt > 0)).sum())
        self._values += [critical[localizable], frame_max[~video_labels]]
        self._positives += [
            np.ones(int(localizable.sum()), bool),
            np.zeros(int((~video_labels).sum()), bool),
        ]

    def result(self) -> PixelRoc:
        """The pixel-level ROC of every video added so far."""
        if not self._names:
            raise ValueError("no video has a score map, a mask and labels")
        all_values, all_positives = np.concatenate(self._values), np.concatenate(self._positives)
        _require_both_classes(all_positives, "pixel-level")
        return PixelRoc(
            curve=RocCurve(*roc_curve(all_positives, all_values)),
            n_videos=len(self._names),
            n_anomalous=int(all_positives.sum()),
            n_normal=int((~all_positives).sum()),
            n_anomalous_empty_mask=self._n_anomalous_empty_mask,
            n_normal_with_mask=self._n_normal_with_mask,
        )


def pixel_auc_eer(
    score_maps: Mapping[str, np.ndarray],
    masks: Mapping[str, np.ndarray],
    labels: Mapping[str, np.ndarray],
    *,
    coverage: float = PIXEL_COVERAGE,
    interpolation: str = "nearest",
) -> tuple[float, float]:
    """Pixel-level (AUC, EER) under the coverage criterion."""
    curve = pixel_roc(
        score_maps, masks, labels, coverage=coverage, interpolation=interpolation
    ).curve
    return float(auc(curve.fpr, curve.tpr)), eer(curve.fpr, curve.tpr)


# --- everything at once ---------------------------------------------------------------------


def frame_metrics(
    scores: Mapping[str, np.ndarray], labels: Mapping[str, np.ndarray]
) -> tuple[dict, RocCurve]:
    """The frame-level part of `evaluate`'s dict, and the frame ROC (micro)."""
    videos = aligned_videos(scores, labels)
    frame_curve = roc(scores, labels)
    macro, macro_details = frame_auc_macro(scores, labels)
    n_anomalous = sum(int(video_labels.sum()) for _, _, video_labels in videos)
    metrics: dict = {
        "frame_auc_micro": float(auc(frame_curve.fpr, frame_curve.tpr)),
        "frame_auc_macro": macro,
        "frame_eer": eer(frame_curve.fpr, frame_curve.tpr),
        "n_videos": len(videos),
        "n_frames": sum(video_labels.size for _, _, video_labels in videos),
        "n_anomalous": n_anomalous,
        "n_videos_without_labels": len(set(scores) - set(labels)),
        "n_videos_without_scores": len(set(labels) - set(scores)),
        "macro_n_excluded_videos": macro_details["n_excluded"],
        "frame_auc_per_video": macro_details["per_video"],
    }
    return metrics, frame_curve


def pixel_metrics(result: PixelRoc) -> dict:
    """The pixel-level part of `evaluate`'s dict: AUC, EER and the frame counts."""
    curve = result.curve
    return {
        "pixel_auc": float(auc(curve.fpr, curve.tpr)),
        "pixel_eer": eer(curve.fpr, curve.tpr),
        **result.counts(),
    }


def evaluate(
    scores: Mapping[str, np.ndarray],
    labels: Mapping[str, np.ndarray],
    score_maps: Mapping[str, np.ndarray] | None = None,
    masks: Mapping[str, np.ndarray] | None = None,
    *,
    coverage: float = PIXEL_COVERAGE,
    interpolation: str = "nearest",
) -> tuple[dict, dict[str, RocCurve]]:
    """All metrics as a JSON-ready dict, and the ROC curves {"frame": ..., "pixel": ...}.

    Pixel metrics are computed when both `score_maps` and `masks` are given, over the videos
    that also have scores and labels. Everything is in memory at once; vad.eval.stream computes
    the same one video at a time.
    """
    if (score_maps is None) != (masks is None):
        raise ValueError("score_maps and masks must be given together")
    metrics, frame_curve = frame_metrics(scores, labels)
    curves = {"frame": frame_curve}
    if score_maps is not None and masks is not None:
        names = [name for name, _, _ in aligned_videos(scores, labels)]
        scored_maps = {name: score_maps[name] for name in names if name in score_maps}
        result = pixel_roc(
            scored_maps, masks, labels, coverage=coverage, interpolation=interpolation
        )
        metrics.update(pixel_metrics(result))
        curves["pixel"] = result.curve
    return metrics, curves
