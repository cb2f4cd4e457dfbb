"""Scenes (cameras) of ShanghaiTech Campus, and choosing the ones a run trains and tests on.

Every ShanghaiTech clip is named `<scene>_<video>`: training `01_001.avi`, test `01_0014/` (and
the same names in the frames layout). `data.scenes` names scenes by number, so "01", "1" and 1
are all scene 01. That suits what YAML makes of them: an unquoted 01 is read as the integer 1
and 08 as the string "08", and each still names its scene. Only an unquoted id of three digits
such as 010 is read as an octal number (8): quote it or write 10.

A chosen scene must have clips in both splits, since a model trained on a camera is tested on
it: a scene with training videos only is refused, naming the scenes that have both.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path

from vad.datasets.base import Dataset, DatasetError
from vad.datasets.imageio import VIDEO_EXTENSIONS, list_dirs, list_files, require_dir

SCENE_DATASETS = ("shanghaitech",)  # the datasets whose clips belong to scenes
SCENE_LAYOUTS = ("shanghaitech", "frames")  # the layouts they are read from with scenes
_CLIP_NAME = re.compile(r"(\d+)_\d+")

SceneIds = tuple[str, ...]  # scene ids as the dataset spells them ("01", "04"), sorted


def scene_of(clip_name: str) -> str | None:
    """The scene id of a clip named `<scene>_<video>` ("01_0014" -> "01"), or None."""
    match = _CLIP_NAME.fullmatch(clip_name)
    return match.group(1) if match else None


def scene_number(value: object) -> int:
    """The scene a `data.scenes` entry names: a non-negative integer, or a string of digits."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    raise ValueError(
        f"{value!r} is not a scene id: give a scene number such as 1 or a string such as \"01\""
    )


def requested_scenes(value: object) -> tuple[int, ...] | None:
    """`data.scenes` checked: None (every scene), or the scene numbers of a non-empty list that
    names no scene twice. Raises ValueError saying what is wrong."""
    if value is None:
        return None
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"must be null (every scene) or a list of scene ids, got {value!r}")
    if not value:
        raise ValueError("is an empty list: give at least one scene id, or null for every scene")
    numbers = [scene_number(entry) for entry in value]
    repeated = sorted({n for n in numbers if numbers.count(n) > 1})
    if repeated:
        named = [entry for entry in value if scene_number(entry) in repeated]
        raise ValueError(f"names scene {repeated[0]} more than once ({named})")
    return tuple(numbers)


def _listing(scenes: Iterable[str]) -> str:
    return ", ".join(sorted(scenes, key=int)) or "none"


def available_scenes(train: set[str], test: set[str]) -> str:
    """A description of the scenes a dataset has, naming those in one split only."""
    parts = [f"{_listing(train & test)} (training and test videos)"]
    if train - test:
        parts.append(f"{_listing(train - test)} (training videos only)")
    if test - train:
        parts.append(f"{_listing(test - train)} (test videos only)")
    return "; ".join(parts)


def choose_scenes(
    requested: Sequence[int | str],
    train_names: Sequence[str],
    test_names: Sequence[str],
    source: str | Path,
) -> SceneIds:
    """The ids of the scenes `requested` names (numbers or digit strings), given the clip names
    of the two splits of the dataset at `source`.

    Raises ValueError for a malformed request, and DatasetError naming `source` for a clip whose
    name has no scene, a scene the dataset does not have (listing the ones it has), or a scene
    without clips in one of the splits.
    """
    wanted = requested_scenes(list(requested))
    assert wanted is not None
    by_split: dict[str, set[str]] = {}
    for split, names in (("training", train_names), ("test", test_names)):
        for name in names:
            if scene_of(name) is None:
                raise DatasetError(
                    f"{source}: cannot tell the scene of {split} clip {name!r}: ShanghaiTech "
                    "clips are named <scene>_<video> (e.g. 01_001), which data.scenes needs"
                )
        by_split[split] = {scene_of(name) for name in names}
    train, test = by_split["training"], by_split["test"]
    chosen = []
    for number in wanted:
        ids = {scene for scene in train | test if int(scene) == number}
        if not ids:
            raise DatasetError(
                f"{source}: no scene {number:02d} in this dataset; its scenes are "
                f"{available_scenes(train, test)}"
            )
        for scene in sorted(ids):
            missing = [split for split, scenes in by_split.items() if scene not in scenes]
            if missing:
                raise DatasetError(
                    f"{source}: scene {scene} has no {missing[0]} videos, and a chosen scene is "
                    f"both trained and tested on; its scenes are {available_scenes(train, test)}"
                )
            chosen.append(scene)
    return tuple(sorted(chosen, key=lambda scene: (int(scene), scene)))


def scene_pattern(scenes: SceneIds) -> str:
    """A regular expression matching in full the clip names of `scenes`."""
    return "(?:" + "|".join(re.escape(scene) for scene in scenes) + r")_\d+"


def clip_names(root: Path, layout: str) -> tuple[list[str], list[str]]:
    """The training and test clip names of a ShanghaiTech copy, from folder listings alone (as
    its reader lists them): the release layout (`training/videos/*.avi`, `testing/frames/*/`),
    or with layout "frames" the frames layout (`training/frames/*/`, `testing/frames/*/`)."""
    if layout == "frames":
        train_dir = require_dir(root / "training" / "frames", "train split")
        train = [path.name for path in list_dirs(train_dir)]
    else:
        train_dir = require_dir(root / "training" / "videos", "train split")
        train = [path.stem for path in list_files(train_dir, VIDEO_EXTENSIONS)]
    test = [path.name for path in list_dirs(require_dir(root / "testing" / "frames", "test split"))]
    return train, test


def keep_scenes(dataset: Dataset, requested: Sequence[int | str]) -> Dataset:
    """`dataset` with only the clips (and ground truth) of the scenes `requested`."""
    chosen = choose_scenes(
        requested, [v.name for v in dataset.train], [v.name for v in dataset.test], dataset.root
    )
    return replace(
        dataset,
        train=[video for video in dataset.train if scene_of(video.name) in chosen],
        test=[video for video in dataset.test if scene_of(video.name) in chosen],
        ground_truth={
            name: truth
            for name, truth in dataset.ground_truth.items()
            if scene_of(name) in chosen
        },
        scenes=chosen,
    )
