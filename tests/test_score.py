from __future__ import annotations

import numpy as np
import pytest
import torch

from vad.cache import chunked_dataset, video_key, write_h5
from vad.methods.gmfc_vae.model import GMFCVAE
from vad.methods.gmfc_vae.score import mode_energy, moving_grid, score_stream, score_video

SIZE = (56, 28)  # a 2×1 grid of 28×28 patches


@pytest.fixture
def frames_file(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "frames.h5"
    base = rng.integers(0, 255, (28, 56), dtype=np.uint8)
    with write_h5(path, {}) as f:
        for split, name in [("train", "a"), ("test", "b")]:
            frames = np.repeat(base[None], 6, axis=0).copy()
            for t in range(6):  # something moves in the left patch only
                frames[t, 5:15, 3 + t : 10 + t] = 255
            group = f.create_group(video_key(split, name))
            chunked_dataset(group, "frames", frames[..., None])
            group.attrs.update(name=name, split=split)
    return path


def model() -> GMFCVAE:
    torch.manual_seed(0)
    return GMFCVAE(n_components=3).eval()


def test_mode_energy_is_the_lowest_energy_among_component_means():
    m = model()
    with torch.no_grad():
        expected = min(float(m.sample_energy(mu.double()[None])) for mu in m.mu_c)
    assert mode_energy(m) == pytest.approx(expected)


@pytest.mark.parametrize("rule", ["mode", "score"])
def test_static_patches_rule(frames_file, rule):
    m = model()
    kwargs = dict(
        size=SIZE,
        patch=28,
        train_stride=2,
        batch_size=64,
        device="cpu",
        static_patches=rule,
        progress=False,
    )
    result = score_stream(m, "gmfc_vae_rgb", "rgb", frames_file, None, **kwargs).collect()
    assert result.model == "gmfc_vae_rgb"
    maps = result.test["b"].score_maps
    assert maps.shape == (6, 1, 2)
    assert result.train["a"].score_maps.shape == (3, 1, 2)
    np.testing.assert_array_equal(result.train["a"].frame_indices, [0, 2, 4])
    np.testing.assert_allclose(result.test["b"].frame_scores, maps.max(axis=(1, 2)))
    if rule == "mode":
        assert np.all(maps[:, 0, 1] == mode_energy(m))  # the static right-hand patch
        assert np.all(maps[:, 0, 0] != mode_energy(m))
    else:
        assert len(np.unique(maps[:, 0, 1])) == 1 and maps[0, 0, 1] != mode_energy(m)


def test_unknown_rule(frames_file):
    with pytest.raises(ValueError, match="static_patches"):
        score_stream(
            model(),
            "gmfc_vae_rgb",
            "rgb",
            frames_file,
            None,
            SIZE,
            28,
            1,
            8,
            "cpu",
            static_patches="ignore",
            progress=False,
        )


def test_long_videos_scored_a_block_at_a_time_equal_their_whole_video_scores(tmp_path):
    """The score stage reads BLOCK_FRAMES frames at a time and cuts the model's batches from
    the stream of patches (7 here: batches straddle frames and blocks): the maps are those of
    the whole video (`score_video`, `moving_grid`), training frames (every 3rd) included."""
    rng = np.random.default_rng(1)
    path, videos = tmp_path / "frames.h5", {}
    with write_h5(path, {}) as f:
        for split, name in [("train", "a"), ("test", "b")]:
            frames = rng.integers(0, 255, (70, 28, 56, 1), dtype=np.uint8)
            frames[::5] = frames[1::5]  # some frames do not move
            videos[split] = frames
            group = f.create_group(video_key(split, name))
            chunked_dataset(group, "frames", frames)
            group.attrs.update(name=name, split=split)
    m = model()
    result = score_stream(
        m, "gmfc_vae_rgb", "rgb", path, None, SIZE, 28, 3, 7, "cpu", progress=False
    ).collect()
    for split, name, indices in [("train", "a", np.arange(0, 70, 3)), ("test", "b", np.arange(70))]:
        frames = videos[split]
        expected = score_video(m, np.repeat(frames, 3, axis=-1)[indices], 28, 7, "cpu")
        moving = moving_grid(frames[..., 0], 28, 10.0, 1)[indices]
        assert not moving.all()
        expected = np.where(moving, expected, mode_energy(m))
        scores = getattr(result, split)[name]
        np.testing.assert_array_equal(scores.score_maps, expected)
