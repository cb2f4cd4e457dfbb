"""UCSD Ped1 / Ped2 in their original layout (`UCSD_Anomaly_Dataset.v1p2`):

    UCSDpedN/Train/Train001/001.tif ...
    UCSDpedN/Test/Test001/001.tif ...
    UCSDpedN/Test/Test001_gt/001.bmp ...   pixel masks (Ped1: only 10 clips; some folders name
                                           their files frame001.bmp)
    UCSDpedN/Test/UCSDpedN.m               frame-level GT, one line per test clip:
                                           TestVideoFile{end+1}.gt_frame = [61:180];

The root may be the v1p2 folder (holding UCSDped1 and UCSDped2) or the UCSDpedN folder itself.
"""

from __future__ import annotations

import re
from pathlib import Path

from vad.datasets.base import Dataset, DatasetError, GroundTruth, ranges_to_labels
from vad.datasets.imageio import image_clips, list_dirs, mask_folder

_GT_FRAME = re.compile(r"gt_frame\s*=\s*\[([^\]]*)\]")
_TERM = re.compile(r"(\d+)(?::(\d+))?(?::(\d+))?")  # a, a:b or a:step:b


def _parse_ranges(body: str) -> list[tuple[int, int]] | None:
    """The frames of a MATLAB index list such as `61:180` or `1:10, 50:60 70` as 1-based
    inclusive ranges (`a:step:b` with a step above 1 gives one range per frame); None when
    `body` is anything else."""
    terms = re.split(r"[\s,;]+", re.sub(r"\s*:\s*", ":", body))
    ranges = []
    for term in (t for t in terms if t):
        match = _TERM.fullmatch(term)
        if match is None:
            return None
        first, second, third = (int(g) if g else None for g in match.groups())
        if third is None:  # a or a:b
            ranges.append((first, first if second is None else second))
        elif second == 1:
            ranges.append((first, third))
        elif second > 1:
            ranges.extend((frame, frame) for frame in range(first, third + 1, second))
        else:
            return None  # a step of 0
    return ranges


def parse_gt_file(path: Path) -> list[list[tuple[int, int]]]:
    """Per test clip, its 1-based inclusive anomalous ranges, from a UCSDpedN.m file.

    Parsed with a regex, never evaluated: `gt_frame = [a:b, c:d, e];` entries in file order.
    The entries are MATLAB lists of frame numbers, so they have no orientation to get wrong;
    `a:step:b` is read as MATLAB does (frames a, a+step, ... up to b).
    """
    if not path.is_file():
        raise DatasetError(f"{path}: ground-truth file not found")
    try:
        text = path.read_text(errors="replace")
    except OSError as error:
        raise DatasetError(f"{path}: cannot read file ({error.strerror or error})") from error
    text = re.sub(r"%[^\n]*", "", text)  # MATLAB comments
    clips = []
    for index, body in enumerate(_GT_FRAME.findall(text), start=1):
        ranges = _parse_ranges(body)
        if ranges is None:
            raise DatasetError(f"{path}: entry {index} [{body}] is not a list of a:b ranges")
        clips.append(ranges)
    if not clips:
        raise DatasetError(f"{path}: no 'gt_frame = [...]' entries found")
    return clips


def find_subset_folder(root: Path, name: str) -> Path:
    """The UCSDpedN folder: `root` itself, or `root`/[UCSD_Anomaly_Dataset.v1p2/]UCSDpedN."""
    if (root / "Train").is_dir() or (root / "Test").is_dir():
        return root
    subsets = [f"UCSDped{name[-1]}"] if name in ("ped1", "ped2") else ["UCSDped1", "UCSDped2"]
    found = [
        parent / subset
        for parent in (root, root / "UCSD_Anomaly_Dataset.v1p2")
        for subset in subsets
        if (parent / subset).is_dir()
    ]
    if not found:
        raise DatasetError(
            f"{root}: no {' or '.join(subsets)} folder (UCSD original layout) and no "
            "Train/Test folders in it"
        )
    if len(found) > 1:
        raise DatasetError(f"{root}: several UCSD subsets ({found}); open ped1 or ped2 by name")
    return found[0]


def _gt_file(test_dir: Path, subset: str) -> Path:
    """Test/UCSDpedN.m, or else the only .m file in Test."""
    named = test_dir / f"{subset}.m"
    if named.is_file():
        return named
    others = sorted(p for p in test_dir.glob("*.m") if not p.name.startswith("."))
    return others[0] if len(others) == 1 else named


def open_ucsd(root: Path, name: str, corrupt_frames: str = "error") -> Dataset:
    folder = find_subset_folder(root, name)
    train = image_clips(folder / "Train", "train", r"Train\d+", corrupt_frames)
    test_dir = folder / "Test"
    test = image_clips(test_dir, "test", r"Test\d+", corrupt_frames)

    subset = folder.name
    if not re.fullmatch(r"UCSDped\d", subset) and name in ("ped1", "ped2"):
        subset = f"UCSDped{name[-1]}"
    gt_file = _gt_file(test_dir, subset)
    clip_ranges = parse_gt_file(gt_file)
    if len(clip_ranges) != len(test):
        raise DatasetError(
            f"{gt_file}: ground truth for {len(clip_ranges)} clips but {test_dir} has "
            f"{len(test)} test clips"
        )

    names = {video.name for video in test}
    for masks_dir in list_dirs(test_dir, r"Test\d+_gt"):
        if masks_dir.name[: -len("_gt")] not in names:
            raise DatasetError(f"{masks_dir}: pixel masks for a clip that is not in {test_dir}")

    ground_truth = {}
    for video, ranges in zip(test, clip_ranges, strict=True):
        masks_dir = test_dir / f"{video.name}_gt"
        ground_truth[video.name] = GroundTruth(
            labels=ranges_to_labels(ranges, video.num_frames, f"{gt_file} (clip {video.name})"),
            load_masks=mask_folder(masks_dir, video) if masks_dir.is_dir() else None,
        )
    return Dataset(name=name, root=root, train=train, test=test, ground_truth=ground_truth)
