from __future__ import annotations

import re

import h5py
import numpy as np
import pytest
from dataset_fixtures import HEIGHT, WIDTH, write_frames_layout, write_image

from vad.cache import DIGEST, array_digest, cache_digest, combine_digests, video_digests
from vad.datasets import open_dataset
from vad.datasets.base import Dataset, DatasetError, GroundTruth, Video
from vad.datasets.synthetic import open_synthetic
from vad.frame_cache import (
    frame_blocks,
    load_frame,
    load_frames,
    load_ground_truth,
    load_masks,
    resize_frames,
    video_keys,
    write_frame_cache,
)

TINY = dict(width=96, height=64, train_videos=1, test_videos=2, frames_per_video=5)


@pytest.mark.parametrize(("color", "channels"), [("gray", 1), ("rgb", 3)])
def test_cache_holds_every_frame_at_the_requested_size(tmp_path, color, channels):
    dataset = open_synthetic(**TINY)
    write_frame_cache(
        dataset, tmp_path / "f.h5", tmp_path / "gt.h5", color=color, size=(48, 32), progress=False
    )
    assert video_keys(tmp_path / "f.h5") == ["train/train_00", "test/test_00", "test/test_01"]
    frames = load_frames(tmp_path / "f.h5", "test/test_01")
    assert frames.shape == (5, 32, 48, channels) and frames.dtype == np.uint8
    expected = resize_frames(np.stack(list(dataset.test[1].frames())), (48, 32))
    if color == "gray":
        expected = expected.mean(axis=-1, keepdims=True)  # the scene is grey in all channels
    np.testing.assert_allclose(frames, expected, atol=1)
    assert load_frames(tmp_path / "f.h5", "test/test_01", (24, 16), "rgb").shape == (5, 16, 24, 3)


def test_ground_truth_cache(tmp_path):
    dataset = open_synthetic(**TINY)
    write_frame_cache(dataset, tmp_path / "f.h5", tmp_path / "gt.h5", progress=False)
    labels, with_masks = load_ground_truth(tmp_path / "gt.h5")
    assert set(labels) == with_masks == {"test_00", "test_01"}
    for video in dataset.test:
        truth = dataset.ground_truth[video.name]
        np.testing.assert_array_equal(labels[video.name], truth.labels)
        np.testing.assert_array_equal(
            load_masks(tmp_path / "gt.h5", video.name), truth.load_masks()
        )


@pytest.mark.parametrize("color", ["gray", "rgb"])
def test_every_video_records_the_digest_of_its_stored_frames(tmp_path, color):
    dataset = open_synthetic(**TINY)
    frames, truth = tmp_path / "f.h5", tmp_path / "gt.h5"
    write_frame_cache(dataset, frames, truth, color=color, size=(48, 32), progress=False)
    digests = video_digests(frames)
    assert list(digests) == video_keys(frames)
    for key, digest in digests.items():
        assert digest == array_digest(load_frames(frames, key))
    with h5py.File(truth, "r") as f:
        for video in dataset.test:
            group = f[f"test/{video.name}"]
            parts = {"labels": group["labels"][()], "masks": group["masks"][()]}
            expected = combine_digests({name: array_digest(data) for name, data in parts.items()})
            assert group.attrs[DIGEST] == expected


def test_frame_digests_follow_the_content_not_the_settings(tmp_path):
    """Another seed: same shapes and settings attr, other pixels, so other digests."""
    write_frame_cache(open_synthetic(**TINY), tmp_path / "a.h5", tmp_path / "ga.h5", progress=False)
    write_frame_cache(open_synthetic(**TINY), tmp_path / "b.h5", tmp_path / "gb.h5", progress=False)
    reseeded = open_synthetic(**TINY, seed=1)
    write_frame_cache(reseeded, tmp_path / "c.h5", tmp_path / "gc.h5", progress=False)
    with h5py.File(tmp_path / "a.h5", "r") as a, h5py.File(tmp_path / "c.h5", "r") as c:
        assert a.attrs["settings"] == c.attrs["settings"]
        assert a["test/test_00/frames"].shape == c["test/test_00/frames"].shape
    assert cache_digest(tmp_path / "a.h5") == cache_digest(tmp_path / "b.h5")
    assert cache_digest(tmp_path / "a.h5") != cache_digest(tmp_path / "c.h5")
    first, reseeded_digests = video_digests(tmp_path / "a.h5"), video_digests(tmp_path / "c.h5")
    assert all(first[key] != reseeded_digests[key] for key in first)


def test_a_failing_video_leaves_no_cache(tmp_path):
    def broken(index: int) -> np.ndarray:
        if index == 2:
            raise DatasetError("clip/002.jpg: truncated JPEG")
        return np.zeros((8, 8, 3), np.uint8)

    video = Video("v", "test", 4, 8, 8, "clip", broken)
    dataset = Dataset("d", tmp_path, [], [video], {"v": GroundTruth(np.zeros(4, bool))})
    with pytest.raises(DatasetError, match="002.jpg"):
        write_frame_cache(dataset, tmp_path / "f.h5", tmp_path / "gt.h5", progress=False)
    assert not (tmp_path / "f.h5").exists()
    assert list(tmp_path.glob("*.h5*")) == []


def _wrong_size_mask_dataset(tmp_path):
    """A frames-layout Ped2 whose second test clip has one mask 4 rows too tall."""
    root = write_frames_layout(tmp_path / "ped2")
    mask = root / "testing" / "masks" / "02" / "003.png"
    write_image(mask, np.zeros((HEIGHT + 4, WIDTH), np.uint8))
    return open_dataset("ped2", root), mask


def test_a_wrong_size_mask_leaves_neither_cache(tmp_path):
    """The masks are checked before either file appears: no valid-looking frames.h5 is left."""
    dataset, mask = _wrong_size_mask_dataset(tmp_path)
    out = tmp_path / "interim"
    with pytest.raises(DatasetError, match=re.escape(f"{mask}: mask of size 48x36")):
        write_frame_cache(dataset, out / "frames.h5", out / "ground_truth.h5", progress=False)
    assert list(out.iterdir()) == []


def test_a_failure_leaves_an_older_pair_of_caches_as_it_was(tmp_path):
    out = tmp_path / "interim"
    frames, truth = out / "frames.h5", out / "ground_truth.h5"
    write_frame_cache(open_synthetic(**TINY), frames, truth, progress=False)
    before = {path: path.read_bytes() for path in (frames, truth)}
    dataset, _ = _wrong_size_mask_dataset(tmp_path)
    with pytest.raises(DatasetError, match="mask of size"):
        write_frame_cache(dataset, frames, truth, progress=False)
    assert {path: path.read_bytes() for path in out.iterdir()} == before


def test_blocks_of_frames_are_the_rows_of_the_whole_video(tmp_path):
    """Stages read a video a block at a time, converted and resized as `load_frames` does."""
    dataset = open_synthetic(**{**TINY, "frames_per_video": 11})
    write_frame_cache(dataset, tmp_path / "f.h5", tmp_path / "gt.h5", progress=False)
    whole = load_frames(tmp_path / "f.h5", "test/test_00", (24, 16), "rgb")
    blocks = list(frame_blocks(tmp_path / "f.h5", "test/test_00", (24, 16), "rgb", block=4))
    assert [first for first, _ in blocks] == [0, 4, 8]
    np.testing.assert_array_equal(np.concatenate([frames for _, frames in blocks]), whole)
    overlapping = list(frame_blocks(tmp_path / "f.h5", "test/test_00", block=4, overlap=1))
    assert [len(frames) for _, frames in overlapping] == [5, 5, 3]
    np.testing.assert_array_equal(
        load_frame(tmp_path / "f.h5", "test/test_00", 6, (24, 16), "rgb"), whole[6]
    )
    with pytest.raises(IndexError, match="no frame 11"):
        load_frame(tmp_path / "f.h5", "test/test_00", 11)


def test_masks_written_frame_by_frame_make_the_file_the_whole_stack_makes(tmp_path):
    """The synthetic scene draws its masks one frame at a time (`mask_frames`); a loader that
    only returns the whole stack gives the same ground-truth file, bit for bit."""
    dataset = open_synthetic(**{**TINY, "frames_per_video": 19})
    write_frame_cache(dataset, tmp_path / "f.h5", tmp_path / "gt.h5", progress=False)
    whole = Dataset(
        dataset.name, dataset.root, dataset.train, dataset.test,
        {name: GroundTruth(truth.labels, lambda truth=truth: truth.load_masks())
         for name, truth in dataset.ground_truth.items()},
    )  # fmt: skip
    write_frame_cache(whole, tmp_path / "f2.h5", tmp_path / "gt2.h5", progress=False)
    assert (tmp_path / "gt.h5").read_bytes() == (tmp_path / "gt2.h5").read_bytes()


@pytest.mark.parametrize(
    ("masks", "message"),
    [(np.zeros((5, 3, 3)), r"mask 0 .*shape \(3, 3\)"), (np.zeros((4, 64, 96)), "4 masks"),
     (np.zeros((6, 64, 96)), "mask 5 .*more masks")],
)  # fmt: skip
def test_masks_of_another_size_or_number_name_the_clip(tmp_path, masks, message):
    dataset = open_synthetic(**TINY)
    clip = dataset.test[0].name
    dataset.ground_truth[clip] = GroundTruth(dataset.ground_truth[clip].labels, lambda: masks)
    with pytest.raises(ValueError, match=message):
        write_frame_cache(dataset, tmp_path / "f.h5", tmp_path / "gt.h5", progress=False)
    assert not (tmp_path / "gt.h5").exists()
