"""`python -m vad bench scale`: peak memory and wall time of every pipeline stage on synthetic
scenes of 1x, 4x and 16x the default video length, written to reports/bench/scale.json.

The stages stream their videos in blocks of frames (and score files one video at a time), so a
stage's peak memory should not grow with the length of the videos; this benchmark checks it.
Per scale, a temporary folder gets the project's dvc.yaml, its `stages` and `vad` code (links)
and a params.yaml: the project's own with the bench's settings and
`data.synthetic.frames_per_video` = scale x the default (`SyntheticOptions`). Then each stage's
command, as dvc.yaml writes it (`foreach` resolved over `methods`), runs in a fresh child
process, in dvc.yaml's order (DVC itself is not run: its own memory and time would be
counted too). Per stage:

- `seconds`: wall time of the child process, start-up and imports included;
- `cpu_seconds`: the CPU time (user + system) of the stage's process and of its workers, less
  sensitive than the wall time to other work on the machine;
- `max_rss_mb`: the largest resident set of any one process of the stage, exact: the kernel's
  ru_maxrss of the child as `os.wait4` returns it, which is the maximum over the child and
  every worker process it spawned and waited for (a worker's peak counts on its own, not added
  to the stage process's);
- `peak_tree_rss_mb`: the largest sum of the resident sets of the stage's process and its live
  workers, sampled every SAMPLE_SECONDS from /proc (pages shared between them, such as
  libraries, count once per process; a peak shorter than the interval can be missed): what
  the stage needs of the machine at once.

The reduced scene (BENCH_SETTINGS: 2 training and 2 test videos of the default 240x160 frames,
GMFC-VAE 1 + 1 epochs on 2000 patches) keeps the run to minutes on 2 cores: training cost is
bounded by its budget (patches, epochs), not by the video length. The JSON records every
setting used, each stage's numbers per scale, and per stage the ratios of the largest scale to
the smallest (`ratios`) and the cost per video frame between them (`per_frame`: the slope of
seconds and of MB against the scene's frame count). Linux only (/proc, ru_maxrss in KB).
"""

from __future__ import annotations

import copy
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import yaml

from vad.cache import atomic_output
from vad.config import load_params
from vad.datasets.synthetic import SyntheticOptions

SCALES = (1, 4, 16)
# The reduced scene and method budgets of the benchmark (merged into params.yaml).
BENCH_SETTINGS = {
    "data": {"name": "synthetic", "synthetic": {"train_videos": 2, "test_videos": 2}},
    "patches": {"n_train": 2000},
    "gmfc_vae": {"pretrain_epochs": 1, "epochs": 1},
}
SAMPLE_SECONDS = 0.1
PAGE_MB = os.sysconf("SC_PAGE_SIZE") / 2**20
REPO = Path(__file__).resolve().parents[2]


# ---------------------------------------------------------------------------------------------
# Settings


def merged(base: dict, overrides: dict) -> dict:
    """A deep copy of `base` with `overrides` merged in (nested mappings merge key by key)."""
    result = copy.deepcopy(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merged(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def dotted_overrides(pairs: Sequence[str]) -> dict:
    """`key.sub=value` strings (values parsed as YAML) as one nested mapping."""
    result: dict = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"bench scale: --set needs KEY=VALUE, got {pair!r}")
        *parents, last = key.split(".")
        node = result
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"bench scale: --set {key}: {part} is set to a value already")
        node[last] = yaml.safe_load(text)
    return result


def scale_params(params: dict, scale: int, base_frames: int) -> dict:
    """The project's params with the bench's scene at `scale` x `base_frames` frames per video."""
    scene = {"data": {"synthetic": {"frames_per_video": scale * base_frames}}}
    return merged(params, scene)


# ---------------------------------------------------------------------------------------------
# Stages


def pipeline_stages(dvc_yaml: dict, methods: list[str]) -> list[tuple[str, str]]:
    """(name, command) of every stage of dvc.yaml in its order, `foreach` over `methods`
    expanded (`prepare@baseline`, ...)."""
    stages = []
    for name, stage in dvc_yaml["stages"].items():
        if "foreach" in stage:
            for item in methods:
                stages.append((f"{name}@{item}", stage["do"]["cmd"].replace("${item}", item)))
        else:
            stages.append((name, stage["cmd"]))
    for name, command in stages:
        if "${" in command:
            raise ValueError(f"dvc.yaml: stage {name}: cannot resolve {command!r}")
    return stages


def _children() -> dict[int, list[int]]:
    """Child process ids of every process, from /proc/<pid>/stat."""
    tree: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:  # ended meanwhile
            continue
        tree.setdefault(int(fields[1]), []).append(int(entry.name))
    return tree


def tree_rss_mb(pid: int) -> float:
    """The summed resident set (MB) of process `pid` and all its descendants now."""
    tree, total, todo = _children(), 0.0, [pid]
    while todo:
        current = todo.pop()
        try:
            with open(f"/proc/{current}/statm") as f:
                total += int(f.read().split()[1]) * PAGE_MB
        except OSError:
            continue
        todo.extend(tree.get(current, []))
    return total


class TreeSampler(threading.Thread):
    """Samples `tree_rss_mb(pid)` every `interval` s until stopped; `peak` is the largest."""

    def __init__(self, pid: int, interval: float = SAMPLE_SECONDS):
        super().__init__(daemon=True)
        self.pid, self.interval, self.peak = pid, interval, 0.0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.peak = max(self.peak, tree_rss_mb(self.pid))
            self._stop_event.wait(self.interval)

    def stop(self) -> float:
        self._stop_event.set()
        self.join()
        return self.peak


def run_stage(command: str, cwd: Path, env: dict, log: Path) -> dict:
    """Run one stage command in a fresh child process; its seconds and memory (module doc)."""
    args = shlex.split(command)
    if args[0] == "python":
        args[0] = sys.executable
    with open(log, "w") as out:
        start = time.perf_counter()
        process = subprocess.Popen(args, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
        sampler = TreeSampler(process.pid)
        sampler.start()
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)
    peak_tree = sampler.stop()
    if process.returncode != 0:
        tail = "".join(log.read_text().splitlines(keepends=True)[-20:])
        raise RuntimeError(f"bench scale: `{command}` failed ({process.returncode}):\n{tail}")
    max_rss = usage.ru_maxrss / 1024  # Linux: kilobytes
    return {
        "seconds": round(seconds, 3),
        "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 3),
        "max_rss_mb": round(max_rss, 1),
        "peak_tree_rss_mb": round(max(peak_tree, max_rss), 1),
    }


def prepare_workdir(work: Path, code: Path, params: dict) -> None:
    """dvc.yaml and links to the `stages` and `vad` code of `code`, and `params` as params.yaml."""
    work.mkdir(parents=True, exist_ok=True)
    for name in ("stages", "vad"):
        (work / name).symlink_to(code / name, target_is_directory=True)
    (work / "dvc.yaml").write_text((code / "dvc.yaml").read_text())
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def run_pipeline(
    work: Path, code: Path, params: dict, only: Sequence[str] | None = None, log=print
) -> dict[str, dict]:
    """Every stage of the pipeline in `work` (see `prepare_workdir`); numbers per stage."""
    prepare_workdir(work, code, params)
    dvc_yaml = yaml.safe_load((code / "dvc.yaml").read_text())
    env = {
        **os.environ,
        "PYTHONPATH": str(work),  # the linked code, never an installed copy
        "VAD_PROGRESS": "log",
        "VAD_TIMINGS_DIR": str(work / "timings"),
    }
    logs = work / "logs"
    logs.mkdir(exist_ok=True)
    results = {}
    for name, command in pipeline_stages(dvc_yaml, list(params["methods"])):
        if only is not None and name.split("@")[0] not in only and name not in only:
            continue
        results[name] = run_stage(command, work, env, logs / f"{name}.log")
        numbers = results[name]
        log(
            f"bench scale: {work.name}: {name}: {numbers['seconds']:.1f} s, "
            f"{numbers['max_rss_mb']:.0f} MB max RSS, {numbers['peak_tree_rss_mb']:.0f} MB tree"
        )
    return results


# ---------------------------------------------------------------------------------------------
# The report


def scene_frames(params: dict) -> int:
    """Frames of all videos of the synthetic scene the params describe."""
    options = SyntheticOptions.from_kwargs(dict(params["data"].get("synthetic") or {}))
    return (options.train_videos + options.test_videos) * options.frames_per_video


def comparisons(per_scale: dict[str, dict], frames: dict[str, int]) -> tuple[dict, dict]:
    """Per stage, largest over smallest scale: ratios of seconds and memory, and the slopes
    per video frame of the scene (seconds and MB per frame added)."""
    labels = list(per_scale)
    low, high = labels[0], labels[-1]
    added = frames[high] - frames[low]
    ratios, slopes = {}, {}
    for stage, first in per_scale[low].items():
        last = per_scale[high][stage]
        ratios[stage] = {
            key: round(last[key] / first[key], 3) if first[key] > 0 else None
            for key in ("seconds", "cpu_seconds", "max_rss_mb", "peak_tree_rss_mb")
        }
        slopes[stage] = {
            f"{name}_per_frame": round((last[key] - first[key]) / added, 6) if added else None
            for name, key in (
                ("seconds", "seconds"),
                ("cpu_seconds", "cpu_seconds"),
                ("mb", "max_rss_mb"),
                ("tree_mb", "peak_tree_rss_mb"),
            )
        }
    return {f"{high}/{low}": ratios}, {f"{low}..{high}": slopes}


def run_scale_benchmark(
    scales: Sequence[int] = SCALES,
    out: str | Path = "reports/bench/scale.json",
    overrides: dict | None = None,
    base_frames: int | None = None,
    keep: str | Path | None = None,
    code: Path = REPO,
    command: str = "python -m vad bench scale",
    log=print,
) -> dict:
    """Run the pipeline at each scale and write the JSON report (see the module docstring).

    `overrides`: params merged over the bench's own (e.g. a tiny scene for a test);
    `base_frames`: frames per video at 1x (default: the scene's default); `keep`: a folder to
    keep each scale's work folder in (default: a temporary one, removed)."""
    scales = sorted({int(s) for s in scales})
    if not scales or scales[0] < 1:
        raise ValueError(f"bench scale: scales must be positive integers, got {scales}")
    settings = merged(BENCH_SETTINGS, overrides or {})
    params = merged(load_params(code / "params.yaml"), settings)
    if base_frames is None:
        base_frames = (params["data"]["synthetic"] or {}).get(
            "frames_per_video", SyntheticOptions().frames_per_video
        )
    per_scale, frames = {}, {}
    with tempfile.TemporaryDirectory(prefix="vad-bench-scale-") as scratch:
        root = Path(keep) if keep is not None else Path(scratch)
        for scale in scales:
            label = f"{scale}x"
            scaled = scale_params(params, scale, base_frames)
            work = root / label
            if work.exists():
                raise ValueError(f"bench scale: {work} exists; give --keep an empty folder")
            start = time.perf_counter()
            per_scale[label] = run_pipeline(work, code, scaled, log=log)
            frames[label] = scene_frames(scaled)
            log(f"bench scale: {label} done in {time.perf_counter() - start:.0f} s")
    ratios, per_frame = comparisons(per_scale, frames) if len(scales) > 1 else ({}, {})
    report = {
        "command": command,
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "settings": settings,
        "base_frames_per_video": base_frames,
        "methods": list(params["methods"]),
        "measures": {
            "seconds": "wall time of the stage's process, start-up and imports included",
            "cpu_seconds": "user + system CPU time of the stage's process and its workers",
            "max_rss_mb": "exact peak resident set of the largest single process of the stage "
            "(the stage or one of its workers): ru_maxrss from os.wait4",
            "peak_tree_rss_mb": f"sampled every {SAMPLE_SECONDS} s: peak sum of the resident "
            "sets of the stage's process and its workers",
        },
        "scales": {
            label: {
                "frames_per_video": scale * base_frames,
                "scene_frames": frames[label],
                "stages": per_scale[label],
            }
            for scale, label in zip(scales, per_scale, strict=True)
        },
        "ratios": ratios,
        "per_frame": per_frame,
    }
    with atomic_output(out) as tmp:
        tmp.write_text(json.dumps(report, indent=2) + "\n")
    return report
