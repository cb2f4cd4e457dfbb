"""The `objects` stage: boxes of every frame of every video of frames.h5 into objects.h5.

Per frame: detector boxes (HOG and/or ONNX, if enabled) filtered as HF2-VAD does (confidence,
minimum area, covered boxes), then motion-foreground boxes of what the detectors left
(foreground.py). Videos run in parallel (vad.parallel, `n_jobs` workers, local processes or a
Dask cluster, each building its own detectors; videos written in frames.h5's order, so the
content does not depend on either); the output is resumable per video and appears only
when complete (vad.cache.ResumableCache), as the flow stage's. A video is read a block of frames
at a time and its frames go through the detectors and the foreground masks one after the other
(`stream_video_objects`), so memory holds a block of frames and the video's boxes.

Layout of objects.h5: group `<split>/<name>` per video with `frame` (N,) int32 (frame index),
`box` (N, 4) float32 [x1, y1, x2, y2] in pixels of the stored frames (x2, y2 exclusive),
`score` (N,) float32 (foreground: fraction of the box that moves; HOG: SVM margin; ONNX: its
score) and `source` (N,) uint8 (an index into the file attr `sources`); group attrs
`num_frames`, `width`, `height`, `digest`, `input_digest`. A video in which nothing is found
has N = 0: empty datasets, still marked complete (its frames then score as "no object").
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from contextlib import closing
from functools import partial
from pathlib import Path

import numpy as np

from vad.cache import (
    ResumableCache,
    array_digest,
    checked_dataset,
    input_video_digests,
    iter_videos,
    open_cache,
    read_dataset,
    video_key,
)
from vad.frame_cache import frame_blocks
from vad.objects import boxes as B
from vad.objects.detectors import Detections, HogPeople, OnnxDetector
from vad.objects.foreground import mask_boxes, stream_motion_masks
from vad.objects.settings import ObjectSettings
from vad.parallel import Engine, map_videos
from vad.progress import progress as progress_bar

SOURCES = ("foreground", "hog", "onnx")


class VideoObjects(dict):
    """frame, box, score, source arrays of one video (the datasets of its group)."""


Detectors = list[tuple[int, object]]  # (index into SOURCES, detector) of the enabled ones
_detectors: Detectors = []


def build_detectors(settings: ObjectSettings) -> Detectors:
    """The enabled detectors (HOG, ONNX), each with the index of its source."""
    detectors: Detectors = []
    if settings.hog:
        detectors.append(
            (SOURCES.index("hog"), HogPeople(settings.hog_upscale, settings.hog_threshold))
        )
    if settings.onnx:
        detectors.append((SOURCES.index("onnx"), OnnxDetector(settings.onnx, settings.onnx_size)))
    return detectors


def init_detectors(settings: ObjectSettings) -> None:
    """Build the enabled detectors once per process (an ONNX net cannot be pickled)."""
    _detectors[:] = build_detectors(settings)


def detect(
    frame: np.ndarray, settings: ObjectSettings, detectors: Detectors
) -> tuple[Detections, np.ndarray]:
    """Filtered detector boxes of one gray frame, their scores and sources."""
    found, scores, sources = [B.EMPTY], [np.zeros(0, np.float32)], [np.zeros(0, np.uint8)]
    for source, detector in detectors:
        boxes, score = detector(frame)  # type: ignore[operator]
        if source == SOURCES.index("onnx"):
            boxes, score = B.filter_detections(
                boxes, score, settings.confidence, settings.min_area, settings.cover
            )
        else:  # HOG: its own margin threshold; same area and cover filter
            boxes, score = B.filter_detections(
                boxes, score, -np.inf, settings.min_area, settings.cover
            )
        found.append(boxes)
        scores.append(score)
        sources.append(np.full(len(boxes), source, np.uint8))
    return (np.concatenate(found), np.concatenate(scores)), np.concatenate(sources)


def video_objects(gray: np.ndarray, settings: ObjectSettings) -> VideoObjects:
    """All boxes of a T×H×W uint8 video (detectors first, then foreground), frame by frame."""
    return stream_video_objects(gray, settings)


def stream_video_objects(frames: Iterable[np.ndarray], settings: ObjectSettings) -> VideoObjects:
    """`video_objects` of a video fed one H×W uint8 frame at a time."""
    detections: dict[int, tuple[Detections, np.ndarray]] = {}

    def detected(video: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        for t, frame in enumerate(video):  # each frame's detections, kept until its mask comes
            detections[t] = detect(frame, settings, _detectors)
            yield frame

    found, boxes, scores, sources = [], [], [], []
    for t, mask in enumerate(stream_motion_masks(detected(frames), settings)):
        (det_boxes, det_scores), det_sources = detections.pop(t)
        fg_boxes, fg_scores = mask_boxes(mask, settings, det_boxes)
        for b, s, src in (
            (det_boxes, det_scores, det_sources),
            (fg_boxes, fg_scores, np.zeros(len(fg_boxes), np.uint8)),
        ):
            found.append(np.full(len(b), t, np.int32))
            boxes.append(b)
            scores.append(s)
            sources.append(src)
    return VideoObjects(
        frame=np.concatenate(found).astype(np.int32),
        box=np.concatenate(boxes).astype(np.float32).reshape(-1, 4),
        score=np.concatenate(scores).astype(np.float32),
        source=np.concatenate(sources).astype(np.uint8),
    )


def _task(key: str, frames_path: str, settings: ObjectSettings) -> VideoObjects:
    return stream_video_objects(_gray_frames(frames_path, key), settings)


def _gray_frames(frames_path: str, key: str) -> Iterator[np.ndarray]:
    """One video's frames, gray, one at a time (read a block at a time)."""
    for _, block in frame_blocks(frames_path, key, color="gray"):
        yield from block[..., 0]


def objects_digest(objects: VideoObjects) -> str:
    return array_digest(
        np.concatenate(
            [objects["frame"][:, None], objects["box"], objects["score"][:, None],
             objects["source"][:, None]], axis=1, dtype=np.float64,
        )
    )  # fmt: skip


def run_objects_stage(
    frames_path: str | Path,
    out_path: str | Path,
    settings: ObjectSettings,
    n_jobs: int,
    progress: bool = True,
    engine: Engine | None = None,
) -> Path:
    """Boxes of every video of `frames_path` into `out_path` (resumable, atomic); `n_jobs`
    workers of `engine` (default: local processes)."""
    frames_path, out_path = Path(frames_path), Path(out_path)
    if not frames_path.is_file():
        raise FileNotFoundError(f"frame cache not found: {frames_path}")
    if settings.onnx:
        OnnxDetector(settings.onnx, settings.onnx_size)  # a bad path fails here, not in a worker
    with open_cache(frames_path) as f:
        shapes = {video_key(s, n): g["frames"].shape for s, n, g in iter_videos(f)}
        input_digests = input_video_digests(f, "frames")
    with ResumableCache(out_path, settings.to_json()) as cache:
        assert cache.file is not None
        cache.file.attrs["sources"] = json.dumps(SOURCES)
        cache.retain(shapes)
        keys = [key for key in shapes if not cache.is_done(key, input_digests[key])]
        # absolute: a Dask worker's directory may be another
        task = partial(_task, frames_path=str(frames_path.absolute()), settings=settings)
        results = map_videos(
            task, keys, n_jobs, initializer=init_detectors, initargs=(settings,),
            what=f"objects of {frames_path}", engine=engine,
        )  # fmt: skip
        bar = progress_bar(total=len(keys), unit="video", desc="objects", disable=not progress)
        with bar, closing(results):
            for key, objects in results:
                split, name = key.split("/", 1)
                group = cache.start(key)
                for field, values in objects.items():
                    checked_dataset(group, field, values)
                shape = shapes[key]
                group.attrs.update(
                    name=name, split=split, num_frames=shape[0], height=shape[1], width=shape[2]
                )
                cache.finish(key, digest=objects_digest(objects), input_digest=input_digests[key])
                bar.update(1)
    return out_path


def read_objects(path: str | Path, key: str) -> VideoObjects:
    """The boxes of video `key` (`<split>/<name>`) of objects.h5."""
    with open_cache(path) as f:
        if key not in f:
            raise KeyError(f"{path}: no video '{key}' (re-run the objects stage)")
        group = f[key]
        return VideoObjects(
            {field: read_dataset(group[field]) for field in ("frame", "box", "score", "source")}
        )


def boxes_by_frame(objects: VideoObjects, num_frames: int) -> list[np.ndarray]:
    """Indices of each frame's objects, for frames 0..num_frames-1."""
    order = np.argsort(objects["frame"], kind="stable")
    bounds = np.searchsorted(objects["frame"][order], np.arange(num_frames + 1))
    return [order[bounds[t] : bounds[t + 1]] for t in range(num_frames)]
