"""`python -m vad bench decode <name> <root>`: what catching libjpeg's warnings costs and what it
catches, written to reports/bench/decode.json (the numbers in decoder_messages.py's docstring).

On the JPEG frames of a frames-layout dataset (<root>/training/frames/<clip>/*.jpg and
<root>/testing/frames/<clip>/*.jpg, as Ped2):
1. cost: over a fixed random sample of frames, each frame decoded `repeats` times by
   `cv2.imdecode` of its bytes alone, by the same call inside `capture_messages`, by the project's
   `decode_frame` (reads the file, checks it, captures, converts to RGB) and by plain
   `cv2.imread` + BGR->RGB; the four interleaved, the median taken per frame, then the mean and
   median over frames, in microseconds; and `capture_messages` around a call doing nothing;
2. detection: per burst size and per kind of garbage (bytes without 0xFF, or any bytes), `trials`
   random frames with a random burst of their scan data (after the SOS marker's header,
   before the final FF D9) overwritten, decoded with `read_image`: how often it raises
   DatasetError (through libjpeg's warning, or because OpenCV returned nothing) and, for those
   that decode silently, the mean absolute error against the clean frame in grey levels.
Every number in one JSON comes from one run; a fixed seed gives the same damaged files.
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from vad.cache import atomic_output
from vad.datasets.base import DatasetError
from vad.datasets.decoder_messages import capture_messages
from vad.datasets.imageio import decode_frame, list_dirs, list_files, read_image

SOS = b"\xff\xda"
EOI = b"\xff\xd9"
BURST_SIZES = (1, 16, 64, 256)
VARIANTS = {
    "no_ff": "random bytes 0x00-0xFE (no marker can appear)",
    "any": "random bytes 0x00-0xFF (0xFF may form markers or byte stuffing)",
}
COST_FRAMES = 500
COST_REPEATS = 9
NOOP_CALLS = 5000
ERROR_THRESHOLD = 10  # grey levels of mean absolute error
DEFAULT_OUT = "reports/bench/decode.json"


def frame_files(root: str | Path) -> list[Path]:
    """Every JPEG frame under <root>/{training,testing}/frames/<clip>/, in a fixed order."""
    root = Path(root)
    paths: list[Path] = []
    for split in ("training", "testing"):
        folder = root / split / "frames"
        if folder.is_dir():
            for clip in list_dirs(folder):
                paths += list_files(clip, frozenset({".jpg", ".jpeg"}))
    if not paths:
        raise DatasetError(f"{root}: no JPEG frames in training/frames/*/ or testing/frames/*/")
    return paths


def scan_data(data: bytes) -> tuple[int, int]:
    """[start, end) of the entropy-coded data of a baseline JPEG: after the SOS marker and its
    header, before the final end-of-image marker."""
    if data.count(SOS) != 1:  # 0xFF in the scan data is stuffed, so this counts markers only
        raise ValueError(f"expected one SOS marker (a baseline JPEG), found {data.count(SOS)}")
    sos = data.index(SOS)
    start = sos + 2 + int.from_bytes(data[sos + 2 : sos + 4], "big")
    end = data.rindex(EOI)
    if end <= start:
        raise ValueError("no scan data between the SOS header and the end-of-image marker")
    return start, end


def wilson_interval(successes: int, trials: int, z: float = 1.96) -> list[float]:
    """95 % Wilson score interval of a rate: how far 100 trials pin it down."""
    rate = successes / trials
    centre = (rate + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z * np.sqrt(rate * (1 - rate) / trials + z * z / (4 * trials * trials))
    half /= 1 + z * z / trials
    return [round(float(centre - half), 4), round(float(centre + half), 4)]


def _stats(values: list[float]) -> dict:
    return {"mean": float(np.mean(values)), "median": float(np.median(values))}


def time_redirection(calls: int = NOOP_CALLS) -> dict:
    """The cost of `capture_messages` around a call that does nothing: median of `calls`
    timings, less the median of the bare call (µs)."""

    def nothing() -> None:
        return None

    bare, captured = [], []
    for _ in range(calls):
        start = time.perf_counter_ns()
        nothing()
        bare.append(time.perf_counter_ns() - start)
        start = time.perf_counter_ns()
        capture_messages(nothing)
        captured.append(time.perf_counter_ns() - start)
    us = (float(np.median(captured)) - float(np.median(bare))) / 1000
    return {"calls": calls, "us": us}


def decoders(path: Path) -> dict[str, Callable[[], object]]:
    """The four ways of decoding one frame that `time_decoding` compares."""
    data = np.fromfile(path, dtype=np.uint8)
    name = str(path)

    def imdecode() -> np.ndarray | None:
        return cv2.imdecode(data, cv2.IMREAD_COLOR)

    return {
        "imdecode": imdecode,
        "imdecode_captured": lambda: capture_messages(imdecode),
        "decode_frame": lambda: decode_frame(name),
        "imread_rgb": lambda: cv2.cvtColor(cv2.imread(name), cv2.COLOR_BGR2RGB),
    }


def time_decoding(paths: list[Path], repeats: int) -> dict:
    """Per frame, the median time of each decode over `repeats` interleaved rounds (µs)."""
    samples: dict[str, list[float]] = {
        "imdecode": [],
        "imdecode_captured": [],
        "decode_frame": [],
        "imread_rgb": [],
    }
    for path in paths[:3]:  # warm up: the capture file, the decoder's tables, the page cache
        decode_frame(path)
    for path in paths:
        calls = decoders(path)
        rounds: dict[str, list[int]] = {key: [] for key in calls}
        order = list(calls)
        for repeat in range(repeats):
            shift = repeat % len(order)  # each decode goes first in turn
            for key in order[shift:] + order[:shift]:
                call = calls[key]
                start = time.perf_counter_ns()
                call()
                rounds[key].append(time.perf_counter_ns() - start)
        for key, times in rounds.items():
            samples[key].append(float(np.median(times)) / 1000)
    per_frame = {key: _stats(values) for key, values in samples.items()}

    def overhead(slow: str, fast: str) -> dict:
        extra = per_frame[slow]["mean"] - per_frame[fast]["mean"]
        differences = np.subtract(samples[slow], samples[fast])
        return {
            "us": extra,
            "median_per_frame_us": float(np.median(differences)),
            "pct": 100 * extra / per_frame[fast]["mean"],
            "ratio": per_frame[slow]["mean"] / per_frame[fast]["mean"],
        }

    return {
        "redirection_alone": time_redirection(),
        "frames": len(paths),
        "repeats": repeats,
        "statistic": "per frame the median of the repeats; then mean and median over frames",
        "us_per_frame": per_frame,
        "capture_overhead": overhead("imdecode_captured", "imdecode"),
        "decode_frame_vs_imdecode": overhead("decode_frame", "imdecode"),
        "decode_frame_vs_imread_rgb": overhead("decode_frame", "imread_rgb"),
    }


def burst_trials(
    paths: list[Path], size: int, variant: str, trials: int, seed: int, workdir: Path
) -> dict:
    """`trials` frames with a random `size`-byte burst of their scan data replaced, read back
    with `read_image`; the random draws depend only on (seed, variant, size)."""
    rng = np.random.default_rng([seed, list(VARIANTS).index(variant), size])
    high = 255 if variant == "no_ff" else 256
    counts = {"detected_by_warning": 0, "undecodable": 0, "other_error": 0, "silent": 0}
    errors: list[float] = []
    for trial in range(trials):
        path = paths[int(rng.integers(len(paths)))]
        data = path.read_bytes()
        start, end = scan_data(data)
        if end - start < size:
            raise ValueError(f"{path}: {end - start} bytes of scan data, fewer than {size}")
        at = start + int(rng.integers(end - start - size + 1))
        burst = rng.integers(0, high, size, dtype=np.uint8).tobytes()
        damaged = workdir / f"{trial}{path.suffix}"
        damaged.write_bytes(data[:at] + burst + data[at + size :])
        try:
            image = read_image(damaged)
        except DatasetError as error:
            message = str(error)
            if "corrupt JPEG data" in message:
                counts["detected_by_warning"] += 1
            elif "unreadable or damaged" in message:
                counts["undecodable"] += 1
            else:
                counts["other_error"] += 1
        else:
            clean = read_image(path)
            if image.shape != clean.shape:
                errors.append(255.0)  # cannot happen with the header intact; counted as total
            else:
                diff = np.abs(image.astype(np.int16) - clean.astype(np.int16))
                errors.append(float(diff.mean()))
            counts["silent"] += 1
        finally:
            damaged.unlink(missing_ok=True)
    detected = trials - counts["silent"]
    return {
        "burst_bytes": size,
        "variant": variant,
        "trials": trials,
        "detected": detected,
        **counts,
        "detected_rate": detected / trials,
        "silent_rate": counts["silent"] / trials,
        "silent_rate_95ci": wilson_interval(counts["silent"], trials),
        "silent_mean_abs_error": {
            "mean": float(np.mean(errors)) if errors else None,
            "max": float(np.max(errors)) if errors else None,
        },
        "silent_identical": sum(e == 0 for e in errors),
        f"silent_share_error_over_{ERROR_THRESHOLD}": (
            sum(e > ERROR_THRESHOLD for e in errors) / len(errors) if errors else None
        ),
    }


def run_decode_benchmark(
    name: str,
    root: str,
    out: str = DEFAULT_OUT,
    trials: int = 100,
    seed: int = 0,
    cost_frames: int = COST_FRAMES,
    cost_repeats: int = COST_REPEATS,
    burst_sizes: tuple[int, ...] = BURST_SIZES,
) -> dict:
    if trials < 1 or cost_frames < 1 or cost_repeats < 1:
        raise ValueError("trials, cost frames and repeats must be at least 1")
    paths = frame_files(root)
    command = f"python -m vad bench decode {name} {root} --trials {trials} --seed {seed}"
    if out != DEFAULT_OUT:
        command += f" --out {out}"
    every = paths[:: max(1, len(paths) // 50)]  # about 50 frames spread over the dataset
    scan_bytes = [end - start for start, end in (scan_data(p.read_bytes()) for p in every)]
    first = read_image(paths[0])
    report: dict = {
        "command": command,
        "dataset": name,
        "frames_found": len(paths),
        "frame_size_wxh": [first.shape[1], first.shape[0]],
        "scan_bytes": {"frames": len(every), "mean": float(np.mean(scan_bytes))},
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "opencv": cv2.__version__,
    }

    rng = np.random.default_rng(seed)
    sample = sorted(rng.choice(len(paths), min(cost_frames, len(paths)), replace=False))
    report["cost"] = time_decoding([paths[i] for i in sample], cost_repeats)

    cells = []
    with tempfile.TemporaryDirectory(prefix="vad-bench-decode-") as tmp:
        for variant in VARIANTS:
            for size in burst_sizes:
                cells.append(burst_trials(paths, size, variant, trials, seed, Path(tmp)))
    report["detection"] = {
        "seed": seed,
        "variants": VARIANTS,
        "burst_sizes": list(burst_sizes),
        "reader": "vad.datasets.imageio.read_image (corrupt-data warnings are errors)",
        "error_threshold_grey_levels": ERROR_THRESHOLD,
        "cells": cells,
    }
    with atomic_output(out) as tmp_path:
        tmp_path.write_text(json.dumps(report, indent=2) + "\n")
    return report
