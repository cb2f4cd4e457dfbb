"""Tiny datasets written in their original on-disk formats, for the dataset-reader tests.

Every frame is `frame_rgb(clip, index)`: a flat level that differs between clips and between
neighbouring frames, so a reader returning the wrong frame is caught even after JPEG/MJPG
compression. Test clip `c` frame `i` is anomalous when `i` falls in its ranges; its pixel mask
is then a rectangle (`frame_mask`).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import scipy.io

HEIGHT, WIDTH = 32, 48

# Per test clip, 1-based inclusive anomalous ranges (as in the .m / .mat files).
TEST_LENGTHS = (8, 7, 6)
TEST_RANGES = ([(3, 5)], [(1, 2), (6, 7)], [])
TRAIN_LENGTHS = (6, 5)


def frame_gray(clip: int, index: int) -> np.ndarray:
    level = 20 + (clip * 61 + index * 23) % 210
    gray = np.full((HEIGHT, WIDTH), level, dtype=np.uint8)
    gray[:, : WIDTH // 4] = 255 - level  # some structure, so a flipped or shifted frame differs
    return gray


def frame_rgb(clip: int, index: int) -> np.ndarray:
    gray = frame_gray(clip, index)
    return np.stack([gray, 255 - gray, np.full_like(gray, 60 + clip * 37 % 150)], axis=-1)


def frame_mask(anomalous: bool) -> np.ndarray:
    mask = np.zeros((HEIGHT, WIDTH), dtype=np.uint8)
    if anomalous:
        mask[8:20, 12:30] = 255
    return mask


def labels_for(ranges: list[tuple[int, int]], length: int) -> np.ndarray:
    labels = np.zeros(length, dtype=bool)
    for start, end in ranges:
        labels[start - 1 : end] = True
    return labels


def write_image(path: Path, image: np.ndarray) -> Path:
    """Write an RGB (H×W×3) or grayscale (H×W) image in the format its suffix names."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    assert cv2.imwrite(str(path), image), path
    return path


def textured_frame(seed: int = 0) -> np.ndarray:
    """An RGB frame of smoothed noise: enough JPEG scan data to damage in the middle."""
    noise = np.random.default_rng(seed).integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    return cv2.GaussianBlur(noise, (3, 3), 0)


def damaged_jpeg(image: np.ndarray, length: int = 48) -> tuple[bytes, bytes]:
    """(intact, damaged) JPEG encodings of RGB `image`: `length` bytes in the middle of the
    entropy-coded scan data overwritten with garbage that holds no 0xFF (so no marker appears);
    the start-of-image and end-of-image (FF D9) markers stay intact."""
    ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    assert ok
    intact = encoded.tobytes()
    sos = intact.index(b"\xff\xda")
    scan_start = sos + 2 + int.from_bytes(intact[sos + 2 : sos + 4], "big")
    scan_end = len(intact) - 2  # the FF D9 end marker
    middle = (scan_start + scan_end) // 2
    assert scan_end - scan_start > 2 * length, "scan data too short to damage"
    garbage = bytes((17 + 37 * i) % 251 for i in range(length))
    start = middle - length // 2
    damaged = intact[:start] + garbage + intact[start + length :]
    assert damaged.endswith(b"\xff\xd9") and len(damaged) == len(intact)
    return intact, damaged


def write_avi(path: Path, frames: list[np.ndarray], fps: float = 25.0) -> Path:
    """RGB frames -> MJPG AVI."""
    path.parent.mkdir(parents=True, exist_ok=True)
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (width, height))
    assert writer.isOpened(), path
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def clip_frames(clip: int, length: int) -> list[np.ndarray]:
    return [frame_rgb(clip, index) for index in range(length)]


def write_ucsd(
    parent: Path,
    ped: int = 2,
    masked: tuple[int, ...] = (0, 1),
    frame_prefix_clip: int = 1,
) -> Path:
    """UCSD_Anomaly_Dataset.v1p2/UCSDped<ped> with grayscale .tif frames, `TestNNN_gt` .bmp masks
    for the test clips in `masked` (clip `frame_prefix_clip` names them frameNNN.bmp), the
    UCSDpedN.m frame-level GT, and some junk files a Mac leaves behind. Returns the v1p2 folder."""
    root = parent / "UCSD_Anomaly_Dataset.v1p2"
    subset = root / f"UCSDped{ped}"
    for split, lengths, offset in (("Train", TRAIN_LENGTHS, 10), ("Test", TEST_LENGTHS, 0)):
        for clip, length in enumerate(lengths):
            folder = subset / split / f"{split}{clip + 1:03d}"
            for index in range(length):
                write_image(folder / f"{index + 1:03d}.tif", frame_gray(offset + clip, index))
            (folder / f"._{1:03d}.tif").write_bytes(b"\x00\x05\x16\x07 resource fork")
            (folder / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    for clip in masked:
        folder = subset / "Test" / f"Test{clip + 1:03d}_gt"
        prefix = "frame" if clip == frame_prefix_clip else ""
        labels = labels_for(TEST_RANGES[clip], TEST_LENGTHS[clip])
        for index, anomalous in enumerate(labels):
            write_image(folder / f"{prefix}{index + 1:03d}.bmp", frame_mask(anomalous))
    write_ucsd_m(subset / "Test" / f"UCSDped{ped}.m", TEST_RANGES)
    return root


def write_ucsd_m(path: Path, clip_ranges) -> Path:
    lines = ["TestVideoFile = {};", "% frame-level ground truth, 1-based"]
    for ranges in clip_ranges:
        body = ", ".join(f"{start}:{end}" for start, end in ranges)
        lines.append(f"TestVideoFile{{end+1}}.gt_frame = [{body}];")
    path.write_text("\n".join(lines) + "\n")
    return path


def gt_cell(clip_ranges, rows: bool = False) -> np.ndarray:
    """The `gt` variable of an MNAD-style .mat: a 1×N cell of 2×R [start; end] arrays (or, with
    `rows`, of R×2 arrays, one [start, end] range per row)."""
    cell = np.empty((1, len(clip_ranges)), dtype=object)
    for clip, ranges in enumerate(clip_ranges):
        array = np.array(ranges, dtype=np.uint16).reshape(-1, 2)
        cell[0, clip] = array if rows else array.T
    return cell


def write_frames_layout(
    root: Path, name: str = "ped2", mat: bool = True, masks: bool = True
) -> Path:
    """training/frames, testing/frames (.jpg), testing/masks (.png) and <name>.mat."""
    for split, lengths, offset in (("training", TRAIN_LENGTHS, 10), ("testing", TEST_LENGTHS, 0)):
        for clip, length in enumerate(lengths):
            for index, frame in enumerate(clip_frames(offset + clip, length)):
                write_image(root / split / "frames" / f"{clip + 1:02d}" / f"{index:03d}.jpg", frame)
    if masks:
        for clip, length in enumerate(TEST_LENGTHS):
            for index, anomalous in enumerate(labels_for(TEST_RANGES[clip], length)):
                path = root / "testing" / "masks" / f"{clip + 1:02d}" / f"{index:03d}.png"
                write_image(path, frame_mask(anomalous))
    if mat:
        scipy.io.savemat(root / f"{name}.mat", {"gt": gt_cell(TEST_RANGES)})
    return root


def vol_label(labels: np.ndarray, height: int = HEIGHT, width: int = WIDTH) -> np.ndarray:
    """Avenue's `volLabel`: a 1×T cell of H×W masks."""
    cell = np.empty((1, len(labels)), dtype=object)
    for index, anomalous in enumerate(labels):
        cell[0, index] = (frame_mask(anomalous)[:height, :width] > 0).astype(np.uint8)
    return cell


def write_avenue(root: Path) -> Path:
    """training_videos/NN.avi, testing_videos/NN.avi and ground_truth_demo/... N_label.mat."""
    for folder, lengths, offset in (
        ("training_videos", TRAIN_LENGTHS, 10),
        ("testing_videos", TEST_LENGTHS, 0),
    ):
        for clip, length in enumerate(lengths):
            write_avi(root / folder / f"{clip + 1:02d}.avi", clip_frames(offset + clip, length))
    label_dir = root / "ground_truth_demo" / "testing_label_mask"
    label_dir.mkdir(parents=True)
    for clip, length in enumerate(TEST_LENGTHS):
        labels = labels_for(TEST_RANGES[clip], length)
        scipy.io.savemat(label_dir / f"{clip + 1}_label.mat", {"volLabel": vol_label(labels)})
    return root


SHANGHAITECH_TEST = ("01_0014", "01_0015", "02_0128")


def _write_shanghaitech(
    root: Path,
    train: dict[str, tuple[int, int]],
    test: dict[str, tuple[int, int, list[tuple[int, int]]]],
) -> Path:
    """ShanghaiTech's release layout: `train` maps a clip name to (frame_rgb clip, length), `test`
    to (clip, length, anomalous ranges)."""
    for name, (clip, length) in train.items():
        write_avi(root / "training" / "videos" / f"{name}.avi", clip_frames(clip, length))
    for name, (clip, length, ranges) in test.items():
        for index, frame in enumerate(clip_frames(clip, length)):
            write_image(root / "testing" / "frames" / name / f"{index:03d}.jpg", frame)
        labels = labels_for(ranges, length)
        for folder, array in (
            ("test_frame_mask", labels.astype(np.int64)),
            ("test_pixel_mask", np.stack([frame_mask(a) > 0 for a in labels]).astype(np.uint8)),
        ):
            (root / "testing" / folder).mkdir(parents=True, exist_ok=True)
            np.save(root / "testing" / folder / f"{name}.npy", array)
    return root


def write_shanghaitech(root: Path) -> Path:
    """training/videos/*.avi, testing/frames/<scene>_<clip>/*.jpg, and the .npy label files."""
    train = {f"01_{clip + 1:03d}": (10 + clip, length) for clip, length in enumerate(TRAIN_LENGTHS)}
    test = {
        name: (clip, length, ranges)
        for clip, (name, length, ranges) in enumerate(
            zip(SHANGHAITECH_TEST, TEST_LENGTHS, TEST_RANGES, strict=True)
        )
    }
    return _write_shanghaitech(root, train, test)


# ShanghaiTech Campus in miniature, several scenes: clips named <scene>_<video> like the release's
# (training videos 01_001.avi, test clips 01_0014/), each with its own frames (`scene_clip`).
# Scene 13 has training videos only, as the release's scene 13 is reported to (its test set
# covers scenes 01-12). Training clip -> length; test clip -> (length, anomalous ranges).
SCENE_TRAIN = {"01_001": 6, "01_002": 5, "02_001": 4, "04_001": 5, "04_002": 4, "13_001": 4}
SCENE_TEST = {
    "01_0014": (8, [(3, 5)]),
    "01_0015": (7, [(1, 2), (6, 7)]),
    "02_0128": (6, []),
    "04_0001": (5, [(2, 4)]),
}


def scene_clip(name: str) -> int:
    """The `frame_rgb` clip number of a clip of `write_shanghaitech_scenes`."""
    if name in SCENE_TEST:
        return list(SCENE_TEST).index(name)
    return 20 + list(SCENE_TRAIN).index(name)


def write_shanghaitech_scenes(root: Path, layout: str = "shanghaitech") -> Path:
    """The SCENE_TRAIN / SCENE_TEST clips in ShanghaiTech's release layout (AVI training videos,
    JPEG test frames, .npy frame labels and T×H×W pixel masks), or with layout "frames" in the
    frames layout of the MNAD release (JPEG folders for both splits, PNG masks, no .mat)."""
    if layout == "shanghaitech":
        return _write_shanghaitech(
            root,
            {name: (scene_clip(name), length) for name, length in SCENE_TRAIN.items()},
            {name: (scene_clip(name), *truth) for name, truth in SCENE_TEST.items()},
        )
    assert layout == "frames", layout
    lengths = {name: length for name, (length, _) in SCENE_TEST.items()}
    for split, clips in (("training", SCENE_TRAIN), ("testing", lengths)):
        for name, length in clips.items():
            for index, frame in enumerate(clip_frames(scene_clip(name), length)):
                write_image(root / split / "frames" / name / f"{index:03d}.jpg", frame)
    for name, (length, ranges) in SCENE_TEST.items():
        masks = root / "testing" / "masks" / name
        for index, anomalous in enumerate(labels_for(ranges, length)):
            write_image(masks / f"{index:03d}.png", frame_mask(anomalous))
    return root


def write_videos(root: Path, splits: bool = True) -> Path:
    """A folder of videos: train/ and test/ sub-folders, or (splits=False) videos at the top."""
    if splits:
        write_avi(root / "train" / "walk.avi", clip_frames(10, 5))
        write_avi(root / "test" / "cam1.avi", clip_frames(0, 6))
        write_avi(root / "test" / "cam2.avi", clip_frames(1, 4))
    else:
        write_avi(root / "b.avi", clip_frames(1, 4))
        write_avi(root / "a.avi", clip_frames(0, 6))
        (root / "notes.txt").write_text("not a video")
    return root
