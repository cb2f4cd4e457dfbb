from __future__ import annotations

import numpy as np
import pytest

from vad.cache import chunked_dataset, video_key, write_h5
from vad.methods.gmfc_vae.patches import (
    PatchSettings,
    extract_training_patches,
    patch_grid,
    sample_locations,
    scoring_grid,
)
from vad.motion.frame_difference import moving_counts, moving_pixels


def test_paper_grids_at_420x280():
    frames = np.zeros((2, 280, 420, 3), np.uint8)
    assert scoring_grid(frames, 28).shape == (2, 10, 15, 28, 28, 3)  # the 15×10 grid
    assert patch_grid(frames, 28, 7).shape == (2, 37, 57, 28, 28, 3)  # stride 7


def test_patch_grid_content():
    frames = np.arange(2 * 8 * 8 * 3, dtype=np.int64).reshape(2, 8, 8, 3)
    grid = patch_grid(frames, 4, 2)
    np.testing.assert_array_equal(grid[1, 2, 1], frames[1, 4:8, 2:6])


def test_moving_counts_match_direct_sums():
    rng = np.random.default_rng(0)
    moving = rng.random((3, 20, 30)) > 0.7
    counts = moving_counts(moving, patch=6, stride=4)
    for t, r, c in [(0, 0, 0), (2, 3, 6), (1, 1, 2)]:
        assert counts[t, r, c] == moving[t, 4 * r : 4 * r + 6, 4 * c : 4 * c + 6].sum()


def test_moving_pixels_threshold():
    gray = np.zeros((3, 4, 4), np.uint8)
    gray[1, 0, 0] = 50
    moving = moving_pixels(gray, threshold=10)
    assert moving[1, 0, 0] and moving[2, 0, 0] and moving[0, 0, 0]
    assert moving.sum() == 3


def _frames_file(path, videos):
    with write_h5(path, {}) as f:
        for name, frames in videos.items():
            group = f.create_group(video_key("train", name))
            chunked_dataset(group, "frames", frames)
            group.attrs.update(name=name, split="train")


def test_sampling_keeps_only_moving_patches(tmp_path):
    frames = np.zeros((4, 56, 56, 1), np.uint8)
    for t in range(4):
        frames[t, 5 + t : 15 + t, 5:15] = 200  # a square moving down in the top-left
    _frames_file(tmp_path / "frames.h5", {"a": frames, "b": np.zeros_like(frames)})
    settings = PatchSettings(size=(56, 56), patch=28, train_stride=7, n_train=1000, seed=1)
    keys, locations = sample_locations(tmp_path / "frames.h5", settings, progress=False)
    assert keys == ["train/a", "train/b"]
    assert len(locations) > 0 and (locations[:, 0] == 0).all()  # the still video gives none
    assert (locations[:, 2] <= 2).all() and (locations[:, 3] <= 2).all()
    patches = extract_training_patches(
        "rgb", tmp_path / "frames.h5", None, keys, locations, settings, progress=False
    )
    assert patches.shape == (len(locations), 28, 28, 3) and patches.dtype == np.uint8
    _, t, r, c = locations[0]
    np.testing.assert_array_equal(
        patches[0, ..., 0], frames[t, 7 * r : 7 * r + 28, 7 * c : 7 * c + 28, 0]
    )
    again = sample_locations(tmp_path / "frames.h5", settings, progress=False)[1]
    np.testing.assert_array_equal(locations, again)  # seeded


def test_no_motion_is_an_error(tmp_path):
    _frames_file(tmp_path / "frames.h5", {"a": np.zeros((3, 28, 28, 1), np.uint8)})
    with pytest.raises(ValueError, match="no training patch"):
        sample_locations(tmp_path / "frames.h5", PatchSettings(size=(28, 28)), progress=False)


def test_the_sample_drawn_in_two_passes_is_the_draw_from_every_candidate_at_once(tmp_path):
    """sample_locations counts the moving locations, then keeps the chosen ones in a second
    pass over blocks of frames: the same sample as drawing from the list of all candidates of
    every video (the definition), for videos longer than a block; its patches are the grid's."""
    rng = np.random.default_rng(3)
    videos = {name: rng.integers(0, 255, (70, 42, 56, 1), dtype=np.uint8) for name in "abc"}
    videos["b"][:] = videos["b"][:1]  # a still video: no candidate
    videos["c"][30:40] = videos["c"][30:31]
    _frames_file(tmp_path / "frames.h5", videos)
    settings = PatchSettings(size=(56, 42), patch=28, train_stride=7, motion_threshold=240,
                             min_moving_pixels=2, n_train=500, seed=4)  # fmt: skip
    keys, locations = sample_locations(tmp_path / "frames.h5", settings, progress=False)
    candidates = []
    for index, key in enumerate(keys):
        gray = videos[key.split("/")[1]][..., 0]
        counts = moving_counts(moving_pixels(gray, 240), 28, 7)
        frame, row, col = np.nonzero(counts >= 2)
        candidates.append(np.stack([np.full_like(frame, index), frame, row, col], axis=1))
    pool = np.concatenate(candidates)
    assert 500 < len(pool) < 50 * 500  # a draw of 500 of them, not all
    chosen = np.random.default_rng(4).choice(len(pool), size=500, replace=False)
    np.testing.assert_array_equal(locations, pool[np.sort(chosen)])
    patches = extract_training_patches(
        "rgb", tmp_path / "frames.h5", None, keys, locations, settings, progress=False
    )
    for (video, t, r, c), patch in zip(locations[::37], patches[::37], strict=True):
        frame = videos[keys[video].split("/")[1]][t, ..., 0]
        np.testing.assert_array_equal(patch[..., 0], frame[7 * r : 7 * r + 28, 7 * c : 7 * c + 28])
