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
from vad.datasets.scenes import SCENE_DATASETS, SCENE_LAYOUTS, keep_scenes, requested_scenes
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
    "SCENE_DATASETS",
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
    scenes: list[int | str] | tuple[int | str, ...] | None = None,
) -> Dataset:
    """Open dataset `name` stored under `root` in `layout` ("auto": detected from the folders).

    `options` are passed to the synthetic generator only (and ignored by the other readers).
    `corrupt_frames` says what a frame image with corrupt JPEG data is: "error" (a DatasetError
    when it is read) or "warn" (used as decoded; `corrupt_frame_warnings(dataset.videos)` then
    lists them per clip). Video files are decoded by FFmpeg, which is not checked this way.
    `scenes` (ShanghaiTech only; None: all) keeps the training and test clips of those scenes,
    given as numbers or ids ("01"; see scenes.py).
    Raises ValueError for an unknown name, layout or corrupt_frames, or scenes for a dataset
    without, DatasetError for bad or missing data (and a scene the data does not have).
    """
    if name not in DATASET_NAMES:
        raise ValueError(f"unknown dataset {name!r}; valid names: {', '.join(DATASET_NAMES)}")
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; valid layouts: {', '.join(LAYOUTS)}")
    if corrupt_frames not in CORRUPT_FRAMES:
        raise ValueError(
            f"unknown corrupt_frames {corrupt_frames!r}; valid: {', '.join(CORRUPT_FRAMES)}"
        )
    if requested_scenes(scenes) is not None and name not in SCENE_DATASETS:
        raise ValueError(
            f"dataset {name!r} has no scenes to choose (scenes are for "
            f"{', '.join(SCENE_DATASETS)}); got scenes {list(scenes)}"
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
    if scenes is not None and layout not in SCENE_LAYOUTS:
        raise ValueError(
            f"scenes are read from the {' or '.join(SCENE_LAYOUTS)} layout, not {layout!r}"
        )
    if layout == "frames":  # a benchmark must come with ground truth, a generic folder need not
        dataset = open_frames(
            root, name, require_labels=name in BENCHMARKS, corrupt_frames=corrupt_frames
        )
        return dataset if scenes is None else keep_scenes(dataset, scenes)
    if layout == "ucsd":
        return open_ucsd(root, name, corrupt_frames=corrupt_frames)
    if layout == "shanghaitech":
        return open_shanghaitech(root, name, corrupt_frames=corrupt_frames, scenes=scenes)
    readers = {"avenue": open_avenue, "videos": open_videos}  # video files only
    return readers[layout](root, name)
