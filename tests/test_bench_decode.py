"""`vad bench decode` on a tiny frames-layout dataset: the scan data it damages, the JSON it
writes, and the same damaged files (so the same counts) for the same seed."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from dataset_fixtures import write_image

from vad.bench.decode import BURST_SIZES, VARIANTS, frame_files, run_decode_benchmark, scan_data
from vad.cli import main
from vad.datasets.base import DatasetError

TRIALS = 12


def textured(seed: int) -> np.ndarray:
    """A 96×128 RGB frame of smoothed noise: a few kilobytes of scan data."""
    noise = np.random.default_rng(seed).integers(0, 256, (96, 128, 3), dtype=np.uint8)
    return cv2.GaussianBlur(noise, (5, 5), 0)


@pytest.fixture
def frames_root(tmp_path: Path) -> Path:
    root = tmp_path / "tiny"
    for index in range(4):
        write_image(root / "training" / "frames" / "01" / f"{index:03d}.jpg", textured(index))
    return root


def test_scan_data_lies_between_the_sos_header_and_the_end_marker(frames_root: Path) -> None:
    data = (frames_root / "training" / "frames" / "01" / "000.jpg").read_bytes()
    start, end = scan_data(data)
    sos = data.index(b"\xff\xda")
    assert start == sos + 2 + int.from_bytes(data[sos + 2 : sos + 4], "big")
    assert end == len(data) - 2 and data[end:] == b"\xff\xd9"
    assert end - start > max(BURST_SIZES)
    with pytest.raises(ValueError, match="SOS"):
        scan_data(data[:sos] + data[end:])


def test_no_frames_is_a_dataset_error(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no JPEG frames"):
        frame_files(tmp_path)


def test_bench_decode_writes_the_report(frames_root: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "reports" / "decode.json"
    main(["bench", "decode", "ped2", str(frames_root), "--out", str(out), "--trials", str(TRIALS)])
    report = json.loads(out.read_text())
    assert json.loads(capsys.readouterr().out) == report
    assert report["command"] == (
        f"python -m vad bench decode ped2 {frames_root} --trials {TRIALS} --seed 0 --out {out}"
    )
    assert report["cpu_count"] >= 1 and report["frames_found"] == 4
    assert report["frame_size_wxh"] == [128, 96]

    cost = report["cost"]
    assert cost["frames"] == 4  # all of them, fewer than the sample size
    for way in ("imdecode", "imdecode_captured", "decode_frame", "imread_rgb"):
        assert cost["us_per_frame"][way]["mean"] > 0
    assert cost["redirection_alone"]["us"] > 0
    for overhead in ("capture_overhead", "decode_frame_vs_imdecode", "decode_frame_vs_imread_rgb"):
        assert set(cost[overhead]) == {"us", "median_per_frame_us", "pct", "ratio"}

    cells = report["detection"]["cells"]
    assert [(c["variant"], c["burst_bytes"]) for c in cells] == [
        (v, s) for v in VARIANTS for s in BURST_SIZES
    ]
    for cell in cells:
        assert cell["trials"] == TRIALS
        errors = cell["detected_by_warning"] + cell["undecodable"] + cell["other_error"]
        assert cell["detected"] == errors and cell["detected"] + cell["silent"] == TRIALS
        assert 0 <= cell["detected_rate"] <= 1 and 0 <= cell["silent_rate"] <= 1
        assert cell["detected_rate"] + cell["silent_rate"] == pytest.approx(1)
        low, high = cell["silent_rate_95ci"]
        assert 0 <= low <= cell["silent_rate"] <= high <= 1
        error = cell["silent_mean_abs_error"]
        share = cell["silent_share_error_over_10"]
        if cell["silent"]:
            assert 0 <= error["mean"] <= error["max"] <= 255 and 0 <= share <= 1
        else:
            assert error == {"mean": None, "max": None} and share is None


def test_the_same_seed_damages_the_same_way(frames_root: Path, tmp_path: Path) -> None:
    def cells(seed: int, name: str) -> list[dict]:
        report = run_decode_benchmark(
            "ped2",
            str(frames_root),
            str(tmp_path / name),
            trials=TRIALS,
            seed=seed,
            cost_frames=1,
            cost_repeats=1,
            burst_sizes=(1, 256),
        )
        return report["detection"]["cells"]

    first, again = cells(4, "a.json"), cells(4, "b.json")
    assert first == again
    by_cell = {(c["variant"], c["burst_bytes"]): c for c in first}
    # 12 of 12 against 2 of 12 with this seed and these frames
    assert by_cell["any", 256]["detected"] > by_cell["any", 1]["detected"]
