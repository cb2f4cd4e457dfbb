"""The papers' experiments as queued DVC experiments (`python -m vad experiments`).

`--table gmfc_vae` (the default), Fan et al.: Table V, frame AUC against the number of mixture
components K (1, 2, 5, 10, 15, 20, 30, 40); Table VI, the stream ablation of eq. 18,
(alpha, beta) = (1, 0), (0, 1), (0.5, 0.5).
`--table dissociation`, Chang et al. 2022: Table 2's components (spatial only, motion only,
both, + variance attention, + deep K-means, and `full`: params.yaml's own settings, all of
them, at the experiments' own budget) and Table 3's cluster counts (4, 8, 16, 64; 32 is the
full model), named `dissociation_<variant>`. `--table dissociation_budget`: the full model at 5 + 2,
10 + 5, 20 + 10 and 40 + 20 epochs (the budget curve). `--table dissociation_weights`: the full
model with eq. 12's lambda_r at 0.01 instead of 0.1, or eq. 6's gradient term weighted 0.1 or
0.01 instead of 1, the latter also at twice the epochs (not a paper table).
`--table itae`, Cho et al.: ITAE + Glow at the CPU budget (`itae_full`), ITAE alone from the
same training (`itae_recon`, eq. 7's reconstruction score: Table 2's "ITAE" row), and the budget
curve at a quarter and a half of the epochs (`itae_epochs3_2`, `itae_epochs6_3`).
`--table hf2vad`, Liu et al. Table 1: the full model (`hf2vad_full`, eq. 9) and, from the same
training, flow reconstruction alone (`hf2vad_fr`, "w/o FP") and frame prediction alone
(`hf2vad_fp`); and the same three on cubes whose flows are rescaled to the cube's pixels
(`hf2vad_cubeflow*`: `-S stc.flow_units=cube`, retrained once). `--table hf2vad_budget`: the
flow-reconstruction budget curve, ML-MemAE-SC trained alone (no CVAE, no fine-tuning) for 10, 20
and 40 epochs and scored by its flow reconstruction error (`hf2vad_memae<epochs>`), and for 20
epochs on TV-L1 flow (`hf2vad_memae20_tvl1`).
Each is queued with `dvc exp run --queue -n <name> -S ...`, the queue is run with
`dvc queue start`, this command waits for it, and `dvc exp show` prints the comparison.
Changing K re-runs train onwards; changing alpha/beta re-runs only fuse and evaluate.

`--dataset ped2 --root <folder>`: on a real dataset, with the table's methods alone (`methods`)
at their CPU budget for it (`Method.budgets`, as `vad benchmark`), stage times recorded per
experiment (data/timings/queue/<name>/); then the finished experiments become rows
`<method>_<variant>` in reports/<dataset>/experiments/<table>/ (vad.bench.experiment_report),
reports/<dataset>/ is re-assembled (vad.bench.dataset_report) and RESULTS.md gets the table's
block. `--collect` does only that last part, for experiments already run.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

TABLE_V_K = (1, 2, 5, 10, 15, 20, 30, 40)
TABLE_VI_STREAMS = {"appearance": (1.0, 0.0), "motion": (0.0, 1.0), "fused": (0.5, 0.5)}
ACTIVE_STATES = ("Queued", "Running")

Runner = Callable[[Sequence[str]], str]


def paper_experiments(prefix: str = "") -> list[tuple[str, list[str]]]:
    """(experiment name, `-S` parameter overrides) for Table V and Table VI."""
    experiments = [(f"{prefix}K{k}", [f"gmfc_vae.K={k}"]) for k in TABLE_V_K]
    for name, (alpha, beta) in TABLE_VI_STREAMS.items():
        experiments.append((f"{prefix}{name}", [f"fuse.alpha={alpha:g}", f"fuse.beta={beta:g}"]))
    return experiments


DISSOCIATION_TABLE_2 = {
    "full": {},  # params.yaml's own settings: both streams, attention, K-means (preset's K)
    "spatial": {"streams": "[spatial]", "attention": "false", "clusters": "0"},
    "motion": {"streams": "[motion]", "attention": "false", "clusters": "0"},
    "both": {"streams": "[spatial,motion]", "attention": "false", "clusters": "0"},
    "attention": {"streams": "[spatial,motion]", "attention": "true", "clusters": "0"},
    "kmeans": {"streams": "[spatial,motion]", "attention": "false", "clusters": "32"},
}
DISSOCIATION_TABLE_3_K = (4, 8, 16, 64)
DISSOCIATION_BUDGETS = ((5, 2), (10, 5), (20, 10), (40, 20))
DISSOCIATION_WEIGHTS = {  # loss weights other than the paper's (lambda_r 0.1, gradient term 1)
    "lambda0.01": {"lambda_cluster": "0.01"},  # eq. 12's cluster term
    "gradient0.1": {"gradient_weight": "0.1"},  # eq. 6's gradient term
    "gradient0.01": {"gradient_weight": "0.01"},
    "gradient0.01_epochs20_10": {"gradient_weight": "0.01", "epochs": "[20,10]"},  # its budget
}
ITAE_VARIANTS = {  # at the table's budget (Ped2: ITAE.budgets, 12 + 6 epochs of 256 clips)
    "full": {},  # eq. 9: reconstruction and the Glows' likelihood
    "recon": {"score_parts": "reconstruction"},  # ITAE alone; score stage only, same training
    "epochs3_2": {"epochs": "[3,2]"},  # the budget curve: a quarter, a half
    "epochs6_3": {"epochs": "[6,3]"},
}
HF2VAD_VARIANTS = {  # Ped2: HF2VAD.budgets; fr and fp score full's training, cubeflow retrains
    "full": {},  # eq. 9 with the preset's (w_r, w_p)
    "fr": {"score_parts": "flow"},  # flow reconstruction alone
    "fp": {"score_parts": "frame"},  # frame prediction alone
    "cubeflow": {"stc.flow_units": "cube"},  # cubes' flows rescaled to the cube (issue's reading)
    "cubeflow_fr": {"stc.flow_units": "cube", "score_parts": "flow"},  # cubeflow's training
    "cubeflow_fp": {"stc.flow_units": "cube", "score_parts": "frame"},
}
HF2VAD_MEMAE_EPOCHS = (10, 20, 40)  # ML-MemAE-SC alone; the paper's Ped2 preset trains it 80
TABLES = (
    "gmfc_vae", "dissociation", "dissociation_budget", "dissociation_weights", "itae", "hf2vad",
    "hf2vad_budget",
)
TABLE_METHODS = {  # the methods a table's experiments run, and the row each one is read from
    "gmfc_vae": (("gmfc_vae_rgb", "gmfc_vae_dynflow"), "gmfc_vae"),
    "dissociation": (("dissociation",), "dissociation"),
    "dissociation_budget": (("dissociation",), "dissociation"),
    "dissociation_weights": (("dissociation",), "dissociation"),
    "itae": (("itae",), "itae"),
    "hf2vad": (("hf2vad",), "hf2vad"),
    "hf2vad_budget": (("hf2vad",), "hf2vad"),
}
QUEUE_TIMINGS = Path("data/timings/queue")


def method_variants(
    method: str, variants: dict[str, dict[str, str]], prefix: str = ""
) -> list[tuple[str, list[str]]]:
    """(experiment name, `-S` overrides) of each variant: `<method>_<name>` with its keys of
    the method's params section (a dotted key names another section's: `stc.flow_units`)."""
    return [
        (f"{prefix}{method}_{name}",
         [f"{k if '.' in k else f'{method}.{k}'}={v}" for k, v in changes.items()])
        for name, changes in variants.items()
    ]  # fmt: skip


def memae_budget_experiments(prefix: str = "") -> list[tuple[str, list[str]]]:
    """(experiment name, `-S` overrides) of the ML-MemAE-SC budget curve: the flow branch
    trained alone (0 CVAE and fine-tuning epochs), scored by its reconstruction error alone
    (Table 1's "w/o FP" row without the joint fine-tuning), longest first: a queue of two
    workers then ends soonest; and 20 epochs on TV-L1 flow (epsilon 0.05, RESULTS.md's fast
    TV-L1) instead of DIS."""
    return [
        (f"{prefix}hf2vad_memae{epochs}",
         [f"hf2vad.epochs=[{epochs},0,0]", "hf2vad.score_parts=flow"])
        for epochs in sorted(HF2VAD_MEMAE_EPOCHS, reverse=True)
    ] + [(f"{prefix}hf2vad_memae20_tvl1",
          ["hf2vad.epochs=[20,0,0]", "hf2vad.score_parts=flow", "flow.method=tvl1",
           "+flow.tvl1.epsilon=0.05"])]  # fmt: skip


def dissociation_experiments(prefix: str = "") -> list[tuple[str, list[str]]]:
    """(experiment name, `-S` overrides) for Chang et al.'s Table 2 and Table 3."""
    experiments = method_variants("dissociation", DISSOCIATION_TABLE_2, prefix)
    for k in DISSOCIATION_TABLE_3_K:
        experiments.append((f"{prefix}dissociation_K{k}", [f"dissociation.clusters={k}"]))
    return experiments


def budget_experiments(prefix: str = "") -> list[tuple[str, list[str]]]:
    """(experiment name, `-S` overrides) of the dissociation budget curve."""
    return [
        (f"{prefix}dissociation_epochs{first}_{second}",
         [f"dissociation.epochs=[{first},{second}]"])
        for first, second in DISSOCIATION_BUDGETS
    ]  # fmt: skip


def weight_experiments(prefix: str = "") -> list[tuple[str, list[str]]]:
    """(experiment name, `-S` overrides) of the full dissociation model with smaller loss
    weights: at the CPU budget the cluster term dominates eq. 12, and eq. 6's gradient term
    keeps the motion auto-encoder's prediction at zero."""
    return method_variants("dissociation", DISSOCIATION_WEIGHTS, prefix)


def table_experiments(table: str, prefix: str = "") -> list[tuple[str, list[str]]]:
    if table == "gmfc_vae":
        return paper_experiments(prefix)
    if table == "dissociation":
        return dissociation_experiments(prefix)
    if table == "dissociation_budget":
        return budget_experiments(prefix)
    if table == "dissociation_weights":
        return weight_experiments(prefix)
    if table == "itae":
        return method_variants("itae", ITAE_VARIANTS, prefix)
    if table == "hf2vad":
        return method_variants("hf2vad", HF2VAD_VARIANTS, prefix)
    if table == "hf2vad_budget":
        return memae_budget_experiments(prefix)
    raise ValueError(f"unknown experiment table {table!r}; known: {', '.join(TABLES)}")


def experiment_sets(sets: Sequence[str], extra_sets: Sequence[str]) -> list[str]:
    """An experiment's `-S` overrides: the `extra_sets` shared by the table, less the keys the
    experiment sets itself, then its own (a variant's value wins: the budget table's epochs
    over a budget's)."""
    own = {item.partition("=")[0] for item in sets}
    return [*(item for item in extra_sets if item.partition("=")[0] not in own), *sets]


def check_experiments(
    experiments: list[tuple[str, list[str]]], extra_sets: Sequence[str], params: dict | None = None
) -> list[str]:
    """Every error of params.yaml (or `params`) with each experiment's overrides applied."""
    from vad.config import load_params
    from vad.params.check import check_params, parse_overrides, with_overrides

    params = load_params() if params is None else params
    errors = []
    for name, sets in experiments:
        overrides = parse_overrides(experiment_sets(sets, extra_sets))
        errors += [f"{name}: {error}" for error in check_params(with_overrides(params, overrides))]
    return errors


def print_now(line: str) -> None:
    print(line, flush=True)


def run_dvc(args: Sequence[str]) -> str:
    """Run `dvc <args>`; its standard output, or SystemExit with DVC's own message."""
    from vad.bench.pipeline import run

    return run(["dvc", *args])


def queue_rows(status: str, names: set[str]) -> dict[str, str]:
    """Name -> state (Queued, Running, Success, Failed) of our tasks in `dvc queue status`."""
    rows = {}
    for line in status.splitlines():
        fields = line.split()
        if len(fields) >= 3 and fields[1] in names:
            rows[fields[1]] = fields[-1]
    return rows


def run_experiments(
    experiments: list[tuple[str, list[str]]],
    extra_sets: Sequence[str] = (),
    run: Runner = run_dvc,
    poll_seconds: float = 10.0,
    log: Callable[[str], object] | None = None,
    start: Runner | None = None,
) -> dict[str, str]:
    """Queue every experiment (with `extra_sets` added to each), run the queue with one worker
    (`start` runs `dvc queue start`, default `run`), wait for it, and return each experiment's
    final state. `log` gets progress lines."""
    if log is None:
        log = print_now
    names = {name for name, _ in experiments}
    earlier = queue_rows(run(["queue", "status"]), names)
    busy = sorted(name for name, state in earlier.items() if state in ACTIVE_STATES)
    if busy:
        raise SystemExit(
            f"experiments {', '.join(busy)} are already queued or running "
            "(wait for them, or `dvc queue kill` / `dvc queue remove --queued`)"
        )
    if earlier:
        run(["queue", "remove", *sorted(earlier)])  # finished task records of the same names
    existing = set(run(["exp", "list", "--name-only"]).split())
    for name in sorted(names & existing):
        log(f"replacing the earlier experiment {name!r}")
        run(["exp", "remove", name])
    for name, sets in experiments:
        values = experiment_sets(sets, extra_sets)
        run(["exp", "run", "--queue", "-n", name, *(arg for v in values for arg in ("-S", v))])
        log(f"queued {name}: {' '.join(values)}")
    (start or run)(["queue", "start", "-j", "1"])
    started = time.monotonic()
    while True:
        states = queue_rows(run(["queue", "status"]), names)
        active = [name for name, state in states.items() if state in ACTIVE_STATES]
        if not active:
            return states
        done = len(states) - len(active)
        log(f"{done}/{len(names)} experiments done, {time.monotonic() - started:.0f} s")
        time.sleep(poll_seconds)


def dataset_sets(table: str, dataset: str, root: str) -> list[str]:
    """The `-S` overrides that run a table on a real dataset: its data, the table's methods
    alone, and their CPU budget for the dataset (as `vad benchmark`)."""
    from vad.bench.pipeline import as_set, budget_overrides, frame_counts, merged_overrides

    root_path = Path(root).expanduser().resolve()
    frame_counts(dataset, root_path)  # a wrong root fails here, before anything is queued
    methods = list(TABLE_METHODS[table][0])
    overrides = {
        "methods": methods,
        **merged_overrides(dataset, root_path, budget_overrides(methods, dataset)),
    }
    return [f"{key}={as_set(value)}" for key, value in overrides.items()]


def start_with_timings(args: Sequence[str]) -> str:
    """`dvc <args>` with VAD_TIMINGS_DIR set, so that the worker it starts records each
    experiment's stage times in QUEUE_TIMINGS/<name>/ (vad.timing)."""
    from vad.bench.pipeline import run

    return run(["dvc", *args], env={**os.environ, "VAD_TIMINGS_DIR": str(QUEUE_TIMINGS.resolve())})


def collect(table: str, prefix: str, dataset: str, sets: Sequence[str], command: str) -> None:
    """Rows of the table's finished experiments into reports/<dataset>/, and RESULTS.md."""
    from vad.bench.experiment_report import collect_experiments
    from vad.bench.pipeline import RESULTS, assemble_report, replace_block

    methods, row = TABLE_METHODS[table]
    report = collect_experiments(dataset, table, table_experiments(table, prefix), row, prefix,
                                 sets, methods, command, timings=QUEUE_TIMINGS)  # fmt: skip
    folder = Path("reports") / dataset / "experiments" / table
    if RESULTS.exists():
        block = (f"Generated by `{command}` from {folder}/ (newest experiment of git "
                 f"{report['git_revision'][:10]}; {os.cpu_count()} CPU cores).\n\n"
                 + (folder / "summary.md").read_text())  # fmt: skip
        RESULTS.write_text(
            replace_block(RESULTS.read_text(), f"{dataset}:experiments:{table}", block)
        )
    assemble_report(dataset)


def main(
    prefix: str,
    extra_sets: Sequence[str],
    table: str = "gmfc_vae",
    dataset: str | None = None,
    root: str | None = None,
    collect_only: bool = False,
) -> None:
    if (dataset is None) != (root is None) or (collect_only and dataset is None):
        raise SystemExit("experiments: --dataset and --root go together (and --collect needs them)")
    sets = list(extra_sets)
    if dataset is not None:  # the table's dataset overrides, less the keys `extra_sets` set
        chosen = {item.partition("=")[0] for item in extra_sets}
        own = [item for item in dataset_sets(table, dataset, root)
               if item.partition("=")[0] not in chosen]  # fmt: skip
        sets = [*own, *extra_sets]
    command = " ".join([
        "python -m vad experiments --table", table,
        *(["--prefix", prefix] if prefix else []),
        *(["--dataset", dataset, "--root", str(root)] if dataset else []),
        *[f"--set {item}" for item in extra_sets],
    ])  # fmt: skip
    if not collect_only:
        run_table(table, prefix, sets, timed=dataset is not None)
    if dataset is not None:
        collect(table, prefix, dataset, sets, command)


def run_table(table: str, prefix: str, sets: Sequence[str], timed: bool) -> None:
    """Queue the table's experiments with `sets`, wait, print `dvc exp show`."""
    baseline = subprocess.run(
        ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()  # the experiments' baseline, even if HEAD moves while they run
    experiments = table_experiments(table, prefix)
    errors = check_experiments(experiments, sets)
    if errors:  # refused before anything is queued, not by a stage of each experiment
        raise SystemExit("\n".join(errors))
    states = run_experiments(experiments, sets, start=start_with_timings if timed else None)
    failed = sorted(name for name, state in states.items() if state != "Success")
    sys.stdout.write(run_dvc(["exp", "show", "--rev", baseline, "--only-changed", "--no-pager"]))
    if failed:
        raise SystemExit(f"experiments failed: {', '.join(failed)} (see `dvc queue logs <name>`)")
