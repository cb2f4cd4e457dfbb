"""`python -m vad benchmark <dataset> <root>` (`make benchmark DATA=ped2`): every enabled method
on a real dataset at its documented CPU budget, through DVC.

One `dvc exp run --temp --force` named after the dataset, with `data.name`, `data.root` and
each enabled method's budget overrides (`Method.budgets[dataset]`) set; every stage is run
(none restored from DVC's run cache), so each stage's wall time is measured (vad.timing).
Then, from the experiment's commit, the run's folder reports/<dataset>/all/ (chosen methods:
reports/<dataset>/<m1+m2>/): metrics.json (same structure as reports/metrics.json),
metrics_paper.json (methods under their paper's own protocol, params
`evaluate.paper_protocols`), summary.md and run.json (the command, the overrides, each
method's budget and seconds per stage), and RESULTS.md's table for the run between its
markers. Last, reports/<dataset>/ itself gets the newest row of every score set over all its
runs (vad.bench.dataset_report) and RESULTS.md its `<dataset>:rows` block.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import yaml

from vad.bench.dataset_report import command_of, write_dataset_report
from vad.bench.throughput import throughput
from vad.cache import atomic_output
from vad.config import load_params
from vad.datasets import open_dataset
from vad.methods.registry import enabled_methods, get_method
from vad.params.check import check_params, with_overrides
from vad.timing import read_timings

RESULTS = Path("RESULTS.md")
SHARED_STAGES = (
    "settings", "frames", "flow", "dynamic_flow", "objects", "motion_figures", "inputs"
)  # fmt: skip
Runner = Callable[..., str]  # (args, env=None, stream=False) -> standard output


def run(args: Sequence[str], env: dict | None = None, stream: bool = False) -> str:
    """Run a command; its standard output, or SystemExit with its own message. With `stream`,
    its output goes to this terminal as it comes (a long run shows its progress) instead."""
    try:
        done = subprocess.run(list(args), capture_output=not stream, text=True, env=env)
    except FileNotFoundError as error:
        raise SystemExit(f"`{' '.join(args)}`: {args[0]} is not installed here") from error
    if done.returncode != 0:
        message = "" if stream else f":\n{done.stderr.strip()}"
        raise SystemExit(f"`{' '.join(args)}` failed ({done.returncode}){message}")
    return "" if stream else done.stdout


def budget_overrides(methods: list[str], dataset: str) -> dict[str, dict]:
    """Each enabled method's documented CPU budget on `dataset` (params overrides)."""
    return {name: dict(get_method(name).budgets.get(dataset, {})) for name in methods}


def merged_overrides(dataset: str, root: Path, budgets: dict[str, dict]) -> dict[str, object]:
    """The `-S` overrides of the run; two methods asking different values of a key is an error."""
    merged: dict[str, object] = {"data.name": dataset, "data.root": str(root)}
    for method, overrides in budgets.items():
        for key, value in overrides.items():
            if key in merged and merged[key] != value:
                raise SystemExit(
                    f"benchmark: methods disagree on {key} ({merged[key]!r} vs {value!r} "
                    f"from {method})"
                )
            merged[key] = value
    return merged


def as_set(value: object) -> str:
    """A value as `dvc exp run -S key=<value>` reads it (YAML): lists in flow style."""
    if isinstance(value, list):
        return "[" + ",".join(str(item) for item in value) + "]"
    return str(value)


def method_seconds(timings: dict[str, float], methods: list[str]) -> dict[str, float]:
    """Seconds of each method's own stages (prepare, train, score)."""
    return {
        name: round(
            sum(timings.get(f"{kind}@{name}", 0.0) for kind in ("prepare", "train", "score")), 1
        )
        for name in methods
    }


def report_place(
    dataset: str, out: str | None, chosen: Sequence[str] | None
) -> tuple[Path, str]:
    """The run's folder (reports/<dataset>/all or reports/<dataset>/<m1+m2>; `out` replaces
    reports/<dataset>) and its RESULTS.md block label (<dataset>[:<m1+m2>]) of a run of all
    methods (`chosen` None) or of chosen ones."""
    dataset_dir = Path(out or f"reports/{dataset}")
    if chosen:
        return dataset_dir / "+".join(chosen), f"{dataset}:{'+'.join(chosen)}"
    return dataset_dir / "all", dataset


def frame_counts(dataset: str, root: Path) -> dict[str, int]:
    """Training and test frames of the dataset (opening it checks the root)."""
    summary = open_dataset(dataset, root).summary()
    return {"train": summary["train_frames"], "test": summary["test_frames"]}


def method_throughput(
    stage_seconds: dict[str, float], frames: dict[str, int], methods: Sequence[str]
) -> dict[str, dict]:
    """vad.bench.throughput for these methods (their inputs from the registry)."""
    chosen = {name: (get_method(name).inputs, get_method(name).prepare_reads_test)
              for name in methods}  # fmt: skip
    return throughput(stage_seconds, frames["train"], frames["test"], chosen)


def results_table(dataset: str, summary: str, report: dict) -> str:
    """The block RESULTS.md shows for the dataset: command, summary table, budgets and times."""
    command, folder = command_of(report), f"reports/{dataset}/all/"
    if report.get("experiment", dataset) != dataset:  # chosen methods
        folder = f"reports/{dataset}/{'+'.join(report['methods'])}/"
    lines = [
        f"Generated by `{command}` from {folder} "
        f"(git {report['git_revision'][:10]}; {report['cpu_count']} CPU cores, "
        f"{report['total_seconds'] / 60:.1f} min in all).",
        "",
        summary.strip(),
        "",
        "| method | budget (params overrides) | wall time of its stages | test frames/s ² |",
        "|---|---|---|---|",
    ]
    rates = report.get("throughput", {})
    for name, budget in report["budgets"].items():
        text = ", ".join(f"`{key}={value}`" for key, value in budget.items()) or "defaults"
        rate = rates.get(name, {}).get("test_frames_per_second")
        rate_text = f"{rate:.1f}" if rate is not None else "–"
        lines.append(
            f"| {name} | {text} | {report['method_seconds'][name]:.0f} s | {rate_text} |"
        )
    shared = sum(report["stage_seconds"].get(stage, 0.0) for stage in SHARED_STAGES)
    lines += [
        "",
        f"Shared preprocessing ({', '.join(SHARED_STAGES)}): {shared:.0f} s.",
        "",
        "² Scoring throughput in the pipeline: test frames per second of the method's score "
        "stage plus the test frames' share of the caches it reads (run.json `throughput`; "
        "vad/bench/throughput.py).",
    ]
    return "\n".join(lines) + "\n"


def rows_block(dataset_dir: Path) -> str:
    """The RESULTS.md block of a dataset's assembled rows (vad.bench.dataset_report)."""
    return (
        f"The newest row of every score set, assembled from the runs under {dataset_dir}/ "
        f"(`python -m vad benchmark {dataset_dir.name} --assemble`; {dataset_dir}/metrics.json, "
        f"metrics_paper.json, sources.json). Runs differ in commit, budget and machine load: "
        "each run's own block gives its budget and times.\n\n"
        + (dataset_dir / "summary.md").read_text()
    )


def replace_block(text: str, dataset: str, block: str) -> str:
    """`text` with the part between the dataset's markers replaced (appended if absent)."""
    begin, end = f"<!-- benchmark:{dataset}:begin -->", f"<!-- benchmark:{dataset}:end -->"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        return head + begin + "\n" + block + end + rest.split(end, 1)[1]
    return text.rstrip() + f"\n\n{begin}\n{block}{end}\n"


def run_benchmark(
    dataset: str,
    root: str,
    out: str | None = None,
    run_command: Runner = run,
    methods: Sequence[str] | None = None,
) -> dict:
    """Run the benchmark experiment and write its reports; returns run.json's content.
    `methods`: these instead of params.yaml's `methods` (experiment `<dataset>_<methods>`,
    reports in reports/<dataset>/<methods>/, its own block of RESULTS.md)."""
    root_path = Path(root).expanduser().resolve()
    frames = frame_counts(dataset, root_path)  # a wrong root fails here, before any work
    params = load_params()
    chosen = None
    if methods is not None:
        chosen = enabled_methods({**params, "methods": list(methods)})
    methods = chosen or enabled_methods(params)
    budgets = budget_overrides(methods, dataset)
    overrides = merged_overrides(dataset, root_path, budgets)
    experiment = dataset
    if chosen is not None:
        overrides = {"methods": list(chosen), **overrides}
        experiment = f"{dataset}_{'_'.join(chosen)}"
    errors = check_params(with_overrides(params, overrides))
    if errors:  # refused here, not by a stage minutes into the run
        raise SystemExit(
            "benchmark: params.yaml with the overrides is invalid:\n" + "\n".join(errors)
        )
    out_dir, label = report_place(dataset, out, chosen)
    head = run_command(["git", "rev-parse", "HEAD"]).strip()
    dirty = bool(run_command(["git", "status", "--porcelain", "--untracked-files=no"]).strip())
    with tempfile.TemporaryDirectory(prefix="vad-timings-") as timings:
        env = {**os.environ, "VAD_TIMINGS_DIR": timings}
        sets = [arg for key, value in overrides.items() for arg in ("-S", f"{key}={as_set(value)}")]
        start = time.perf_counter()
        print(f"benchmark: dvc exp run --temp --force -n {experiment} {' '.join(sets)}", flush=True)
        run_command(
            ["dvc", "exp", "run", "--temp", "--force", "-n", experiment, *sets],
            env=env,
            stream=True,
        )
        total = time.perf_counter() - start
        stage_seconds = read_timings(Path(timings) / experiment)  # vad.timing's subfolder
    ref = f"refs/exps/{head[:2]}/{head[2:]}/{experiment}"
    metrics = json.loads(run_command(["git", "show", f"{ref}:reports/metrics.json"]))
    paper_metrics = json.loads(run_command(["git", "show", f"{ref}:reports/metrics_paper.json"]))
    summary = run_command(["git", "show", f"{ref}:reports/summary.md"])
    report = {
        "dataset": dataset,
        "root": str(root_path),
        "command": f"make benchmark DATA={dataset}"
        + (f" METHODS={','.join(chosen)}" if chosen else ""),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "experiment": experiment,
        "methods": list(methods),
        "git_revision": head,
        "uncommitted_changes": dirty,
        "cpu_count": os.cpu_count(),
        "overrides": overrides,
        "budgets": budgets,
        "total_seconds": round(total, 1),
        "stage_seconds": {stage: round(s, 1) for stage, s in sorted(stage_seconds.items())},
        "method_seconds": method_seconds(stage_seconds, methods),
        "frames": frames,
        "throughput": method_throughput(stage_seconds, frames, methods),
    }
    for name, content in (
        ("metrics.json", json.dumps(metrics, indent=2) + "\n"),
        ("metrics_paper.json", json.dumps(paper_metrics, indent=2) + "\n"),
        ("summary.md", summary),
        ("run.json", json.dumps(report, indent=2) + "\n"),
    ):
        with atomic_output(out_dir / name) as tmp:
            tmp.write_text(content)
    if RESULTS.exists():
        RESULTS.write_text(
            replace_block(RESULTS.read_text(), label, results_table(dataset, summary, report))
        )
    print(summary)
    print("Newest row of every score set on the dataset:")
    assemble_report(dataset, out)
    print(yaml.safe_dump({"method_seconds": report["method_seconds"]}, sort_keys=False))
    return report


def assemble_report(dataset: str, out: str | None = None) -> dict:
    """Rebuild reports/<dataset>/'s rows from its run folders and RESULTS.md's rows block."""
    dataset_dir = Path(out or f"reports/{dataset}")
    assembled = write_dataset_report(dataset_dir)
    if RESULTS.exists():
        RESULTS.write_text(
            replace_block(RESULTS.read_text(), f"{dataset}:rows", rows_block(dataset_dir))
        )
    print((dataset_dir / "summary.md").read_text())
    return assembled


def refresh_report(
    dataset: str, root: str, out: str | None = None, methods: Sequence[str] | None = None
) -> dict:
    """Recompute what run.json derives from its stage times (`frames`, `throughput`) and the
    RESULTS.md block, for a run written before they existed; nothing is run again."""
    out_dir, _ = report_place(dataset, out, methods)
    path = out_dir / "run.json"
    if not path.is_file():
        raise SystemExit(f"benchmark --refresh: {path} not found (run the benchmark first)")
    report = json.loads(path.read_text())
    frames = frame_counts(dataset, Path(root).expanduser().resolve())
    report["frames"] = frames
    methods = report.get("methods") or list(report["budgets"])  # older runs: budgets only
    report["throughput"] = method_throughput(report["stage_seconds"], frames, methods)
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(report, indent=2) + "\n")
    whole_run = report.get("experiment", dataset) == dataset
    _, label = report_place(dataset, out, None if whole_run else methods)
    if RESULTS.exists():
        summary = (out_dir / "summary.md").read_text()
        RESULTS.write_text(
            replace_block(RESULTS.read_text(), label, results_table(dataset, summary, report))
        )
    print(yaml.safe_dump({"throughput": report["throughput"]}, sort_keys=False))
    return report
