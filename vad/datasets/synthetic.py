"""The embedded default dataset: a seeded procedural pedestrian walkway in the spirit of UCSD Ped2.

A fixed camera looks down at an angle on a paved walkway band, with a lawn, hedges and a
building behind it and a strip of lawn in front. Normal pedestrians walk along the walkway in
both directions, enter and leave; test clips add labelled anomalies of four kinds:

- ``cyclist``: a person on a bicycle, 3-6 px/frame along the walkway;
- ``vehicle``: a utility cart, slow or walking speed, along the walkway;
- ``odd_shape``: a tumbling object of irregular outline, walking speed, on the walkway;
- ``trespasser``: a person walking at normal speed on the lawn (forbidden ground).

Every clip is a list of actors with straight-line trajectories planned when the dataset is
opened; frame ``t`` is rendered from them on demand, so frames are random access and
bit-identical for the same options. The anomaly mask of a frame is exactly the set of pixels
where an anomalous actor is the visible (front-most) object, drawn with the same primitives as
the frame itself; the frame label is "mask non-empty". Nothing is written to disk.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, fields, replace
from functools import partial
from pathlib import Path

import cv2
import numpy as np

from vad.datasets.base import Dataset, GroundTruth, Video

ANOMALY_KINDS = ("cyclist", "vehicle", "odd_shape", "trespasser")
NORMAL_KIND = "pedestrian"

_SPLIT_CODES = {"train": 0, "test": 1}
_SHIFT = 4  # OpenCV fixed-point bits: primitives are placed with 1/16 px precision
_ONE = 1 << _SHIFT


# ---------------------------------------------------------------------------------------------
# Options
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SyntheticOptions:
    """Everything that defines the generated dataset; the same options give the same pixels."""

    seed: int = 0
    width: int = 240
    height: int = 160
    train_videos: int = 6
    test_videos: int = 6
    frames_per_video: int = 72
    min_walker_lanes: int = 2  # per clip, a number of "lanes" in [min, max] is drawn; each lane
    max_walker_lanes: int = 5  # keeps one walker (or a pair) on the walkway, one after another
    noise_sigma: float = 2.0  # per-frame sensor noise, grey levels

    @classmethod
    def from_kwargs(cls, options: dict) -> SyntheticOptions:
        """Build options from keyword arguments; unknown names or bad values raise ValueError."""
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise ValueError(
                f"unknown synthetic dataset option(s): {', '.join(unknown)} "
                f"(known: {', '.join(known)})"
            )
        built = cls(**options)
        built.validate()
        return built

    def validate(self) -> None:
        minimums = {
            "width": 64,
            "height": 48,
            "train_videos": 0,
            "test_videos": 0,
            "frames_per_video": 2,
            "min_walker_lanes": 0,
            "max_walker_lanes": 0,
        }
        for name, minimum in minimums.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ValueError(f"synthetic option {name} must be an integer >= {minimum}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError("synthetic option seed must be a non-negative integer")
        if self.min_walker_lanes > self.max_walker_lanes:
            raise ValueError("synthetic option min_walker_lanes must be <= max_walker_lanes")
        if not isinstance(self.noise_sigma, (int, float)) or not self.noise_sigma >= 0:
            raise ValueError("synthetic option noise_sigma must be a number >= 0")


# ---------------------------------------------------------------------------------------------
# Scene geometry
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Layout:
    """Where things are in the image (pixel rows) and how big a person is at a given row."""

    width: int
    height: int

    @property
    def building_bottom(self) -> float:
        return 0.17 * self.height

    @property
    def walkway_top(self) -> float:
        return 0.50 * self.height

    @property
    def walkway_bottom(self) -> float:
        return 0.91 * self.height

    @property
    def walkway_rows(self) -> tuple[float, float]:
        """Range of feet rows for objects on the walkway."""
        return self.walkway_top + 0.06 * self.height, self.walkway_bottom - 0.02 * self.height

    @property
    def lawn_rows(self) -> tuple[float, float]:
        """Range of feet rows for people on the lawn between the building and the walkway."""
        return self.building_bottom + 0.12 * self.height, self.walkway_top - 0.04 * self.height

    @property
    def speed_unit(self) -> float:
        """One "nominal" px/frame at 240 px width, in pixels of this layout."""
        return self.width / 240.0

    def person_height(self, feet_row: float) -> float:
        """Height in pixels of an average person standing at `feet_row` (perspective)."""
        return 0.13 * self.height * (0.45 + 0.65 * feet_row / self.height)


# Half the horizontal extent of each kind, in person heights: how far off-screen it starts.
_REACH = {NORMAL_KIND: 0.3, "trespasser": 0.3, "cyclist": 0.6, "vehicle": 1.35, "odd_shape": 0.6}


@dataclass(frozen=True, eq=False)
class Actor:
    """One moving object with a straight-line trajectory of its feet (bottom centre)."""

    kind: str
    t0: float  # reference frame
    x0: float  # feet position at t0
    y0: float
    vx: float  # px/frame
    vy: float
    rows: tuple[float, float]  # feet rows it stays within
    size: float  # multiplier on the person height at its row
    tones: tuple[int, ...]  # grey levels of its parts
    phase0: float = 0.0  # gait or pedal phase, or initial angle, at t0
    spin: float = 0.0  # rad/frame, for odd shapes
    outline: np.ndarray | None = field(default=None, repr=False)  # odd_shape polygon

    @property
    def anomalous(self) -> bool:
        return self.kind != NORMAL_KIND

    def feet(self, t: float) -> tuple[float, float]:
        dt = t - self.t0
        row = min(max(self.y0 + self.vy * dt, self.rows[0]), self.rows[1])
        return self.x0 + self.vx * dt, row


@dataclass(frozen=True)
class VideoPlan:
    """A clip as planned at open time: its actors, from which every frame is rendered."""

    name: str
    split: str
    index: int
    num_frames: int
    actors: tuple[Actor, ...]

    @property
    def anomaly_kinds(self) -> set[str]:
        return {a.kind for a in self.actors if a.anomalous}


# ---------------------------------------------------------------------------------------------
# Planning trajectories
# ---------------------------------------------------------------------------------------------


def _margin(layout: Layout, kind: str, row: float, size: float) -> float:
    return _REACH[kind] * layout.person_height(row) * size + 3.0


def _person_tones(rng: np.random.Generator) -> tuple[int, int, int]:
    """(hair, shirt, trousers) grey levels: mostly dark clothes, some mid-grey or light."""
    shirt_range = [(25, 70), (90, 140), (185, 230)][rng.choice(3, p=[0.45, 0.3, 0.25])]
    return int(rng.integers(30, 80)), int(rng.integers(*shirt_range)), int(rng.integers(25, 95))


def _walker(
    layout: Layout,
    rng: np.random.Generator,
    kind: str,
    rows: tuple[float, float],
    speed: float,
    direction: int,
    row: float,
) -> Actor:
    """A person walking horizontally at `row`; its timing (t0, x0) is set by the caller."""
    return Actor(
        kind=kind,
        t0=0.0,
        x0=0.0,
        y0=row,
        vx=direction * speed,
        vy=float(rng.uniform(-0.05, 0.05)) * layout.speed_unit,
        rows=rows,
        size=float(rng.uniform(0.88, 1.12)),
        tones=_person_tones(rng),
        phase0=float(rng.uniform(0, 2 * math.pi)),
    )


def _entering(actor: Actor, layout: Layout, enters_at: float) -> Actor:
    """Fix an actor's timing so that it starts to come into view at frame `enters_at`."""
    margin = _margin(layout, actor.kind, actor.y0, actor.size)
    edge = -margin if actor.vx > 0 else layout.width + margin
    return replace(actor, t0=float(enters_at), x0=edge)


def _leaving(actor: Actor, layout: Layout, leaves_at: float) -> Actor:
    """Fix an actor's timing so that it is just fully off-screen at frame `leaves_at`."""
    margin = _margin(layout, actor.kind, actor.y0, actor.size)
    edge = layout.width + margin if actor.vx > 0 else -margin
    return replace(actor, t0=float(leaves_at), x0=edge)


def _exit_time(actor: Actor, layout: Layout) -> float:
    margin = _margin(layout, actor.kind, actor.y0, actor.size)
    edge = layout.width + margin if actor.vx > 0 else -margin
    return actor.t0 + (edge - actor.x0) / actor.vx


def _plan_walkers(
    layout: Layout, rng: np.random.Generator, num_frames: int, lanes: int
) -> list[Actor]:
    """Normal pedestrians: each lane holds one walker or a pair at a time, then the next one."""
    actors: list[Actor] = []
    unit = layout.speed_unit
    for _ in range(lanes):
        t = 0.0
        first = True
        while t < num_frames:
            direction = int(rng.choice([-1, 1]))
            speed = float(rng.uniform(1.0, 2.0)) * unit
            row = float(rng.uniform(*layout.walkway_rows))
            leader = _walker(layout, rng, NORMAL_KIND, layout.walkway_rows, speed, direction, row)
            if first:  # already on the walkway when the clip starts
                leader = replace(leader, t0=0.0, x0=float(rng.uniform(0, layout.width)))
            else:
                leader = _entering(leader, layout, enters_at=t)
            actors.append(leader)
            if rng.random() < 0.3:  # a companion walking beside or just behind
                h = layout.person_height(row)
                companion = _walker(
                    layout, rng, NORMAL_KIND, layout.walkway_rows, speed, direction, row
                )
                actors.append(
                    replace(
                        companion,
                        t0=leader.t0,
                        x0=leader.x0 - direction * float(rng.uniform(0.3, 0.9)) * h,
                        y0=row + float(rng.uniform(-0.35, 0.35)) * h,
                        vy=leader.vy,
                    )
                )
            t = _exit_time(leader, layout) + float(rng.uniform(0, 12))
            first = False
    return actors


def _anomaly(layout: Layout, rng: np.random.Generator, kind: str) -> Actor:
    """An anomalous actor of `kind`, not yet placed in time."""
    unit = layout.speed_unit
    direction = int(rng.choice([-1, 1]))
    low, high = layout.walkway_rows
    if kind == "trespasser":
        row = float(rng.uniform(*layout.lawn_rows))
        speed = float(rng.uniform(1.0, 2.0)) * unit
        return _walker(layout, rng, kind, layout.lawn_rows, speed, direction, row)
    if kind == "cyclist":
        row = float(rng.uniform(low, high))
        rider = _walker(layout, rng, kind, layout.walkway_rows, 0.0, direction, row)
        bike = int(rng.integers(20, 60))
        return replace(
            rider, vx=direction * float(rng.uniform(3.0, 6.0)) * unit, tones=rider.tones + (bike,)
        )
    if kind == "vehicle":
        row = float(rng.uniform(low + 0.08 * layout.height, high))
        body = int(rng.integers(195, 235)) if rng.random() < 0.7 else int(rng.integers(40, 80))
        return Actor(
            kind=kind,
            t0=0.0,
            x0=0.0,
            y0=row,
            vx=direction * float(rng.uniform(0.7, 2.0)) * unit,
            vy=0.0,
            rows=(row, row),
            size=float(rng.uniform(0.95, 1.1)),
            tones=(body, int(rng.integers(50, 90)), 20, int(np.clip(body - 35, 0, 255))),
        )
    if kind == "odd_shape":
        row = float(rng.uniform(low, high))
        corners = int(rng.integers(6, 11))
        angles = np.sort(rng.uniform(0, 2 * math.pi, corners))
        radii = rng.uniform(0.35, 1.0, corners)
        stretch = float(rng.uniform(1.0, 2.2))
        outline = np.stack([stretch * radii * np.cos(angles), radii * np.sin(angles)], axis=1)
        outline /= np.abs(outline).max()
        tone = int(rng.integers(15, 50)) if rng.random() < 0.6 else int(rng.integers(210, 245))
        return Actor(
            kind=kind,
            t0=0.0,
            x0=0.0,
            y0=row,
            vx=direction * float(rng.uniform(0.8, 2.2)) * unit,
            vy=float(rng.uniform(-0.05, 0.05)) * unit,
            rows=layout.walkway_rows,
            size=float(rng.uniform(0.8, 1.2)),
            tones=(tone, int(np.clip(255 - tone, 60, 190))),
            phase0=float(rng.uniform(0, 2 * math.pi)),
            spin=float(rng.uniform(-0.12, 0.12)),
            outline=outline,
        )
    raise ValueError(f"unknown anomaly kind {kind!r}")


def _plan_anomalies(
    layout: Layout, rng: np.random.Generator, num_frames: int, index: int
) -> list[Actor]:
    """One or two anomalies per test clip, with normal stretches before, between or after.

    Clip `index` always contains kind ANOMALY_KINDS[index % 4], so any four consecutive test
    clips contain every kind. Every third clip starts inside an anomaly that then leaves; the
    others start normal and an anomaly enters in the first half.
    """
    kinds = [ANOMALY_KINDS[index % len(ANOMALY_KINDS)]]
    if rng.random() < 0.5:
        others = [k for k in ANOMALY_KINDS if k != kinds[0]]
        kinds.append(others[int(rng.integers(len(others)))])
    first = _anomaly(layout, rng, kinds[0])
    if index % 3 == 1:
        leaves_at = float(rng.uniform(0.3, 0.55)) * num_frames
        actors = [_leaving(first, layout, leaves_at)]
        next_start = leaves_at + float(rng.uniform(0.15, 0.3)) * num_frames
    else:
        enters_at = float(rng.uniform(0.15, 0.5)) * num_frames
        actors = [_entering(first, layout, enters_at)]
        next_start = enters_at + float(rng.uniform(0.1, 0.3)) * num_frames
    if len(kinds) == 2:
        second = _anomaly(layout, rng, kinds[1])
        actors.append(_entering(second, layout, min(next_start, 0.85 * num_frames)))
    return actors


def plan_video(options: SyntheticOptions, layout: Layout, split: str, index: int) -> VideoPlan:
    """Plan every actor of one clip from (seed, split, index)."""
    rng = np.random.default_rng([options.seed, _SPLIT_CODES[split], index, 1])
    lanes = int(rng.integers(options.min_walker_lanes, options.max_walker_lanes + 1))
    actors = _plan_walkers(layout, rng, options.frames_per_video, lanes)
    if split == "test":
        actors += _plan_anomalies(layout, rng, options.frames_per_video, index)
    return VideoPlan(
        name=f"{split}_{index:02d}",
        split=split,
        index=index,
        num_frames=options.frames_per_video,
        actors=tuple(actors),
    )


# ---------------------------------------------------------------------------------------------
# Drawing
# ---------------------------------------------------------------------------------------------


def _fixed(x: float, y: float) -> tuple[int, int]:
    return round(x * _ONE), round(y * _ONE)


class Painter:
    """Draws each primitive into the frame (grey level) and the mask (one value per actor).

    Painting the mask with 1 for anomalous actors and 0 for normal ones, back to front, leaves
    exactly the pixels where an anomalous actor is visible.
    """

    def __init__(self, image: np.ndarray | None, mask: np.ndarray, mask_value: int) -> None:
        self.image = image
        self.mask = mask
        self.mask_value = mask_value

    def _both(self, draw: Callable[[np.ndarray, int], object], tone: int) -> None:
        if self.image is not None:
            draw(self.image, int(tone))
        draw(self.mask, self.mask_value)

    def disk(self, x: float, y: float, radius: float, tone: int) -> None:
        centre, r = _fixed(x, y), max(_ONE, round(radius * _ONE))
        self._both(lambda img, c: cv2.circle(img, centre, r, c, -1, cv2.LINE_8, _SHIFT), tone)

    def ring(self, x: float, y: float, radius: float, tone: int, thickness: int = 1) -> None:
        centre, r = _fixed(x, y), max(_ONE, round(radius * _ONE))
        self._both(
            lambda img, c: cv2.circle(img, centre, r, c, thickness, cv2.LINE_8, _SHIFT), tone
        )

    def ellipse(self, x: float, y: float, half_w: float, half_h: float, tone: int) -> None:
        centre = _fixed(x, y)
        axes = (max(_ONE, round(half_w * _ONE)), max(_ONE, round(half_h * _ONE)))
        self._both(
            lambda img, c: cv2.ellipse(img, centre, axes, 0, 0, 360, c, -1, cv2.LINE_8, _SHIFT),
            tone,
        )

    def stroke(self, a: tuple[float, float], b: tuple[float, float], tone: int, width=1) -> None:
        p, q, thick = _fixed(*a), _fixed(*b), max(1, round(width))
        self._both(lambda img, c: cv2.line(img, p, q, c, thick, cv2.LINE_8, _SHIFT), tone)

    def polygon(self, points: np.ndarray, tone: int) -> None:
        pts = [np.round(np.asarray(points) * _ONE).astype(np.int32)]
        self._both(
            lambda img, c: cv2.fillPoly(img, pts, c, lineType=cv2.LINE_8, shift=_SHIFT), tone
        )

    def box(self, x1: float, y1: float, x2: float, y2: float, tone: int) -> None:
        self.polygon(np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2]]), tone)


def _gait_phase(actor: Actor, t: float, height: float) -> float:
    """Leg/arm cycle: one full cycle per ~1.4 body heights walked."""
    return actor.phase0 + 2 * math.pi * abs(actor.vx) * (t - actor.t0) / (1.4 * height)


def _draw_person(p: Painter, actor: Actor, x: float, y: float, h: float, t: float) -> None:
    hair, shirt, trousers = actor.tones[:3]
    swing = math.sin(_gait_phase(actor, t, h))
    hip = (x, y - 0.47 * h)
    shoulder = (x, y - 0.78 * h)
    leg = 0.1 * h
    p.stroke(hip, (x + 0.14 * h * swing, y), trousers, leg)
    p.stroke(hip, (x - 0.14 * h * swing, y), max(0, trousers - 12), leg)
    p.stroke(shoulder, (x - 0.12 * h * swing, y - 0.42 * h), max(0, shirt - 15), 0.06 * h)
    p.ellipse(x, y - 0.63 * h, 0.15 * h, 0.19 * h, shirt)
    p.stroke(shoulder, (x + 0.12 * h * swing, y - 0.42 * h), shirt, 0.06 * h)
    p.disk(x, y - 0.89 * h, 0.085 * h, hair)


def _draw_cyclist(p: Painter, actor: Actor, x: float, y: float, h: float, t: float) -> None:
    hair, shirt, trousers, bike = actor.tones
    d = 1.0 if actor.vx >= 0 else -1.0
    r = 0.19 * h
    back, front = (x - d * 0.33 * h, y - r), (x + d * 0.33 * h, y - r)
    crank = (x - d * 0.03 * h, y - r)
    seat = (x - d * 0.12 * h, y - 0.55 * h)
    bar = (x + d * 0.24 * h, y - 0.62 * h)
    p.ring(*back, r, bike)
    p.ring(*front, r, bike)
    p.stroke(back, crank, bike)
    p.stroke(crank, seat, bike)
    p.stroke(back, seat, bike)
    p.stroke(seat, (bar[0] - d * 0.05 * h, bar[1] + 0.05 * h), bike)
    p.stroke(front, bar, bike)
    angle = actor.phase0 + abs(actor.vx) * (t - actor.t0) / (1.3 * r)
    for sign in (1.0, -1.0):
        pedal = (
            crank[0] + sign * 0.1 * h * math.cos(angle),
            crank[1] + sign * 0.1 * h * math.sin(angle),
        )
        knee = ((seat[0] + pedal[0]) / 2 + d * 0.1 * h, (seat[1] + pedal[1]) / 2 - 0.03 * h)
        p.stroke(seat, knee, trousers, 0.08 * h)
        p.stroke(knee, pedal, trousers, 0.07 * h)
    shoulder = (x + d * 0.06 * h, y - 0.9 * h)
    p.stroke(seat, shoulder, shirt, 0.2 * h)
    p.stroke(shoulder, bar, shirt, 0.06 * h)
    p.disk(x + d * 0.11 * h, y - 1.03 * h, 0.085 * h, hair)


def _draw_vehicle(p: Painter, actor: Actor, x: float, y: float, h: float, t: float) -> None:
    body, window, tyre, cargo = actor.tones
    d = 1.0 if actor.vx >= 0 else -1.0
    half = 1.25 * h
    front, rear = x + d * half, x - d * half
    cab_back = x + d * 0.1 * h
    p.box(min(front, rear), y - 0.62 * h, max(front, rear), y - 0.14 * h, body)
    p.box(min(rear, x), y - 0.95 * h, max(rear, x), y - 0.62 * h, cargo)  # load on the bed
    p.box(
        min(cab_back, front - d * 0.15 * h),
        y - 1.25 * h,
        max(cab_back, front - d * 0.15 * h),
        y - 1.12 * h,
        body,
    )  # roof
    windshield = np.array(
        [
            [cab_back, y - 1.12 * h],
            [front - d * 0.15 * h, y - 1.12 * h],
            [front, y - 0.62 * h],
            [cab_back, y - 0.62 * h],
        ]
    )
    p.polygon(windshield, window)
    p.stroke((cab_back, y - 1.12 * h), (cab_back, y - 0.62 * h), body, 0.08 * h)
    p.stroke((front - d * 0.02 * h, y - 0.3 * h), (front - d * 0.02 * h, y - 0.2 * h), 240, 0.1 * h)
    for wheel_x in (x - 0.8 * h, x + 0.8 * h):
        p.disk(wheel_x, y - 0.15 * h, 0.16 * h, tyre)


def _draw_odd_shape(p: Painter, actor: Actor, x: float, y: float, h: float, t: float) -> None:
    outer, inner = actor.tones
    radius = 0.45 * h
    angle = actor.phase0 + actor.spin * (t - actor.t0)
    rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    shape = actor.outline @ rotation.T
    centre = np.array([x, y - radius])
    p.polygon(centre + radius * shape, outer)
    p.polygon(centre + 0.45 * radius * shape, inner)


_DRAW = {
    NORMAL_KIND: _draw_person,
    "trespasser": _draw_person,
    "cyclist": _draw_cyclist,
    "vehicle": _draw_vehicle,
    "odd_shape": _draw_odd_shape,
}


# ---------------------------------------------------------------------------------------------
# Static background
# ---------------------------------------------------------------------------------------------


def _smooth_noise(rng: np.random.Generator, height: int, width: int, cell: int) -> np.ndarray:
    coarse = rng.standard_normal((height // cell + 2, width // cell + 2)).astype(np.float32)
    smooth = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    return smooth / max(float(smooth.std()), 1e-6)


def paint_background(layout: Layout, seed: int) -> np.ndarray:
    """The static scene as an H×W uint8 grey image: building, hedges, lawns, lamps, paving."""
    rng = np.random.default_rng([seed, 7])
    height, width = layout.height, layout.width
    rows = np.arange(height, dtype=np.float32)[:, None]
    blotches = _smooth_noise(rng, height, width, max(4, width // 24))
    grain = rng.standard_normal((height, width)).astype(np.float32)
    building = rows < layout.building_bottom
    walkway = (rows >= layout.walkway_top) & (rows < layout.walkway_bottom)
    image = np.where(
        building,
        150 + 5 * blotches + 2 * grain,
        np.where(walkway, 168 + 8 * blotches + 4 * grain, 98 + 10 * blotches + 9 * grain),
    ).astype(np.float32)

    # building: windows, a door and a shadow line at its base
    unit = width / 240.0
    for left in np.arange(8 * unit, width - 20 * unit, 30 * unit):
        corner, opposite = (
            (int(left), int(0.03 * height)),
            (int(left + 16 * unit), int(0.11 * height)),
        )
        cv2.rectangle(image, corner, opposite, 92, -1)  # glass
        cv2.rectangle(image, corner, opposite, 175, 1)  # frame
    door = int(rng.uniform(0.3, 0.7) * width)
    cv2.rectangle(
        image,
        (door, int(0.07 * height)),
        (door + int(12 * unit), int(layout.building_bottom)),
        70,
        -1,
    )
    cv2.line(image, (0, int(layout.building_bottom)), (width, int(layout.building_bottom)), 60, 2)

    # hedges along the building and a few shrubs on the lawn
    hedge = np.zeros((height, width), np.uint8)
    for x in np.arange(0, width + 1, 14 * unit):
        centre = (int(x + rng.uniform(-3, 3) * unit), int(layout.building_bottom + 0.06 * height))
        axes = (int(rng.uniform(8, 12) * unit), int(rng.uniform(0.035, 0.05) * height))
        cv2.ellipse(hedge, centre, axes, 0, 0, 360, 1, -1)
    for _ in range(3):
        centre = (int(rng.uniform(0.1, 0.9) * width), int(rng.uniform(0.3, 0.42) * height))
        cv2.ellipse(hedge, centre, (int(9 * unit), int(0.035 * height)), 0, 0, 360, 1, -1)
    image = np.where(hedge > 0, 62 + 14 * grain + 6 * blotches, image).astype(np.float32)

    # paving joints in perspective, converging on a vanishing point above the image
    joints = np.zeros((height, width), np.uint8)
    vanish = (width / 2, layout.walkway_top - 1.3 * height)
    for base in np.arange(-width, 2 * width, 22 * unit):
        top_x = vanish[0] + (base - vanish[0]) * (layout.walkway_top - vanish[1]) / (
            layout.walkway_bottom - vanish[1]
        )
        cv2.line(
            joints,
            (int(top_x), int(layout.walkway_top)),
            (int(base), int(layout.walkway_bottom)),
            1,
            1,
        )
    row = layout.walkway_top
    while row < layout.walkway_bottom:
        cv2.line(joints, (0, int(row)), (width, int(row)), 1, 1)
        row += 0.45 * layout.person_height(row)
    image = np.where((joints > 0) & walkway, image - 22, image)

    # kerbs and lamp posts
    for kerb in (layout.walkway_top, layout.walkway_bottom - 1):
        cv2.line(image, (0, int(kerb)), (width, int(kerb)), 205, max(1, int(unit + 0.5)))
    for fraction in (0.18, 0.52, 0.84):
        x = int((fraction + rng.uniform(-0.04, 0.04)) * width)
        foot, top = int(layout.walkway_top), int(layout.walkway_top - 0.36 * height)
        cv2.line(image, (x, foot), (x, top), 45, max(1, int(1.5 * unit)))
        cv2.rectangle(
            image, (x - int(2 * unit), top - int(3 * unit)), (x + int(2 * unit), top), 35, -1
        )

    image = cv2.GaussianBlur(image, (3, 3), 0.6)
    return np.clip(np.round(image), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------------------------------------
# The scene: plans + renderer
# ---------------------------------------------------------------------------------------------


class SyntheticScene:
    """All clips of one synthetic dataset, planned at construction and rendered on demand."""

    def __init__(self, options: SyntheticOptions | None = None) -> None:
        self.options = options or SyntheticOptions()
        self.options.validate()
        self.layout = Layout(self.options.width, self.options.height)
        self.background = paint_background(self.layout, self.options.seed)
        self.train = [
            plan_video(self.options, self.layout, "train", i)
            for i in range(self.options.train_videos)
        ]
        self.test = [
            plan_video(self.options, self.layout, "test", i)
            for i in range(self.options.test_videos)
        ]

    def _paint(
        self, plan: VideoPlan, t: int, image: np.ndarray | None, kinds: tuple[str, ...]
    ) -> np.ndarray:
        """Draw the actors of frame t back to front; return the mask of `kinds` (visible px)."""
        layout = self.layout
        mask = np.zeros((layout.height, layout.width), np.uint8)
        in_view = []
        for actor in plan.actors:
            x, y = actor.feet(t)
            reach = _margin(layout, actor.kind, y, actor.size)
            if -reach < x < layout.width + reach:
                in_view.append((y, x, actor))
        for y, x, actor in sorted(in_view, key=lambda item: item[0]):
            painter = Painter(image, mask, int(actor.kind in kinds))
            _DRAW[actor.kind](painter, actor, x, y, layout.person_height(y) * actor.size, t)
        return mask

    def frame(self, plan: VideoPlan, t: int) -> np.ndarray:
        """Frame t of a clip as H×W×3 uint8 (grey replicated), with seeded sensor noise."""
        image = self.background.copy()
        self._paint(plan, t, image, kinds=())
        rng = np.random.default_rng([self.options.seed, _SPLIT_CODES[plan.split], plan.index, t])
        noise = rng.standard_normal(image.shape, dtype=np.float32) * self.options.noise_sigma
        noisy = np.clip(np.round(image + noise), 0, 255).astype(np.uint8)
        return np.repeat(noisy[:, :, None], 3, axis=2)

    def mask(self, plan: VideoPlan, t: int, kinds: Iterable[str] = ANOMALY_KINDS) -> np.ndarray:
        """H×W bool: pixels where an actor of one of `kinds` is visible in frame t."""
        return self._paint(plan, t, None, kinds=tuple(kinds)).astype(bool)

    def masks(self, plan: VideoPlan) -> np.ndarray:
        """T×H×W bool anomaly masks of a whole clip."""
        return np.stack([self.mask(plan, t) for t in range(plan.num_frames)])


@dataclass(frozen=True, eq=False)
class SyntheticMasks:
    """`load_masks` of one clip: the whole T×H×W stack, or (`frames`) one frame at a time."""

    scene: SyntheticScene
    plan: VideoPlan

    def __call__(self) -> np.ndarray:
        return self.scene.masks(self.plan)

    def frames(self) -> Iterator[np.ndarray]:
        for t in range(self.plan.num_frames):
            yield self.scene.mask(self.plan, t)


def _video(scene: SyntheticScene, plan: VideoPlan) -> Video:
    return Video(
        name=plan.name,
        split=plan.split,
        num_frames=plan.num_frames,
        height=scene.layout.height,
        width=scene.layout.width,
        source=f"synthetic:seed={scene.options.seed}/{plan.name}",
        load_frame=partial(scene.frame, plan),
    )


def open_synthetic(root: str | Path | None = None, **options) -> Dataset:
    """The embedded procedural walkway dataset. `root` is only recorded; nothing touches disk.

    Options (keywords): see SyntheticOptions; an unknown option raises ValueError naming it.
    """
    scene = SyntheticScene(SyntheticOptions.from_kwargs(options))
    ground_truth = {}
    for plan in scene.test:
        labels = np.array([scene.mask(plan, t).any() for t in range(plan.num_frames)], dtype=bool)
        ground_truth[plan.name] = GroundTruth(labels=labels, load_masks=SyntheticMasks(scene, plan))
    return Dataset(
        name="synthetic",
        root=Path(root) if root is not None else Path("synthetic"),
        train=[_video(scene, plan) for plan in scene.train],
        test=[_video(scene, plan) for plan in scene.test],
        ground_truth=ground_truth,
    )
