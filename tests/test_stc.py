"""HF2-VAD's spatio-temporal cubes (vad.stc, stage `stc`): frame cubes are the resized crops of
the cached frames, flow cubes the resized crops of the flows in cube pixels, the index points
back to objects.h5, the first frames repeat frame 0 with zero flow, border boxes, videos without
boxes or shorter than a cube, cubes cut and written a block at a time (the same file for one
job or two), resume, inconsistent inputs and params errors."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest

from vad.cache import (
    DIGEST,
    INPUT_DIGEST,
    array_digest,
    checked_dataset,
    combine_digests,
    open_cache,
    video_digests,
    write_h5,
    writer_stage,
)
from vad.config import ConfigError, load_params
from vad.objects.runner import boxes_by_frame, objects_digest, read_objects
from vad.params.check import check_params
from vad.params.stc import stc_settings
from vad.stc import cubes as cubes_module
from vad.stc import runner
from vad.stc.cubes import (
    FIELDS,
    clip_frames,
    crop_region,
    flow_at_frame_size,
    flow_crop,
    iter_video_cubes,
)
from vad.stc.runner import CUBES_PER_CHUNK, read_cubes, run_stc_stage
from vad.stc.settings import CubeSettings

REPO = Path(__file__).resolve().parents[1]
W, H = 60, 40  # frame size
FLOW_W, FLOW_H = 30, 20  # flow grid: half the frame each way
S = 32
PAPER = CubeSettings(flow_units="cube")  # 5 frames, 32 x 32; flows rescaled (checked below)


def random_video(frames: int, channels: int = 3, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (frames, H, W, channels), np.uint8)


def constant_flows(frames: int, u: object = 2.0, v: object = -1.0) -> np.ndarray:
    """(frames-1) flows on the flow grid; u (or v) may be a list: one value per flow."""
    flows = np.zeros((max(frames - 1, 0), FLOW_H, FLOW_W, 2), np.float16)
    flows[..., 0] = np.asarray(u, np.float16).reshape(-1, 1, 1) if np.ndim(u) else u
    flows[..., 1] = np.asarray(v, np.float16).reshape(-1, 1, 1) if np.ndim(v) else v
    return flows


class Scene:
    """frames.h5, flow.h5 and objects.h5 written by hand, as their stages lay them out."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.frames, self.flow, self.objects = (folder / n for n in ("f.h5", "flow.h5", "o.h5"))
        self.videos: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = {}

    def add(self, key: str, video: np.ndarray, flows: np.ndarray, frame=(), box=()) -> None:
        boxes = np.asarray(box, np.float32).reshape(-1, 4)
        self.videos[key] = (video, flows, np.asarray(frame, np.int32), boxes)

    def write(self) -> Scene:
        with (
            write_h5(self.frames, {"dataset": "test"}) as frames,
            write_h5(self.flow, {"method": "test"}) as flow,
            write_h5(self.objects, {"objects": "test"}) as objects,
        ):
            for key, (video, flows, frame, boxes) in self.videos.items():
                group = frames.create_group(key)
                checked_dataset(group, "frames", video)
                group.attrs[DIGEST] = frames_digest = array_digest(video)
                group = flow.create_group(key)
                checked_dataset(group, "flow", flows)
                group.attrs.update({DIGEST: array_digest(flows), INPUT_DIGEST: frames_digest})
                group = objects.create_group(key)
                found = {"frame": frame, "box": boxes, "score": np.ones(len(frame), np.float32),
                         "source": np.zeros(len(frame), np.uint8)}  # fmt: skip
                for field, values in found.items():
                    checked_dataset(group, field, values)
                group.attrs.update(
                    {DIGEST: objects_digest(found), INPUT_DIGEST: frames_digest,
                     "num_frames": len(video), "width": W, "height": H}
                )  # fmt: skip
        return self

    def run(self, out: str = "stc.h5", settings: CubeSettings = PAPER, n_jobs: int = 1) -> Path:
        return run_stc_stage(
            self.frames, self.flow, self.objects, self.folder / out, settings, n_jobs, False
        )


def expected_crop(image: np.ndarray, region: tuple[int, int, int, int]) -> np.ndarray:
    x1, y1, x2, y2 = region
    resized = cv2.resize(image[y1:y2, x1:x2], (S, S), interpolation=cv2.INTER_LINEAR)
    return resized.reshape(S, S, image.shape[2])


def test_frame_cubes_are_the_resized_crops_of_frames_t_minus_4_to_t(tmp_path):
    video = random_video(8)
    scene = Scene(tmp_path)
    # frame 6: an integer box and a fractional one; frame 5: one more (rows not in frame order)
    boxes = [[10, 5, 26, 21], [3, 4, 40, 30], [10.4, 5.6, 30.2, 20.0]]
    scene.add("train/a", video, constant_flows(8), frame=[6, 5, 6], box=boxes)
    cubes = read_cubes(scene.write().run(), "train/a")
    assert cubes["frames"].shape == (3, 5, S, S, 3) and cubes["frames"].dtype == np.uint8
    assert cubes["flows"].shape == (3, 4, S, S, 2) and cubes["flows"].dtype == np.float16
    np.testing.assert_array_equal(cubes["frame"], [5, 6, 6])
    np.testing.assert_array_equal(cubes["region"], [[3, 4, 40, 30], [10, 5, 26, 21],
                                                    [10, 5, 31, 20]])  # fmt: skip
    for n, t in enumerate(cubes["frame"]):
        for k, source in enumerate(range(t - 4, t + 1)):  # x_1..x_4, then x_5 (predicted)
            expected = expected_crop(video[source], tuple(cubes["region"][n]))
            np.testing.assert_array_equal(cubes["frames"][n, k], expected, err_msg=f"{n} {k}")


def test_the_index_points_back_to_the_video_frame_and_box_of_objects_h5(tmp_path):
    scene = Scene(tmp_path)
    boxes = [[1, 1, 9, 9], [20, 2, 30, 12], [5, 5, 15, 15], [40, 20, 50, 35], [0, 0, 4, 4]]
    scene.add("train/a", random_video(6), constant_flows(6), frame=[4, 2, 4, 2, 4], box=boxes)
    scene.add("test/a", random_video(6, seed=1), constant_flows(6), frame=[3], box=[[2, 3, 8, 9]])
    out = scene.write().run()
    for key, frames in (("train/a", [2, 2, 4, 4, 4]), ("test/a", [3])):
        cubes, objects = read_cubes(out, key), read_objects(scene.objects, key)
        np.testing.assert_array_equal(cubes["frame"], frames)
        by_frame = boxes_by_frame(objects, 6)
        for n in range(len(frames)):
            row = cubes["object"][n]
            assert by_frame[cubes["frame"][n]][cubes["box_index"][n]] == row
            assert objects["frame"][row] == cubes["frame"][n]
            np.testing.assert_array_equal(cubes["box"][n], objects["box"][row])
    np.testing.assert_array_equal(read_cubes(out, "train/a")["box_index"], [0, 1, 0, 1, 2])
    expected = expected_crop(random_video(6, seed=1)[3], (2, 3, 8, 9))
    np.testing.assert_array_equal(read_cubes(out, "test/a")["frames"][0, 4], expected)
    with open_cache(out) as f:
        assert f["test/a"].attrs["num_frames"] == 6 and f["test/a"].attrs["channels"] == 3


def test_flow_cubes_are_in_cube_pixels_of_a_constant_field(tmp_path):
    """u = 2, v = -1 on a grid of half the frame's size: 4 and -2 frame pixels; a 16 x 8 box
    resized to 32 x 32 doubles u and quadruples v (8, -8); a 32 x 20 box: 4 and -3.2."""
    scene = Scene(tmp_path)
    boxes = [[8, 4, 24, 12], [20, 10, 52, 30]]
    scene.add("train/a", random_video(8), constant_flows(8), frame=[7, 7], box=boxes)
    cubes = read_cubes(scene.write().run(), "train/a")
    np.testing.assert_array_equal(cubes["flows"][0, ..., 0], 8.0)
    np.testing.assert_array_equal(cubes["flows"][0, ..., 1], -8.0)
    np.testing.assert_array_equal(cubes["flows"][1, ..., 0], 4.0)
    np.testing.assert_array_equal(cubes["flows"][1, ..., 1], np.float16(-3.2))


def test_flow_units_frame_keep_frame_pixels_whatever_the_box(tmp_path):
    """The same field and boxes with `flow_units: frame`: both cubes hold the field in frame
    pixels (4, -2), as the released code's; the file records the units."""
    scene = Scene(tmp_path)
    boxes = [[8, 4, 24, 12], [20, 10, 52, 30]]
    scene.add("train/a", random_video(8), constant_flows(8), frame=[7, 7], box=boxes)
    path = scene.write().run(settings=CubeSettings(flow_units="frame"))
    cubes = read_cubes(path, "train/a")
    np.testing.assert_array_equal(cubes["flows"][..., 0], 4.0)
    np.testing.assert_array_equal(cubes["flows"][..., 1], -2.0)
    with h5py.File(path) as f:
        assert f.attrs["flow_units"] == "frame"


def test_flow_j_from_frame_j_to_j_plus_1_fills_the_cube_in_order(tmp_path):
    """y_i goes from the cube's frame i to frame i+1: flows t-4 .. t-1 for a box on frame t,
    the last ending on the predicted frame; so the last frame's boxes have all their flows."""
    scene = Scene(tmp_path)
    per_flow = [1, 2, 3, 4, 5, 6, 7]  # flow j has u = j + 1 (grid px); 16 px box: x 4 in cube px
    box = [[8, 4, 24, 12]]
    scene.add("train/a", random_video(8), constant_flows(8, u=per_flow, v=0), frame=[6], box=box)
    scene.add("train/last", random_video(8), constant_flows(8, u=per_flow, v=0), [7], box)
    out = scene.write().run()
    for key, t in (("train/a", 6), ("train/last", 7)):
        u = read_cubes(out, key)["flows"][0, ..., 0]
        np.testing.assert_array_equal(u[:, 0, 0], [4.0 * (j + 1) for j in range(t - 4, t)])
        assert np.all(u == u[:, :1, :1])


def test_first_frames_repeat_frame_0_and_the_flow_between_its_copies_is_zero(tmp_path):
    video = random_video(8)
    scene = Scene(tmp_path)
    box = [10, 5, 26, 21]
    scene.add("train/a", video, constant_flows(8, u=[1, 2, 3, 4, 5, 6, 7], v=0), [0, 1, 3],
              [box, box, box])  # fmt: skip
    cubes = read_cubes(scene.write().run(), "train/a")
    crops = [expected_crop(frame, (10, 5, 26, 21)) for frame in video]
    used = {0: [0, 0, 0, 0, 0], 1: [0, 0, 0, 0, 1], 3: [0, 0, 1, 2, 3]}
    u = cubes["flows"][..., 0]
    for n, t in enumerate([0, 1, 3]):
        np.testing.assert_array_equal(clip_frames(t, 5), used[t])
        for k, source in enumerate(used[t]):
            np.testing.assert_array_equal(cubes["frames"][n, k], crops[source])
    np.testing.assert_array_equal(u[0], 0.0)
    np.testing.assert_array_equal(u[1, :3], 0.0)
    np.testing.assert_array_equal(u[1, 3], 4.0)  # flow 0: u = 1 grid px = 4 cube px
    np.testing.assert_array_equal(u[2, 0], 0.0)
    np.testing.assert_array_equal(u[2, 1:, 0, 0], [4.0, 8.0, 12.0])
    assert not np.any(cubes["flows"][..., 1])


def test_a_video_shorter_than_a_cube(tmp_path):
    scene = Scene(tmp_path)
    video = random_video(3, channels=1)
    box = [[0, 0, W, H]]  # the whole frame
    scene.add("train/short", video, constant_flows(3, u=[1, 2], v=0), frame=[2], box=box)
    scene.add("train/one", video[:1], constant_flows(1), frame=[0], box=box)
    out = scene.write().run()
    cubes = read_cubes(out, "train/short")
    whole = [expected_crop(frame, (0, 0, W, H)) for frame in video]
    for k, source in enumerate([0, 0, 0, 1, 2]):
        np.testing.assert_array_equal(cubes["frames"][0, k], whole[source])
    # whole frame: u x (60 / 30) x (32 / 60) = u x 16/15
    np.testing.assert_allclose(cubes["flows"][0, :, 0, 0, 0], [0, 0, 16 / 15, 32 / 15], rtol=1e-3)
    one = read_cubes(out, "train/one")
    assert one["frames"].shape == (1, 5, S, S, 1)
    assert np.all(one["frames"][0] == whole[0]) and not np.any(one["flows"])


def test_boxes_at_and_beyond_the_border_are_cut_to_the_frame(tmp_path):
    assert crop_region(np.array([50, 30, 60, 40]), W, H) == (50, 30, 60, 40)
    assert crop_region(np.array([-2.5, -1, 5, 6.2]), W, H) == (0, 0, 5, 7)
    assert crop_region(np.array([58.5, 39.5, 61, 41]), W, H) == (58, 39, 60, 40)
    assert crop_region(np.array([60, 40, 60, 40]), W, H) == (59, 39, 60, 40)  # never empty
    video = random_video(6)
    scene = Scene(tmp_path)
    boxes = [[50, 30, 60, 40], [-2.5, -1, 5, 6.2], [60, 40, 60, 40]]
    scene.add("test/a", video, constant_flows(6), frame=[5, 5, 5], box=boxes)
    cubes = read_cubes(scene.write().run(), "test/a")
    for n, region in enumerate([(50, 30, 60, 40), (0, 0, 5, 7), (59, 39, 60, 40)]):
        np.testing.assert_array_equal(cubes["region"][n], region)
        np.testing.assert_array_equal(cubes["frames"][n, 4], expected_crop(video[5], region))
    # u: 4 frame px x 32 / 10; v: -2 x 32 / 10; the one-pixel box: x 32
    np.testing.assert_array_equal(cubes["flows"][0, :, 0, 0], np.float16([[12.8, -6.4]] * 4))
    np.testing.assert_array_equal(cubes["flows"][2, :, 0, 0], [[128.0, -64.0]] * 4)


def test_a_video_without_boxes_has_empty_datasets(tmp_path):
    scene = Scene(tmp_path)
    scene.add("train/empty", random_video(6, channels=1), constant_flows(6))
    scene.add("test/a", random_video(6), constant_flows(6), frame=[3], box=[[1, 1, 9, 9]])
    out = scene.write().run()
    cubes = read_cubes(out, "train/empty")
    assert cubes["frames"].shape == (0, 5, S, S, 1)
    assert cubes["flows"].shape == (0, 4, S, S, 2)
    assert all(len(values) == 0 for values in cubes.values())
    assert set(video_digests(out)) == {"train/empty", "test/a"}


def test_cubes_are_chunked_by_64_for_minibatches_and_sizes_follow_the_settings(tmp_path):
    scene = Scene(tmp_path)
    boxes = [[x, 2, x + 8, 12] for x in range(0, 50)] * 2  # 100 boxes on one frame
    scene.add("train/a", random_video(5, channels=1), constant_flows(5), [4] * 100, boxes)
    out = scene.write().run(settings=CubeSettings(frames=3, size=16))
    with open_cache(out) as f:
        group = f["train/a"]
        assert group["frames"].shape == (100, 3, 16, 16, 1)
        assert group["frames"].chunks == (CUBES_PER_CHUNK, 3, 16, 16, 1)
        assert group["flows"].chunks == (CUBES_PER_CHUNK, 2, 16, 16, 2)
        assert group["flows"].fletcher32 and f.attrs["frames"] == 3 and f.attrs["size"] == 16
        assert group["frames"].maxshape == (None, 3, 16, 16, 1)
        assert group["box"].chunks == (CUBES_PER_CHUNK, 4) and group["box"].maxshape == (None, 4)
        assert group["frames"].compression == group["flows"].compression == "lzf"
        assert group["box"].compression is None and group["frame"].compression is None
    np.testing.assert_array_equal(read_cubes(out, "train/a", slice(70, 71))["box_index"], [70])


def reference_cubes(
    video: np.ndarray, flows: np.ndarray, box_frames: np.ndarray, boxes: np.ndarray
) -> dict[str, np.ndarray]:
    """The paper-sized cube of each box cut on its own, as cubes.py's docstring defines it,
    stacked in frame order (a frame's boxes in objects.h5's order)."""
    channels = video.shape[3]
    rows: dict[str, list] = {field: [] for field in FIELDS}
    for row in np.argsort(box_frames, kind="stable"):
        t = int(box_frames[row])
        clip = [max(c, 0) for c in range(t - 4, t + 1)]
        region = crop_region(boxes[row], W, H)
        rows["frames"].append([expected_crop(video[c], region) for c in clip])
        rows["flows"].append([
            flow_crop(flow_at_frame_size(flows[a], W, H), region, S, "cube") if a != b
            else np.zeros((S, S, 2), np.float32)
            for a, b in zip(clip[:-1], clip[1:], strict=True)
        ])  # fmt: skip
        rows["frame"].append(t)
        rows["box_index"].append(np.count_nonzero(box_frames[:row] == t))
        rows["object"].append(row)
        rows["box"].append(boxes[row])
        rows["region"].append(region)
    layout = {"frames": ((5, S, S, channels), np.uint8), "flows": ((4, S, S, 2), np.float16),
              "frame": ((), np.int32), "box_index": ((), np.int32), "object": ((), np.int32),
              "box": ((4,), np.float32), "region": ((4,), np.int32)}  # fmt: skip
    return {
        field: np.asarray(rows[field], np.float32).astype(dtype).reshape((-1,) + shape)
        for field, (shape, dtype) in layout.items()
    }


SEVEN_BOXES = [[10, 5, 26, 21], [3, 4, 40, 30], [10.4, 5.6, 30.2, 20.0], [0, 0, 60, 40],
               [50, 30, 60, 40], [-2.5, -1, 5, 6.2], [20, 10, 52, 30]]  # fmt: skip
SEVEN_FRAMES = [6, 0, 3, 8, 3, 1, 6]  # some on the first frames, some sharing a frame


@pytest.mark.parametrize("block", [1, 2, 3, 64])
def test_blocks_of_cubes_put_together_are_the_cubes_of_every_box(block):
    video, flows = random_video(9), constant_flows(9, u=[1, 2, 3, 4, 5, 6, 7, 8], v=0.5)
    boxes = np.asarray(SEVEN_BOXES, np.float32)
    blocks = list(iter_video_cubes(video, flows, np.array(SEVEN_FRAMES), boxes, PAPER, block))
    assert [len(cubes["frame"]) for cubes in blocks] == [
        min(block, 7 - first) for first in range(0, 7, block)
    ]
    expected = reference_cubes(video, flows, np.array(SEVEN_FRAMES), boxes)
    for field in FIELDS:
        together = np.concatenate([cubes[field] for cubes in blocks])
        assert together.dtype == expected[field].dtype, field
        np.testing.assert_array_equal(together, expected[field], err_msg=field)


def test_inconsistent_inputs_are_refused_before_any_block_and_no_boxes_give_no_block():
    video, flows, boxes = random_video(6), constant_flows(6), np.array([[1, 1, 9, 9]], np.float32)
    with pytest.raises(ValueError, match="6 frames need 5 flows, got 4"):
        iter_video_cubes(video, flows[:4], np.array([2]), boxes, PAPER, block=2)
    with pytest.raises(ValueError, match="a box on frame 6 of a video of 6 frames"):
        iter_video_cubes(video, flows, np.array([6]), boxes, PAPER, block=2)
    with pytest.raises(ValueError, match="at least one cube, got 0"):
        iter_video_cubes(video, flows, np.array([2]), boxes, PAPER, block=0)
    no_boxes = np.zeros((0, 4), np.float32)
    assert list(iter_video_cubes(video, flows, np.zeros(0, int), no_boxes, PAPER, 2)) == []


def scene_of_blocks(folder: Path) -> Scene:
    """Seven boxes, 150 boxes (two full chunks and part of a third) and none."""
    rng = np.random.default_rng(5)
    corner = rng.uniform(0, [50, 30], (150, 2))
    many = np.hstack([corner, corner + rng.uniform(1, 10, (150, 2))])
    scene = Scene(folder)
    scene.add("train/a", random_video(9), constant_flows(9, u=[1, 2, 3, 4, 5, 6, 7, 8], v=0.5),
              frame=SEVEN_FRAMES, box=SEVEN_BOXES)  # fmt: skip
    scene.add("train/many", random_video(10, seed=1), constant_flows(10, u=-1.5, v=2.0),
              frame=rng.integers(0, 10, 150), box=many)  # fmt: skip
    scene.add("test/empty", random_video(6, channels=1, seed=2), constant_flows(6))
    return scene.write()


def test_the_stage_writes_every_boxs_cube_and_digest_alike_with_one_job_or_two(tmp_path):
    scene = scene_of_blocks(tmp_path)
    one, two = scene.run("one.h5"), scene.run("two.h5", n_jobs=2)
    assert one.read_bytes() == two.read_bytes()
    with open_cache(one) as f:
        for key, (video, flows, box_frames, boxes) in scene.videos.items():
            expected = reference_cubes(video, flows, box_frames, boxes)
            for field in FIELDS:
                np.testing.assert_array_equal(f[key][field][()], expected[field], err_msg=field)
                assert f[key][field].dtype == expected[field].dtype
            digest = combine_digests({field: array_digest(expected[field]) for field in FIELDS})
            assert f[key].attrs[DIGEST] == digest, key
        assert f["test/empty/frames"].shape == (0, 5, S, S, 1)


def test_the_stage_holds_at_most_a_chunk_of_cubes_at_a_time(tmp_path, monkeypatch):
    allocated: list[int] = []
    real_allocate = cubes_module.allocate

    def counted(count, settings, channels):
        allocated.append(count)
        return real_allocate(count, settings, channels)

    monkeypatch.setattr(cubes_module, "allocate", counted)
    scene_of_blocks(tmp_path).run()
    assert max(allocated) == CUBES_PER_CHUNK
    assert sorted(allocated).count(CUBES_PER_CHUNK) == 2  # train/many's first 128 of 150 cubes


def test_resume_keeps_finished_videos_of_unchanged_inputs_and_equals_a_clean_run(
    tmp_path, monkeypatch
):
    scene = Scene(tmp_path)
    for i, key in enumerate(["train/a", "train/b", "test/c"]):
        scene.add(key, random_video(7, seed=i), constant_flows(7), frame=[2, 6],
                  box=[[3, 3, 20, 30], [30, 10, 55, 38]])  # fmt: skip
    scene.write()
    real_task = runner.write_video_cubes

    def interrupted(key, **kw):
        if key == "test/c":
            raise KeyboardInterrupt  # after train/a and train/b were written
        return real_task(key, **kw)

    monkeypatch.setattr(runner, "write_video_cubes", interrupted)
    with pytest.raises(KeyboardInterrupt):
        scene.run()
    assert not (tmp_path / "stc.h5").exists() and (tmp_path / "stc.h5.partial").exists()
    video, flows, _, boxes = scene.videos["train/b"]
    scene.add("train/b", video, flows, frame=[3, 6], box=boxes)  # new boxes for train/b
    scene.write()
    computed: list[str] = []

    def counted(key, **kw):
        computed.append(key)
        return real_task(key, **kw)

    monkeypatch.setattr(runner, "write_video_cubes", counted)
    out = scene.run()
    assert computed == ["train/b", "test/c"]  # train/a kept
    clean = scene.run("clean.h5")
    assert video_digests(out) == video_digests(clean)
    for key in scene.videos:
        for field, values in read_cubes(clean, key).items():
            np.testing.assert_array_equal(read_cubes(out, key)[field], values)
    assert read_cubes(out, "train/b")["frame"].tolist() == [3, 6]


def test_two_workers_write_the_same_bytes_as_one(tmp_path):
    scene = Scene(tmp_path)
    for i, key in enumerate(["train/a", "test/b", "test/c"]):
        scene.add(key, random_video(6, seed=i), constant_flows(6), [1, 5], [[2, 2, 30, 20]] * 2)
    scene.write()
    one, two = scene.run("one.h5"), scene.run("two.h5", n_jobs=2)
    assert one.read_bytes() == two.read_bytes()


def test_inconsistent_inputs_name_the_file_the_video_and_the_stage(tmp_path):
    scene = Scene(tmp_path)
    scene.add("train/a", random_video(6), constant_flows(5), frame=[1], box=[[1, 1, 5, 5]])
    with pytest.raises(ValueError, match=r"flow\.h5: video 'train/a' has 4 flows for 6 frames; "
                       r"re-run the flow stage"):  # fmt: skip
        scene.write().run()
    scene.add("train/a", random_video(6), constant_flows(6), frame=[1], box=[[1, 1, 5, 5]])
    scene.write()
    other = Scene(tmp_path / "other")
    other.folder.mkdir()
    other.add("train/a", random_video(6, seed=9), constant_flows(6), [1], [[1, 1, 5, 5]])
    other.write()
    stale = scene.objects
    scene.objects = other.objects
    with pytest.raises(ValueError, match=r"o\.h5: video 'train/a' was computed from other frames "
                       r"than .*f\.h5 holds now; re-run the objects stage"):  # fmt: skip
        scene.run()
    scene.objects = stale
    scene.add("test/new", random_video(6), constant_flows(6))
    with write_h5(tmp_path / "f2.h5") as f:  # a video that flow.h5 lacks
        for key in ("train/a", "test/new"):
            group = f.create_group(key)
            checked_dataset(group, "frames", scene.videos[key][0])
            group.attrs[DIGEST] = array_digest(scene.videos[key][0])
    scene.frames = tmp_path / "f2.h5"
    with pytest.raises(ValueError, match=r"flow\.h5: no video 'test/new' of .*f2\.h5"):
        scene.run()
    assert writer_stage("data/interim/stc.h5") == "stc"


PARAMS = load_params(REPO / "params.yaml")


def with_stc(**values) -> dict:
    params = copy.deepcopy(PARAMS)
    params["stc"].update(values)
    return params


def test_the_repository_params_take_the_papers_cubes():
    section = stc_settings(PARAMS)
    assert section["settings"] == CubeSettings(frames=5, size=32) and section["n_jobs"] == 2
    defaults = copy.deepcopy(PARAMS)
    defaults["stc"] = {}
    assert stc_settings(defaults)["settings"] == CubeSettings()
    assert stc_settings(with_stc(flow_units="cube"))["settings"].flow_units == "cube"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"frames": 1}, r"'stc\.frames' must be >= 2, got 1"),
        ({"frames": 4.5}, r"'stc\.frames' must be an integer"),
        ({"size": 0}, r"'stc\.size' must be >= 1, got 0"),
        ({"size": [32, 32]}, r"'stc\.size' must be an integer"),
        ({"n_jobs": 0}, r"'stc\.n_jobs' must be >= 1"),
        ({"frame": 5}, r"unknown key 'stc\.frame' \(did you mean 'stc\.frames'\?\)"),
        ({"flow_units": "pixels"}, r"'stc\.flow_units' must be one of \['cube', 'frame'\]"),
    ],
)
def test_params_errors_name_the_key(values, message):
    with pytest.raises(ConfigError, match=message):
        stc_settings(with_stc(**values))
    errors = check_params(with_stc(**values))
    assert len(errors) == 1 and re.search(message, errors[0]), errors


def test_cube_settings_refuse_what_no_cube_can_be():
    with pytest.raises(ValueError, match="at least 2 frames"):
        CubeSettings(frames=1)
    with pytest.raises(ValueError, match="positive integer"):
        CubeSettings(size=0)
    with pytest.raises(ValueError, match="flow_units must be one of"):
        CubeSettings(flow_units="pixels")
