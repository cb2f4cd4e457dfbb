"""reports/<dataset>/experiments/<table>/: a paper table's finished DVC experiments on a real
dataset as rows `<row>_<variant>` (e.g. `dissociation_spatial`), written like a benchmark run
(metrics.json, metrics_paper.json, summary.md, run.json) so that vad.bench.dataset_report
merges them into reports/<dataset>/.

Each experiment is read from its git ref (refs/exps/<baseline>/<name>; the newest if several
baselines ran one name): its reports/metrics.json and metrics_paper.json, and its params.yaml,
which must hold every override the table gives it (a row never mixes in an experiment of
another budget). Stage times come from the queue's timings folder (vad.timing, one subfolder
per experiment) when the queue's worker was started with it; the experiment's log
(`dvc queue logs`, progress bars dropped) is kept beside the rows when DVC still has it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path

import yaml

from vad.bench.dataset_report import commit_time
from vad.bench.pipeline import Runner, method_seconds, run
from vad.cache import atomic_output
from vad.experiments import experiment_sets
from vad.params.check import parse_overrides
from vad.report import PIXEL_FOOTNOTE
from vad.timing import read_timings


def experiment_refs(run: Runner) -> list[str]:
    """Every experiment ref, newest commit first."""
    listing = run(["git", "for-each-ref", "--sort=-committerdate", "--format=%(refname)",
                   "refs/exps"])  # fmt: skip
    return [line for line in listing.split() if line.count("/") == 4]


def newest_ref(name: str, refs: Sequence[str]) -> str | None:
    """The newest ref of an experiment named `name`, or None."""
    return next((ref for ref in refs if ref.rsplit("/", 1)[1] == name), None)


def baseline_of(ref: str) -> str:
    """The baseline commit in refs/exps/ab/cdef.../<name>."""
    _, _, head, tail, _ = ref.split("/")
    return head + tail


def row_name(row: str, name: str, prefix: str) -> str:
    """`dissociation` + `ped2-dissociation_spatial` -> `dissociation_spatial`; `gmfc_vae` +
    `ped2-K5` -> `gmfc_vae_K5`."""
    variant = name[len(prefix) :] if name.startswith(prefix) else name
    return variant if variant.startswith(f"{row}_") else f"{row}_{variant}"


def check_params_hold(name: str, params: dict, overrides: Sequence[str]) -> None:
    """SystemExit naming the first override the experiment's params.yaml does not hold."""
    for key, wanted in parse_overrides(list(overrides)).items():
        value: object = params
        for part in key.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if value != wanted:
            raise SystemExit(
                f"experiment {name} ran with {key}={value!r}, not {wanted!r}: it belongs to "
                "another run of the table (re-run it, or collect with its overrides)"
            )


def clean_log(text: str) -> str:
    """A queue log without progress-bar redraws: the last state of each carriage-returned line,
    and no tqdm bar lines."""
    lines = [line.rstrip("\r").rsplit("\r", 1)[-1].rstrip() for line in text.split("\n")]
    return "\n".join(line for line in lines if line and "|" not in line) + "\n"


def collect_experiments(
    dataset: str,
    table: str,
    experiments: Sequence[tuple[str, Sequence[str]]],
    row: str,
    prefix: str,
    common_sets: Sequence[str],
    methods: Sequence[str],
    command: str,
    timings: Path | None = None,
    out: Path | None = None,
    run: Runner = run,
) -> dict:
    """Write reports/<dataset>/experiments/<table>/ from the finished experiments; returns its
    run.json. Experiments without a ref are listed under `missing`, not guessed."""
    out = out or Path("reports") / dataset / "experiments" / table
    refs = experiment_refs(run)
    metrics: dict = {}
    paper: dict = {"protocols": {}}
    entries: dict = {}
    missing = []
    for name, sets in experiments:
        ref = newest_ref(name, refs)
        if ref is None:
            missing.append(name)
            continue
        check_params_hold(name, yaml.safe_load(run(["git", "show", f"{ref}:params.yaml"])),
                          experiment_sets(sets, common_sets))  # fmt: skip
        run_metrics = json.loads(run(["git", "show", f"{ref}:reports/metrics.json"]))
        run_paper = json.loads(run(["git", "show", f"{ref}:reports/metrics_paper.json"]))
        if row not in run_metrics:
            raise SystemExit(f"experiment {name}: its reports/metrics.json has no {row!r} row")
        if metrics and run_metrics["protocol"] != metrics["protocol"]:
            raise SystemExit(f"experiment {name}: a strict protocol unlike the others'")
        metrics.setdefault("protocol", run_metrics["protocol"])
        variant = row_name(row, name, prefix)
        metrics[variant] = run_metrics[row]
        if row in run_paper:
            paper[variant] = run_paper[row]
            paper["protocols"][variant] = run_paper.get("protocols", {}).get(row)
        stage_seconds = read_timings(timings / name) if timings is not None else {}
        entries[variant] = {
            "experiment": name,
            "baseline": baseline_of(ref),
            "commit": run(["git", "rev-parse", ref]).strip(),
            "overrides": list(sets),
            "stage_seconds": stage_seconds,
            "method_seconds": round(sum(method_seconds(stage_seconds, list(methods)).values()), 1),
        }
        keep_log(name, out / "logs", run)
    if not entries:
        raise SystemExit(f"no finished experiment of table {table} (looked for "
                         f"{', '.join(name for name, _ in experiments)})")  # fmt: skip
    report = {
        "dataset": dataset,
        "table": table,
        "command": command,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "git_revision": max((entry["baseline"] for entry in entries.values()), key=commit_time),
        "methods": list(methods),
        "common_overrides": list(common_sets),
        "experiments": entries,
        "missing": missing,
    }
    for file_name, content in (
        ("metrics.json", json.dumps(metrics, indent=2) + "\n"),
        ("metrics_paper.json", json.dumps(paper, indent=2) + "\n"),
        ("run.json", json.dumps(report, indent=2) + "\n"),
        ("summary.md", rows_table(metrics, paper, entries, missing, common_sets)),
    ):
        with atomic_output(out / file_name) as tmp:
            tmp.write_text(content)
    return report


def keep_log(name: str, folder: Path, run: Runner) -> None:
    """Save the experiment's queue log, if DVC still has it (a `--temp` run has none)."""
    try:
        text = run(["dvc", "queue", "logs", name])
    except SystemExit:
        return
    with atomic_output(folder / f"{name}.txt") as tmp:
        tmp.write_text(clean_log(text))


def rows_table(
    metrics: dict, paper: dict, entries: dict, missing: Sequence[str], common: Sequence[str]
) -> str:
    """Markdown: each variant's frame and pixel AUC (strict), its paper-protocol frame AUC,
    the overrides that define it, its stages' seconds and the commit it was queued on (rows of
    one table may come from several); under it the overrides common to every experiment."""
    lines = [
        "| row | frame AUC | frame AUC macro | pixel AUC ¹ | frame AUC, paper's protocol "
        "| overrides | seconds | git |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for variant, entry in entries.items():
        values = metrics[variant]
        paper_auc = paper.get(variant, {}).get("frame_auc_micro")
        seconds = entry["method_seconds"] if entry["stage_seconds"] else None
        cells = [
            f"{values.get('frame_auc_micro', float('nan')):.3f}",
            f"{values.get('frame_auc_macro', float('nan')):.3f}",
            "—" if values.get("pixel_auc") is None else f"{values['pixel_auc']:.3f}",
            "—" if paper_auc is None else f"{paper_auc:.3f}",
            " ".join(f"`{item}`" for item in entry["overrides"]) or "none (params.yaml's own)",
            "—" if seconds is None else f"{seconds:.0f}",
            entry["baseline"][:7],
        ]
        lines.append(f"| {variant} | " + " | ".join(cells) + " |")
    text = "\n".join(lines) + f"\n\n{PIXEL_FOOTNOTE}\n"
    text += (
        f"\nEvery experiment also ran with {' '.join(f'`{item}`' for item in common)}, "
        "except for the keys its own overrides set.\n"
    )
    if missing:
        text += f"\nNot run (no experiment ref): {', '.join(missing)}.\n"
    return text
