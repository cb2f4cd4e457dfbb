from __future__ import annotations

import numpy as np
import pytest

from vad.fusion import fuse
from vad.scores import ScoreSet, VideoScores, read_scores, write_scores


def _scores(model, train_maps, test_maps):
    def video(maps):
        return VideoScores(maps.reshape(len(maps), -1).max(1), maps)

    return ScoreSet(model, test={"t": video(test_maps)}, train={"a": video(train_maps)})


def test_fusion_is_eq18_on_standardized_patch_energies():
    rng = np.random.default_rng(0)
    app = _scores("rgb", rng.normal(100, 10, (20, 2, 3)), rng.normal(100, 10, (5, 2, 3)))
    mot = _scores("dyn", rng.normal(-3, 0.5, (20, 2, 3)), rng.normal(-3, 0.5, (5, 2, 3)))
    fused = fuse(app, mot, alpha=0.25, beta=0.75)
    ta, tm = app.train["a"].score_maps, mot.train["a"].score_maps
    expected = (
        0.25 * (app.test["t"].score_maps - ta.mean()) / ta.std()
        + 0.75 * (mot.test["t"].score_maps - tm.mean()) / tm.std()
    )
    np.testing.assert_allclose(fused.test["t"].score_maps, expected)
    np.testing.assert_allclose(fused.test["t"].frame_scores, expected.reshape(5, -1).max(1))
    only_motion = fuse(app, mot, alpha=0.0, beta=1.0, normalize="none")
    np.testing.assert_allclose(only_motion.test["t"].score_maps, mot.test["t"].score_maps)


def test_fusion_errors():
    a = _scores("rgb", np.zeros((2, 1, 1)), np.zeros((2, 1, 1)))
    b = _scores("dyn", np.zeros((2, 1, 1)), np.zeros((3, 1, 1)))
    with pytest.raises(ValueError, match="video t"):
        fuse(a, b, 0.5, 0.5)
    with pytest.raises(ValueError, match="normalize"):
        fuse(a, a, 0.5, 0.5, normalize="rank")


def test_score_file_round_trip(tmp_path):
    maps = np.arange(12, dtype=np.float32).reshape(2, 2, 3)
    scores = _scores("m", maps, maps)
    write_scores(tmp_path / "m.h5", scores)
    back = read_scores(tmp_path / "m.h5")
    np.testing.assert_array_equal(back.test["t"].score_maps, maps)
    assert back.train_statistics() == pytest.approx((8.0, 3.0))  # frame maxima 5 and 11
    with pytest.raises(FileNotFoundError, match="score stage"):
        read_scores(tmp_path / "missing.h5")
