from __future__ import annotations

import numpy as np
import pytest

from vad.cache import chunked_dataset, write_h5
from vad.methods.baseline.energy import BaselineModel, difference_energy, frame_scores
from vad.methods.baseline.method import video_energy


def test_difference_energy_per_cell():
    frames = np.zeros((3, 4, 6), np.uint8)
    frames[1, :2, :2] = 8  # frame 1 differs from frame 0 in the top-left cell only
    energy = difference_energy(frames, patch=2)
    assert energy.shape == (3, 2, 3)
    assert energy[1, 0, 0] == 8 and energy[1].sum() == 8
    assert energy[2, 0, 0] == 8  # frame 2 returns to zero
    np.testing.assert_array_equal(energy[0], energy[1])  # frame 0 takes frame 1's difference


def test_model_z_scores_against_training_cells():
    rng = np.random.default_rng(0)
    train = [rng.normal(5, 2, size=(50, 2, 3)) for _ in range(3)]
    model = BaselineModel.fit(train)
    test = np.full((1, 2, 3), 5.0)
    test[0, 1, 2] = 15.0
    maps = model.score_maps(test)
    assert abs(maps[0, 0, 0]) < 0.5
    assert maps[0, 1, 2] > 3
    assert frame_scores(maps)[0] == maps[0, 1, 2]


def test_errors():
    with pytest.raises(ValueError, match="multiple of the patch"):
        difference_energy(np.zeros((2, 5, 6), np.uint8), patch=2)
    with pytest.raises(ValueError, match="at least 2 frames"):
        difference_energy(np.zeros((1, 4, 4), np.uint8), patch=2)
    model = BaselineModel.fit([np.zeros((2, 2, 2))])
    with pytest.raises(ValueError, match="does not match"):
        model.score_maps(np.zeros((1, 3, 3)))


def test_energy_read_a_block_of_frames_at_a_time_equals_the_whole_videos(tmp_path):
    """The prepare stage reads BLOCK_FRAMES frames at a time, each block after the first
    differenced with the frame before it."""
    frames = np.random.default_rng(0).integers(0, 255, (70, 28, 42, 1), dtype=np.uint8)
    with write_h5(tmp_path / "frames.h5", {}) as f:
        chunked_dataset(f.create_group("train/a"), "frames", frames)
    energy = video_energy(tmp_path / "frames.h5", "train/a", (42, 28), 14)
    np.testing.assert_array_equal(energy, difference_energy(frames, 14))
