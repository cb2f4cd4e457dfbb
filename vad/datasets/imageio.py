"""Reading frame images, masks, video files and MATLAB files for the dataset readers.

Every failure is a `DatasetError` whose message starts with the path at fault. Image files are
recognised by their first bytes (an empty or non-image file is named as such), a JPEG must end
with its end-of-image marker, and one in which libjpeg reports corrupt data (decoder_messages.py)
is an error, or with `corrupt_frames="warn"` a frame used as decoded and counted per clip.

Frames come back as H×W×3 uint8 RGB (grayscale sources replicated to 3 channels), masks as H×W
bool. Loaders are small picklable classes rather than closures, so a `Video` can be sent to a
worker process.
"""

from __future__ import annotations

import os
import re
import threading
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import scipy.io

from vad.datasets.base import DatasetError, Video
from vad.datasets.decoder_messages import capture_messages, corrupt_jpeg_messages, forward

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff"})
VIDEO_EXTENSIONS = frozenset({".avi", ".mp4", ".mov", ".mkv", ".mpg", ".webm"})
_JPEG_EOI = b"\xff\xd9"
CORRUPT_FRAMES = ("error", "warn")  # a frame with corrupt JPEG data: an error, or a warning
_LISTED = 10  # corrupt frames named in a clip's warning


# ----------------------------------------------------------------------------- folders


def natural_key(name: str) -> tuple:
    """Sort key that orders digit runs by value ("2" < "10"); zero-padded names sort as by name."""
    parts = tuple(int(p) if p.isdigit() else p.lower() for p in re.split(r"(\d+)", name))
    return parts, name


def require_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise DatasetError(f"{path}: {what} folder not found")
    return path


def list_files(folder: Path, extensions: frozenset[str]) -> list[Path]:
    """Files in `folder` with one of `extensions`, sorted by name; hidden files (`._*`,
    `.DS_Store`) and anything else are ignored."""
    files = [
        p
        for p in folder.iterdir()
        if not p.name.startswith(".") and p.suffix.lower() in extensions and p.is_file()
    ]
    return sorted(files, key=lambda p: natural_key(p.name))


def list_dirs(folder: Path, pattern: str | None = None) -> list[Path]:
    """Sub-folders of `folder` (whose whole name matches `pattern`, if given), sorted by name."""
    regex = re.compile(pattern) if pattern else None
    dirs = [
        p
        for p in folder.iterdir()
        if not p.name.startswith(".") and p.is_dir() and (regex is None or regex.fullmatch(p.name))
    ]
    return sorted(dirs, key=lambda p: natural_key(p.name))


# ----------------------------------------------------------------------------- images


def _read_bytes(path: str | Path) -> np.ndarray:
    try:
        return np.fromfile(path, dtype=np.uint8)
    except OSError as error:
        raise DatasetError(f"{path}: cannot read file ({error.strerror or error})") from error


# The first bytes of each image format in IMAGE_EXTENSIONS; files are recognised by content.
_SIGNATURES = (
    (b"\xff\xd8", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"II+\x00", "TIFF"),  # BigTIFF
    (b"MM\x00+", "TIFF"),
)


def _image_format(path: str | Path, data: np.ndarray) -> str:
    """The image format (JPEG, PNG, BMP or TIFF) that the file's first bytes announce."""
    if not data.size:
        raise DatasetError(f"{path}: empty file (0 bytes)")
    head = data[:8].tobytes()
    for signature, kind in _SIGNATURES:
        if head.startswith(signature):
            return kind
    raise DatasetError(f"{path}: not a JPEG/PNG/BMP/TIFF image (starts with bytes {head.hex(' ')})")


def _check_jpeg_end(path: str | Path, data: np.ndarray) -> None:
    """OpenCV decodes a truncated JPEG without error, so require the end-of-image marker,
    allowing the zero padding some writers append."""
    if data[-2:].tobytes() != _JPEG_EOI:
        end = np.flatnonzero(data)[-1:] + 1  # after the last nonzero byte
        if not end.size or data[max(end[0] - 2, 0) : end[0]].tobytes() != _JPEG_EOI:
            raise DatasetError(f"{path}: truncated JPEG (no end-of-image marker FF D9)")


def decode_image(path: str | Path, flags: int) -> tuple[np.ndarray, str | None]:
    """Decode one image file with OpenCV `flags`. Returns the image and, when libjpeg reported
    corrupt data (the image is then damaged), a description of the problem; None otherwise.
    Raises DatasetError for a file that is empty, not an image, truncated or undecodable."""
    data = _read_bytes(path)
    kind = _image_format(path, data)
    if kind == "JPEG":
        _check_jpeg_end(path, data)

    def decode() -> np.ndarray | None:
        try:
            return cv2.imdecode(data, flags)
        except cv2.error:
            return None

    image, text = capture_messages(decode)
    if image is None:
        said = " ".join(text.split())
        detail = f" (decoder: {said})" if said else ""
        raise DatasetError(f"{path}: unreadable or damaged {kind} image{detail}")
    corrupt, rest = corrupt_jpeg_messages(text) if kind == "JPEG" else ([], text)
    forward(rest)
    if corrupt:
        return image, f"corrupt JPEG data (libjpeg: {'; '.join(corrupt)})"
    return image, None


def _strict(path: str | Path, decoded: tuple[np.ndarray, str | None]) -> np.ndarray:
    image, problem = decoded
    if problem is not None:
        raise DatasetError(f"{path}: {problem}")
    return image


def decode_frame(path: str | Path) -> tuple[np.ndarray, str | None]:
    """One frame file as H×W×3 uint8 RGB, and the corrupt-data problem if any (`decode_image`)."""
    image, problem = decode_image(path, cv2.IMREAD_COLOR)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB), problem


def read_image(path: str | Path) -> np.ndarray:
    """One frame file as H×W×3 uint8 RGB; corrupt data is an error."""
    return _strict(path, decode_frame(path))


def read_mask(path: str | Path) -> np.ndarray:
    """One mask image as H×W bool: any nonzero pixel (in any colour channel) is anomalous."""
    mask = _strict(path, decode_image(path, cv2.IMREAD_UNCHANGED))
    if mask.ndim == 3:
        return mask[..., :3].any(axis=2)  # drop an alpha channel
    return mask > 0


class ImageSequence:
    """`load_frame` for a clip stored as one image file per frame.

    A frame with corrupt JPEG data is an error with `corrupt_frames="error"`; with "warn" it is
    returned as decoded and remembered in `corrupt` (frame index -> problem) for `warning()`.
    """

    def __init__(self, paths: list[Path], corrupt_frames: str = "error"):
        if corrupt_frames not in CORRUPT_FRAMES:
            raise ValueError(
                f"corrupt_frames must be one of {CORRUPT_FRAMES}, got {corrupt_frames!r}"
            )
        self.paths = tuple(str(p) for p in paths)
        self.corrupt_frames = corrupt_frames
        self.corrupt: dict[int, str] = {}

    def __call__(self, index: int) -> np.ndarray:
        path = self.paths[index]
        frame, problem = decode_frame(path)
        if problem is not None:
            if self.corrupt_frames == "error":
                raise DatasetError(f"{path}: {problem}")
            self.corrupt[index] = problem
        return frame

    def warning(self) -> str | None:
        """One line about the corrupt frames read so far (None when there were none)."""
        if not self.corrupt:
            return None
        indices = sorted(self.corrupt)
        names = [Path(self.paths[i]).name for i in indices[:_LISTED]]
        more = f" and {len(indices) - _LISTED} more" if len(indices) > _LISTED else ""
        return (
            f"{Path(self.paths[0]).parent}: {len(indices)} of {len(self.paths)} frames have "
            f"corrupt JPEG data and were used as decoded: {', '.join(names)}{more} "
            f"(first: {self.corrupt[indices[0]]})"
        )


def corrupt_frame_warnings(videos: list[Video]) -> list[str]:
    """Per clip read with corrupt_frames="warn", a line about its corrupt frames read so far."""
    lines = []
    for video in videos:
        if isinstance(video.load_frame, ImageSequence):
            line = video.load_frame.warning()
            if line:
                lines.append(line)
    return lines


class MaskSequence:
    """`load_masks` for a clip whose masks are one image file per frame."""

    def __init__(self, paths: list[Path], height: int, width: int):
        self.paths = tuple(str(p) for p in paths)
        self.height, self.width = height, width

    def read_file(self, path: str) -> np.ndarray:
        """One of the mask files, checked against the video's size."""
        mask = read_mask(path)
        if mask.shape != (self.height, self.width):
            raise DatasetError(
                f"{path}: mask of size {mask.shape[1]}x{mask.shape[0]} (WxH), "
                f"expected {self.width}x{self.height} like its video"
            )
        return mask

    def __call__(self) -> np.ndarray:
        masks = np.empty((len(self.paths), self.height, self.width), dtype=bool)
        for index, mask in enumerate(self.frames()):
            masks[index] = mask
        return masks

    def frames(self) -> Iterator[np.ndarray]:
        """The masks one frame at a time (`GroundTruth.mask_frames`)."""
        for path in self.paths:
            yield self.read_file(path)


def image_clip(
    folder: Path, split: str, name: str | None = None, corrupt_frames: str = "error"
) -> Video:
    """A clip stored as a folder of frame images; reads the first frame for the size."""
    paths = list_files(folder, IMAGE_EXTENSIONS)
    if not paths:
        raise DatasetError(f"{folder}: clip has no frames (no image files)")
    load_frame = ImageSequence(paths, corrupt_frames)
    height, width = load_frame(0).shape[:2]
    return Video(
        name=name or folder.name,
        split=split,
        num_frames=len(paths),
        height=height,
        width=width,
        source=str(folder),
        load_frame=load_frame,
    )


def image_clips(
    folder: Path, split: str, pattern: str | None = None, corrupt_frames: str = "error"
) -> list[Video]:
    """Every clip folder (matching `pattern`) in `folder`, sorted by name; at least one."""
    require_dir(folder, f"{split} split")
    dirs = list_dirs(folder, pattern)
    if not dirs:
        raise DatasetError(f"{folder}: {split} split has no clip folders")
    return [image_clip(d, split, corrupt_frames=corrupt_frames) for d in dirs]


def mask_folder(folder: Path, video: Video) -> MaskSequence:
    """The masks of `video` stored as one image per frame in `folder`: one per frame, at the
    video's size (the first one is checked here, the others when loaded)."""
    paths = list_files(folder, IMAGE_EXTENSIONS)
    if len(paths) != video.num_frames:
        raise DatasetError(
            f"{folder}: {len(paths)} mask images for video {video.name!r} "
            f"which has {video.num_frames} frames"
        )
    masks = MaskSequence(paths, video.height, video.width)
    masks.read_file(masks.paths[0])
    return masks


# ----------------------------------------------------------------------------- video files

_MAX_OPEN_CAPTURES = 16
_open_files: OrderedDict[int, VideoFile] = OrderedDict()  # least recently used first
_open_files_lock = threading.Lock()


def _open_capture(path: str) -> cv2.VideoCapture:
    if not os.path.isfile(path):
        raise DatasetError(f"{path}: video file not found")
    capture = cv2.VideoCapture(path)
    if not capture.isOpened():
        capture.release()
        raise DatasetError(f"{path}: unreadable video (cannot be opened)")
    return capture


def probe_video(path: str | Path) -> tuple[int, int, int]:
    """(frame count from the header, height, width); decodes only the first frame."""
    path = str(path)
    capture = _open_capture(path)
    try:
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        ok, frame = capture.read()
        if not ok or frame is None:
            raise DatasetError(f"{path}: unreadable video (cannot decode its first frame)")
        if count <= 0:  # no usable count in the header: count by decoding
            count = 1
            while capture.grab():
                count += 1
    except cv2.error as error:
        raise DatasetError(f"{path}: unreadable video ({error})") from error
    finally:
        capture.release()
    return count, frame.shape[0], frame.shape[1]


class VideoFile:
    """`load_frame` for a video file: exact, and fast when frames are read in order.

    Keeps one capture open, positioned after the last frame read. Reading forward skips with
    `grab()`; reading backwards re-opens the file and skips from the start, because seeking with
    CAP_PROP_POS_FRAMES is inexact in AVI/MP4. The last frame read is kept, so reading it again
    costs nothing. At most `_MAX_OPEN_CAPTURES` captures stay open across all videos (least
    recently used closed first), and a capture is closed once its last frame has been read.
    """

    def __init__(self, path: str | Path, num_frames: int):
        self.path = str(path)
        self.num_frames = num_frames
        self._reset()

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._capture: cv2.VideoCapture | None = None
        self._pid = 0
        self._next = 0  # index of the frame the capture returns next
        self._last: tuple[int, np.ndarray] | None = None

    def __getstate__(self) -> dict:
        return {"path": self.path, "num_frames": self.num_frames}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._reset()

    def __call__(self, index: int) -> np.ndarray:
        with self._lock:
            if self._last is not None and self._last[0] == index:
                return self._last[1].copy()
            try:
                frame = self._read(index)
            except cv2.error as error:
                self._close()
                raise DatasetError(f"{self.path}: cannot decode frame {index} ({error})") from error
            self._last = (index, frame.copy())
            return frame

    def _read(self, index: int) -> np.ndarray:
        if self._capture is None or self._pid != os.getpid() or index < self._next:
            self._open()
        else:
            with _open_files_lock:
                _open_files.move_to_end(id(self))
        while self._next < index:
            if not self._capture.grab():
                self._truncated(self._next)
            self._next += 1
        ok, frame = self._capture.read()
        if not ok or frame is None:
            self._truncated(index)
        self._next += 1
        if self._next >= self.num_frames:
            self._close()
        return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)

    def _truncated(self, index: int) -> None:
        self._close()
        raise DatasetError(
            f"{self.path}: truncated video: decoding stopped at frame {index} "
            f"but the header claims {self.num_frames} frames"
        )

    def _open(self) -> None:
        self._close()
        with _open_files_lock:
            for key in list(_open_files)[: max(0, len(_open_files) - _MAX_OPEN_CAPTURES + 1)]:
                other = _open_files[key]
                if other._lock.acquire(blocking=False):  # skip one busy in another thread
                    try:
                        other._close_locked()
                    finally:
                        other._lock.release()
        self._capture = _open_capture(self.path)
        self._pid = os.getpid()
        self._next = 0
        with _open_files_lock:
            _open_files[id(self)] = self

    def _close(self) -> None:
        with _open_files_lock:
            self._close_locked()

    def _close_locked(self) -> None:
        _open_files.pop(id(self), None)
        if self._capture is not None:
            if self._pid == os.getpid():  # a capture inherited through fork is only dropped
                self._capture.release()
            self._capture = None


def video_clip(path: Path, split: str) -> Video:
    num_frames, height, width = probe_video(path)
    return Video(
        name=path.stem,
        split=split,
        num_frames=num_frames,
        height=height,
        width=width,
        source=str(path),
        load_frame=VideoFile(path, num_frames),
    )


def video_clips(folder: Path, split: str, pattern: str | None = None) -> list[Video]:
    """Every video file in `folder` (whose stem matches `pattern` in full, if given), sorted by
    name, named by file stem; at least one."""
    require_dir(folder, f"{split} split")
    paths = list_files(folder, VIDEO_EXTENSIONS)
    if pattern is not None:
        regex = re.compile(pattern)
        paths = [path for path in paths if regex.fullmatch(path.stem)]
    if not paths:
        raise DatasetError(
            f"{folder}: {split} split has no video files ({' '.join(sorted(VIDEO_EXTENSIONS))})"
        )
    stems: dict[str, Path] = {}
    for path in paths:
        if path.stem in stems:
            raise DatasetError(f"{path}: same video name as {stems[path.stem].name}")
        stems[path.stem] = path
    return [video_clip(p, split) for p in paths]


# ----------------------------------------------------------------------------- MATLAB files


def load_mat_variable(path: Path, variable: str) -> np.ndarray:
    """One variable of a MATLAB v5 .mat file (cell arrays come back as object arrays)."""
    if not path.is_file():
        raise DatasetError(f"{path}: ground-truth file not found")
    try:
        contents = scipy.io.loadmat(str(path), variable_names=[variable])
    except NotImplementedError as error:  # scipy reads up to v7.2
        raise DatasetError(
            f"{path}: MATLAB v7.3 files are not supported; re-save it with save(..., '-v7')"
        ) from error
    except Exception as error:  # scipy raises ValueError, MatReadError, OSError, ...
        raise DatasetError(f"{path}: unreadable .mat file ({error})") from error
    if variable not in contents:
        found = [name for name, _, _ in scipy.io.whosmat(str(path))]
        raise DatasetError(f"{path}: no variable {variable!r} in the .mat file (found: {found})")
    return contents[variable]
