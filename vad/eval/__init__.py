"""Evaluation shared by every model: post-processing protocol, frame and pixel-level metrics."""

from __future__ import annotations

from vad.eval.metrics import (
    PIXEL_COVERAGE,
    PixelRoc,
    PixelRocAccumulator,
    RocCurve,
    eer,
    evaluate,
    frame_auc_macro,
    frame_auc_micro,
    frame_metrics,
    pixel_auc_eer,
    pixel_critical_scores,
    pixel_metrics,
    pixel_roc,
    roc,
)
from vad.eval.postprocess import Affine, Protocol, normalization_affine, smooth_along_time
from vad.eval.stream import StreamedEvaluation

__all__ = [
    "PIXEL_COVERAGE",
    "Affine",
    "PixelRoc",
    "PixelRocAccumulator",
    "Protocol",
    "RocCurve",
    "StreamedEvaluation",
    "eer",
    "evaluate",
    "frame_auc_macro",
    "frame_auc_micro",
    "frame_metrics",
    "normalization_affine",
    "pixel_auc_eer",
    "pixel_critical_scores",
    "pixel_metrics",
    "pixel_roc",
    "roc",
    "smooth_along_time",
]
