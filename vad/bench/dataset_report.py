"""reports/<dataset>/metrics.json, metrics_paper.json, summary.md and sources.json: the newest
measured row of every score set on a real dataset, gathered from the runs under the folder.

A CPU benchmark of every method takes hours, so a dataset's rows come from several runs:
`make benchmark DATA=d` (reports/d/all/), `make benchmark DATA=d METHODS=a,b` (reports/d/a+b/)
and `python -m vad experiments --dataset d` (reports/d/experiments/<table>/). Each run folder
keeps its own metrics.json, metrics_paper.json, summary.md and run.json. This module merges
them: a score set measured by several runs is taken from the run of the newest code (the commit
time of its run.json `git_revision`); sources.json names, for every row, the run folder, its
command and commit, so that a number never loses where it came from. Every run must use the
same strict protocol (`protocol` of metrics.json); a run that does not is refused by name.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

from vad.cache import atomic_output
from vad.report import PIXEL_FOOTNOTE, SUMMARY_COLUMNS

RUN_FILES = ("run.json", "metrics.json", "metrics_paper.json")
RevisionTime = Callable[[str], float]


def commit_time(revision: str) -> float:
    """Commit time (seconds since the epoch) of a git revision; 0 if git does not know it."""
    done = subprocess.run(
        ["git", "show", "-s", "--format=%ct", revision], capture_output=True, text=True
    )
    return float(done.stdout.strip()) if done.returncode == 0 and done.stdout.strip() else 0.0


def run_folders(dataset_dir: Path) -> list[Path]:
    """Every folder below `dataset_dir` (not itself) holding a run's three files."""
    return sorted(
        path.parent
        for path in dataset_dir.rglob("run.json")
        if path.parent != dataset_dir and all((path.parent / f).is_file() for f in RUN_FILES)
    )


def command_of(run: dict) -> str:
    """The command that wrote a run folder (older run.json files do not record it)."""
    if "command" in run:
        return run["command"]
    command = f"make benchmark DATA={run['dataset']}"
    if run.get("experiment", run["dataset"]) != run["dataset"]:
        command += f" METHODS={','.join(run['methods'])}"
    return command


def read_run(folder: Path) -> tuple[dict, dict, dict]:
    """(run.json, metrics.json, metrics_paper.json) of a run folder."""
    return tuple(json.loads((folder / name).read_text()) for name in RUN_FILES)  # type: ignore[return-value]


def assemble(dataset_dir: Path, revision_time: RevisionTime = commit_time) -> dict:
    """Merge the runs below `dataset_dir`; returns {"metrics", "paper", "sources"}."""
    runs = []
    for folder in run_folders(dataset_dir):
        run, metrics, paper = read_run(folder)
        runs.append((revision_time(run["git_revision"]), str(folder.relative_to(dataset_dir)),
                     run, metrics, paper))  # fmt: skip
    if not runs:
        raise SystemExit(f"{dataset_dir}: no run folder (run.json, metrics.json, "
                         "metrics_paper.json) below it; run `make benchmark` first")  # fmt: skip
    runs.sort(key=lambda item: (item[0], item[1]))  # oldest code first: newer rows replace
    protocol, protocol_run = runs[0][3]["protocol"], runs[0][1]
    metrics: dict = {"protocol": protocol}
    paper: dict = {"protocols": {}}
    sources: dict = {}
    for _, name, run, run_metrics, run_paper in runs:
        if run_metrics["protocol"] != protocol:
            raise SystemExit(
                f"{dataset_dir}: runs {protocol_run} and {name} used different strict protocols "
                f"({protocol} vs {run_metrics['protocol']}); re-run one of them"
            )
        for row, values in run_metrics.items():
            if row == "protocol":
                continue
            metrics[row] = values
            sources[row] = {
                "run": name,
                "command": command_of(run),
                "git_revision": run["git_revision"],
            }
            paper["protocols"].pop(row, None)
            paper.pop(row, None)
            if row in run_paper:
                paper[row] = run_paper[row]
                if row in run_paper.get("protocols", {}):
                    paper["protocols"][row] = run_paper["protocols"][row]
    return {"metrics": metrics, "paper": paper, "sources": sources}


def summary(assembled: dict) -> str:
    """Markdown: every row's strict metrics, its paper-protocol frame AUC and its source."""
    metrics, paper, sources = assembled["metrics"], assembled["paper"], assembled["sources"]
    header = ["score set", *SUMMARY_COLUMNS.values(), "frame AUC, paper's protocol", "run (git)"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row, values in metrics.items():
        if row == "protocol":
            continue
        cells = [
            "—" if values.get(key) is None else f"{values[key]:.3f}" for key in SUMMARY_COLUMNS
        ]
        paper_auc = paper.get(row, {}).get("frame_auc_micro")
        cells.append("—" if paper_auc is None else f"{paper_auc:.3f}")
        source = sources[row]
        cells.append(f"{source['run']} ({source['git_revision'][:7]})")
        lines.append("| " + " | ".join([row, *cells]) + " |")
    protocol = ", ".join(
        f"{key} {value}"
        for key, value in metrics["protocol"].items()
        if key != "uses_test_statistics"
    )
    return (
        "\n".join(lines)
        + f"\n\n{PIXEL_FOOTNOTE}\n\nStrict protocol: {protocol}. The paper's protocol of each "
        "row: metrics_paper.json. Each row's run folder, command and commit: sources.json.\n"
    )


def write_dataset_report(dataset_dir: Path, revision_time: RevisionTime = commit_time) -> dict:
    """Assemble and write the four files into `dataset_dir`; returns what `assemble` gave."""
    assembled = assemble(dataset_dir, revision_time)
    for name, content in (
        ("metrics.json", json.dumps(assembled["metrics"], indent=2) + "\n"),
        ("metrics_paper.json", json.dumps(assembled["paper"], indent=2) + "\n"),
        ("sources.json", json.dumps(assembled["sources"], indent=2) + "\n"),
        ("summary.md", summary(assembled)),
    ):
        with atomic_output(dataset_dir / name) as tmp:
            tmp.write_text(content)
    return assembled
