"""ShanghaiTech by scene (`data.scenes`): the reader opens only the chosen scenes' training and
test clips, with their own labels and masks; unknown scenes, scenes without test videos and
scenes for a dataset without scenes are refused naming what there is; and the frames stage's
caches change with the scenes chosen."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from dataset_fixtures import (
    HEIGHT,
    SCENE_TEST,
    SCENE_TRAIN,
    WIDTH,
    frame_mask,
    frame_rgb,
    labels_for,
    scene_clip,
    write_frames_layout,
    write_image,
    write_shanghaitech_scenes,
)

from vad import cli
from vad.cache import cache_digest, open_cache
from vad.config import ConfigError
from vad.datasets import DatasetError, open_dataset
from vad.datasets.scenes import requested_scenes, scene_of
from vad.frame_cache import load_ground_truth, load_masks, video_keys
from vad.params.data import data_settings

REPO = Path(__file__).resolve().parents[1]
EVERY_SCENE = "01, 02, 04 (training and test videos); 13 (training videos only)"


def clips_of(names, scenes: tuple[str, ...]) -> list[str]:
    return [name for name in names if name.split("_")[0] in scenes]


def assert_clip(video, tolerance: float = 4.0) -> None:
    """The video holds the frames written for its clip (MJPG/JPEG: mean error < tolerance)."""
    for index in range(video.num_frames):
        frame = video.frame(index)
        assert frame.shape == (HEIGHT, WIDTH, 3)
        error = np.abs(frame.astype(int) - frame_rgb(scene_clip(video.name), index)).mean()
        assert error < tolerance, (video.name, index, error)


def assert_scenes(dataset, scenes: tuple[str, ...]) -> None:
    """`dataset` holds exactly the training and test clips of `scenes`, each with its frames,
    and each test clip its own labels and masks."""
    assert dataset.scenes == scenes
    assert [v.name for v in dataset.train] == clips_of(SCENE_TRAIN, scenes)
    assert [v.name for v in dataset.test] == clips_of(SCENE_TEST, scenes)
    assert sorted(dataset.ground_truth) == clips_of(SCENE_TEST, scenes)
    for video in dataset.train:
        assert video.num_frames == SCENE_TRAIN[video.name]
        assert_clip(video)
    for video in dataset.test:
        length, ranges = SCENE_TEST[video.name]
        assert video.num_frames == length
        assert_clip(video)
        truth = dataset.ground_truth[video.name]
        np.testing.assert_array_equal(truth.labels, labels_for(ranges, length))
        masks = truth.load_masks()
        assert masks.shape == (length, HEIGHT, WIDTH)
        for mask, anomalous in zip(masks, labels_for(ranges, length), strict=True):
            np.testing.assert_array_equal(mask, frame_mask(anomalous) > 0)


# ----------------------------------------------------------------------------- the reader


@pytest.mark.parametrize("layout", ["shanghaitech", "frames"])
@pytest.mark.parametrize(
    ("scenes", "chosen"),
    [
        (["01"], ("01",)),
        ([4], ("04",)),
        (["04", 1], ("01", "04")),  # order given does not matter
        ([2, "4", "1"], ("01", "02", "04")),
    ],
)
def test_chosen_scenes_only(tmp_path, layout, scenes, chosen):
    root = write_shanghaitech_scenes(tmp_path, layout=layout)
    assert_scenes(open_dataset("shanghaitech", root, scenes=scenes), chosen)


def test_every_scene_without_a_choice(tmp_path):
    dataset = open_dataset("shanghaitech", write_shanghaitech_scenes(tmp_path))
    assert [v.name for v in dataset.train] == list(SCENE_TRAIN)  # scene 13's too
    assert [v.name for v in dataset.test] == list(SCENE_TEST)
    assert dataset.scenes is None and dataset.summary()["scenes"] is None


def test_summary_and_vad_info_of_chosen_scenes(tmp_path, capsys):
    root = write_shanghaitech_scenes(tmp_path)
    cli.main(["info", "shanghaitech", str(root), "--scenes", "4", "01"])
    summary = json.loads(capsys.readouterr().out)
    assert summary["scenes"] == ["01", "04"]
    assert summary["train_videos"] == 4 and summary["test_videos"] == 3
    assert summary["train_frames"] == 6 + 5 + 5 + 4
    assert summary["test_frames"] == 8 + 7 + 5
    assert summary["test_anomalous_frames"] == 3 + 4 + 3


def test_only_the_chosen_scenes_label_files_are_read_and_counted(tmp_path):
    root = write_shanghaitech_scenes(tmp_path)
    labels = root / "testing" / "test_frame_mask"
    (labels / "02_0128.npy").unlink()
    (labels / "04_0009.npy").write_bytes(b"an orphan label file of scene 04")
    assert_scenes(open_dataset("shanghaitech", root, scenes=["01"]), ("01",))
    with pytest.raises(DatasetError, match="02_0128.npy: ground-truth file not found"):
        open_dataset("shanghaitech", root)
    with pytest.raises(DatasetError, match="0 .npy files of the chosen scenes but .* has 1 test"):
        open_dataset("shanghaitech", root, scenes=["02"])
    with pytest.raises(DatasetError, match="2 .npy files of the chosen scenes but .* has 1 test"):
        open_dataset("shanghaitech", root, scenes=["04"])


# ----------------------------------------------------------------------------- refused choices


@pytest.mark.parametrize("layout", ["shanghaitech", "frames"])
def test_an_unknown_scene_names_the_scenes_there_are(tmp_path, layout):
    root = write_shanghaitech_scenes(tmp_path, layout=layout)
    with pytest.raises(DatasetError) as info:
        open_dataset("shanghaitech", root, scenes=["01", 14])
    assert str(info.value) == f"{root}: no scene 14 in this dataset; its scenes are {EVERY_SCENE}"


def test_a_scene_without_test_videos_is_refused(tmp_path):
    root = write_shanghaitech_scenes(tmp_path)
    with pytest.raises(DatasetError) as info:
        open_dataset("shanghaitech", root, scenes=["13"])
    assert str(info.value) == (
        f"{root}: scene 13 has no test videos, and a chosen scene is both trained and tested on; "
        f"its scenes are {EVERY_SCENE}"
    )


def test_a_clip_named_without_its_scene_is_named(tmp_path):
    root = write_shanghaitech_scenes(tmp_path)
    write_image(root / "testing" / "frames" / "extra" / "000.jpg", frame_rgb(0, 0))
    with pytest.raises(DatasetError, match=r"cannot tell the scene of test clip 'extra'"):
        open_dataset("shanghaitech", root, scenes=["01"])


@pytest.mark.parametrize(
    ("scenes", "message"),
    [
        ("01", "must be null (every scene) or a list of scene ids, got '01'"),
        ([], "is an empty list"),
        (["01", "x"], "'x' is not a scene id"),
        ([-1], "-1 is not a scene id"),
        ([True], "True is not a scene id"),
        ([1.0], "1.0 is not a scene id"),
        (["١"], "'١' is not a scene id"),  # an Arabic-Indic digit: str.isdigit, not a scene
        ([1, "04", "01"], "names scene 1 more than once ([1, '01'])"),
    ],
)
def test_malformed_choices_are_refused(scenes, message):
    with pytest.raises(ValueError) as info:
        requested_scenes(scenes)
    assert message in str(info.value)


def test_scenes_of_a_dataset_without_scenes_are_refused(tmp_path):
    root = write_frames_layout(tmp_path / "ped2")
    with pytest.raises(ValueError, match=r"dataset 'ped2' has no scenes to choose .* \['01'\]"):
        open_dataset("ped2", root, scenes=["01"])
    with pytest.raises(ValueError, match="dataset 'synthetic' has no scenes"):
        open_dataset("synthetic", None, scenes=[1])
    shanghaitech = write_shanghaitech_scenes(tmp_path / "sht")
    with pytest.raises(ValueError, match="scenes are read from the shanghaitech or frames layout"):
        open_dataset("shanghaitech", shanghaitech, layout="videos", scenes=[1])


def test_scene_of_a_clip_name():
    assert scene_of("01_0014") == "01" and scene_of("13_001") == "13"
    assert scene_of("extra") is None and scene_of("01_x") is None and scene_of("01") is None


# ----------------------------------------------------------------------------- data.scenes


def data_params(root: Path, scenes, name: str = "shanghaitech") -> dict:
    return {"data": {"name": name, "root": str(root), "layout": "auto", "scenes": scenes}}


def test_data_scenes_param(tmp_path):
    root = write_shanghaitech_scenes(tmp_path)
    assert data_settings(data_params(root, None))["scenes"] is None
    assert data_settings(data_params(root, [4, "01"]))["scenes"] == ("01", "04")
    params = {"data": {"name": "shanghaitech", "root": str(root)}}  # the key may be left out
    assert data_settings(params)["scenes"] is None


@pytest.mark.parametrize(
    ("scenes", "message"),
    [
        ([14], f"no scene 14 in this dataset; its scenes are {EVERY_SCENE}"),
        (["13"], "scene 13 has no test videos"),
        ([], "is an empty list: give at least one scene id, or null for every scene"),
        (["1", 1], "names scene 1 more than once"),
        ({"01": 1}, "must be null (every scene) or a list of scene ids"),
    ],
)
def test_data_scenes_errors_name_the_key(tmp_path, scenes, message):
    root = write_shanghaitech_scenes(tmp_path)
    with pytest.raises(ConfigError) as info:
        data_settings(data_params(root, scenes))
    assert str(info.value).startswith("params.yaml: 'data.scenes' ")
    assert message in str(info.value)


def test_data_scenes_for_a_dataset_without_scenes(tmp_path):
    root = write_frames_layout(tmp_path / "ped2")
    with pytest.raises(ConfigError) as info:
        data_settings(data_params(root, ["01"], name="ped2"))
    assert str(info.value) == (
        "params.yaml: 'data.scenes' chooses scenes of shanghaitech; dataset 'ped2' has none "
        "(set it to null)"
    )
    params = {"data": {"name": "synthetic", "scenes": [1]}}
    with pytest.raises(ConfigError, match="dataset 'synthetic' has none"):
        data_settings(params)


# ----------------------------------------------------------------------------- the frames stage


def run_frames_stage(tmp_path: Path, monkeypatch, root: Path, scenes) -> tuple[Path, Path]:
    """`python -m stages.frames` with data.scenes = `scenes`: (frames.h5, ground_truth.h5)."""
    monkeypatch.syspath_prepend(str(REPO))  # stages/ as `python -m` finds it
    from stages import frames as frames_stage

    monkeypatch.chdir(tmp_path)
    params = {**data_params(root, scenes), "frames": {"color": "rgb", "size": None}}
    (tmp_path / "params.yaml").write_text(json.dumps(params))  # JSON is YAML
    argv = ["frames", "--frames", "frames.h5", "--ground-truth", "ground_truth.h5"]
    monkeypatch.setattr(sys, "argv", argv)
    frames_stage.main()
    return tmp_path / "frames.h5", tmp_path / "ground_truth.h5"


def cache_settings(path: Path) -> dict:
    with open_cache(path) as f:
        return json.loads(f.attrs["settings"])


def test_the_frames_caches_change_with_the_scenes(tmp_path, monkeypatch):
    root = write_shanghaitech_scenes(tmp_path / "sht")
    digests = {}
    for scenes, chosen in ((["01"], ("01",)), ([4, 1], ("01", "04")), (None, ("01", "02", "04"))):
        frames, truth = run_frames_stage(tmp_path, monkeypatch, root, scenes)
        train = clips_of(SCENE_TRAIN, chosen + ("13",) if scenes is None else chosen)
        test = clips_of(SCENE_TEST, chosen)
        assert video_keys(frames) == [f"train/{n}" for n in train] + [f"test/{n}" for n in test]
        labels, with_masks = load_ground_truth(truth)
        assert sorted(labels) == test and with_masks == set(test)
        for name in test:
            length, ranges = SCENE_TEST[name]
            np.testing.assert_array_equal(labels[name], labels_for(ranges, length))
            assert load_masks(truth, name).shape == (length, HEIGHT, WIDTH)
        settings = cache_settings(frames)
        if scenes is None:  # a whole dataset's cache records no scenes, as before data.scenes
            assert "scenes" not in settings
        else:
            assert settings["scenes"] == list(chosen)
        digests[chosen] = (cache_digest(frames), cache_digest(truth))
    assert len({frames for frames, _ in digests.values()}) == 3
    assert len({truth for _, truth in digests.values()}) == 3
