"""Score files (the layout of vad/scores.py) read one test video at a time, for the evaluation
that streams: `score_index` says what a file holds without reading scores, and
`read_video_scores` reads one video as `read_scores` would give it, optionally without its
score maps (the bulk of a file).

Kept apart from vad/scores.py on purpose: every stage that writes scores depends on that module,
so a change there would re-run them all (dvc.yaml deps) for a reader only `evaluate` uses.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from vad.cache import iter_videos, open_cache, read_dataset, video_key
from vad.scores import STANDARD, VideoScores
from vad.scores import _extra as stored_extra  # text extras decoded as read_scores does


@dataclass(frozen=True)
class ScoreIndex:
    """What a score file holds, without its scores."""

    path: Path
    model: str
    attrs: dict
    test: tuple[str, ...]  # the scored test videos, sorted
    test_maps: frozenset[str]  # those of them with score maps


def _existing(path: str | Path) -> Path:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: score file not found (run the model's score stage)")
    return path


def score_index(path: str | Path, model: str | None = None) -> ScoreIndex:
    """The `ScoreIndex` of a score file; `model` names it as in `read_scores`."""
    path = _existing(path)
    with open_cache(path) as f:
        attrs = json.loads(f.attrs.get("settings", "{}"))
        stored_model = attrs.pop("model", None)
        test = [(name, group) for split, name, group in iter_videos(f) if split == "test"]
        return ScoreIndex(
            path=path,
            model=model or stored_model or path.stem,
            attrs=attrs,
            test=tuple(name for name, _ in test),
            test_maps=frozenset(name for name, group in test if "score_maps" in group),
        )


def read_video_scores(
    path: str | Path, name: str, split: str = "test", *, maps: bool = True
) -> VideoScores:
    """One video's scores, as `read_scores` gives them; with `maps` False, without its maps."""
    path = _existing(path)
    with open_cache(path) as f:
        key = video_key(split, name)
        if key not in f:
            raise KeyError(f"{path}: no scores for video '{key}'")
        group = f[key]
        return VideoScores(
            frame_scores=read_dataset(group["frame_scores"]),
            score_maps=(
                read_dataset(group["score_maps"]) if maps and "score_maps" in group else None
            ),
            frame_indices=(
                read_dataset(group["frame_indices"]) if "frame_indices" in group else None
            ),
            extras={key: stored_extra(group[key]) for key in group if key not in STANDARD},
        )
