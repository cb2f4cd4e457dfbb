from __future__ import annotations

import numpy as np
import pytest

from vad.config import ConfigError, Section
from vad.fusion import fuse, fused_models, fused_stream
from vad.scores import (
    ScoreSet,
    ScoreStream,
    VideoScores,
    open_scores,
    read_score_attrs,
    read_scores,
    train_statistics,
    write_scores,
)


def _scores(model, train_maps, test_maps):
    def video(maps):
        return VideoScores(maps.reshape(len(maps), -1).max(1), maps)

    return ScoreSet(model, test={"t": video(test_maps)}, train={"a": video(train_maps)})


def _frames_only(model, train, test):
    return ScoreSet(
        model,
        test={"t": VideoScores(np.asarray(test))},
        train={"a": VideoScores(np.asarray(train))},
    )


def test_fusion_is_eq18_on_standardized_patch_energies():
    rng = np.random.default_rng(0)
    app = _scores("rgb", rng.normal(100, 10, (20, 2, 3)), rng.normal(100, 10, (5, 2, 3)))
    mot = _scores("dyn", rng.normal(-3, 0.5, (20, 2, 3)), rng.normal(-3, 0.5, (5, 2, 3)))
    fused = fuse("both", {"rgb": app, "dyn": mot}, {"rgb": 0.25, "dyn": 0.75})
    ta, tm = app.train["a"].score_maps, mot.train["a"].score_maps
    expected = (
        0.25 * (app.test["t"].score_maps - ta.mean()) / ta.std()
        + 0.75 * (mot.test["t"].score_maps - tm.mean()) / tm.std()
    )
    np.testing.assert_allclose(fused.test["t"].score_maps, expected)
    np.testing.assert_allclose(fused.test["t"].frame_scores, expected.reshape(5, -1).max(1))
    assert fused.model == "both"
    assert fused.attrs == {
        "parts": ["rgb", "dyn"],
        "weights": [0.25, 0.75],
        "normalize": "zscore",
        "level": "map",
    }
    only_motion = fuse("m", {"rgb": app, "dyn": mot}, {"rgb": 0.0, "dyn": 1.0}, normalize="none")
    np.testing.assert_allclose(only_motion.test["t"].score_maps, mot.test["t"].score_maps)


def test_three_parts_with_other_grids_fuse_frame_scores():
    """Maps of different shapes cannot be added cell by cell: the frame scores are fused, each
    standardised with its training frame statistics."""
    a = _scores("a", np.arange(8.0).reshape(2, 2, 2), np.ones((2, 2, 2)))
    b = _scores("b", np.arange(6.0).reshape(2, 1, 3), np.full((2, 1, 3), 4.0))
    c = _frames_only("c", [1.0, 3.0], [2.0, 5.0])
    fused = fuse("abc", {"a": a, "b": b, "c": c}, {"a": 1.0, "b": 2.0, "c": 0.5})
    assert fused.attrs["level"] == "frame" and fused.test["t"].score_maps is None

    def z(scores, values):
        train = scores.train["a"].frame_scores
        return (np.asarray(values) - train.mean()) / train.std()

    expected = 1.0 * z(a, [1, 1]) + 2.0 * z(b, [4, 4]) + 0.5 * z(c, [2, 5])
    np.testing.assert_allclose(fused.test["t"].frame_scores, expected)
    assert set(fused.train) == {"a"}


def test_fusion_errors():
    a = _scores("rgb", np.zeros((2, 1, 1)), np.zeros((2, 1, 1)))
    b = _scores("dyn", np.zeros((2, 1, 1)), np.zeros((3, 1, 1)))
    with pytest.raises(ValueError, match="video t"):
        fuse("x", {"rgb": a, "dyn": b}, {"rgb": 0.5, "dyn": 0.5})
    with pytest.raises(ValueError, match="normalize"):
        fuse("x", {"rgb": a}, {"rgb": 1.0}, normalize="rank")
    other = ScoreSet("dyn", test={"u": a.test["t"]}, train=a.train)
    with pytest.raises(ValueError, match="different test videos"):
        fuse("x", {"rgb": a, "dyn": other}, {"rgb": 0.5, "dyn": 0.5})


def test_fused_models_from_params_resolve_named_weights():
    params = {"fuse": {"alpha": 0.3, "beta": 0.7, "models": {"g": {"m1": "alpha", "m2": 2}}}}
    assert fused_models(Section(params, "fuse"), ["m1", "m2"]) == {"g": {"m1": 0.3, "m2": 2.0}}
    bad = [
        ({"g": {"m3": 1}}, "unknown part 'm3'"),
        ({"m1": {"m2": 1}}, "name of a method"),
        ({"g": {}}, "must map parts"),
        ({"g": {"m1": "gamma"}}, "fuse.gamma"),
        ({"g": {"m1": [1]}}, "weight must be a number"),
    ]
    for models, message in bad:
        with pytest.raises(ConfigError, match=message):
            fused_models(Section({"fuse": {"alpha": 1, "models": models}}, "fuse"), ["m1", "m2"])


def test_score_file_round_trip(tmp_path):
    maps = np.arange(12, dtype=np.float32).reshape(2, 2, 3)
    scores = _scores("m", maps, maps)
    scores.attrs = {"parts": ["p", "q"]}
    write_scores(tmp_path / "m.h5", scores)
    back = read_scores(tmp_path / "m.h5")
    np.testing.assert_array_equal(back.test["t"].score_maps, maps)
    assert back.model == "m" and back.attrs == {"parts": ["p", "q"]}
    assert read_score_attrs(tmp_path / "m.h5") == {"model": "m", "parts": ["p", "q"]}
    assert back.train_statistics() == pytest.approx((8.0, 3.0))  # frame maxima 5 and 11
    with pytest.raises(FileNotFoundError, match="score stage"):
        read_scores(tmp_path / "missing.h5")


def test_static_cells_are_left_out_of_the_fusion_statistics():
    """GMFC-VAE gives every static patch one constant (`static_value`): 90% of the training cells
    here. With them, the statistics are the constant's (std tiny, so this stream's moving cells
    become huge z-scores that swamp the other stream); without them, the moving cells'."""
    rng = np.random.default_rng(1)
    floor = -7.0
    train = np.full((40, 5, 4), floor)
    moving = rng.random(train.shape) < 0.1
    train[moving] = rng.normal(50.0, 5.0, moving.sum())
    test = np.full((3, 5, 4), floor)
    test[:, 0, 0] = [45.0, 50.0, 70.0]
    app = _scores("rgb", train, test)
    app.attrs = {"static_value": floor}
    mot = _scores("dyn", rng.normal(0, 1, (40, 5, 4)), np.zeros((3, 5, 4)))
    fused = fuse("both", {"rgb": app, "dyn": mot}, {"rgb": 1.0, "dyn": 1.0})
    cells = train[moving]
    dyn = mot.train["a"].score_maps
    expected = (test[:, 0, 0] - cells.mean()) / cells.std() + (0 - dyn.mean()) / dyn.std()
    np.testing.assert_allclose(fused.test["t"].score_maps[:, 0, 0], expected)
    # the moving cells' own z-scores: a normal cell (45, 50) near 0, an anomaly (70) at 4 sigma
    assert abs(expected[1]) < 1 and expected[2] > 3
    with_floor = (test[:, 0, 0] - train.mean()) / train.std()
    assert with_floor[1] > 2  # what the floor did: a normal energy looked anomalous
    maxima = train.reshape(40, -1).max(1)
    assert (maxima == floor).any()  # all-static frames exist, and are left out
    scored = maxima[maxima != floor]
    assert app.train_statistics() == pytest.approx((scored.mean(), scored.std()))


def test_static_value_survives_the_float32_score_file(tmp_path):
    floor = -7.123456789  # not a float32: the file stores maps as float32
    train = np.full((4, 2, 2), floor)
    train[0, 0, 0] = 1.0
    train[1, 1, 1] = 3.0
    scores = _scores("m", train, train)
    scores.attrs = {"static_value": floor}
    write_scores(tmp_path / "m.h5", scores)
    back = read_scores(tmp_path / "m.h5")
    np.testing.assert_array_equal(back.train_values(maps=True), [1.0, 3.0])
    np.testing.assert_array_equal(back.train_values(), [1.0, 3.0])


def test_fusing_score_files_a_video_at_a_time_equals_fusing_them_in_memory(tmp_path):
    """The fuse stage reads its parts one video at a time (`open_scores`) and writes the fused
    set as it comes: the same file, bit for bit, as fusing whole score sets, static cells and
    training frames of a subset included; the statistics are numpy's of all values."""
    rng = np.random.default_rng(2)
    parts = {}
    for part, floor in (("rgb", -7.0), ("dyn", None)):
        train = {}
        for name, count in (("a", 300), ("b", 7)):
            maps = rng.normal(50, 5, (count, 5, 4))
            indices = np.arange(0, 3 * len(maps), 3)  # every third frame scored
            train[name] = VideoScores(maps.reshape(len(maps), -1).max(1), maps, indices)
        if floor is not None:
            for video in train.values():
                video.score_maps[rng.random(video.score_maps.shape) < 0.8] = floor
        test = {"t": VideoScores(np.zeros(4), rng.normal(50, 9, (4, 5, 4)))}
        attrs = {} if floor is None else {"static_value": floor}
        parts[part] = ScoreSet(part, test=test, train=train, attrs=attrs)
        write_scores(tmp_path / f"{part}.h5", parts[part])
    weights = {"rgb": 0.3, "dyn": 0.7}
    whole = {part: read_scores(tmp_path / f"{part}.h5") for part in parts}
    write_scores(tmp_path / "memory.h5", fuse("g", whole, weights))
    with open_scores(tmp_path / "rgb.h5") as rgb, open_scores(tmp_path / "dyn.h5") as dyn:
        stream = fused_stream("g", {"rgb": rgb, "dyn": dyn}, weights)
        assert isinstance(stream, ScoreStream) and stream.attrs["level"] == "map"
        write_scores(tmp_path / "streamed.h5", stream)
        values = whole["rgb"].train_values(maps=True)
        assert train_statistics(rgb, maps=True) == (values.mean(), values.std())
    assert (tmp_path / "memory.h5").read_bytes() == (tmp_path / "streamed.h5").read_bytes()
