"""The `data` and `frames` sections (stage `frames`)."""

from __future__ import annotations

from pathlib import Path

from vad.config import ConfigError, Section, check_all
from vad.datasets import CORRUPT_FRAMES, DATASET_NAMES, LAYOUTS, DatasetError, detect_layout
from vad.datasets.scenes import (
    SCENE_DATASETS,
    SCENE_LAYOUTS,
    SceneIds,
    choose_scenes,
    clip_names,
    requested_scenes,
)
from vad.frame_cache import COLORS

DATA_KEYS = ("name", "root", "layout", "corrupt_frames", "scenes", "synthetic")
FRAMES_KEYS = ("color", "size")


def data_settings(params: dict) -> dict:
    """`data`: {name, root (None for an empty one), layout, corrupt_frames, scenes (None: every
    scene), options (synthetic only)}. A real dataset's root must be an existing folder, and the
    scenes chosen must be scenes of it with clips in both splits (its folders are listed, nothing
    is read); the synthetic scene's options are checked without generating anything."""
    section = Section(params, "data")
    return check_all(lambda: section.check_keys(DATA_KEYS), lambda: _data(section))[1]


def _data(section: Section) -> dict:
    name = section.str("name", list(DATASET_NAMES))
    layout = section.str("layout", list(LAYOUTS), default="auto")
    corrupt_frames = section.str("corrupt_frames", list(CORRUPT_FRAMES), default="error")
    root = section.values.get("root")
    if root is not None and not isinstance(root, str):
        raise section.error("root", f"must be a path (a string), got {root!r}")
    options = section.mapping("synthetic")
    if name == "synthetic":
        if layout != "auto":
            raise section.error("layout", f"must be auto for the synthetic dataset, got {layout!r}")
        from vad.datasets.synthetic import SyntheticOptions

        try:
            SyntheticOptions.from_kwargs(options)
        except (TypeError, ValueError) as error:
            raise ConfigError(f"params.yaml: 'data.synthetic': {error}") from None
    else:
        if not root:
            raise section.error("root", f"must name the folder of dataset {name!r}")
        if not Path(root).expanduser().is_dir():
            raise section.error("root", f"{root}: no such folder (the dataset {name!r})")
    return {
        "name": name,
        "root": root or None,
        "layout": layout,
        "corrupt_frames": corrupt_frames,
        "scenes": _scenes(section, name, root, layout),
        "options": options if name == "synthetic" else None,
    }


def _scenes(section: Section, name: str, root: str | None, layout: str) -> SceneIds | None:
    """`data.scenes` as the ids of the scenes chosen ("01", ...), or None for every scene."""
    try:
        requested = requested_scenes(section.values.get("scenes"))
    except ValueError as error:
        raise section.error("scenes", str(error)) from None
    if requested is None:
        return None
    if name not in SCENE_DATASETS:
        raise section.error(
            "scenes",
            f"chooses scenes of {', '.join(SCENE_DATASETS)}; dataset {name!r} has none "
            "(set it to null)",
        )
    folder = Path(root).expanduser()
    resolved = detect_layout(name, folder) if layout == "auto" else layout
    if resolved not in SCENE_LAYOUTS:
        raise section.error(
            "scenes", f"needs the {' or '.join(SCENE_LAYOUTS)} layout, not {resolved!r}"
        )
    try:
        return choose_scenes(requested, *clip_names(folder, resolved), folder)
    except DatasetError as error:
        raise section.error("scenes", str(error)) from None


def frames_settings(params: dict) -> dict:
    """`frames`: {color, size (None: the original size)}."""
    section = Section(params, "frames")
    return check_all(
        lambda: section.check_keys(FRAMES_KEYS),
        lambda: {
            "color": section.str("color", list(COLORS)),
            "size": section.size("size", allow_none=True),
        },
    )[1]
