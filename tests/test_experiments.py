"""The Table V / Table VI experiment driver, against a scripted stand-in for the `dvc` CLI."""

from __future__ import annotations

import copy

import pytest

from vad.config import load_params
from vad.experiments import (
    TABLE_V_K,
    check_experiments,
    experiment_sets,
    paper_experiments,
    queue_rows,
    run_experiments,
    table_experiments,
)

STATUS_HEADER = "Task     Name        Created    Status\n"
WORKERS = "\nWorker status: 1 active, 0 idle\n"


def status(*rows: tuple[str, str]) -> str:
    lines = [
        f"{index:07x}  {name:10s}  02:14 PM   {state}" for index, (name, state) in enumerate(rows)
    ]
    return STATUS_HEADER + "\n".join(lines) + WORKERS


class FakeDvc:
    """Answers `dvc` calls: `queue status` replies come from a script, one per call."""

    def __init__(self, statuses: list[str], existing: str = "") -> None:
        self.statuses = statuses
        self.existing = existing
        self.calls: list[list[str]] = []

    def __call__(self, args) -> str:
        self.calls.append(list(args))
        if args[:2] == ["queue", "status"]:
            return self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]
        if args[:2] == ["exp", "list"]:
            return self.existing
        return ""


def test_paper_experiments_cover_table_v_and_table_vi():
    experiments = dict(paper_experiments(prefix="ped2-"))
    assert [experiments[f"ped2-K{k}"] for k in TABLE_V_K] == [
        [f"gmfc_vae.K={k}"] for k in TABLE_V_K
    ]
    assert TABLE_V_K == (1, 2, 5, 10, 15, 20, 30, 40)
    assert experiments["ped2-appearance"] == ["fuse.alpha=1", "fuse.beta=0"]
    assert experiments["ped2-motion"] == ["fuse.alpha=0", "fuse.beta=1"]
    assert experiments["ped2-fused"] == ["fuse.alpha=0.5", "fuse.beta=0.5"]
    assert len(experiments) == 11


def test_dissociation_experiments_cover_table_2_and_table_3():
    experiments = dict(table_experiments("dissociation", prefix="ped2-"))
    assert experiments["ped2-dissociation_spatial"] == [
        "dissociation.streams=[spatial]", "dissociation.attention=false",
        "dissociation.clusters=0",
    ]  # fmt: skip
    assert experiments["ped2-dissociation_kmeans"][1:] == [
        "dissociation.attention=false", "dissociation.clusters=32"
    ]  # fmt: skip
    assert [experiments[f"ped2-dissociation_K{k}"] for k in (4, 8, 16, 64)] == [
        [f"dissociation.clusters={k}"] for k in (4, 8, 16, 64)
    ]
    assert experiments["ped2-dissociation_full"] == []  # params.yaml's own: every component
    own = load_params()["dissociation"]
    assert own["streams"] == ["spatial", "motion"] and own["attention"] is True
    assert own["clusters"] is None or own["clusters"] > 0  # so `full` is the full model
    assert len(experiments) == 10
    budget = dict(table_experiments("dissociation_budget"))
    assert budget["dissociation_epochs5_2"] == ["dissociation.epochs=[5,2]"]
    assert len(budget) == 4
    weights = dict(table_experiments("dissociation_weights"))
    assert weights == {
        "dissociation_lambda0.01": ["dissociation.lambda_cluster=0.01"],
        "dissociation_gradient0.1": ["dissociation.gradient_weight=0.1"],
        "dissociation_gradient0.01": ["dissociation.gradient_weight=0.01"],
        "dissociation_gradient0.01_epochs20_10": [
            "dissociation.gradient_weight=0.01", "dissociation.epochs=[20,10]"
        ],
    }
    assert table_experiments("gmfc_vae") == paper_experiments()
    with pytest.raises(ValueError, match="unknown experiment table"):
        table_experiments("velocity")


def test_itae_table_scores_one_training_two_ways_and_halves_the_budget():
    experiments = dict(table_experiments("itae", prefix="ped2-"))
    assert experiments == {
        "ped2-itae_full": [],
        "ped2-itae_recon": ["itae.score_parts=reconstruction"],
        "ped2-itae_epochs3_2": ["itae.epochs=[3,2]"],
        "ped2-itae_epochs6_3": ["itae.epochs=[6,3]"],
    }
    from vad.methods.itae.method import CPU_BUDGET_PED2

    assert CPU_BUDGET_PED2["itae.epochs"] == [12, 6]  # the curve's quarter and half of it
    shared = [f"{key}={value}" for key, value in CPU_BUDGET_PED2.items()]
    sets = experiment_sets(experiments["ped2-itae_epochs3_2"], shared)
    assert [item for item in sets if item.startswith("itae.epochs=")] == ["itae.epochs=[3,2]"]


def test_queue_rows_reads_only_our_tasks():
    text = status(("K1", "Success"), ("K2", "Running"), ("other", "Queued"))
    assert queue_rows(text, {"K1", "K2", "K5"}) == {"K1": "Success", "K2": "Running"}
    assert queue_rows("No experiment tasks in the queue.\n", {"K1"}) == {}


def test_run_experiments_queues_starts_and_waits_for_every_task():
    experiments = [("K1", ["gmfc_vae.K=1"]), ("appearance", ["fuse.alpha=1", "fuse.beta=0"])]
    dvc = FakeDvc(
        [
            "No experiment tasks in the queue.\n",  # before queueing
            status(("K1", "Running"), ("appearance", "Queued")),
            status(("K1", "Success"), ("appearance", "Running")),
            status(("K1", "Success"), ("appearance", "Failed")),
        ],
        existing="K1\nold\n",
    )
    states = run_experiments(
        experiments, ["data.name=ped2"], run=dvc, poll_seconds=0, log=lambda _: None
    )
    assert states == {"K1": "Success", "appearance": "Failed"}
    assert ["exp", "remove", "K1"] in dvc.calls  # a same-named earlier experiment is replaced
    queued = [call for call in dvc.calls if call[:3] == ["exp", "run", "--queue"]]
    assert queued[0] == ["exp", "run", "--queue", "-n", "K1"] + [
        "-S",
        "data.name=ped2",
        "-S",
        "gmfc_vae.K=1",
    ]
    assert queued[1][4] == "appearance" and queued[1].count("-S") == 3
    start = dvc.calls.index(["queue", "start", "-j", "1"])
    assert start > dvc.calls.index(queued[-1])
    assert sum(call[:2] == ["queue", "status"] for call in dvc.calls) == 4


def test_run_experiments_clears_finished_records_and_refuses_busy_names():
    dvc = FakeDvc([status(("K1", "Failed")), status(("K1", "Success"))])
    run_experiments([("K1", ["gmfc_vae.K=1"])], run=dvc, poll_seconds=0, log=lambda _: None)
    assert ["queue", "remove", "K1"] in dvc.calls

    busy = FakeDvc([status(("K1", "Running"))])
    with pytest.raises(SystemExit, match="K1 are already queued or running"):
        run_experiments([("K1", ["gmfc_vae.K=1"])], run=busy, poll_seconds=0, log=lambda _: None)
    assert not any(call[:2] == ["exp", "run"] for call in busy.calls)


def test_a_variants_own_value_wins_over_the_tables_shared_sets():
    shared = ["dissociation.epochs=[20,10]", "data.name=ped2"]
    assert experiment_sets(["dissociation.epochs=[5,2]"], shared) == [
        "data.name=ped2", "dissociation.epochs=[5,2]"
    ]  # fmt: skip
    dvc = FakeDvc(["No experiment tasks in the queue.\n", status(("e5", "Success"))])
    run_experiments([("e5", ["dissociation.epochs=[5,2]"])], shared, run=dvc, poll_seconds=0,
                    log=lambda _: None)  # fmt: skip
    [queued] = [call for call in dvc.calls if call[:3] == ["exp", "run", "--queue"]]
    assert "dissociation.epochs=[20,10]" not in queued and "dissociation.epochs=[5,2]" in queued


def test_hf2vad_budget_table_trains_the_flow_branch_alone_longest_first():
    experiments = table_experiments("hf2vad_budget", prefix="ped2-")
    assert experiments == [
        (f"ped2-hf2vad_memae{n}", [f"hf2vad.epochs=[{n},0,0]", "hf2vad.score_parts=flow"])
        for n in (40, 20, 10)
    ] + [("ped2-hf2vad_memae20_tvl1", ["hf2vad.epochs=[20,0,0]", "hf2vad.score_parts=flow",
                                       "flow.method=tvl1", "+flow.tvl1.epsilon=0.05"])]
    budget = ["hf2vad.epochs=[10,3,1]", "hf2vad.num_slots=100"]  # the Ped2 budget's epochs lose
    assert experiment_sets(experiments[0][1], budget) == [
        "hf2vad.num_slots=100", "hf2vad.epochs=[40,0,0]", "hf2vad.score_parts=flow"
    ]
    assert check_experiments(experiments, budget) == []


def test_hf2vad_table_scores_table_1s_streams_from_one_training():
    experiments = dict(table_experiments("hf2vad", prefix="ped2-"))
    assert experiments == {
        "ped2-hf2vad_full": [],
        "ped2-hf2vad_fr": ["hf2vad.score_parts=flow"],
        "ped2-hf2vad_fp": ["hf2vad.score_parts=frame"],
        "ped2-hf2vad_cubeflow": ["stc.flow_units=cube"],  # another section's key, as named
        "ped2-hf2vad_cubeflow_fr": ["stc.flow_units=cube", "hf2vad.score_parts=flow"],
        "ped2-hf2vad_cubeflow_fp": ["stc.flow_units=cube", "hf2vad.score_parts=frame"],
    }
    from vad.methods.hf2vad.method import HF2VADMethod
    from vad.params.stc import stc_settings

    params = load_params()
    for sets in experiments.values():  # each variant's values are ones the params accept
        changed = copy.deepcopy(params)
        for item in sets:
            key, value = item.split("=")
            section, name = key.split(".")
            changed[section][name] = value
        HF2VADMethod().settings(changed)
        stc_settings(changed)
