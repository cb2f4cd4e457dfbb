"""A real dataset's report from several runs: experiments' rows read from their git refs
(vad.bench.experiment_report), the newest row of every score set (vad.bench.dataset_report),
and stage times kept per DVC experiment (vad.timing)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from vad.bench.dataset_report import assemble, command_of, write_dataset_report
from vad.bench.experiment_report import clean_log, collect_experiments, row_name
from vad.experiments import dataset_sets, main
from vad.timing import read_timings, timed_stage

STRICT = {"smoothing": "none", "normalization": "none", "uses_test_statistics": False}


def write_run(folder: Path, revision: str, rows: dict, paper: dict | None = None, **run) -> None:
    folder.mkdir(parents=True)
    (folder / "run.json").write_text(json.dumps({"dataset": "ped2", "git_revision": revision,
                                                 **run}))  # fmt: skip
    (folder / "metrics.json").write_text(json.dumps({"protocol": STRICT, **rows}))
    (folder / "metrics_paper.json").write_text(json.dumps({"protocols": {}, **(paper or {})}))


def test_the_newest_code_gives_each_row_and_every_row_names_its_run(tmp_path):
    times = {"old": 100.0, "new": 200.0}
    write_run(tmp_path / "all", "old", {"baseline": {"frame_auc_micro": 0.7},
                                        "velocity": {"frame_auc_micro": 0.8}},
              paper={"protocols": {"velocity": {"smoothing": "gaussian"}},
                     "velocity": {"frame_auc_micro": 0.81}})  # fmt: skip
    write_run(tmp_path / "velocity", "new", {"velocity": {"frame_auc_micro": 0.95}},
              experiment="ped2_velocity", methods=["velocity"])  # fmt: skip
    (tmp_path / "diagnostics").mkdir()  # a folder without a run is not a run
    (tmp_path / "diagnostics" / "run.json").write_text("{}")
    assembled = assemble(tmp_path, revision_time=times.__getitem__)
    metrics, paper, sources = assembled["metrics"], assembled["paper"], assembled["sources"]
    assert metrics["velocity"] == {"frame_auc_micro": 0.95}  # the newer code's run
    assert metrics["baseline"] == {"frame_auc_micro": 0.7}
    assert "velocity" not in paper  # the newer run scored no paper protocol: not the older one's
    assert sources["velocity"]["run"] == "velocity"
    assert sources["velocity"]["command"] == "make benchmark DATA=ped2 METHODS=velocity"
    assert sources["baseline"] == {"run": "all", "command": "make benchmark DATA=ped2",
                                   "git_revision": "old"}  # fmt: skip
    # the other order of commits gives the other row
    flipped = assemble(tmp_path, revision_time={"old": 300.0, "new": 200.0}.__getitem__)
    assert flipped["metrics"]["velocity"] == {"frame_auc_micro": 0.8}
    assert flipped["paper"]["velocity"] == {"frame_auc_micro": 0.81}
    assert flipped["paper"]["protocols"]["velocity"] == {"smoothing": "gaussian"}


def test_written_report_and_refusals(tmp_path):
    write_run(tmp_path / "all", "a", {"baseline": {"frame_auc_micro": 0.7, "pixel_auc": 0.4}})
    write_dataset_report(tmp_path, revision_time=lambda _: 1.0)
    assert json.loads((tmp_path / "metrics.json").read_text())["baseline"]["pixel_auc"] == 0.4
    summary = (tmp_path / "summary.md").read_text()
    assert "| baseline | 0.700 | — | — | 0.400 | — | — | all (a) |" in summary
    assert "uses_test_statistics" not in summary
    write_run(tmp_path / "other", "b", {"x": {}})
    (tmp_path / "other" / "metrics.json").write_text(
        json.dumps({"protocol": {**STRICT, "smoothing": "median"}, "x": {}})
    )
    with pytest.raises(SystemExit, match="different strict protocols"):
        assemble(tmp_path, revision_time=lambda _: 1.0)
    with pytest.raises(SystemExit, match="no run folder"):
        assemble(tmp_path / "all" / "missing", revision_time=lambda _: 1.0)
    assert command_of({"command": "x", "dataset": "ped2"}) == "x"


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True,
                          check=True).stdout  # fmt: skip


def experiment_commit(repo: Path, name: str, params: dict, auc: float) -> None:
    """Commit an experiment's params and reports off the baseline, as refs/exps/<base>/<name>."""
    baseline = git(repo, "rev-parse", "HEAD").strip()
    git(repo, "checkout", "-q", "--detach", baseline)
    (repo / "params.yaml").write_text(yaml.safe_dump(params))
    metrics = {"protocol": STRICT, "dissociation": {"frame_auc_micro": auc}}
    (repo / "reports" / "metrics.json").write_text(json.dumps(metrics))
    paper = {"protocols": {"dissociation": {"normalization": "minmax"}},
             "dissociation": {"frame_auc_micro": auc + 0.1}}  # fmt: skip
    (repo / "reports" / "metrics_paper.json").write_text(json.dumps(paper))
    git(repo, "commit", "-qam", name)
    git(repo, "update-ref", f"refs/exps/{baseline[:2]}/{baseline[2:]}/{name}", "HEAD")
    git(repo, "checkout", "-q", "main")


@pytest.fixture
def repo(tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    (repo / "reports").mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.email", "test@example.com")
    git(repo, "config", "user.name", "test")
    (repo / "params.yaml").write_text("dissociation: {clusters: 32}\n")
    (repo / "reports" / "metrics.json").write_text("{}")
    (repo / "reports" / "metrics_paper.json").write_text("{}")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "baseline")
    monkeypatch.chdir(repo)
    return repo


def test_finished_experiments_become_rows_with_their_overrides_and_times(repo):
    experiment_commit(repo, "ped2-dissociation_spatial",
                      {"dissociation": {"clusters": 0, "epochs": [10, 5]}}, 0.6)  # fmt: skip
    experiment_commit(repo, "ped2-dissociation_K4",
                      {"dissociation": {"clusters": 4, "epochs": [10, 5]}}, 0.7)  # fmt: skip
    timings = repo / "timings"
    (timings / "ped2-dissociation_K4").mkdir(parents=True)
    (timings / "ped2-dissociation_K4" / "train@dissociation.json").write_text(
        json.dumps({"stage": "train@dissociation", "seconds": 100.0})
    )
    (timings / "ped2-dissociation_K4" / "flow.json").write_text(
        json.dumps({"stage": "flow", "seconds": 30.0})
    )
    table = [("ped2-dissociation_spatial", ["dissociation.clusters=0"]),
             ("ped2-dissociation_K4", ["dissociation.clusters=4"]),
             ("ped2-dissociation_K8", ["dissociation.clusters=8"])]  # fmt: skip
    report = collect_experiments("ped2", "dissociation", table, "dissociation", "ped2-",
                                 ["dissociation.epochs=[10,5]"], ["dissociation"], "cmd",
                                 timings=timings)  # fmt: skip
    out = repo / "reports" / "ped2" / "experiments" / "dissociation"
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["dissociation_spatial"] == {"frame_auc_micro": 0.6}
    assert metrics["dissociation_K4"] == {"frame_auc_micro": 0.7}
    assert metrics["protocol"] == STRICT
    paper = json.loads((out / "metrics_paper.json").read_text())
    assert paper["dissociation_K4"]["frame_auc_micro"] == pytest.approx(0.8)
    assert paper["protocols"]["dissociation_K4"] == {"normalization": "minmax"}
    assert report["missing"] == ["ped2-dissociation_K8"]
    k4 = report["experiments"]["dissociation_K4"]
    assert k4["method_seconds"] == 100.0  # its own stage, not the shared flow
    assert k4["overrides"] == ["dissociation.clusters=4"]
    assert report["common_overrides"] == ["dissociation.epochs=[10,5]"]
    assert k4["baseline"] == git(repo, "rev-parse", "main").strip() == report["git_revision"]
    assert report["experiments"]["dissociation_spatial"]["stage_seconds"] == {}
    summary = (out / "summary.md").read_text()
    assert "| dissociation_K4 | 0.700 |" in summary and "ped2-dissociation_K8" in summary
    k4_line = next(line for line in summary.splitlines() if line.startswith("| dissociation_K4"))
    assert k4_line.endswith(f"| 100 | {k4['baseline'][:7]} |")  # its seconds and its commit
    assert "Every experiment also ran with `dissociation.epochs=[10,5]`" in summary
    # the rows join the dataset's report beside the benchmark's own
    benchmark_row = {"dissociation": {"frame_auc_micro": 0.65}}
    write_run(repo / "reports" / "ped2" / "all", "HEAD", benchmark_row)
    assembled = write_dataset_report(repo / "reports" / "ped2")
    assert set(assembled["metrics"]) == {"protocol", "dissociation", "dissociation_spatial",
                                         "dissociation_K4"}  # fmt: skip
    assert assembled["sources"]["dissociation_K4"]["run"] == "experiments/dissociation"


def test_an_experiment_of_another_budget_is_refused(repo):
    experiment_commit(repo, "dissociation_K4",
                      {"dissociation": {"clusters": 4, "epochs": [20, 10]}}, 0.7)  # fmt: skip
    with pytest.raises(SystemExit, match=r"dissociation.epochs=\[20, 10\], not \[10, 5\]"):
        table = [("dissociation_K4", ["dissociation.clusters=4"])]
        collect_experiments("ped2", "dissociation", table, "dissociation", "",
                            ["dissociation.epochs=[10,5]"], ["dissociation"], "cmd")  # fmt: skip
    with pytest.raises(SystemExit, match="no finished experiment"):
        collect_experiments("ped2", "dissociation", [("K8", [])], "dissociation", "", [],
                            ["dissociation"], "cmd")  # fmt: skip


def test_row_names_and_logs():
    assert row_name("dissociation", "ped2-dissociation_spatial", "ped2-") == "dissociation_spatial"
    assert row_name("gmfc_vae", "ped2-K5", "ped2-") == "gmfc_vae_K5"
    log = "Running stage 'x':\nepoch 1\r 50%|##  |\repoch 1 done (4 s)\n 10%|#   | 1/10\n"
    assert clean_log(log) == "Running stage 'x':\nepoch 1 done (4 s)\n"


def test_stage_times_go_to_the_experiments_own_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("VAD_TIMINGS_DIR", str(tmp_path))
    monkeypatch.setenv("DVC_EXP_NAME", "ped2-dissociation_K4")
    with timed_stage("train@dissociation"):
        pass
    assert list(read_timings(tmp_path / "ped2-dissociation_K4")) == ["train@dissociation"]
    monkeypatch.delenv("DVC_EXP_NAME")
    with timed_stage("flow"):
        pass
    assert list(read_timings(tmp_path)) == ["flow"]  # outside an experiment: the folder itself


def test_a_dataset_table_runs_its_methods_alone_at_their_budget(tmp_path):
    with pytest.raises(Exception, match="dataset root folder not found"):
        dataset_sets("dissociation", "ped2", str(tmp_path / "missing"))
    with pytest.raises(SystemExit, match="--dataset and --root go together"):
        main("", [], "dissociation", dataset="ped2")
    with pytest.raises(SystemExit, match="--collect needs them"):
        main("", [], "dissociation", collect_only=True)


def test_a_dataset_table_sets_its_data_methods_and_budget_and_the_users_sets_win(
    tmp_path, monkeypatch
):
    collected = {}

    def record(table, prefix, dataset, sets, command):
        collected.update(table=table, sets=sets, command=command)

    monkeypatch.setattr("vad.experiments.collect", record)
    monkeypatch.setattr("vad.experiments.run_table", lambda *args, **kw: pytest.fail("ran"))
    main("s-", ["dissociation.epochs=[1,1]"], "dissociation", dataset="synthetic",
         root=str(tmp_path), collect_only=True)  # fmt: skip
    sets = collected["sets"]
    assert sets[0] == "methods=[dissociation]"  # the table's methods alone
    main("s-", ["methods=[dissociation,baseline]"], "dissociation", dataset="synthetic",
         root=str(tmp_path), collect_only=True)  # fmt: skip
    chosen = [item for item in collected["sets"] if item.startswith("methods=")]
    assert chosen == ["methods=[dissociation,baseline]"]  # a user's set replaces the table's
    main("s-", ["dissociation.epochs=[1,1]"], "dissociation", dataset="synthetic",
         root=str(tmp_path), collect_only=True)  # fmt: skip
    sets = collected["sets"]
    assert "data.name=synthetic" in sets and f"data.root={tmp_path.resolve()}" in sets
    assert [item for item in sets if item.startswith("dissociation.epochs")] == [
        "dissociation.epochs=[1,1]"
    ]
    assert collected["command"] == (
        f"python -m vad experiments --table dissociation --prefix s- --dataset synthetic "
        f"--root {tmp_path} --set dissociation.epochs=[1,1]"
    )
