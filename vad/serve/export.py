"""`vad export`: a run bundle (vad.serve.bundle) from a reproduced workspace or a git/DVC
revision of it (a commit, branch, tag or `dvc exp` experiment name).

What goes in: each chosen method's model folder (data/models/<method>), the params, the files
the params name that its streaming scorer reads (`objects.onnx`, the detector of the velocity
method's objects, when set: copied to `inputs/`; the loaded bundle's params point to the copy;
every other setting the scorers need, such as `objects` and `flow`, is in the params), and per
scorer (method or fused model) the statistics of its training frame scores from data/scores
and data/fused (mean and standard deviation for the normalised score, the alert threshold as
their `serve.threshold_quantile` quantile, and for fused models each part's statistics exactly
as the `fuse` stage uses them), the frames it was trained on (color, size), and provenance: git
revision, the dvc.lock hash of every stage output, and reports/metrics.json.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import yaml

from vad.cache import atomic_directory, iter_videos, open_cache
from vad.config import Section, load_params
from vad.fusion import map_statistics, part_statistics
from vad.methods.registry import enabled_methods, get_method
from vad.params.serve import serve_settings
from vad.scores import ScoreSet, read_score_attrs, read_scores
from vad.serve.bundle import FORMAT, INPUTS, MANIFEST, MODELS, PARAMS, VERSION, file_entries

FRAMES = Path("data/interim/frames.h5")
SCORES = Path("data/scores")
FUSED = Path("data/fused")
TRAINED = Path("data/models")
METRICS = Path("reports/metrics.json")
LOCK = Path("dvc.lock")


def score_statistics(scores: ScoreSet, quantile: float) -> dict:
    """Training frame-score mean, std and alert threshold; map-cell mean and std with maps."""
    mean, std = scores.train_statistics()
    values = np.concatenate([v.frame_scores for v in scores.train.values()]).astype(np.float64)
    stats = {
        "train_mean": mean,
        "train_std": std,
        "threshold": float(np.quantile(values, quantile)),
    }
    if all(v.score_maps is not None for v in scores.train.values()):
        stats["map_mean"], stats["map_std"] = map_statistics(scores)
    return stats


def training_frames(frames_path: Path) -> dict:
    """The color and (width, height) of the frames a run was trained on, from its frames.h5."""
    with open_cache(frames_path) as f:
        for *_, group in iter_videos(f):
            _, height, width, channels = group["frames"].shape
            return {"color": "gray" if channels == 1 else "rgb", "size": [width, height]}
    raise ValueError(f"{frames_path}: no video")


def param_files(params: dict, methods: list[str]) -> dict[str, Path]:
    """{params key: path as written} of the files that `methods`' streaming scorers read:
    the ONNX detector of the `objects` stage, for methods reading its boxes."""
    files = {}
    onnx = (params.get("objects") or {}).get("onnx")
    if onnx and any("objects" in get_method(name).inputs for name in methods):
        files["objects.onnx"] = Path(onnx)
    return files


def lock_hashes(lock_path: Path) -> dict[str, str]:
    """{output path: md5} of every stage output recorded in dvc.lock."""
    if not lock_path.is_file():
        return {}
    stages = (yaml.safe_load(lock_path.read_text()) or {}).get("stages", {})
    return {
        out["path"]: out.get("md5", "")
        for stage in stages.values()
        for out in stage.get("outs", [])
    }


def git_revision(root: Path, rev: str = "HEAD") -> dict:
    """The commit of `rev` in the git repository at `root`, and whether the work tree differs."""

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else ""

    commit = git("rev-parse", rev)
    dirty = bool(git("status", "--porcelain", "--untracked-files=no")) if rev == "HEAD" else False
    return {"commit": commit or None, "dirty": dirty}


def resolve_revision(root: Path, rev: str) -> str:
    """A commit for `rev`: a git revision, or the name of a `dvc exp` experiment."""
    done = subprocess.run(
        ["git", "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"],
        cwd=root,
        capture_output=True,
        text=True,
    )
    if done.returncode == 0:
        return done.stdout.strip()
    refs = subprocess.run(
        ["git", "for-each-ref", "--format=%(refname) %(objectname)", "refs/exps"],
        cwd=root,
        capture_output=True,
        text=True,
    ).stdout.split("\n")
    matches = [line.split()[1] for line in refs if line and line.split()[0].endswith(f"/{rev}")]
    if len(matches) != 1:
        raise ValueError(
            f"{root}: revision {rev!r} is neither a git revision nor one DVC experiment's name"
        )
    return matches[0]


def fetch_revision(root: Path, commit: str, paths: list[Path], into: Path) -> None:
    """Copy `paths` (files or folders, git- or DVC-tracked) as of `commit` into `into`."""
    from dvc.api import DVCFileSystem

    fs = DVCFileSystem(str(root), rev=commit)
    for path in paths:
        if not fs.exists(str(path)):
            continue
        target = into / path
        target.parent.mkdir(parents=True, exist_ok=True)
        fs.get(str(path), str(target), recursive=fs.isdir(str(path)))


def export_bundle(
    out: str | Path,
    root: str | Path = ".",
    methods: list[str] | None = None,
    rev: str | None = None,
) -> Path:
    """Write the bundle of the run in `root` (or of its revision `rev`) to `out`; `methods`
    picks scorers (methods or fused models; default: all the run has)."""
    root = Path(root).resolve()
    if rev is None:
        return _export(Path(out), root, methods, git_revision(root))
    commit = resolve_revision(root, rev)
    with tempfile.TemporaryDirectory(prefix="vad-export-") as tmp:
        run = Path(tmp)
        fetch_revision(root, commit, [Path(PARAMS), LOCK, METRICS], run)
        params = load_params(run / PARAMS)
        fused = list(Section(params, "fuse").mapping("models"))
        paths = [FRAMES] + [
            folder / f"{name}{suffix}"
            for name in enabled_methods(params)
            for folder, suffix in ((TRAINED, ""), (SCORES, ".h5"))
        ]
        files = param_files(params, enabled_methods(params)).values()
        paths += [path for path in files if not path.is_absolute()]
        fetch_revision(root, commit, paths + [FUSED / f"{name}.h5" for name in fused], run)
        return _export(Path(out), run, methods, {"commit": commit, "dirty": False, "rev": rev})


def _parts(name: str, fused: dict[str, dict]) -> list[str]:
    """The methods a scorer runs: a fused model's parts, or the method itself."""
    return list(fused[name]["parts"]) if name in fused else [name]


def _export(out: Path, run: Path, chosen: list[str] | None, revision: dict) -> Path:
    params = load_params(run / PARAMS)
    serve = serve_settings(params)
    methods = enabled_methods(params)
    fused = {path.stem: read_score_attrs(path) for path in sorted((run / FUSED).glob("*.h5"))}
    available = [*fused, *methods]
    unknown = [name for name in chosen or [] if name not in available]
    if unknown:
        raise ValueError(
            f"{run}: no trained method or fused model {', '.join(unknown)}; "
            f"the run has {', '.join(available)}"
        )
    cannot = [name for name in methods if get_method(name).streaming is None]
    if not chosen:  # every scorer of the run that can stream
        chosen = [name for name in available if not set(_parts(name, fused)) & set(cannot)]
        for name in cannot:
            print(f"vad export: {name} left out: it does not support streaming scoring")
    refused = [name for name in chosen if set(_parts(name, fused)) & set(cannot)]
    if refused:
        raise ValueError(
            f"{', '.join(refused)}: does not support streaming scoring (`vad score`); "
            f"methods without a streaming scorer: {', '.join(cannot)}"
        )
    chosen = list(chosen)
    needed = list(dict.fromkeys(part for name in chosen for part in _parts(name, fused)))
    copies = {}  # params key -> (source, path in the bundle)
    for key, path in param_files(params, needed).items():
        source = run / path
        if not source.is_file():
            raise FileNotFoundError(f"{source}: the file of params.yaml '{key}' not found")
        copies[key] = (source, f"{INPUTS}/{key}")
    scores = {name: _read_run_scores(run / SCORES / f"{name}.h5") for name in needed}
    scorers = {}
    for name in chosen:
        if name in fused:
            attrs = fused[name]
            parts = {part: scores[part] for part in attrs["parts"]}
            on_maps, stats = part_statistics(parts, attrs["normalize"])
            scorers[name] = {
                "kind": "fused",
                "parts": attrs["parts"],
                "weights": attrs["weights"],
                "normalize": attrs["normalize"],
                "level": "map" if on_maps else "frame",
                "part_statistics": {part: list(stats[part]) for part in attrs["parts"]},
                **score_statistics(
                    read_scores(run / FUSED / f"{name}.h5"), serve["threshold_quantile"]
                ),
            }
        else:
            scorers[name] = {
                "kind": "method",
                **score_statistics(scores[name], serve["threshold_quantile"]),
            }
    metrics_path = run / METRICS
    manifest = {
        "format": FORMAT,
        "version": VERSION,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "default": chosen[0],
        "scorers": scorers,
        "methods": needed,
        "serve": serve,
        "training_frames": training_frames(run / FRAMES),
        "param_files": {key: inside for key, (_, inside) in copies.items()},
        "provenance": {
            "git": revision,
            "dvc_lock_outs": lock_hashes(run / LOCK),
            "metrics": json.loads(metrics_path.read_text()) if metrics_path.is_file() else None,
        },
    }
    with atomic_directory(out) as tmp:
        shutil.copyfile(run / PARAMS, tmp / PARAMS)
        for method in needed:
            source = run / TRAINED / method
            if not source.is_dir():
                raise FileNotFoundError(f"{source}: trained model folder not found")
            shutil.copytree(source, tmp / MODELS / method)
        for source, inside in copies.values():
            (tmp / inside).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, tmp / inside)
        manifest["files"] = file_entries(tmp)
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return out


def _read_run_scores(path: Path) -> ScoreSet:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: score file not found (run `dvc repro` first)")
    return read_scores(path)
