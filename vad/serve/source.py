"""Where `vad score` reads frames from: a video file, a folder of videos (each scored in turn),
a folder of frame images (one stream, in natural name order), a camera index ("0") or a stream
URL OpenCV opens ("rtsp://...").

Frames come one at a time as H×W×3 uint8 RGB (never the whole video in memory). A video that
cannot be opened is an error naming the file; one whose decoding stops before the frame count
of its header raises `TruncatedInput` naming the file and the last good frame, after every
readable frame was yielded. A camera or stream simply ends when it stops delivering frames.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from vad.datasets.imageio import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, list_files, read_image

DEFAULT_FPS = 25.0  # when the source states none (frame folders, some streams)


class InputError(ValueError):
    """An input that cannot be read; the message names it."""


class TruncatedInput(InputError):
    """Decoding stopped early; the frames before it were scored."""


@dataclass
class Source:
    name: str  # names the output files
    where: str  # the file, folder, camera or URL, for messages
    fps: float
    frames: Iterator[np.ndarray]


def open_sources(spec: str) -> list[Source]:
    """The streams of `spec` (see the module docstring), each to be scored on its own."""
    if re.fullmatch(r"\d+", spec):
        return [_capture_source(f"camera{spec}", f"camera {spec}", int(spec), live=True)]
    if "://" in spec:
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", spec.split("://", 1)[1]).strip("_") or "stream"
        return [_capture_source(name, spec, spec, live=True)]
    path = Path(spec)
    if path.is_file():
        return [_capture_source(path.stem, str(path), str(path), live=False)]
    if path.is_dir():
        videos = list_files(path, VIDEO_EXTENSIONS)
        if videos:
            return [_capture_source(p.stem, str(p), str(p), live=False) for p in videos]
        images = list_files(path, IMAGE_EXTENSIONS)
        if images:
            return [Source(path.name, str(path), DEFAULT_FPS, _image_frames(images))]
        raise InputError(f"{path}: no video files or frame images in this folder")
    raise InputError(f"{spec}: no such file or folder (nor a camera index or stream URL)")


def _capture_source(name: str, where: str, target: int | str, live: bool) -> Source:
    capture = cv2.VideoCapture(target)
    if not capture.isOpened():
        capture.release()
        raise InputError(f"{where}: unreadable video (OpenCV cannot open it)")
    fps = capture.get(cv2.CAP_PROP_FPS)
    expected = None if live else int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    fps = float(fps) if fps and 0 < fps < 1000 else DEFAULT_FPS
    return Source(name, where, fps, _capture_frames(capture, where, expected or None))


def _capture_frames(
    capture: cv2.VideoCapture, where: str, expected: int | None
) -> Iterator[np.ndarray]:
    count = 0
    try:
        while True:
            ok, frame = capture.read()
            if not ok or frame is None:
                break
            count += 1
            yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
    finally:
        capture.release()
    if count == 0 and expected != 0:
        raise InputError(f"{where}: unreadable video (no frame could be decoded)")
    if expected is not None and count < expected:
        raise TruncatedInput(
            f"{where}: truncated or unreadable video: decoding stopped after frame {count - 1} "
            f"(the last good frame) but the header claims {expected} frames"
        )


def _image_frames(paths: list[Path]) -> Iterator[np.ndarray]:
    for index, path in enumerate(paths):
        try:
            yield read_image(path)
        except ValueError as error:
            last = f"frame {index - 1} ({paths[index - 1].name})" if index else "none"
            raise TruncatedInput(f"{error}; the last good frame: {last}") from error
