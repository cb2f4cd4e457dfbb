"""The `evaluate` stage's work: metrics, ROC plot data, figures and the summary table for every
evaluated score set (methods and fused models)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vad.cache import atomic_directory, atomic_output, video_key
from vad.eval.metrics import evaluate
from vad.eval.postprocess import Protocol
from vad.frame_cache import load_frames, load_ground_truth, load_masks
from vad.scores import ScoreSet, read_scores
from vad.viz import overlay_detection, plot_roc, plot_score_curves, save_overlay


@dataclass
class ModelResult:
    metrics: dict
    frame_roc: tuple[np.ndarray, np.ndarray, np.ndarray]  # fpr, tpr, thresholds
    scores: dict[str, np.ndarray]  # post-processed frame scores per test video
    maps: dict[str, np.ndarray] | None  # post-processed score maps per test video
    explanations: dict[str, np.ndarray] | None = None  # per test video, a line per frame


def evaluate_model(
    scores: ScoreSet,
    labels: dict[str, np.ndarray],
    masks: dict[str, np.ndarray] | None,
    protocol: Protocol,
    interpolation: str = "nearest",
) -> ModelResult:
    frame_scores = {name: v.frame_scores for name, v in scores.test.items()}
    maps = {name: v.score_maps for name, v in scores.test.items() if v.score_maps is not None}
    processed, processed_maps = protocol.apply(frame_scores, maps or None)
    use_pixels = bool(masks) and bool(processed_maps)
    metrics, curves = evaluate(
        processed,
        labels,
        processed_maps if use_pixels else None,
        masks if use_pixels else None,
        interpolation=interpolation,
    )
    frame = curves["frame"]
    explanations = {
        name: v.extras["explanation"]
        for name, v in scores.test.items()
        if "explanation" in v.extras
    }
    return ModelResult(
        metrics,
        (frame.fpr, frame.tpr, frame.thresholds),
        processed,
        processed_maps,
        explanations or None,
    )


def eer_threshold(fpr: np.ndarray, tpr: np.ndarray, thresholds: np.ndarray) -> float:
    """The ROC threshold closest to the equal-error point (used to draw detections)."""
    index = int(np.argmin(np.abs(fpr - (1 - tpr))))
    return float(thresholds[max(index, 1)])  # thresholds[0] is +inf


def strict_json(value: object) -> object:
    """NaN and infinities (e.g. an undefined macro AUC) become null: JSON has no NaN."""
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: strict_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(item) for item in value]
    return value


def json_text(data: object) -> str:
    return json.dumps(strict_json(data), indent=2, allow_nan=False) + "\n"


def write_json(path: Path, data: object) -> None:
    with atomic_output(path) as tmp:
        tmp.write_text(json_text(data))


SUMMARY_COLUMNS = {
    "frame_auc_micro": "frame AUC",
    "frame_auc_macro": "frame AUC macro",
    "frame_eer": "frame EER",
    "pixel_auc": "pixel AUC",
    "pixel_eer": "pixel EER",
}


def summary_table(metrics: dict, kinds: dict[str, str]) -> str:
    """A Markdown table: one row per evaluated score set, the headline metrics as columns."""
    header = ["score set", "kind", *SUMMARY_COLUMNS.values()]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, kind in kinds.items():
        values = [metrics[name].get(key) for key in SUMMARY_COLUMNS]
        cells = ["—" if value is None else f"{value:.3f}" for value in values]
        lines.append("| " + " | ".join([name, kind, *cells]) + " |")
    protocol = metrics["protocol"]
    settings = ", ".join(f"{key} {value}" for key, value in protocol.items())
    return "\n".join(lines) + f"\n\nProtocol: {settings}.\n"


def write_report(
    sources: dict[str, str],
    kinds: dict[str, str],
    ground_truth_path: str,
    frames_path: str,
    protocol: Protocol,
    metrics_path: str,
    plots_dir: str,
    figures_dir: str,
    summary_path: str,
    interpolation: str = "nearest",
    figures_per_video: int = 1,
    paper_protocols: dict[str, Protocol] | None = None,
    paper_metrics_path: str | None = None,
) -> dict:
    """Evaluate every score file of `sources` (name -> path, in report order) and write every
    report. `kinds` says what each is ("method", "fused", "part of <fused>"); overlays are drawn
    for all but the parts of a fused model. With `paper_metrics_path`, the score sets named in
    `paper_protocols` are also judged under their paper's own protocol (params
    `evaluate.paper_protocols`, e.g. the smoothing a paper reports with) into that file, for
    comparison with the paper's numbers; `metrics_path` keeps the strict protocol shared by all."""
    labels, with_masks = load_ground_truth(ground_truth_path)
    if not labels:
        raise ValueError(f"{ground_truth_path}: the dataset has no ground truth to evaluate")
    masks = {name: load_masks(ground_truth_path, name) for name in sorted(with_masks)}
    scores = {name: read_scores(path, name) for name, path in sources.items()}
    results = {
        name: evaluate_model(score_set, labels, masks, protocol, interpolation)
        for name, score_set in scores.items()
    }

    metrics = {
        "protocol": {
            **protocol.as_dict(),
            "frame_auc": "micro and macro",
            "pixel_criterion": "40% of ground-truth pixels detected",
            "pixel_interpolation": interpolation,
        }
    }
    per_video = {}
    for name, result in results.items():
        summary = dict(result.metrics)
        per_video[name] = summary.pop("frame_auc_per_video")
        metrics[name] = summary
    # Everything is computed and serialised before anything is written; then the plot data and
    # figures, each folder replaced whole only once complete, and last the metrics, per-video
    # AUCs and summary: a failure on the way leaves no fresh metrics beside stale figures.
    texts = {
        Path(metrics_path): json_text(metrics),
        Path(metrics_path).with_name("per_video_auc.json"): json_text(per_video),
        Path(summary_path): summary_table(metrics, kinds),
    }
    if paper_metrics_path is not None:
        protocols = paper_protocols or {}
        paper: dict = {"protocols": {name: p.as_dict() for name, p in protocols.items()}}
        for name in (name for name in protocols if name in scores):
            result = evaluate_model(scores[name], labels, masks, protocols[name], interpolation)
            paper[name] = {k: v for k, v in result.metrics.items() if k != "frame_auc_per_video"}
        texts[Path(paper_metrics_path)] = json_text(paper)
    with atomic_directory(plots_dir) as plots, atomic_directory(figures_dir) as figures:
        for name, result in results.items():
            fpr, tpr, _ = result.frame_roc
            write_json(
                plots / f"roc_{name}.json",
                [{"fpr": float(f), "tpr": float(t)} for f, t in zip(fpr, tpr, strict=True)],
            )
        plot_roc(
            {
                name: (r.frame_roc[0], r.frame_roc[1], r.metrics["frame_auc_micro"])
                for name, r in results.items()
            },
            figures / "roc.png",
        )
        write_score_figures(results, labels, figures)
        for name in results:
            if not kinds[name].startswith("part of"):
                write_overlays(
                    name, results[name], labels, masks, frames_path, figures, figures_per_video
                )
    for path, text in texts.items():
        with atomic_output(path) as tmp:
            tmp.write_text(text)
    return metrics


def write_score_figures(
    results: dict[str, ModelResult], labels: dict[str, np.ndarray], figures: Path
) -> None:
    """Per test video, every model's and stream's score curve (min-max scaled for display)."""
    for video in sorted(labels):
        curves = {}
        for name, result in results.items():
            if video in result.scores:
                s = result.scores[video]
                curves[name] = (s - s.min()) / max(float(s.max() - s.min()), 1e-12)
        plot_score_curves(video, curves, labels[video], figures / "scores" / f"{video}.png")


def write_overlays(
    model: str,
    result: ModelResult,
    labels: dict[str, np.ndarray],
    masks: dict[str, np.ndarray],
    frames_path: str,
    figures: Path,
    per_video: int,
) -> None:
    """The highest-scoring frames of each test video, cells above the EER threshold in red."""
    if not result.maps or per_video < 1:
        return
    threshold = eer_threshold(*result.frame_roc)
    for video, scores in sorted(result.scores.items()):
        if video not in labels:
            continue
        frames = load_frames(frames_path, video_key("test", video))
        for index in np.argsort(-scores, kind="stable")[:per_video]:
            mask = masks[video][index] if video in masks else None
            image = overlay_detection(frames[index], result.maps[video][index], threshold, mask)
            label = "anomalous" if labels[video][index] else "normal"
            why = result.explanations.get(video) if result.explanations else None
            note = f"\n{why[index]}" if why is not None and why[index] else ""
            save_overlay(
                image,
                f"{model} · video {video} · frame {index} ({label}; red: detected, "
                f"green: ground truth){note}",
                figures / "overlays" / f"{model}_{video}_{index:04d}.png",
            )
