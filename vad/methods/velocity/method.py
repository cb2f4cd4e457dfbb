"""Object-velocity density behind the method interface (reads the `flow` and `objects` caches).

prepare: every object's features (features.py) from the flows of its frame's window (frame t
uses the flow from t to t+1, the last frame the flow into it; `window` frames centred on t,
averaged), objects cut by the frame's edge left out with `border_objects: skip`; train: the
kNN model of each attribute group with its leave-one-video-out calibration (density.py), and
the training frames' held-out scores;
score: per test frame, the maximum over its objects (frames without objects: FLOOR), score
maps holding each object's score over its box (FLOOR elsewhere), and for the frame's top
object the attribute that makes it anomalous (`top_attribute`, `explanation`).

Everything per frame is a function of that frame's boxes and its window's flows
(`kept_objects`, features.FlowWindow and box_features, `score_objects`), so that live scoring
can call them frame by frame.

Memory: prepare holds the flow maps of one window at a time; score yields one video's scores at a
time. Training holds every training object's features: they are the kNN model itself.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from vad.cache import checked_dataset, iter_videos, open_cache, read_dataset, video_key, write_h5
from vad.config import ConfigError, Section, check_all
from vad.frame_cache import video_keys
from vad.methods.base import Inputs, Method, Settings
from vad.methods.object_maps import map_shape, object_map
from vad.methods.velocity.density import (
    DENSITIES,
    AttributeDensity,
    Calibration,
    Scorer,
    fit_density,
)
from vad.methods.velocity.explain import TrainingStats, explain_group
from vad.methods.velocity.features import (
    ATTRIBUTES,
    FlowWindow,
    box_features,
    group_features,
    group_members,
    window_flows,
)
from vad.progress import progress as progress_bar
from vad.scores import MAP_BLOCK_FRAMES, MapBlocks, Scored, ScoreStream, VideoScores

MODEL_FILE = "model.h5"
FLOOR = 0.0  # a frame without objects: each attribute's calibrated training minimum (0), summed


@dataclass
class FrameResult:
    score: float
    object_scores: np.ndarray  # (N,)
    top: int  # index of the top object, -1 without objects
    top_attribute: int  # index into the model's attributes, -1 without objects
    explanation: str


def score_frame(
    model: AttributeDensity, stats: dict[str, TrainingStats], features: np.ndarray, bins: int
) -> FrameResult:
    """Score one frame's objects (their feature rows) and explain its top object."""
    if len(features) == 0:
        return FrameResult(FLOOR, np.zeros(0), -1, -1, "")
    by_group = group_features(features, bins, list(model.attributes))
    scores = model.score(by_group)
    top = int(np.argmax(scores.score))
    attribute = int(np.argmax(scores.calibrated[top]))
    name = model.attributes[attribute]
    text = explain_group(name, by_group[name][top], stats[name], bins)
    return FrameResult(float(scores.score[top]), scores.score, top, attribute, text)


def touches_border(boxes: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(N,) bool: the box reaches the frame's edge (the object is cut by it: its size is wrong
    and its flow, at the image border, least reliable)."""
    return (
        (boxes[:, 0] <= 0)
        | (boxes[:, 1] <= 0)
        | (boxes[:, 2] >= size[0])
        | (boxes[:, 3] >= size[1])
    )


def kept_objects(boxes: np.ndarray, size: tuple[int, int], border_objects: str) -> np.ndarray:
    """(N,) bool: the boxes that are described (`border_objects: skip` drops those reaching
    the edge of a frame of `size` (width, height))."""
    if border_objects == "skip":
        return ~touches_border(boxes, size)
    return np.ones(len(boxes), bool)


def score_objects(
    model: AttributeDensity,
    stats: dict[str, TrainingStats],
    bins: int,
    features: np.ndarray,
    boxes: np.ndarray,
    size: tuple[int, int],
    cell: int,
) -> tuple[FrameResult, np.ndarray]:
    """One frame's result (score_frame) and its score map (`object_map`)."""
    result = score_frame(model, stats, features, bins)
    return result, object_map(boxes, result.object_scores, size, cell, FLOOR)


KEYS = (
    "bins",
    "window",
    "attributes",
    "density",
    "k",
    "gmm_components",
    "calibration_percentile",
    "calibration_folds",
    "border_objects",
    "map_cell",
)


class Velocity(Method):
    name = "velocity"
    package = "vad.methods.velocity"
    inputs = ("flow", "objects")
    streaming = "vad.serve.scorers.velocity:velocity_scorer"
    prepare_reads_test = True  # every object's features, test videos included
    budgets = {"ped2": {}}  # the defaults: a few seconds on 2 cores

    def settings(self, params: dict) -> dict[str, Settings]:
        section = Section(params, "velocity")
        return check_all(lambda: section.check_keys(KEYS), lambda: self._settings(section))[1]

    def _settings(self, section: Section) -> dict[str, Settings]:
        attributes = section.values.get("attributes")
        members = [
            m for group in attributes if isinstance(group, str) for m in group_members(group)
        ] if isinstance(attributes, list) else []  # fmt: skip
        if (
            not isinstance(attributes, list)
            or not attributes
            or not all(isinstance(group, str) for group in attributes)
            or any(m not in ATTRIBUTES for m in members)
            or len(set(members)) != len(members)
        ):
            raise ConfigError(
                f"params.yaml: 'velocity.attributes' must be a non-empty list of groups, each "
                f"one of {ATTRIBUTES} or several joined by '+' (e.g. speed+size), no attribute "
                f"twice; got {attributes!r}"
            )
        window = section.int("window", minimum=1)
        if window % 2 == 0:
            raise ConfigError(
                f"params.yaml: 'velocity.window' must be odd (frames centred on the scored "
                f"one), got {window}"
            )
        percentile = section.float("calibration_percentile", minimum=50.0)
        if percentile > 100:
            raise ConfigError(
                f"params.yaml: 'velocity.calibration_percentile' must be <= 100, got {percentile}"
            )
        return {
            "prepare": {
                "bins": section.int("bins", minimum=1),
                "window": window,
                "border_objects": section.str("border_objects", ["keep", "skip"]),
            },
            "train": {
                "attributes": list(attributes),
                "density": section.str("density", list(DENSITIES)),
                "k": section.int("k", minimum=1),
                "gmm_components": section.int("gmm_components", minimum=1),
                "calibration_percentile": percentile,
                "calibration_folds": section.int("calibration_folds", minimum=0),
            },
            "score": {"map_cell": section.int("map_cell", minimum=1)},
        }

    def prepare(self, inputs: Inputs, settings: Settings, out: Path) -> None:
        bins = settings["bins"]
        with (
            open_cache(inputs["objects"]) as objects,
            open_cache(inputs["flow"]) as flows,
            write_h5(out, settings) as f,
        ):
            videos = list(iter_videos(objects))
            for split, name, group in progress_bar(videos, desc="velocity features", unit="video"):
                key = f"{split}/{name}"
                if key not in flows or "flow" not in flows[key]:
                    raise ValueError(f"{inputs['flow']}: no flow for video '{key}' of objects.h5")
                flow = flows[key]["flow"]  # read one frame pair at a time
                frame, box = read_dataset(group["frame"]), read_dataset(group["box"])
                size = (int(group.attrs["width"]), int(group.attrs["height"]))
                kept = kept_objects(box, size, settings["border_objects"])
                frame, box = frame[kept], box[kept]
                features = np.zeros((len(frame), bins + 6), np.float32)
                window = FlowWindow(bins)
                for t in np.unique(frame):
                    rows = frame == t
                    indices = window_flows(int(t), len(flow) + 1, settings["window"])
                    window.forget_before(indices[0])
                    for index in indices:
                        if index not in window:
                            window.put(index, read_dataset(flow, index))
                    features[rows] = box_features(window.window(indices), box[rows], size, bins)
                out_group = f.create_group(key)
                checked_dataset(out_group, "features", features)
                checked_dataset(out_group, "frame", frame)
                checked_dataset(out_group, "box", box)
                out_group.attrs.update(
                    num_frames=int(group.attrs["num_frames"]), width=size[0], height=size[1]
                )

    def train(
        self, prepared: Path, settings: Settings, model_dir: Path, workdir: Path
    ) -> list[dict]:
        with open_cache(prepared) as f:
            bins = json.loads(f.attrs["settings"])["bins"]
            train = [(name, read_dataset(g["features"]), read_dataset(g["frame"]),
                      int(g.attrs["num_frames"]))
                     for split, name, g in iter_videos(f) if split == "train"]  # fmt: skip
        if not train:
            raise ValueError(f"{prepared}: no training videos")
        features = np.concatenate([v[1] for v in train])
        videos = np.concatenate([np.full(len(v[1]), i) for i, v in enumerate(train)])
        attributes = settings["attributes"]
        model, held = fit_density(
            group_features(features, bins, attributes),
            videos,
            attributes,
            scorer_of(settings),
            settings["calibration_percentile"],
            settings["calibration_folds"],
        )
        with write_h5(model_dir / MODEL_FILE, {"model": "velocity", "bins": bins, **settings}) as f:
            for name in attributes:
                checked_dataset(f, f"train/{name}", model.train[name])
                checked_dataset(f, f"scale/{name}", model.scale[name])
            checked_dataset(f, "calibration_low", model.calibration.low)
            checked_dataset(f, "calibration_high", model.calibration.high)
            for i, (name, _, frame, num_frames) in enumerate(train):
                scores = np.full(num_frames, FLOOR, np.float64)
                np.maximum.at(scores, frame, held[videos == i])
                checked_dataset(f, f"train_frame_scores/{name}", scores.astype(np.float32))
        return []

    def score(
        self,
        inputs: Inputs,
        prepared: Path,
        model_dir: Path,
        settings: Settings,
        videos: Collection[str] | None = None,
    ) -> ScoreStream:
        model, stats, bins, train_scores = load_model(model_dir / MODEL_FILE)
        cell = settings["map_cell"]
        attrs = {"attributes": list(model.attributes), "bins": bins, "map_cell": cell}

        def chosen(split: str, name: str) -> bool:
            return videos is None or video_key(split, name) in videos

        def scored() -> Iterator[Scored]:
            for name, scores in train_scores.items():
                if chosen("train", name):
                    yield "train", name, VideoScores(frame_scores=scores)
            with open_cache(prepared) as f:
                tests = [(n, g) for s, n, g in iter_videos(f) if s == "test" and chosen(s, n)]
                for name, group in progress_bar(tests, desc="velocity scores", unit="video"):
                    yield "test", name, score_video(model, stats, bins, group, cell)

        return ScoreStream(self.name, scored(), attrs)

    def score_keys(self, inputs: Inputs, prepared: Path, settings: Settings) -> list[str]:
        """Training videos (their held-out scores, stored with the model) then test videos."""
        return video_keys(prepared)  # train first, as `score` yields them


def score_video(
    model: AttributeDensity,
    stats: dict[str, TrainingStats],
    bins: int,
    group: h5py.Group,
    cell: int,
) -> VideoScores:
    """Frame scores, score maps (grid of `cell` px) and explanations of one prepared video.
    The per-frame results are computed here (a few numbers per object); the maps are painted
    from them a block of frames at a time as they are written (`MapBlocks`)."""
    features, frame, box = (read_dataset(group[k]) for k in ("features", "frame", "box"))
    count, width, height = (int(group.attrs[k]) for k in ("num_frames", "width", "height"))
    frame_scores = np.full(count, FLOOR, np.float32)
    object_scores = np.zeros(len(frame), np.float64)
    top_attribute = np.full(count, -1, np.int8)
    top_box = np.zeros((count, 4), np.float32)
    explanation = np.full(count, "", dtype=object)
    for t in range(count):
        chosen = np.flatnonzero(frame == t)
        result = score_frame(model, stats, features[chosen], bins)
        frame_scores[t] = result.score
        object_scores[chosen] = result.object_scores
        if result.top >= 0:
            top_attribute[t] = result.top_attribute
            top_box[t] = box[chosen[result.top]]
            explanation[t] = result.explanation

    def map_blocks() -> Iterator[np.ndarray]:
        for start in range(0, count, MAP_BLOCK_FRAMES):
            block = range(start, min(start + MAP_BLOCK_FRAMES, count))
            chosen = (np.flatnonzero(frame == t) for t in block)
            yield np.stack(
                [object_map(box[c], object_scores[c], (width, height), cell, FLOOR) for c in chosen]
            )

    return VideoScores(
        frame_scores=frame_scores,
        score_maps=MapBlocks((count, *map_shape((width, height), cell)), map_blocks),
        extras={"top_attribute": top_attribute, "top_box": top_box, "explanation": explanation},
    )


def scorer_of(settings: Settings) -> Scorer:
    return Scorer(settings["density"], settings["k"], settings["gmm_components"])


def load_model(
    path: Path,
) -> tuple[AttributeDensity, dict[str, TrainingStats], int, dict[str, np.ndarray]]:
    """The fitted model, each attribute's training statistics (explanations), the bins, and the
    training frames' held-out scores by video."""
    with open_cache(path) as f:
        settings = json.loads(f.attrs["settings"])
        attributes = settings["attributes"]
        train = {name: read_dataset(f[f"train/{name}"]) for name in attributes}
        scale = {name: read_dataset(f[f"scale/{name}"]) for name in attributes}
        calibration = Calibration(
            low=read_dataset(f["calibration_low"]), high=read_dataset(f["calibration_high"])
        )
        train_scores = {
            n: read_dataset(f["train_frame_scores"][n]) for n in f["train_frame_scores"]
        }
    model = AttributeDensity(attributes, train, scale, scorer_of(settings), calibration)
    stats = {name: TrainingStats.of(values) for name, values in train.items()}
    return model, stats, settings["bins"], train_scores


VELOCITY = Velocity()
