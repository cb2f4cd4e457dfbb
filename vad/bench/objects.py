"""`python -m vad bench objects <dataset> <root>`: how well the `objects` stage's boxes find the
anomalous objects, written to reports/<dataset>/objects.json with a figure beside it.

The frames are read into a temporary frame cache, then every video's boxes are computed in this
process (one OpenCV thread: the time per frame is that of one core; the stage runs `n_jobs`
videos at once) with the settings params.yaml gives for the dataset. Measured:
- `anomalous_object_recall`: the anomalous objects are the 8-connected components of the test
  masks (of at least MIN_COMPONENT pixels: single-pixel specks are mask noise); one is found
  when the union of its frame's boxes covers at least half of its pixels;
- boxes per frame (all frames, train and test), and seconds per frame;
- the same recall per test video, and the fraction of anomalous mask pixels covered by boxes.
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from vad.cache import atomic_output, iter_videos, open_cache
from vad.config import load_params
from vad.datasets import open_dataset
from vad.frame_cache import load_frames, load_masks, video_keys, write_frame_cache
from vad.objects.runner import SOURCES, boxes_by_frame, init_detectors, video_objects
from vad.objects.settings import resolve_settings
from vad.progress import progress as progress_bar

MIN_COMPONENT = 10  # pixels
COVER = 0.5  # a component is found when boxes cover at least this fraction of it
FIGURE_FRAMES = 4


def box_union(boxes: np.ndarray, height: int, width: int) -> np.ndarray:
    """H×W bool: pixels inside any of the boxes."""
    covered = np.zeros((height, width), bool)
    for x1, y1, x2, y2 in np.round(boxes).astype(int):
        covered[max(y1, 0) : y2, max(x1, 0) : x2] = True
    return covered


def frame_recall(mask: np.ndarray, boxes: np.ndarray) -> tuple[int, int]:
    """(found, total) anomalous components of one mask (see the module docstring)."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(
        mask.astype(np.uint8), connectivity=8
    )
    covered = box_union(boxes, *mask.shape)
    found = total = 0
    for label in range(1, count):
        if stats[label, cv2.CC_STAT_AREA] < MIN_COMPONENT:
            continue
        total += 1
        found += int(covered[labels == label].mean() >= COVER)
    return found, total


def draw_boxes(
    gray: np.ndarray, boxes: np.ndarray, sources: np.ndarray, mask: np.ndarray
) -> np.ndarray:
    """RGB frame with the anomalous mask outlined in red and boxes drawn (foreground green,
    HOG blue, ONNX yellow)."""
    image = cv2.cvtColor(gray, cv2.COLOR_GRAY2RGB)
    contours, _ = cv2.findContours(
        mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE
    )
    cv2.drawContours(image, contours, -1, (255, 0, 0), 1)
    colors = {0: (0, 255, 0), 1: (0, 128, 255), 2: (255, 255, 0)}
    for (x1, y1, x2, y2), source in zip(np.round(boxes).astype(int), sources, strict=True):
        cv2.rectangle(image, (x1, y1), (x2 - 1, y2 - 1), colors[int(source)], 1)
    return image


def run_objects_benchmark(dataset_name: str, root: str, out: str | None = None) -> dict:
    """Measure the boxes on the dataset; write the JSON and the figure; return the JSON."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cv2.setNumThreads(1)
    params = load_params()
    params = {**params, "data": {**params.get("data", {}), "name": dataset_name}}
    settings = resolve_settings(params)
    out_path = Path(out or f"reports/{dataset_name}/objects.json")
    dataset = open_dataset(dataset_name, root)
    per_video, figure_frames = {}, []
    found = total = frames = boxes_total = 0
    covered_pixels = mask_pixels = 0
    seconds = 0.0
    with tempfile.TemporaryDirectory(prefix="vad-objects-") as tmp:
        frames_path, gt_path = Path(tmp) / "frames.h5", Path(tmp) / "gt.h5"
        write_frame_cache(dataset, frames_path, gt_path, color="gray", progress=False)
        with open_cache(gt_path) as f:
            with_masks = {name for _, name, group in iter_videos(f) if "masks" in group}
        init_detectors(settings)
        for key in progress_bar(video_keys(frames_path), desc="objects", unit="video"):
            gray = load_frames(frames_path, key, color="gray")[..., 0]
            start = time.perf_counter()
            objects = video_objects(gray, settings)
            seconds += time.perf_counter() - start
            frames += len(gray)
            boxes_total += len(objects["frame"])
            split, name = key.split("/", 1)
            if split != "test" or name not in with_masks:
                continue
            masks = load_masks(gt_path, name)
            index = boxes_by_frame(objects, len(gray))
            v_found = v_total = 0
            anomalous = [t for t, mask in enumerate(masks) if mask.any()]
            for t in anomalous:
                mask = masks[t] > 0
                boxes = objects["box"][index[t]]
                f_found, f_total = frame_recall(mask, boxes)
                v_found, v_total = v_found + f_found, v_total + f_total
                covered_pixels += int((box_union(boxes, *mask.shape) & mask).sum())
                mask_pixels += int(mask.sum())
            found, total = found + v_found, total + v_total
            per_video[name] = {
                "found": v_found,
                "components": v_total,
                "recall": round(v_found / v_total, 4) if v_total else None,
            }
            if anomalous and len(figure_frames) < FIGURE_FRAMES and len(per_video) % 3 == 1:
                t = anomalous[len(anomalous) // 2]  # the middle anomalous frame
                chosen = index[t]
                image = draw_boxes(
                    gray[t], objects["box"][chosen], objects["source"][chosen], masks[t] > 0
                )
                figure_frames.append((f"{name} frame {t}", image))
    report = {
        "dataset": dataset_name,
        "root": str(root),
        "settings": settings.to_json(),
        "sources": list(SOURCES),
        "anomalous_object_recall": round(found / total, 4) if total else None,
        "anomalous_objects": total,
        "anomalous_objects_found": found,
        "anomalous_pixels_covered": round(covered_pixels / mask_pixels, 4) if mask_pixels else None,
        "min_component_pixels": MIN_COMPONENT,
        "cover_to_count_as_found": COVER,
        "boxes_per_frame": round(boxes_total / frames, 3),
        "frames": frames,
        "seconds_per_frame": round(seconds / frames, 5),
        "threads": 1,
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "per_video": per_video,
        "figure": str(out_path.with_suffix(".png").name),
        "command": f"python -m vad bench objects {dataset_name} <root>",
    }
    with atomic_output(out_path) as tmp_json:
        tmp_json.write_text(json.dumps(report, indent=2) + "\n")
    if figure_frames:
        fig, axes = plt.subplots(1, len(figure_frames), figsize=(4 * len(figure_frames), 3.2))
        for ax, (title, image) in zip(np.atleast_1d(axes), figure_frames, strict=True):
            ax.imshow(image)
            ax.set_title(title, fontsize=9)
            ax.axis("off")
        fig.suptitle("objects: foreground boxes (green), anomalous mask (red)", fontsize=10)
        fig.tight_layout()
        with atomic_output(out_path.with_suffix(".png")) as tmp_png:
            fig.savefig(tmp_png, dpi=110, format="png")
        plt.close(fig)
    return report
