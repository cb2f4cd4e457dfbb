"""`vad benchmark` with a scripted git/dvc: the overrides it runs, the reports it writes and the
RESULTS.md block it regenerates."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from vad.bench.pipeline import (
    merged_overrides,
    method_seconds,
    refresh_report,
    replace_block,
    run_benchmark,
)
from vad.bench.throughput import scoring_stages, throughput

REPO = Path(__file__).resolve().parents[1]
SUMMARY = "| score set | kind | frame AUC |\n|---|---|---|\n| baseline | method | 0.700 |\n"


def test_results_block_is_replaced_between_its_markers_or_appended():
    text = "intro\n<!-- benchmark:ped2:begin -->\nold\n<!-- benchmark:ped2:end -->\ntail\n"
    assert replace_block(text, "ped2", "new\n") == (
        "intro\n<!-- benchmark:ped2:begin -->\nnew\n<!-- benchmark:ped2:end -->\ntail\n"
    )
    appended = replace_block("intro\n", "avenue", "x\n")
    assert (
        appended == "intro\n\n<!-- benchmark:avenue:begin -->\nx\n<!-- benchmark:avenue:end -->\n"
    )


def test_overrides_merge_budgets_and_refuse_disagreement(tmp_path):
    budgets = {"a": {"k.x": 1}, "b": {"k.x": 1, "k.y": 2}}
    assert merged_overrides("ped2", tmp_path, budgets) == {
        "data.name": "ped2",
        "data.root": str(tmp_path),
        "k.x": 1,
        "k.y": 2,
    }
    with pytest.raises(SystemExit, match="disagree on k.x"):
        merged_overrides("ped2", tmp_path, {"a": {"k.x": 1}, "b": {"k.x": 3}})
    timings = {"prepare@a": 1.0, "train@a": 2.5, "score@a": 0.5, "flow": 9.0}
    assert method_seconds(timings, ["a", "b"]) == {"a": 4.0, "b": 0.0}


def test_run_benchmark_writes_reports_from_the_experiment(tmp_path, monkeypatch):
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    (tmp_path / "RESULTS.md").write_text("# Results\n")
    monkeypatch.chdir(tmp_path)
    head = "ab" + "c" * 38
    metrics = {"protocol": {"smoothing": "none"}, "baseline": {"frame_auc_micro": 0.7}}
    paper = {"protocols": {"velocity": {"smoothing": "gaussian"}}, "velocity": {"x": 0.9}}
    calls = []

    def scripted(args, env=None, stream=False):
        calls.append(list(args))
        if args[:2] == ["git", "rev-parse"]:
            return head + "\n"
        if args[:2] == ["git", "status"]:
            return ""
        if args[:3] == ["dvc", "exp", "run"]:
            assert stream  # a long run shows its progress
            timings = Path(env["VAD_TIMINGS_DIR"]) / "synthetic"  # DVC_EXP_NAME's subfolder
            timings.mkdir()
            for stage, seconds in {"flow": 3.0, "train@gmfc_vae_rgb": 60.0}.items():
                (timings / f"{stage}.json").write_text(
                    json.dumps({"stage": stage, "seconds": seconds})
                )
            return ""
        if args[:2] == ["git", "show"]:
            ref = f"refs/exps/ab/{head[2:]}/synthetic"
            if args[2] == f"{ref}:reports/metrics.json":
                return json.dumps(metrics)
            if args[2] == f"{ref}:reports/metrics_paper.json":
                return json.dumps(paper)
            if args[2] == f"{ref}:reports/summary.md":
                return SUMMARY
        raise AssertionError(f"unexpected command {args}")

    report = run_benchmark("synthetic", str(tmp_path), run_command=scripted)
    run_call = next(call for call in calls if call[:3] == ["dvc", "exp", "run"])
    assert run_call[3:7] == ["--temp", "--force", "-n", "synthetic"]
    sets = [run_call[i + 1] for i, arg in enumerate(run_call) if arg == "-S"]
    assert "data.name=synthetic" in sets and f"data.root={tmp_path}" in sets
    out = tmp_path / "reports" / "synthetic" / "all"
    assert json.loads((out / "metrics.json").read_text()) == metrics
    assert json.loads((out / "metrics_paper.json").read_text()) == paper
    assert (out / "summary.md").read_text() == SUMMARY
    run = json.loads((out / "run.json").read_text())
    assert run == report
    assert run["method_seconds"]["gmfc_vae_rgb"] == 60.0
    assert run["stage_seconds"] == {"flow": 3.0, "train@gmfc_vae_rgb": 60.0}
    results = (tmp_path / "RESULTS.md").read_text()
    assert (
        "<!-- benchmark:synthetic:begin -->" in results
        and "| baseline | method | 0.700 |" in results
    )
    assert "make benchmark DATA=synthetic" in results
    assert run["command"] == "make benchmark DATA=synthetic"
    # the dataset's folder holds the newest row of every score set, with its source
    dataset_dir = tmp_path / "reports" / "synthetic"
    assert json.loads((dataset_dir / "metrics.json").read_text()) == metrics
    sources = json.loads((dataset_dir / "sources.json").read_text())
    assert sources["baseline"] == {
        "run": "all", "command": "make benchmark DATA=synthetic", "git_revision": head
    }  # fmt: skip
    assert "<!-- benchmark:synthetic:rows:begin -->" in results


def test_a_wrong_root_fails_before_any_work(tmp_path, monkeypatch):
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    monkeypatch.chdir(tmp_path)

    def nothing_may_run(args, env=None, stream=False):
        raise AssertionError(f"ran {args}")

    with pytest.raises(Exception, match="dataset root folder not found"):
        run_benchmark("ped2", str(tmp_path / "missing"), run_command=nothing_may_run)


def test_chosen_methods_run_as_their_own_experiment_and_report(tmp_path, monkeypatch):
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    (tmp_path / "RESULTS.md").write_text("# Results\n<!-- benchmark:synthetic:begin -->\nkept\n"
                                         "<!-- benchmark:synthetic:end -->\n")  # fmt: skip
    monkeypatch.chdir(tmp_path)
    head = "ab" + "c" * 38
    runs = []

    def scripted(args, env=None, stream=False):
        if args[:2] == ["git", "rev-parse"]:
            return head + "\n"
        if args[:2] == ["git", "status"]:
            return ""
        if args[:3] == ["dvc", "exp", "run"]:
            runs.append(list(args))
            return ""
        if args[:2] == ["git", "show"]:
            assert args[2].startswith(f"refs/exps/ab/{head[2:]}/synthetic_baseline:"), args
            if args[2].endswith("summary.md"):
                return SUMMARY
            return json.dumps({"protocol": {}, "baseline": {"frame_auc_micro": 0.7}})
        raise AssertionError(f"unexpected command {args}")

    report = run_benchmark("synthetic", str(tmp_path), run_command=scripted, methods=["baseline"])
    [run_call] = runs
    assert run_call[3:7] == ["--temp", "--force", "-n", "synthetic_baseline"]
    assert "methods=[baseline]" in [run_call[i + 1] for i, a in enumerate(run_call) if a == "-S"]
    assert report["methods"] == ["baseline"] and list(report["budgets"]) == ["baseline"]
    assert (tmp_path / "reports" / "synthetic" / "baseline" / "run.json").is_file()
    results = (tmp_path / "RESULTS.md").read_text()
    assert "<!-- benchmark:synthetic:begin -->\nkept\n" in results  # the full run's block
    assert "<!-- benchmark:synthetic:baseline:begin -->" in results
    assert "make benchmark DATA=synthetic METHODS=baseline" in results
    with pytest.raises(Exception, match="nonexistent"):
        run_benchmark("synthetic", str(tmp_path), run_command=scripted, methods=["nonexistent"])


def test_scoring_stages_follow_the_caches_a_method_reads():
    assert scoring_stages("hf2vad", ("stc",), False) == [
        "frames", "flow", "objects", "stc", "score@hf2vad"
    ]  # fmt: skip
    assert scoring_stages("velocity", ("flow", "objects"), True) == [
        "frames", "flow", "objects", "prepare@velocity", "score@velocity"
    ]  # fmt: skip
    assert scoring_stages("m", ("frames", "dynflow"), False) == [
        "frames", "flow", "dynamic_flow", "score@m"
    ]  # fmt: skip


def test_throughput_counts_the_test_share_of_cache_stages_and_the_whole_score_stage():
    # 300 training + 100 test frames: a cache stage's 40 s cost 10 s for the test frames
    seconds = {"frames": 4.0, "flow": 36.0, "objects": 8.0, "prepare@v": 12.0, "score@v": 5.0,
               "train@v": 999.0, "score@b": 1.0}  # fmt: skip
    report = throughput(seconds, 300, 100, {"v": (("flow", "objects"), True),
                                            "b": (("frames",), False),
                                            "untimed": (("stc",), False)})  # fmt: skip
    # v: (4 + 36 + 8 + 12) / 4 + 5 = 20 s for 100 test frames; b: 4 / 4 + 1 = 2 s
    assert report["v"]["ms_per_test_frame"] == pytest.approx(200.0)
    assert report["v"]["test_frames_per_second"] == pytest.approx(5.0)
    assert report["b"]["test_frames_per_second"] == pytest.approx(50.0)
    assert "untimed" not in report  # its stc stage was not timed
    with pytest.raises(ValueError, match="test frames"):
        throughput(seconds, 300, 0, {})


def test_refresh_recomputes_throughput_and_the_results_block_without_running(
    tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "reports" / "synthetic" / "baseline"
    out.mkdir(parents=True)
    (out / "summary.md").write_text(SUMMARY)
    old = {"dataset": "synthetic", "experiment": "synthetic_baseline", "methods": ["baseline"],
           "git_revision": "a" * 40,
           "cpu_count": 2, "total_seconds": 60.0, "budgets": {"baseline": {}},
           "stage_seconds": {"frames": 2.0, "score@baseline": 0.5},
           "method_seconds": {"baseline": 0.5}}  # fmt: skip
    (out / "run.json").write_text(json.dumps(old))
    (tmp_path / "RESULTS.md").write_text("# Results\n")
    report = refresh_report("synthetic", str(tmp_path), methods=["baseline"])
    frames = report["frames"]
    assert frames["train"] > 0 and frames["test"] > 0  # the embedded scene's videos
    share = frames["test"] / (frames["train"] + frames["test"])
    expected = frames["test"] / (2.0 * share + 0.5)
    assert report["throughput"]["baseline"]["test_frames_per_second"] == pytest.approx(
        expected, abs=0.1
    )
    assert json.loads((out / "run.json").read_text()) == report
    assert report["stage_seconds"] == old["stage_seconds"]  # nothing ran
    results = (tmp_path / "RESULTS.md").read_text()
    assert "<!-- benchmark:synthetic:baseline:begin -->" in results
    assert f"| baseline | defaults | 0 s | {expected:.1f} |" in results
    with pytest.raises(SystemExit, match="not found"):
        refresh_report("synthetic", str(tmp_path), methods=["velocity"])
