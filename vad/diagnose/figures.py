"""Figures of `vad diagnose`: score histograms by class and the extreme-score patches, per
stream (matplotlib Agg; each PNG written atomically)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from vad.cache import atomic_output  # noqa: E402

BINS = 50


def _save(fig: plt.Figure, path: Path) -> None:
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)


def plot_energy_histograms(streams: dict[str, dict], path: Path) -> None:
    """One panel per stream: density histograms of the energies of normal and anomalous
    patches (entries `normal`, `anomalous`, `auc`), on shared bins."""
    fig, axes = plt.subplots(1, len(streams), figsize=(5 * len(streams), 3.6), squeeze=False)
    for ax, (stream, data) in zip(axes[0], streams.items(), strict=True):
        both = np.concatenate([data["normal"], data["anomalous"]])
        bins = np.histogram_bin_edges(both, BINS) if len(both) else BINS
        for label, color in (("normal", "tab:blue"), ("anomalous", "tab:red")):
            values = data[label]
            if len(values):
                ax.hist(
                    values,
                    bins=bins,
                    density=True,
                    alpha=0.5,
                    color=color,
                    label=f"{label} ({len(values)})",
                )
        auc = "n/a" if data["auc"] is None else f"{data['auc']:.3f}"
        ax.set_title(f"{stream}: moving patches, AUC {auc}")
        ax.set_xlabel("sample energy (eq. 17)")
        ax.set_ylabel("density")
        ax.legend(fontsize=8)
    _save(fig, path)


def _magnitude_scale(data: dict) -> int:
    """The top of the colour scale of a stream's dynamic-flow patches: their largest
    magnitude (channel 2), over both rows."""
    patches = [patch for kind in ("highest", "lowest") for patch, _, _ in data[kind]]
    return max([int(patch[..., 2].max()) for patch in patches] + [1])


def plot_extremes(streams: dict[str, dict], path: Path) -> None:
    """Two rows per stream: its highest- then lowest-energy patches (entries `highest`,
    `lowest`: lists of (patch, energy, anomalous)), each captioned with its energy and class
    (A anomalous, N normal). Dynamic-flow patches show their magnitude channel, on one colour
    scale per stream."""
    rows = [
        (stream, kind, data[kind])
        for stream, data in streams.items()
        for kind in ("highest", "lowest")
    ]
    cols = max(1, max(len(patches) for _, _, patches in rows))
    fig, axes = plt.subplots(
        len(rows), cols, figsize=(1.3 * cols + 0.6, 1.6 * len(rows)), squeeze=False
    )
    fig.subplots_adjust(hspace=0.45)
    for ax in axes.ravel():
        ax.axis("off")
    for row, (stream, kind, entries) in enumerate(rows):
        images, style, name = [patch for patch, _, _ in entries], {}, stream
        if stream == "dynflow":  # u and v sit near 128 and show little: draw the magnitude
            top = _magnitude_scale(streams[stream])
            images = [image[..., 2] for image in images]
            style = {"cmap": "magma", "vmin": 0, "vmax": top}
            name = f"dynflow |F| (0-{top})"
        axes[row, 0].text(
            -0.12,
            0.5,
            f"{name}\n{kind}",
            fontsize=8,
            ha="right",
            va="center",
            transform=axes[row, 0].transAxes,
        )
        for col, (image, (_, energy, anomalous)) in enumerate(zip(images, entries, strict=True)):
            ax = axes[row, col]
            ax.imshow(image, interpolation="nearest", **style)
            ax.text(
                0.5,
                -0.06,
                f"{energy:.0f} {'A' if anomalous else 'N'}",
                fontsize=7,
                ha="center",
                va="top",
                transform=ax.transAxes,
                color="tab:red" if anomalous else "black",
            )
    _save(fig, path)
