"""Dataset readers, one per on-disk layout, behind `open_dataset(name, root, layout)`.

Every reader returns a `Dataset` of `Video`s (frames read lazily, H×W×3 uint8 RGB) and, per test
video, a `GroundTruth`. See base.py for the types and each reader's module for its layout.
"""

from __future__ import annotations

from pathlib import Path

from vad.datasets.avenue import open_avenue
from vad.datasets.base import Dataset, DatasetError, GroundTruth, Video
from vad.datasets.frames import open_frames
from vad.datasets.imageio import CORRUPT_FRAMES, corrupt_frame_warnings
from vad.datasets.shanghaitech import open_shanghaitech
from vad.datasets.ucsd import open_ucsd
from vad.datasets.videos import open_videos

DATASET_NAMES = ("ped1", "ped2", "avenue", "shanghaitech", "frames", "videos", "synthetic")
BENCHMARKS = ("ped1", "ped2", "avenue", "shanghaitech")
LAYOUTS = ("auto", "ucsd", "frames", "avenue", "shanghaitech", "videos")

# The layout a dataset name is read with, unless `training/frames` (the frames layout) exists.
_NATIVE_LAYOUT = {
    "ped1": "ucsd",
    "ped2": "ucsd",
    "avenue": "avenue",
    "shanghaitech": "shanghaitech",
    "frames": "frames",
    "videos": "videos",
}

__all__ = [
    "CORRUPT_FRAMES",
    "DATASET_NAMES",
    "LAYOUTS",
    "Dataset",
    "DatasetError",
    "GroundTruth",
    "Video",
    "corrupt_frame_warnings",
    "detect_layout",
    "open_dataset",
]


def detect_layout(name: str, root: Path) -> str:
    native = _NATIVE_LAYOUT[name]
    if native in ("ucsd", "avenue", "shanghaitech") and (root / "training" / "frames").is_dir():
        return "frames"
    return native


def open_dataset(
    name: str,
    root: str | Path | None,
    layout: str = "auto",
    options: dict | None = None,
    corrupt_frames: str = "error",
) -> Dataset:
    """Open dataset `name` stored under `root` in `layout` ("auto": detected from the folders).

    `options` are passed to the synthetic generator only (and ignored by the other readers).
    `corrupt_frames` says what a frame image with corrupt JPEG data is: "error" (a DatasetError
    when it is read) or "warn" (used as decoded; `corrupt_frame_warnings(dataset.videos)` then
    lists them per clip). Video files are decoded by FFmpeg, which is not checked this way.
    Raises ValueError for an unknown name, layout or corrupt_frames, DatasetError for bad or
    missing data.
    """
    if name not in DATASET_NAMES:
        raise ValueError(f"unknown dataset {name!r}; valid names: {', '.join(DATASET_NAMES)}")
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; valid layouts: {', '.join(LAYOUTS)}")
    if corrupt_frames not in CORRUPT_FRAMES:
        raise ValueError(
            f"unknown corrupt_frames {corrupt_frames!r}; valid: {', '.join(CORRUPT_FRAMES)}"
        )

    if name == "synthetic":
        if layout != "auto":
            raise ValueError(f"dataset 'synthetic' has no layout to choose; got layout {layout!r}")
        from vad.datasets.synthetic import open_synthetic

        return open_synthetic(root, **(options or {}))

    if root is None:
        raise DatasetError(f"dataset {name!r} needs a root folder")
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetError(f"{root}: dataset root folder not found")
    if layout == "auto":
        layout = detect_layout(name, root)
    if layout == "frames":  # a benchmark must come with ground truth, a generic folder need not
        return open_frames(
            root, name, require_labels=name in BENCHMARKS, corrupt_frames=corrupt_frames
        )
    if layout == "ucsd":
        return open_ucsd(root, name, corrupt_frames=corrupt_frames)
    if layout == "shanghaitech":
        return open_shanghaitech(root, name, corrupt_frames=corrupt_frames)
    readers = {"avenue": open_avenue, "videos": open_videos}  # video files only
    return readers[layout](root, name)
