"""Dataset readers: each layout on tiny fixtures written in the original formats, the bad inputs
they must reject (with the path at fault in the message), and the real Ped2 when present."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import sys
import types
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np
import pytest
import scipy.io
from dataset_fixtures import (
    HEIGHT,
    SHANGHAITECH_TEST,
    TEST_LENGTHS,
    TEST_RANGES,
    TRAIN_LENGTHS,
    clip_frames,
    damaged_jpeg,
    frame_gray,
    frame_mask,
    frame_rgb,
    gt_cell,
    labels_for,
    textured_frame,
    vol_label,
    write_avenue,
    write_avi,
    write_frames_layout,
    write_image,
    write_shanghaitech,
    write_ucsd,
    write_ucsd_m,
    write_videos,
)

from vad import cli
from vad.datasets import (
    DATASET_NAMES,
    LAYOUTS,
    DatasetError,
    corrupt_frame_warnings,
    imageio,
    open_dataset,
)
from vad.datasets.decoder_messages import capture_messages, corrupt_jpeg_messages, forward
from vad.datasets.frames import clip_ranges, read_mat_ranges
from vad.datasets.ucsd import parse_gt_file

EXPECTED_LABELS = [labels_for(r, n) for r, n in zip(TEST_RANGES, TEST_LENGTHS, strict=True)]


@contextmanager
def raises_naming(path: Path, *words: str):
    """Expect a DatasetError whose message names `path` (and contains `words`)."""
    with pytest.raises(DatasetError) as info:
        yield info
    message = str(info.value)
    assert str(path) in message, message
    for word in words:
        assert word in message, message


def assert_frames_close(video, clip: int, tolerance: float = 4.0) -> None:
    """The video's frames are those written for `clip` (lossy formats: mean error < tolerance,
    far below the ~23 levels between neighbouring frames)."""
    for index in range(video.num_frames):
        frame = video.frame(index)
        assert frame.shape == (HEIGHT, video.width, 3) and frame.dtype == np.uint8
        error = np.abs(frame.astype(int) - frame_rgb(clip, index)).mean()
        assert error < tolerance, (video.name, index, error)


def assert_ground_truth(dataset, masked: set[str]) -> None:
    assert len(dataset.ground_truth) == len(dataset.test)
    for video, expected in zip(dataset.test, EXPECTED_LABELS, strict=True):
        truth = dataset.ground_truth[video.name]
        assert truth.labels.dtype == bool
        np.testing.assert_array_equal(truth.labels, expected)
        if video.name in masked:
            masks = truth.load_masks()
            assert masks.shape == (video.num_frames, video.height, video.width)
            assert masks.dtype == bool
            np.testing.assert_array_equal(masks.any(axis=(1, 2)), expected)
            for mask, anomalous in zip(masks, expected, strict=True):
                np.testing.assert_array_equal(mask, frame_mask(anomalous) > 0)
        else:
            assert truth.load_masks is None


# ----------------------------------------------------------------------------- registry


def test_unknown_name_or_layout_lists_the_valid_ones(tmp_path):
    with pytest.raises(ValueError) as info:
        open_dataset("ped3", tmp_path)
    assert all(name in str(info.value) for name in DATASET_NAMES)
    with pytest.raises(ValueError) as info:
        open_dataset("ped2", tmp_path, layout="tiff")
    assert all(layout in str(info.value) for layout in LAYOUTS)


def test_missing_root_is_named(tmp_path):
    with raises_naming(tmp_path / "nowhere", "not found"):
        open_dataset("ped2", tmp_path / "nowhere")
    with pytest.raises(DatasetError, match="root"):
        open_dataset("frames", None)


def test_synthetic_delegates_with_options(monkeypatch):
    calls = []
    fake = types.ModuleType("vad.datasets.synthetic")
    fake.open_synthetic = lambda root=None, **options: calls.append((root, options)) or "dataset"
    monkeypatch.setitem(sys.modules, "vad.datasets.synthetic", fake)
    assert open_dataset("synthetic", None, options={"num_test": 2}) == "dataset"
    assert calls == [(None, {"num_test": 2})]
    assert open_dataset("synthetic", "/x") == "dataset"
    assert calls[-1] == ("/x", {})


def test_layout_auto_detection_and_forcing(tmp_path):
    frames_root = write_frames_layout(tmp_path / "ped2_frames")
    assert open_dataset("ped2", frames_root).test[0].source.endswith("01")
    assert open_dataset("ped2", frames_root, layout="frames").summary()["test_videos"] == 3
    with raises_naming(frames_root, "UCSDped2"):
        open_dataset("ped2", frames_root, layout="ucsd")
    # avenue and shanghaitech in the frames layout of the MNAD release
    avenue_frames = write_frames_layout(tmp_path / "avenue_frames", name="avenue", masks=False)
    dataset = open_dataset("avenue", avenue_frames)
    assert dataset.name == "avenue" and not dataset.has_pixel_masks
    assert_ground_truth(dataset, masked=set())


# ----------------------------------------------------------------------------- UCSD original


@pytest.mark.parametrize("subfolder", ["", "UCSDped2"])
def test_ucsd_original_layout(tmp_path, subfolder):
    root = write_ucsd(tmp_path) / subfolder
    dataset = open_dataset("ped2", root)
    assert dataset.name == "ped2"
    assert [v.name for v in dataset.train] == ["Train001", "Train002"]
    assert [v.name for v in dataset.test] == ["Test001", "Test002", "Test003"]
    assert [v.num_frames for v in dataset.train] == list(TRAIN_LENGTHS)  # junk files ignored
    assert [v.num_frames for v in dataset.test] == list(TEST_LENGTHS)
    # Test002_gt names its files frameNNN.bmp; Test003 has no _gt folder (as most of Ped1's)
    assert_ground_truth(dataset, masked={"Test001", "Test002"})
    assert not dataset.has_pixel_masks
    summary = dataset.summary()
    assert summary["test_anomalous_frames"] == sum(int(x.sum()) for x in EXPECTED_LABELS)
    for clip, video in enumerate(dataset.test):
        for index in range(video.num_frames):  # lossless TIFF: grayscale replicated exactly
            expected = np.repeat(frame_gray(clip, index)[..., None], 3, axis=2)
            np.testing.assert_array_equal(video.frame(index), expected)


def test_ucsd_picks_the_requested_subset(tmp_path):
    write_ucsd(tmp_path, ped=1, masked=())
    root = write_ucsd(tmp_path, ped=2)
    ped1 = open_dataset("ped1", root)
    assert all("UCSDped1" in v.source for v in ped1.videos)
    assert not any(g.has_masks for g in ped1.ground_truth.values())
    assert all("UCSDped2" in v.source for v in open_dataset("ped2", root).videos)


def test_ucsd_gt_file_parsing(tmp_path):
    path = tmp_path / "UCSDped1.m"
    path.write_text(
        "TestVideoFile = {};\n"
        "% TestVideoFile{end+1}.gt_frame = [1:2];  commented out\n"
        "TestVideoFile{end+1}.gt_frame = [60:152];\n"
        "TestVideoFile{end+1}.gt_frame = [1:10, 50:60];\n"
        "TestVideoFile{end+1}.gt_frame = [5:90 140:200];\n"
        "TestVideoFile{end+1}.gt_frame = [7];\n"
        "TestVideoFile{end+1}.gt_frame = [1:2:7, 20 : 1 : 22,];\n"
        "TestVideoFile{end+1}.gt_frame = [];\n"
    )
    assert parse_gt_file(path) == [
        [(60, 152)],
        [(1, 10), (50, 60)],
        [(5, 90), (140, 200)],
        [(7, 7)],
        [(1, 1), (3, 3), (5, 5), (7, 7), (20, 22)],  # a:step:b as MATLAB reads it
        [],
    ]
    path.write_text("TestVideoFile{end+1}.gt_frame = [1:0:7];\n")
    with raises_naming(path, "entry 1 [1:0:7]"):
        parse_gt_file(path)
    path.write_text("TestVideoFile{end+1}.gt_frame = [system('rm -rf /')];\n")
    with raises_naming(path, "entry 1"):
        parse_gt_file(path)
    path.write_text("nothing here\n")
    with raises_naming(path, "no 'gt_frame"):
        parse_gt_file(path)


def test_ucsd_gt_file_with_other_clip_count(tmp_path):
    root = write_ucsd(tmp_path)
    gt_file = write_ucsd_m(root / "UCSDped2" / "Test" / "UCSDped2.m", TEST_RANGES[:2])
    with raises_naming(gt_file, "2 clips", "3 test clips"):
        open_dataset("ped2", root)


def test_ucsd_missing_gt_file(tmp_path):
    root = write_ucsd(tmp_path)
    gt_file = root / "UCSDped2" / "Test" / "UCSDped2.m"
    gt_file.unlink()
    with raises_naming(gt_file, "not found"):
        open_dataset("ped2", root)


def test_ucsd_range_beyond_the_clip(tmp_path):
    root = write_ucsd(tmp_path)
    gt_file = write_ucsd_m(root / "UCSDped2" / "Test" / "UCSDped2.m", [[(3, 9)], [], []])
    with raises_naming(gt_file, "Test001"):
        open_dataset("ped2", root)


def test_ucsd_mask_count_mismatch(tmp_path):
    root = write_ucsd(tmp_path)
    masks_dir = root / "UCSDped2" / "Test" / "Test001_gt"
    (masks_dir / "008.bmp").unlink()
    with raises_naming(masks_dir, "7 mask images", "8 frames"):
        open_dataset("ped2", root)


def test_ucsd_masks_of_the_wrong_size(tmp_path):
    root = write_ucsd(tmp_path)
    bad = write_image(
        root / "UCSDped2" / "Test" / "Test001_gt" / "004.bmp", np.zeros((10, 10), np.uint8)
    )
    truth = open_dataset("ped2", root).ground_truth["Test001"]
    with raises_naming(bad, "10x10"):
        truth.load_masks()
    first = write_image(bad.with_name("001.bmp"), np.zeros((10, 10), np.uint8))
    with raises_naming(first, "mask of size"):  # the first mask is checked at open
        open_dataset("ped2", root)


def test_ucsd_masks_for_a_missing_clip(tmp_path):
    root = write_ucsd(tmp_path)
    orphan = root / "UCSDped2" / "Test" / "Test009_gt"
    orphan.mkdir()
    with raises_naming(orphan):
        open_dataset("ped2", root)


@pytest.mark.parametrize(
    ("damage", "words"),
    [
        ("garbage", ("not a JPEG/PNG/BMP/TIFF image (starts with bytes 6e 6f 74 20 61 20",)),
        ("truncated", ("unreadable or damaged TIFF image",)),
    ],
)
def test_ucsd_unreadable_frame(tmp_path, damage, words):
    root = write_ucsd(tmp_path)
    bad = root / "UCSDped2" / "Test" / "Test002" / "004.tif"
    data = bad.read_bytes()
    bad.write_bytes(b"not a tiff" if damage == "garbage" else data[: len(data) // 2])
    video = open_dataset("ped2", root).test[1]
    video.frame(2)
    with raises_naming(bad, *words):
        video.frame(3)


# ----------------------------------------------------------------------------- frames layout


@pytest.mark.parametrize("name", ["ped2", "frames"])
def test_frames_layout(tmp_path, name):
    root = write_frames_layout(tmp_path, name="ped2")
    dataset = open_dataset(name, root)
    assert dataset.name == name
    assert [v.name for v in dataset.train] == ["01", "02"]
    assert [v.name for v in dataset.test] == ["01", "02", "03"]
    assert [v.split for v in dataset.videos] == ["train"] * 2 + ["test"] * 3
    assert [v.num_frames for v in dataset.test] == list(TEST_LENGTHS)
    assert_ground_truth(dataset, masked={"01", "02", "03"})
    assert dataset.has_pixel_masks
    for clip, video in enumerate(dataset.train):
        assert_frames_close(video, 10 + clip)
    for clip, video in enumerate(dataset.test):
        assert_frames_close(video, clip)


def test_frames_labels_from_masks_without_mat(tmp_path):
    root = write_frames_layout(tmp_path, mat=False)
    dataset = open_dataset("frames", root)
    assert_ground_truth(dataset, masked={"01", "02", "03"})


def test_frames_without_any_ground_truth(tmp_path):
    root = write_frames_layout(tmp_path, mat=False, masks=False)
    dataset = open_dataset("frames", root)
    assert dataset.ground_truth == {} and not dataset.summary()["has_ground_truth"]
    with raises_naming(root, "ped2.mat"):  # a benchmark must have its ground truth
        open_dataset("ped2", root)


def test_frames_partial_masks(tmp_path):
    root = write_frames_layout(tmp_path)
    shutil.rmtree(root / "testing" / "masks" / "03")
    dataset = open_dataset("ped2", root)  # like Ped1: masks for some clips only
    assert_ground_truth(dataset, masked={"01", "02"})
    assert not dataset.has_pixel_masks
    (root / "ped2.mat").unlink()
    with raises_naming(root, "2 of 3"):
        open_dataset("frames", root)


def test_frames_mat_with_other_clip_count(tmp_path):
    root = write_frames_layout(tmp_path)
    scipy.io.savemat(root / "ped2.mat", {"gt": gt_cell(TEST_RANGES[:2])})
    with raises_naming(root / "ped2.mat", "2 clips", "3 test clips"):
        open_dataset("ped2", root)


def test_frames_mat_without_gt_variable(tmp_path):
    root = write_frames_layout(tmp_path)
    scipy.io.savemat(root / "ped2.mat", {"labels": gt_cell(TEST_RANGES)})
    with raises_naming(root / "ped2.mat", "'gt'", "labels"):
        open_dataset("ped2", root)


def test_frames_unreadable_mat(tmp_path):
    root = write_frames_layout(tmp_path)
    (root / "ped2.mat").write_bytes(b"MATLAB? no")
    with raises_naming(root / "ped2.mat", "unreadable"):
        open_dataset("ped2", root)


def test_frames_several_mat_files(tmp_path):
    root = write_frames_layout(tmp_path)
    shutil.copy(root / "ped2.mat", root / "other.mat")
    with raises_naming(root, "ped2.mat", "other.mat"):
        open_dataset("frames", root)
    assert open_dataset("ped2", root).summary()["test_anomalous_frames"] == 7  # ped2.mat wins


def test_frames_range_beyond_the_clip(tmp_path):
    root = write_frames_layout(tmp_path)
    scipy.io.savemat(root / "ped2.mat", {"gt": gt_cell([[(3, 9)], [], []])})
    with raises_naming(root / "ped2.mat", "[3, 9]"):
        open_dataset("ped2", root)


@pytest.mark.parametrize("rows", [False, True])
def test_frames_mat_ranges_in_either_orientation(tmp_path, rows):
    root = write_frames_layout(tmp_path)
    clip_ranges = [[(1, 1), (3, 5), (7, 8)], [(1, 2), (6, 7)], [(2, 6)]]  # 3, 2 and 1 ranges
    scipy.io.savemat(root / "ped2.mat", {"gt": gt_cell(clip_ranges, rows=rows)})
    arrays = read_mat_ranges(root / "ped2.mat")
    assert [a.shape for a in arrays] == (
        [(3, 2), (2, 2), (1, 2)] if rows else [(2, 3), (2, 2), (2, 1)]
    )
    dataset = open_dataset("ped2", root)
    for video, ranges in zip(dataset.test, clip_ranges, strict=True):
        expected = labels_for(ranges, video.num_frames)
        np.testing.assert_array_equal(dataset.ground_truth[video.name].labels, expected)


def test_clip_ranges_two_by_two_decided_by_validity():
    # the case: 88-120 and 150-180 of a 180-frame clip, stored either way
    for array in ([[88, 120], [150, 180]], [[88, 150], [120, 180]]):
        assert clip_ranges(np.array(array), 180, "gt") == [(88, 120), (150, 180)]
    for array in ([[7, 9]], [[7], [9]]):  # one range, as a row or a column
        assert clip_ranges(np.array(array), 10, "gt") == [(7, 9)]
    assert clip_ranges(np.zeros((2, 0), dtype=np.int64), 10, "gt") == []


@pytest.mark.parametrize(
    ("array", "readings"),
    [
        (
            [[5, 1], [6, 2]],
            (
                "[5, 6], [1, 2] (range [1, 2] does not start after",
                "[5, 1], [6, 2] (range [5, 1] ends before",
            ),
        ),
        (
            [[2, 5], [3, 9]],
            (
                "[2, 3], [5, 9] (range [5, 9] outside frames 1..7)",
                "[2, 5], [3, 9] (range [3, 9] outside",
            ),
        ),
    ],
)
def test_frames_mat_ambiguous_orientation_is_refused(tmp_path, array, readings):
    root = write_frames_layout(tmp_path)
    cell = gt_cell(TEST_RANGES)
    cell[0, 1] = np.array(array, dtype=np.uint16)
    scipy.io.savemat(root / "ped2.mat", {"gt": cell})
    with raises_naming(
        root / "ped2.mat", "gt{2}, clip 02", "cannot tell the orientation", *readings
    ):
        open_dataset("ped2", root)


def test_frames_mat_ranges_out_of_order(tmp_path):
    root = write_frames_layout(tmp_path)
    scipy.io.savemat(root / "ped2.mat", {"gt": gt_cell([[(6, 8), (1, 2), (4, 4)], [], []])})
    with raises_naming(root / "ped2.mat", "gt{1}, clip 01", "range [1, 2] does not start after"):
        open_dataset("ped2", root)


def test_frames_masks_of_the_wrong_size(tmp_path):
    root = write_frames_layout(tmp_path)
    bad = write_image(root / "testing" / "masks" / "02" / "003.png", np.zeros((20, 20), np.uint8))
    truth = open_dataset("ped2", root).ground_truth["02"]
    with raises_naming(bad, "20x20"):
        truth.load_masks()


def test_frames_mask_count_mismatch_and_orphan_folder(tmp_path):
    root = write_frames_layout(tmp_path)
    (root / "testing" / "masks" / "01" / "000.png").unlink()
    with raises_naming(root / "testing" / "masks" / "01", "7 mask images"):
        open_dataset("ped2", root)
    shutil.rmtree(root / "testing" / "masks" / "01")
    (root / "testing" / "masks" / "13").mkdir()
    with raises_naming(root / "testing" / "masks" / "13", "not in"):
        open_dataset("ped2", root)


def test_frames_missing_or_empty_folders(tmp_path):
    root = write_frames_layout(tmp_path)
    shutil.rmtree(root / "testing" / "frames" / "03")
    (root / "testing" / "frames" / "03").mkdir()
    (root / "testing" / "frames" / "03" / ".DS_Store").write_bytes(b"junk")
    with raises_naming(root / "testing" / "frames" / "03", "no frames"):
        open_dataset("frames", root)
    shutil.rmtree(root / "training" / "frames")
    (root / "training" / "frames").mkdir()
    with raises_naming(root / "training" / "frames", "no clip folders"):
        open_dataset("frames", root)
    shutil.rmtree(root / "training")
    with raises_naming(root / "training" / "frames", "not found"):
        open_dataset("frames", root)


def test_frames_truncated_jpeg(tmp_path):
    root = write_frames_layout(tmp_path)
    clip = root / "testing" / "frames" / "02"
    padded = clip / "001.jpg"
    padded.write_bytes(padded.read_bytes() + b"\0" * 64)  # trailing zero padding is fine
    truncated = clip / "005.jpg"
    data = truncated.read_bytes()
    truncated.write_bytes(data[: len(data) - 40])
    video = open_dataset("ped2", root).test[1]
    assert np.abs(video.frame(1).astype(int) - frame_rgb(1, 1)).mean() < 4
    with raises_naming(truncated, "truncated JPEG"):
        video.frame(5)
    first = clip / "000.jpg"
    first.write_bytes(first.read_bytes()[:100])
    with raises_naming(first, "truncated JPEG"):
        open_dataset("ped2", root)


def test_frames_corrupt_jpeg_data(tmp_path):
    root = write_frames_layout(tmp_path)
    bad = root / "testing" / "frames" / "02" / "003.jpg"
    intact, damaged = damaged_jpeg(textured_frame())
    # OpenCV alone decodes the damaged file without complaint, into a visibly wrong image
    decoded = [
        cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) for data in (intact, damaged)
    ]
    assert decoded[1] is not None
    assert np.abs(decoded[1].astype(int) - decoded[0]).mean() > 5
    bad.write_bytes(intact)
    video = open_dataset("ped2", root).test[1]
    np.testing.assert_array_equal(video.frame(3), cv2.cvtColor(decoded[0], cv2.COLOR_BGR2RGB))
    bad.write_bytes(damaged)
    video.frame(2)
    with raises_naming(bad, "corrupt JPEG data (libjpeg: Corrupt JPEG data:", "extraneous bytes"):
        video.frame(3)
    first = root / "training" / "frames" / "01" / "000.jpg"
    first.write_bytes(damaged)
    with raises_naming(first, "corrupt JPEG data"):
        open_dataset("ped2", root)


def test_frames_corrupt_jpeg_data_as_warning(tmp_path):
    root = write_frames_layout(tmp_path)
    clip = root / "testing" / "frames" / "02"
    for name in ("005.jpg", "003.jpg"):
        (clip / name).write_bytes(damaged_jpeg(textured_frame())[1])
    dataset = open_dataset("ped2", root, corrupt_frames="warn")
    assert corrupt_frame_warnings(dataset.videos) == []
    for video in dataset.videos:
        for frame in video.frames():
            assert frame.shape == (HEIGHT, video.width, 3)
    [line] = corrupt_frame_warnings(dataset.videos)
    assert line.startswith(f"{clip}: 2 of 7 frames have corrupt JPEG data and were used as decoded")
    assert "003.jpg, 005.jpg (first: corrupt JPEG data (libjpeg: Corrupt JPEG data" in line
    with pytest.raises(ValueError, match="corrupt_frames 'ignore'"):
        open_dataset("ped2", root, corrupt_frames="ignore")


def test_frames_stage_corrupt_frames_param(tmp_path, monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1]))  # stages/ as `-m` sees it
    from stages import frames as frames_stage

    root = write_frames_layout(tmp_path / "ped2")
    bad = root / "training" / "frames" / "02" / "001.jpg"
    bad.write_bytes(damaged_jpeg(textured_frame())[1])
    monkeypatch.chdir(tmp_path)
    argv = ["frames", "--frames", "frames.h5", "--ground-truth", "ground_truth.h5"]
    monkeypatch.setattr(sys, "argv", argv)
    params = (
        f"data:\n  name: ped2\n  root: {root}\n  corrupt_frames: {{}}\nframes:\n  color: gray\n"
    )
    (tmp_path / "params.yaml").write_text(params.format("error"))
    with raises_naming(bad, "corrupt JPEG data"):
        frames_stage.main()
    (tmp_path / "params.yaml").write_text(params.format("warn"))
    frames_stage.main()
    err = capsys.readouterr().err
    assert f"frames: warning: {bad.parent}: 1 of 5 frames have corrupt JPEG data" in err
    assert (tmp_path / "frames.h5").is_file()


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"", ("empty file (0 bytes)",)),
        (
            b"hello, I am text\n",
            ("not a JPEG/PNG/BMP/TIFF image (starts with bytes 68 65 6c 6c 6f",),
        ),
    ],
)
@pytest.mark.parametrize("file", ["training/frames/01/003.jpg", "testing/masks/01/003.png"])
def test_frames_empty_or_non_image_file(tmp_path, content, words, file):
    root = write_frames_layout(tmp_path)
    bad = root / file
    bad.write_bytes(content)
    dataset = open_dataset("ped2", root)
    with raises_naming(bad, *words) as info:
        if "masks" in file:
            dataset.ground_truth["01"].load_masks()
        else:
            dataset.train[0].frame(3)
    assert "truncated" not in str(info.value)


def test_frames_damaged_mask_png(tmp_path):
    root = write_frames_layout(tmp_path)
    bad = root / "testing" / "masks" / "01" / "004.png"
    data = bytearray(bad.read_bytes())
    data[len(data) // 2] ^= 0x55  # the IDAT checksum no longer matches
    bad.write_bytes(bytes(data))
    masks = open_dataset("ped2", root).ground_truth["01"].load_masks
    with raises_naming(bad, "unreadable or damaged PNG image (decoder: libpng error"):
        masks()


def test_decoder_messages_are_captured_and_the_rest_forwarded(capfd):
    said = b"Corrupt JPEG data: bad Huffman code\nfrom another thread\n"
    result, text = capture_messages(lambda: os.write(2, said) and 7)
    assert result == 7
    assert capfd.readouterr().err == ""
    corrupt, rest = corrupt_jpeg_messages(text)
    assert corrupt == ["Corrupt JPEG data: bad Huffman code"]
    assert rest == "from another thread\n"
    forward(rest)
    assert capfd.readouterr().err == "from another thread\n"
    assert capture_messages(lambda: None) == (None, "")  # the captured text was cleared
    for benign in ("Corrupt JPEG data: bad ICC marker", "Warning: unknown JFIF revision 3.01"):
        assert corrupt_jpeg_messages(benign) == ([], benign)
    assert corrupt_jpeg_messages("Premature end of JPEG file\n")[0] == [
        "Premature end of JPEG file"
    ]


def test_frames_unreadable_frame(tmp_path):
    root = write_frames_layout(tmp_path)
    bad = root / "training" / "frames" / "01" / "002.jpg"
    bad.write_bytes(b"\xff\xd8 garbage \xff\xd9")
    video = open_dataset("ped2", root).train[0]
    with raises_naming(bad, "unreadable"):
        video.frame(2)


def test_frames_inconsistent_frame_size(tmp_path):
    root = write_frames_layout(tmp_path)
    write_image(root / "testing" / "frames" / "01" / "004.jpg", np.zeros((16, 16, 3), np.uint8))
    video = open_dataset("ped2", root).test[0]
    video.frame(3)
    with raises_naming(root / "testing" / "frames" / "01", "frame 4", "(16, 16, 3)"):
        video.frame(4)


# ----------------------------------------------------------------------------- vad info --check


def run_info(capsys, *args: str) -> tuple[int, dict, str]:
    """`vad info ...`: (exit status, the JSON summary, stderr)."""
    try:
        cli.main(["info", *args])
        status = 0
    except SystemExit as stop:
        status = stop.code
    out, err = capsys.readouterr()
    return status, json.loads(out), err


def test_info_check_clean_dataset(tmp_path, capsys):
    root = write_frames_layout(tmp_path)
    status, summary, _ = run_info(capsys, "ped2", str(root))
    assert status == 0 and "problems" not in summary
    status, summary, err = run_info(capsys, "ped2", str(root), "--check")
    assert status == 0 and summary["problems"] == []
    assert summary["test_frames"] == sum(TEST_LENGTHS)
    assert "problem" not in err


def test_info_check_reports_every_damaged_file(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("VAD_PROGRESS", "log")
    root = write_frames_layout(tmp_path)
    bad_frame = root / "testing" / "frames" / "02" / "003.jpg"
    bad_frame.write_bytes(damaged_jpeg(textured_frame())[1])
    bad_mask = root / "testing" / "masks" / "01" / "004.png"
    bad_mask.write_bytes(b"")
    status, summary, _ = run_info(capsys, "ped2", str(root))
    assert status == 0  # the summary alone does not decode them
    status, summary, err = run_info(capsys, "ped2", str(root), "--check")
    assert status == 1
    assert len(summary["problems"]) == 2, summary["problems"]
    frame_problem, mask_problem = summary["problems"]
    assert frame_problem.startswith(f"{bad_frame}: corrupt JPEG data")
    assert mask_problem == f"{bad_mask}: empty file (0 bytes)"
    for problem in summary["problems"]:
        assert f"vad: problem: {problem}" in err
    assert f"check: {sum(TRAIN_LENGTHS) + 2 * sum(TEST_LENGTHS)}/" in err  # the progress lines


def test_info_check_stops_a_video_at_its_first_problem(tmp_path, capsys):
    path = write_avi(tmp_path / "test" / "clip.avi", clip_frames(0, 30))
    write_avi(tmp_path / "train" / "walk.avi", clip_frames(1, 5))
    path.write_bytes(path.read_bytes()[: int(path.stat().st_size * 0.6)])
    status, summary, _ = run_info(capsys, "videos", str(tmp_path), "--check")
    assert status == 1
    [problem] = summary["problems"]
    assert problem.startswith(f"{path}: truncated video") and "not checked" in problem


# ----------------------------------------------------------------------------- Avenue


def test_avenue(tmp_path):
    root = write_avenue(tmp_path)
    dataset = open_dataset("avenue", root)
    assert [v.name for v in dataset.train] == ["01", "02"]
    assert [v.name for v in dataset.test] == ["01", "02", "03"]
    assert [v.num_frames for v in dataset.train] == list(TRAIN_LENGTHS)
    assert [v.num_frames for v in dataset.test] == list(TEST_LENGTHS)
    assert dataset.test[0].source == str(root / "testing_videos" / "01.avi")
    assert_ground_truth(dataset, masked={"01", "02", "03"})
    assert dataset.has_pixel_masks
    for clip, video in enumerate(dataset.test):
        assert_frames_close(video, clip)


def test_avenue_label_files_mismatch(tmp_path):
    root = write_avenue(tmp_path)
    label_dir = root / "ground_truth_demo" / "testing_label_mask"
    (label_dir / "3_label.mat").rename(label_dir / "4_label.mat")
    with raises_naming(label_dir / "3_label.mat", "not found"):
        open_dataset("avenue", root)
    shutil.copy(label_dir / "4_label.mat", label_dir / "3_label.mat")
    with raises_naming(label_dir, "4 *_label.mat files", "3 test videos"):
        open_dataset("avenue", root)


def test_avenue_bad_vol_label(tmp_path):
    root = write_avenue(tmp_path)
    path = root / "ground_truth_demo" / "testing_label_mask" / "2_label.mat"
    scipy.io.savemat(path, {"volLabel": vol_label(np.zeros(5, bool))})
    with raises_naming(path, "5 frame labels", "7 frames"):
        open_dataset("avenue", root)
    scipy.io.savemat(path, {"volLabel": vol_label(np.zeros(7, bool), width=40)})
    with raises_naming(path, "volLabel{1}", "(32, 40)"):
        open_dataset("avenue", root)
    scipy.io.savemat(path, {"gt": vol_label(np.zeros(7, bool))})
    with raises_naming(path, "'volLabel'"):
        open_dataset("avenue", root)


def test_avenue_missing_folders(tmp_path):
    root = write_avenue(tmp_path)
    shutil.rmtree(root / "ground_truth_demo")
    with raises_naming(root / "ground_truth_demo" / "testing_label_mask", "not found"):
        open_dataset("avenue", root)
    shutil.rmtree(root / "training_videos")
    with raises_naming(root / "training_videos", "not found"):
        open_dataset("avenue", root)


# ----------------------------------------------------------------------------- ShanghaiTech


def test_shanghaitech(tmp_path):
    root = write_shanghaitech(tmp_path)
    dataset = open_dataset("shanghaitech", root)
    assert [v.name for v in dataset.train] == ["01_001", "01_002"]
    assert [v.name for v in dataset.test] == list(SHANGHAITECH_TEST)
    assert [v.num_frames for v in dataset.test] == list(TEST_LENGTHS)
    assert_ground_truth(dataset, masked=set(SHANGHAITECH_TEST))
    for clip, video in enumerate(dataset.train):
        assert_frames_close(video, 10 + clip)
    for clip, video in enumerate(dataset.test):
        assert_frames_close(video, clip)


def test_shanghaitech_bad_labels_and_masks(tmp_path):
    root = write_shanghaitech(tmp_path)
    labels = root / "testing" / "test_frame_mask" / "01_0015.npy"
    np.save(labels, np.zeros(9, np.int64))
    with raises_naming(labels, "9 frame labels", "7 frames"):
        open_dataset("shanghaitech", root)
    labels.write_bytes(b"not numpy")
    with raises_naming(labels, "unreadable"):
        open_dataset("shanghaitech", root)
    np.save(labels, np.zeros(7, np.int64))
    masks = root / "testing" / "test_pixel_mask" / "02_0128.npy"
    np.save(masks, np.zeros((6, HEIGHT, 40), np.uint8))
    with raises_naming(masks, "(6, 32, 40)"):
        open_dataset("shanghaitech", root)
    masks.unlink()
    with raises_naming(root / "testing" / "test_pixel_mask", "2 .npy files", "3 test clips"):
        open_dataset("shanghaitech", root)
    shutil.rmtree(root / "testing" / "test_frame_mask")
    with raises_naming(root / "testing" / "test_frame_mask", "not found"):
        open_dataset("shanghaitech", root)


# ----------------------------------------------------------------------------- videos


def test_videos_with_splits(tmp_path):
    root = write_videos(tmp_path)
    dataset = open_dataset("videos", root)
    assert [v.name for v in dataset.train] == ["walk"]
    assert [v.name for v in dataset.test] == ["cam1", "cam2"]
    assert dataset.ground_truth == {} and not dataset.summary()["has_ground_truth"]
    assert_frames_close(dataset.train[0], 10)
    assert_frames_close(dataset.test[1], 1)


def test_videos_without_splits(tmp_path):
    root = write_videos(tmp_path, splits=False)
    dataset = open_dataset("videos", root)
    assert dataset.train == []
    assert [(v.name, v.num_frames) for v in dataset.test] == [("a", 6), ("b", 4)]


def test_videos_bad_folders(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("no videos")
    with raises_naming(tmp_path / "empty", "no video files"):
        open_dataset("videos", tmp_path / "empty")
    root = write_videos(tmp_path / "dupes", splits=False)
    shutil.copy(root / "a.avi", root / "a.mkv")
    with raises_naming(root / "a.mkv", "same video name as a.avi"):
        open_dataset("videos", root)


# ----------------------------------------------------------------------------- video files


def test_unreadable_video(tmp_path):
    root = write_videos(tmp_path, splits=False)
    (root / "c.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 not really a video" * 10)
    with raises_naming(root / "c.mp4", "unreadable video"):
        open_dataset("videos", root)


def test_truncated_video(tmp_path):
    path = write_avi(tmp_path / "clip.avi", clip_frames(0, 30))
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * 0.6)])
    video = open_dataset("videos", tmp_path).test[0]
    assert video.num_frames == 30  # the header's claim
    decoded = 0
    with raises_naming(path, "truncated", "30 frames") as info:
        for _ in video.frames():
            decoded += 1
    assert 0 < decoded < 30
    assert f"frame {decoded} " in str(info.value)  # the index where decoding stopped


def test_video_random_access_is_exact(tmp_path, monkeypatch):
    write_avi(tmp_path / "clip.avi", clip_frames(2, 12))
    opens = []
    real_open = imageio._open_capture
    monkeypatch.setattr(imageio, "_open_capture", lambda p: opens.append(p) or real_open(p))
    video = open_dataset("videos", tmp_path).test[0]
    opens.clear()
    sequential = list(video.frames())
    assert len(opens) == 1  # one capture for a whole sequential pass
    assert_frames_close(video, 2)
    opens.clear()
    for index in (3, 3, 4, 9, 1, 11, 11, 0, 5):
        np.testing.assert_array_equal(video.frame(index), sequential[index])
    # opened for 3 (the pass above closed it at its last frame), re-opened only to go back
    # to 1, and to 0 (reading the last frame, 11, closed it again)
    assert len(opens) == 3
    video.frame(6)[:] = 0  # a caller scribbling on a frame does not change the next read
    np.testing.assert_array_equal(video.frame(6), sequential[6])


def test_video_open_captures_are_bounded(tmp_path, monkeypatch):
    for clip in range(4):
        write_avi(tmp_path / f"{clip}.avi", clip_frames(clip, 5))
    monkeypatch.setattr(imageio, "_MAX_OPEN_CAPTURES", 2)
    videos = open_dataset("videos", tmp_path).test
    for video in videos:
        video.frame(1)
        assert len(imageio._open_files) <= 2
    assert [v.load_frame._capture is not None for v in videos] == [False, False, True, True]
    for clip, video in enumerate(videos):  # evicted captures re-open transparently
        assert_frames_close(video, clip)
    assert not any(v.load_frame._capture for v in videos)  # each closed after its last frame


def test_videos_pickle(tmp_path):
    write_avi(tmp_path / "clip.avi", clip_frames(1, 6))
    video = open_dataset("videos", tmp_path).test[0]
    video.frame(2)
    copy = pickle.loads(pickle.dumps(video))
    np.testing.assert_array_equal(copy.frame(4), video.frame(4))
    frames_video = open_dataset("ped2", write_frames_layout(tmp_path / "f")).test[0]
    np.testing.assert_array_equal(
        pickle.loads(pickle.dumps(frames_video)).frame(1), frames_video.frame(1)
    )


# ----------------------------------------------------------------------------- real Ped2

# `ped2_root` (tests/conftest.py) is ../shared/datasets/ped2, and skips the test when absent.


@pytest.mark.ped2
def test_ped2_summary(ped2_root):
    dataset = open_dataset("ped2", ped2_root)
    summary = dataset.summary()
    assert summary["train_videos"] == 16 and summary["train_frames"] == 2550
    assert summary["test_videos"] == 12 and summary["test_frames"] == 2010
    assert summary["test_anomalous_frames"] == 1648
    assert summary["has_pixel_masks"] is True
    assert [v.name for v in dataset.test] == [f"{i:02d}" for i in range(1, 13)]
    video = dataset.test[0]
    assert (video.height, video.width) == (240, 360)
    assert video.frame(179).shape == (240, 360, 3)


@pytest.mark.ped2
def test_ped2_labels_agree_with_masks_and_the_original_gt_file(ped2_root):
    dataset = open_dataset("ped2", ped2_root)
    original = parse_gt_file(ped2_root / "UCSDped2.m")
    for video, ranges in zip(dataset.test, original, strict=True):
        truth = dataset.ground_truth[video.name]
        np.testing.assert_array_equal(truth.load_masks().any(axis=(1, 2)), truth.labels)
        np.testing.assert_array_equal(labels_for(ranges, video.num_frames), truth.labels)
