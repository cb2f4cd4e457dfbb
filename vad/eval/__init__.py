"""Evaluation shared by every model: post-processing protocol, frame and pixel-level metrics."""

from __future__ import annotations

from vad.eval.metrics import (
    PIXEL_COVERAGE,
    PixelRoc,
    RocCurve,
    eer,
    evaluate,
    frame_auc_macro,
    frame_auc_micro,
    pixel_auc_eer,
    pixel_critical_scores,
    pixel_roc,
    roc,
)
from vad.eval.postprocess import Affine, Protocol, normalization_affine, smooth_along_time

__all__ = [
    "PIXEL_COVERAGE",
    "Affine",
    "PixelRoc",
    "Protocol",
    "RocCurve",
    "eer",
    "evaluate",
    "frame_auc_macro",
    "frame_auc_micro",
    "normalization_affine",
    "pixel_auc_eer",
    "pixel_critical_scores",
    "pixel_roc",
    "roc",
    "smooth_along_time",
]
