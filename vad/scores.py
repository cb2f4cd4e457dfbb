"""The score-file contract every method writes (data/scores/<method>.h5, data/fused/<name>.h5):
per video, frame scores and optional score maps.

Layout: group `<split>/<name>` with `frame_scores` (T,) float32 and `score_maps` (T, rows, cols)
float32, where the map's grid covers the whole frame; a method may add per-frame datasets of its
own (`extras`, e.g. `explanation`, (T,) strings shown on the overlay figures). Training
videos may be scored too (all or a subset of their frames, listed in `frame_indices`): their
statistics normalize test scores.
File attrs: `settings`, JSON of {"model": name, **attrs} (a fused set lists its `parts`).

Static cells: a method that gives cells it does not score one constant (GMFC-VAE's static
patches get the prior's mode energy) names it in the attr `static_value`. Those cells and frames
say nothing about the score distribution, so normalization statistics leave them out
(`train_values`, `train_statistics`).

Memory: a method's `score` returns a `ScoreStream`, which yields one video's scores at a time;
a video's score maps may come as `MapBlocks` (its shape and its rows a block of frames at a
time), so that not even one video's maps need be in memory; `write_scores` (a `ScoreWriter`)
writes each as it comes, and `open_scores` reads a file back
one video at a time (a `ScoreFile`), so that scoring, fusing and normalizing hold one video's
scores, whatever the length of the dataset. `read_scores` reads a whole file (a `ScoreSet`).
The file is the same whichever way it was written.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

import h5py
import numpy as np

from vad.cache import checked_dataset, iter_videos, open_cache, read_dataset, video_key, write_h5
from vad.streaming_stats import Pieces, flat_mean_std

STANDARD = ("frame_scores", "score_maps", "frame_indices")
SPLITS = ("train", "test")  # the order a score file stores its videos in
STD_FLOOR = 1e-12


MAP_BLOCK_FRAMES = 64  # frames of score maps written (or copied) at a time


@dataclass(frozen=True)
class MapBlocks:
    """A video's (T, rows, cols) score maps produced a block of frames at a time: `blocks()`
    yields consecutive (n, rows, cols) arrays covering frames 0 .. T-1 in order, anew on each
    call. `ScoreWriter` writes them block by block; `array()` stacks them (for small sets)."""

    shape: tuple[int, int, int]
    blocks: Callable[[], Iterator[np.ndarray]]

    def array(self) -> np.ndarray:
        parts = [np.asarray(block, np.float32) for block in self.blocks()]
        whole = np.concatenate(parts) if parts else np.zeros(self.shape, np.float32)
        if whole.shape != tuple(self.shape):
            raise ValueError(f"map blocks make {whole.shape}, declared {tuple(self.shape)}")
        return whole


def dataset_blocks(dataset: h5py.Dataset, block: int = MAP_BLOCK_FRAMES) -> MapBlocks:
    """A stored (T, rows, cols) dataset as `MapBlocks`, read `block` frames at a time while the
    file is open."""
    count = len(dataset)

    def blocks() -> Iterator[np.ndarray]:
        for start in range(0, count, block):
            yield read_dataset(dataset, np.s_[start : start + block])

    return MapBlocks(tuple(dataset.shape), blocks)


@dataclass
class VideoScores:
    frame_scores: np.ndarray
    score_maps: np.ndarray | MapBlocks | None = None
    frame_indices: np.ndarray | None = None  # which frames were scored (None = all)
    extras: dict[str, np.ndarray] = field(default_factory=dict)  # per-frame, method-specific


Scored = tuple[str, str, VideoScores]  # (split, video name, its scores)


class ScoreSource(Protocol):
    """Scores of one model read a video at a time: a `ScoreSet` in memory or a `ScoreFile`."""

    model: str
    attrs: dict

    def names(self, split: str) -> list[str]:
        """The videos of `split` ("train" or "test"), in the order they are stored."""

    def video(self, split: str, name: str) -> VideoScores:
        """All scores of one video."""

    def array(self, split: str, name: str, what: str) -> np.ndarray | None:
        """One of STANDARD of one video (None if it has none), read alone."""

    def map_shape(self, split: str, name: str) -> tuple[int, ...] | None:
        """The (rows, cols) of a video's score maps (None without maps), read from metadata."""


@dataclass
class ScoreSet:
    """Scores of one model: test videos by name, training videos by name, and provenance."""

    model: str
    test: dict[str, VideoScores] = field(default_factory=dict)
    train: dict[str, VideoScores] = field(default_factory=dict)
    attrs: dict = field(default_factory=dict)

    def train_values(self, maps: bool = False) -> np.ndarray:
        """The training frame scores (or, with `maps`, map cells) as float64, without the
        static cells (`static_value`); all of them when every one is static."""
        if not self.train:
            raise ValueError(f"scores of {self.model!r} hold no training videos")
        parts = [v.score_maps if maps else v.frame_scores for v in self.train.values()]
        values = np.concatenate([part.ravel() for part in parts]).astype(np.float64)
        static = self.attrs.get("static_value")
        if static is None:
            return values
        scored = values[values.astype(np.float32) != np.float32(static)]  # stored as float32
        return scored if scored.size else values

    def train_statistics(self) -> tuple[float, float]:
        """Mean and standard deviation of the scored training frames (static ones left out)."""
        return train_statistics(self)

    def names(self, split: str) -> list[str]:
        return list(self._videos(split))

    def video(self, split: str, name: str) -> VideoScores:
        return self._videos(split)[name]

    def array(self, split: str, name: str, what: str) -> np.ndarray | None:
        return getattr(self._videos(split)[name], what)

    def map_shape(self, split: str, name: str) -> tuple[int, ...] | None:
        maps = self._videos(split)[name].score_maps
        return None if maps is None else tuple(maps.shape[1:])

    def stream(self) -> ScoreStream:
        """The same scores as a stream, training videos first (as a score file stores them)."""
        videos = [(split, name, v) for split in SPLITS for name, v in self._videos(split).items()]
        return ScoreStream(self.model, videos, dict(self.attrs))

    def _videos(self, split: str) -> dict[str, VideoScores]:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        return self.train if split == "train" else self.test


@dataclass
class ScoreStream:
    """Scores of one model produced one video at a time, what `Method.score` returns:
    `videos` yields (split, name, VideoScores), training videos first (the order a score file
    stores them in), and is iterated once; `attrs` as a ScoreSet's. `write_scores` writes each
    video as it comes, so memory holds one video's scores."""

    model: str
    videos: Iterable[Scored]
    attrs: dict = field(default_factory=dict)

    def collect(self) -> ScoreSet:
        """All the videos in memory, as a ScoreSet (for tests and small sets)."""
        result = ScoreSet(self.model, attrs=dict(self.attrs))
        for split, name, video in self.videos:
            if isinstance(video.score_maps, MapBlocks):
                video = replace(video, score_maps=video.score_maps.array())
            result._videos(split)[name] = video
        return result


class ScoreWriter:
    """A score file written one video at a time; it appears at `path` only once the block
    succeeded (`vad.cache.write_h5`). `counts` tells how many videos of each split it holds.

        with ScoreWriter(path, model, attrs) as writer:
            writer.add("test", name, scores)
    """

    def __init__(self, path: str | Path, model: str, attrs: dict | None = None):
        self.path, self.model, self.attrs = Path(path), model, dict(attrs or {})
        self.counts = dict.fromkeys(SPLITS, 0)
        self._stack = ExitStack()
        self._file: h5py.File | None = None

    def __enter__(self) -> ScoreWriter:
        self._file = self._stack.enter_context(
            write_h5(self.path, {"model": self.model, **self.attrs})
        )
        return self

    def __exit__(self, *exc_info) -> bool | None:
        self._file = None
        return self._stack.__exit__(*exc_info)

    def add(self, split: str, name: str, video: VideoScores) -> None:
        if self._file is None:
            raise RuntimeError("ScoreWriter.add outside its `with` block")
        if split not in SPLITS:
            raise ValueError(f"{self.model}: video {name!r} of unknown split {split!r}")
        group = self._file.create_group(video_key(split, name))
        checked_dataset(group, "frame_scores", video.frame_scores.astype(np.float32, copy=False))
        if isinstance(video.score_maps, MapBlocks):
            _write_blocks(group, video.score_maps)
        elif video.score_maps is not None:
            maps = video.score_maps.astype(np.float32, copy=False)  # no second copy of a video
            checked_dataset(group, "score_maps", maps, compression="lzf")
        if video.frame_indices is not None:
            checked_dataset(group, "frame_indices", video.frame_indices)
        for key, values in video.extras.items():
            if key in STANDARD:
                raise ValueError(f"score extra {key!r} of {self.model} clashes")
            checked_dataset(group, key, _storable(np.asarray(values)))
        self.counts[split] += 1


def _write_blocks(group: h5py.Group, maps: MapBlocks) -> None:
    """`score_maps` written block by block, laid out as a whole array would be (h5py's chunk
    shape for that shape), so the file holds the same either way."""
    dataset = checked_dataset(
        group, "score_maps", shape=tuple(maps.shape), dtype=np.float32, compression="lzf"
    )
    start = 0
    for block in maps.blocks():
        rows = np.asarray(block, np.float32)
        if rows.shape[1:] != tuple(maps.shape[1:]) or start + len(rows) > maps.shape[0]:
            raise ValueError(
                f"{group.name}: a map block of shape {rows.shape} at frame {start} does not fit "
                f"maps of shape {tuple(maps.shape)}"
            )
        dataset[start : start + len(rows)] = rows
        start += len(rows)
    if start != maps.shape[0]:
        raise ValueError(f"{group.name}: map blocks covered {start} of {maps.shape[0]} frames")


def write_scores(path: str | Path, scores: ScoreSet | ScoreStream) -> dict[str, int]:
    """Write a score file, video by video as a stream yields them; returns the number of
    videos of each split written."""
    stream = scores.stream() if isinstance(scores, ScoreSet) else scores
    with ScoreWriter(path, stream.model, stream.attrs) as writer:
        for split, name, video in stream.videos:
            writer.add(split, name, video)
    return writer.counts


class ScoreFile:
    """A score file open for reading one video at a time (`open_scores`)."""

    def __init__(self, f: h5py.File, model: str | None = None):
        self._file = f
        attrs = json.loads(f.attrs.get("settings", "{}"))
        stored_model = attrs.pop("model", None)
        self.model: str = model or stored_model or Path(f.filename).stem
        self.attrs: dict = attrs
        self._names = {split: [] for split in SPLITS}
        for split, name, _ in iter_videos(f):
            self._names[split].append(name)

    def names(self, split: str) -> list[str]:
        return list(self._names[split])

    def video(self, split: str, name: str) -> VideoScores:
        group = self._group(split, name)
        return VideoScores(
            frame_scores=read_dataset(group["frame_scores"]),
            score_maps=read_dataset(group["score_maps"]) if "score_maps" in group else None,
            frame_indices=(
                read_dataset(group["frame_indices"]) if "frame_indices" in group else None
            ),
            extras={key: _extra(group[key]) for key in group if key not in STANDARD},
        )

    def array(self, split: str, name: str, what: str) -> np.ndarray | None:
        group = self._group(split, name)
        return read_dataset(group[what]) if what in group else None

    def map_shape(self, split: str, name: str) -> tuple[int, ...] | None:
        group = self._group(split, name)
        return tuple(group["score_maps"].shape[1:]) if "score_maps" in group else None

    def videos(self) -> Iterator[Scored]:
        """Every video, in the file's order, one at a time."""
        for split in SPLITS:
            for name in self._names[split]:
                yield split, name, self.video(split, name)

    def _group(self, split: str, name: str) -> h5py.Group:
        key = video_key(split, name)
        if key not in self._file:
            raise KeyError(f"{self._file.filename}: no video '{key}'")
        return self._file[key]


def staged_video(group: h5py.Group) -> VideoScores:
    """One video of an open score file with its maps as `MapBlocks` (read a block at a time
    while the file is open): for copying a video into another score file."""
    return VideoScores(
        frame_scores=read_dataset(group["frame_scores"]),
        score_maps=dataset_blocks(group["score_maps"]) if "score_maps" in group else None,
        frame_indices=read_dataset(group["frame_indices"]) if "frame_indices" in group else None,
        extras={key: _extra(group[key]) for key in group if key not in STANDARD},
    )


@contextmanager
def open_scores(path: str | Path, model: str | None = None) -> Iterator[ScoreFile]:
    """The score file at `path`, read one video at a time while the block runs."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: score file not found (run the model's score stage)")
    with open_cache(path) as f:
        yield ScoreFile(f, model)


def read_scores(path: str | Path, model: str | None = None) -> ScoreSet:
    """A whole score file in memory."""
    with open_scores(path, model) as scores:
        return ScoreStream(scores.model, scores.videos(), scores.attrs).collect()


def train_value_pieces(scores: ScoreSource, maps: bool = False) -> Pieces:
    """`ScoreSet.train_values` of any source, as pieces (one per training video) read anew
    each time the returned callable is called: float64 frame scores (or map cells) without
    the static cells, or all of them when every one is static."""
    names = scores.names("train")
    if not names:
        raise ValueError(f"scores of {scores.model!r} hold no training videos")
    what = "score_maps" if maps else "frame_scores"

    def every_value() -> Iterator[np.ndarray]:
        for name in names:
            values = scores.array("train", name, what)
            if values is None:
                raise ValueError(
                    f"scores of {scores.model!r}: training video {name!r} has no {what}"
                )
            yield values.ravel().astype(np.float64)

    static = scores.attrs.get("static_value")
    if static is None:
        return every_value

    def scored() -> Iterator[np.ndarray]:
        for values in every_value():
            yield values[values.astype(np.float32) != np.float32(static)]  # stored as float32

    return scored if any(piece.size for piece in scored()) else every_value


def train_statistics(scores: ScoreSource, maps: bool = False) -> tuple[float, float]:
    """Mean and standard deviation (at least STD_FLOOR) of the scored training frame scores
    (or map cells), as numpy computes them of `train_values` (bit for bit), reading one
    training video at a time."""
    mean, std = flat_mean_std(train_value_pieces(scores, maps))
    return mean, max(std, STD_FLOOR)


def _storable(values: np.ndarray) -> np.ndarray:
    """Text as fixed-length UTF-8 bytes: HDF5 cannot checksum variable-length strings."""
    if values.dtype.kind not in "UO":
        return values
    encoded = [str(value).encode() for value in values.reshape(-1)]
    width = max([1, *map(len, encoded)])
    return np.array(encoded, dtype=f"S{width}").reshape(values.shape)


def _extra(dataset: h5py.Dataset) -> np.ndarray:
    """A per-frame extra as written; text (stored as UTF-8 bytes) back as str objects."""
    values = read_dataset(dataset)
    if values.dtype.kind != "S":
        return values
    decoded = [value.decode() for value in values.reshape(-1)]
    return np.array(decoded, dtype=object).reshape(values.shape)


def read_score_attrs(path: str | Path) -> dict:
    """The attrs of a score file ({"model": ..., **attrs}) without reading its scores."""
    with open_cache(path) as f:
        return json.loads(f.attrs.get("settings", "{}"))
