"""The spatio-temporal cubes (STCs) of one video: pure functions of its frames, flows and boxes,
cut a block of boxes at a time (`iter_video_cubes`), so that a video's cubes are never all in
memory at once.

For a box on frame t and `frames` = T (HF2-VAD: t = 4 past frames, T = 5), the cube holds

- frames t-T+1 .. t, each cut to the box and resized to size x size: the first T-1 are
  HF2-VAD's x_{1:t}, the last (the box's own frame) is x_{t+1}, the frame they predict;
- the T-1 flows between consecutive frames of the cube, y_i from frame i to frame i+1 of it
  (flow.h5's flow j is from frame j to j+1, so y_1..y_t are flows t-T+1 .. t-1): the last one
  ends on the predicted frame, as in the released code (its flow file of frame k is the flow
  from k-1 to k, and a sample's flows are those of its frames 2..T).

Boxes on the first T-1 frames of a video are kept: indices before frame 0 are replaced by 0
(the first frame is repeated, as the released code's `_context_range` does), and the flow
between two copies of a frame is zero (there: FlowNet2's flow from the first frame to itself).
A video shorter than T frames works the same way. No flow after the box's frame is used, so
the last frame's boxes have complete cubes.

The crop: pixels floor(x1) .. ceil(x2) - 1 (and y alike) of a box [x1, y1, x2, y2] (x2, y2
exclusive), cut to the frame and never empty; the released code takes ceil of all four, the
same for the integer boxes of the foreground detector. Frames and flows are resized with
bilinear interpolation (cv2.resize's default, as there).

Flow units: flow.h5 holds flows in pixels of the flow stage's grid (`flow.size`). A flow is
first brought to the frame's size (resized, u times W / w and v times H / h), cut like the frame
and resized to the cube. With `flow_units: frame` (the default) u, v stay in frame pixels, as
the released code's (which resizes FlowNet2's flows to frame size and crops them without
rescaling their values); with `cube`, u, v are multiplied by size / crop width and size / crop
height, so that a cube's flow is in pixels of the cube per frame and warps its frames, but a
wide box's motion shrinks (DEVIATIONS.md, "Flow units").
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

import cv2
import numpy as np

from vad.stc.settings import CubeSettings

FLOAT16_MAX = float(np.finfo(np.float16).max)


class Rows(Protocol):
    """A stack read one row at a time: a numpy array, an h5py dataset or a block reader."""

    shape: tuple[int, ...]

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> np.ndarray: ...


class VideoCubes(dict):
    """The STCs of one video (or of a block of its boxes) and their index (the datasets of its
    stc.h5 group): `frames` (N, T, S, S, C) uint8, `flows` (N, T-1, S, S, 2) float16, `frame`
    (N,) int32 (the box's frame, the predicted one), `box_index` (N,) int32 (its place among
    that frame's boxes, objects.h5's order), `object` (N,) int32 (its row in objects.h5's
    group), `box` (N, 4) float32 (as in objects.h5) and `region` (N, 4) int32 (the pixels cut,
    [x1, y1, x2, y2], x2 and y2 exclusive)."""


FIELDS = ("frames", "flows", "frame", "box_index", "object", "box", "region")


def clip_frames(frame: int, length: int) -> np.ndarray:
    """The frame indices of the cube of a box on `frame`: frame-length+1 .. frame, those
    before the video's first frame replaced by 0 (the first frame repeated)."""
    return np.maximum(np.arange(frame - length + 1, frame + 1), 0)


def crop_region(box: np.ndarray, width: int, height: int) -> tuple[int, int, int, int]:
    """Integer pixel bounds [x1, y1, x2, y2) of a box in a width x height frame: floor of the
    start, ceil of the end, cut to the frame, at least one pixel each way."""
    x1 = min(max(int(np.floor(box[0])), 0), width - 1)
    y1 = min(max(int(np.floor(box[1])), 0), height - 1)
    x2 = min(max(int(np.ceil(box[2])), x1 + 1), width)
    y2 = min(max(int(np.ceil(box[3])), y1 + 1), height)
    return x1, y1, x2, y2


def resize_crop(image: np.ndarray, region: tuple[int, int, int, int], size: int) -> np.ndarray:
    """`image[y1:y2, x1:x2]` resized to size x size (bilinear), channel axis kept."""
    x1, y1, x2, y2 = region
    resized = cv2.resize(image[y1:y2, x1:x2], (size, size), interpolation=cv2.INTER_LINEAR)
    return resized.reshape(size, size, image.shape[2])


def flow_at_frame_size(flow: np.ndarray, width: int, height: int) -> np.ndarray:
    """An h x w x 2 flow (pixels of its grid) as a height x width x 2 float32 flow in frame
    pixels: resized, u times width / w, v times height / h."""
    grid_height, grid_width = flow.shape[:2]
    field = flow.astype(np.float32)
    if (grid_width, grid_height) == (width, height):
        return field
    field = cv2.resize(field, (width, height), interpolation=cv2.INTER_LINEAR)
    field[..., 0] *= width / grid_width
    field[..., 1] *= height / grid_height
    return field


def flow_crop(
    field: np.ndarray, region: tuple[int, int, int, int], size: int, units: str
) -> np.ndarray:
    """A frame-size flow (frame pixels) cut to `region` and resized to size x size; with
    `units` "cube", u and v in pixels of the cube: times size / the crop's width and size / its
    height; with "frame", left in frame pixels (the released code's, unscaled)."""
    x1, y1, x2, y2 = region
    cube = resize_crop(field, region, size)
    if units == "cube":
        cube[..., 0] *= size / (x2 - x1)
        cube[..., 1] *= size / (y2 - y1)
    return cube


class FrameSizeFlows:
    """Flows of a video at frame size, each computed once while cubes are built in frame order
    (only the last few, those a later cube can still use, are kept)."""

    def __init__(self, flows: Rows, width: int, height: int):
        self.flows, self.width, self.height = flows, width, height
        self.fields: dict[int, np.ndarray] = {}

    def __getitem__(self, index: int) -> np.ndarray:
        if index not in self.fields:
            self.fields[index] = flow_at_frame_size(
                np.asarray(self.flows[index]), self.width, self.height
            )
        return self.fields[index]

    def forget_before(self, index: int) -> None:
        for old in [key for key in self.fields if key < index]:
            del self.fields[old]


def allocate(count: int, settings: CubeSettings, channels: int) -> VideoCubes:
    """Zeroed arrays for `count` cubes."""
    size, frames = settings.size, settings.frames
    return VideoCubes(
        frames=np.zeros((count, frames, size, size, channels), np.uint8),
        flows=np.zeros((count, frames - 1, size, size, 2), np.float16),
        frame=np.zeros(count, np.int32),
        box_index=np.zeros(count, np.int32),
        object=np.zeros(count, np.int32),
        box=np.zeros((count, 4), np.float32),
        region=np.zeros((count, 4), np.int32),
    )


def iter_video_cubes(
    frames: Rows,
    flows: Rows,
    box_frames: np.ndarray,
    boxes: np.ndarray,
    settings: CubeSettings,
    block: int,
) -> Iterator[VideoCubes]:
    """The STCs of every box of a video, `block` cubes at a time (the last block may hold
    fewer; a video without boxes gives none). `frames`: T x H x W x C uint8; `flows`: (T-1) x h
    x w x 2, flow j from frame j to j+1 in pixels of an h x w grid covering the frame;
    `box_frames` (N,) and `boxes` (N, 4) [x1, y1, x2, y2] in frame pixels: objects.h5's `frame`
    and `box`. Cubes come in frame order, a frame's boxes in their order in objects.h5.
    Inconsistent inputs are refused here, before any cube is cut."""
    count = frames.shape[0]
    if len(flows) != max(count - 1, 0):
        raise ValueError(f"{count} frames need {max(count - 1, 0)} flows, got {len(flows)}")
    box_frames = np.asarray(box_frames)
    outside = (box_frames < 0) | (box_frames >= count)
    if np.any(outside):
        raise ValueError(
            f"a box on frame {int(box_frames[outside][0])} of a video of {count} frames"
        )
    if block < 1:
        raise ValueError(f"a block holds at least one cube, got {block}")
    return _cube_blocks(frames, flows, box_frames, boxes, settings, block)


def _cube_blocks(
    frames: Rows,
    flows: Rows,
    box_frames: np.ndarray,
    boxes: np.ndarray,
    settings: CubeSettings,
    block: int,
) -> Iterator[VideoCubes]:
    """`iter_video_cubes`' blocks, its inputs checked."""
    _, height, width, channels = frames.shape
    order = np.argsort(box_frames, kind="stable")
    fields = FrameSizeFlows(flows, width, height)
    images: dict[int, np.ndarray] = {}
    previous, index_in_frame = -1, 0
    for first in range(0, len(order), block):
        rows = order[first : first + block]
        cubes = allocate(len(rows), settings, channels)
        for n, row in enumerate(rows):
            t = int(box_frames[row])
            index_in_frame = index_in_frame + 1 if t == previous else 0
            clip = clip_frames(t, settings.frames).tolist()
            if t != previous:
                fields.forget_before(clip[0])
                images = {c: images[c] if c in images else np.asarray(frames[c]) for c in clip}
                previous = t
            region = crop_region(boxes[row], width, height)
            for k, c in enumerate(clip):
                cubes["frames"][n, k] = resize_crop(images[c], region, settings.size)
            for k in range(settings.frames - 1):
                start, end = clip[k], clip[k + 1]
                if start != end:  # else two copies of the first frame: no motion
                    flow = flow_crop(fields[start], region, settings.size, settings.flow_units)
                    if np.any(np.abs(flow) > FLOAT16_MAX):
                        raise ValueError(
                            f"flow of the box {boxes[row].tolist()} on frame {t} exceeds "
                            f"float16 in {settings.flow_units} pixels ({settings.size}-pixel cube)"
                        )
                    cubes["flows"][n, k] = flow
            cubes["frame"][n] = t
            cubes["box_index"][n] = index_in_frame
            cubes["object"][n] = row
            cubes["box"][n] = boxes[row]
            cubes["region"][n] = region
        yield cubes
