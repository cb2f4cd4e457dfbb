"""Figures: ROC curves, per-video score curves with ground truth shaded, anomaly overlays."""

from __future__ import annotations

from pathlib import Path

import cv2
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def _save(fig: plt.Figure, path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)


def plot_roc(
    curves: dict[str, tuple[np.ndarray, np.ndarray, float]],
    path: str | Path,
    title: str = "Frame-level ROC",
) -> None:
    """One ROC curve per entry: name -> (fpr, tpr, auc)."""
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    for name, (fpr, tpr, auc) in curves.items():
        ax.plot(fpr, tpr, label=f"{name} (AUC {auc:.3f})")
    ax.plot([0, 1], [0, 1], color="0.7", linestyle=":", linewidth=1)
    ax.set(
        xlabel="false positive rate",
        ylabel="true positive rate",
        title=title,
        xlim=(0, 1),
        ylim=(0, 1.01),
    )
    ax.legend(loc="lower right", fontsize=8)
    _save(fig, path)


def shade_anomalies(ax: plt.Axes, labels: np.ndarray) -> None:
    """Shade the ground-truth anomalous frame ranges."""
    padded = np.concatenate([[False], labels.astype(bool), [False]])
    edges = np.flatnonzero(np.diff(padded.astype(np.int8)))
    for start, stop in zip(edges[::2], edges[1::2], strict=True):
        ax.axvspan(start - 0.5, stop - 0.5, color="tab:red", alpha=0.15, linewidth=0)


def plot_score_curves(
    name: str, curves: dict[str, np.ndarray], labels: np.ndarray, path: str | Path
) -> None:
    """Score curves of one test video (several streams or models), ground truth shaded."""
    fig, ax = plt.subplots(figsize=(7, 2.6))
    shade_anomalies(ax, labels)
    for label, scores in curves.items():
        ax.plot(np.arange(len(scores)), scores, label=label, linewidth=1.2)
    ax.set(
        xlabel="frame",
        ylabel="anomaly score",
        title=f"video {name} (shaded: ground truth)",
        xlim=(0, len(labels) - 1),
    )
    ax.legend(loc="upper left", fontsize=7)
    _save(fig, path)


def overlay_detection(
    frame: np.ndarray, score_map: np.ndarray, threshold: float, mask: np.ndarray | None = None
) -> np.ndarray:
    """RGB frame, cells scoring at least `threshold` tinted red, ground truth outlined green."""
    rgb = np.repeat(frame, 3, axis=-1) if frame.shape[-1] == 1 else frame.copy()
    height, width = rgb.shape[:2]
    detected = cv2.resize(
        (score_map >= threshold).astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST
    ).astype(bool)
    tinted = rgb.astype(np.float32)
    tinted[detected] = 0.5 * tinted[detected] + 0.5 * np.array([255, 0, 0], np.float32)
    out = tinted.astype(np.uint8)
    if mask is not None and mask.any():
        contours, _ = cv2.findContours(
            mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE
        )
        cv2.drawContours(out, contours, -1, (0, 255, 0), 1)
    return out


def save_overlay(image: np.ndarray, title: str, path: str | Path) -> None:
    width = max(6.0, image.shape[1] / 80)  # inches: small frames are enlarged to stay legible
    height = width * image.shape[0] / image.shape[1]
    fig, ax = plt.subplots(figsize=(width, height + 0.4))
    ax.imshow(image, interpolation="nearest")
    ax.set_title(title, fontsize=8)
    ax.axis("off")
    _save(fig, path)


def save_image_row(images: list[np.ndarray], titles: list[str], path: str | Path) -> None:
    """Images side by side (e.g. frame, optical flow, dynamic flow as the paper's Fig. 2)."""
    fig, axes = plt.subplots(1, len(images), figsize=(3.2 * len(images), 2.4))
    for ax, image, title in zip(np.atleast_1d(axes), images, titles, strict=True):
        ax.imshow(image, cmap="gray" if image.ndim == 2 else None)
        ax.set_title(title, fontsize=8)
        ax.axis("off")
    _save(fig, path)


def flow_to_rgb(flow: np.ndarray, max_magnitude: float | None = None) -> np.ndarray:
    """Colour-code an H×W×2 flow (hue = direction, value = magnitude)."""
    magnitude, angle = cv2.cartToPolar(
        flow[..., 0].astype(np.float32), flow[..., 1].astype(np.float32)
    )
    scale = max_magnitude or max(float(np.percentile(magnitude, 99)), 1e-6)
    hsv = np.zeros(flow.shape[:2] + (3,), np.uint8)
    hsv[..., 0] = (angle * 90 / np.pi).astype(np.uint8)
    hsv[..., 1] = 255
    hsv[..., 2] = np.clip(magnitude / scale * 255, 0, 255).astype(np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
