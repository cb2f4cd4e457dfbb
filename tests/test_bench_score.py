"""`vad bench score` on a bundle holding the velocity method: every frame size is scored through
`vad score`'s loop, and the report splits the time into the velocity scorer's parts (flow,
object boxes, model) and records the object and velocity settings the speed depends on."""

from __future__ import annotations

import json
import os

import pytest
import yaml
from serve_fixtures import velocity_run

from vad.bench.score import SIZES, run_score_benchmark
from vad.serve.export import export_bundle


def test_the_score_benchmark_covers_velocity(tmp_path, monkeypatch):
    (tmp_path / "run").mkdir()
    run = velocity_run(tmp_path / "run")
    bundle = export_bundle(tmp_path / "bundle", root=run)
    if hasattr(os, "sched_setaffinity"):  # keep this test process on all its cores
        monkeypatch.setattr(os, "sched_setaffinity", lambda pid, cores: None)
    out = tmp_path / "score.json"
    report = run_score_benchmark(bundle, out, frames=4)
    assert json.loads(out.read_text()) == report
    params = yaml.safe_load((run / "params.yaml").read_text())
    assert report["bundle"]["params"]["velocity"] == params["velocity"]
    assert report["bundle"]["params"]["objects"] == params["objects"]
    timed = report["methods"]["velocity"]
    assert set(timed) == {f"{width}x{height}" for width, height in SIZES.values()}
    for result in timed.values():
        assert result["frames"] == 4 and result["fps"] > 0
        assert {"decode", "flow", "objects", "frames", "model", "write"} <= set(result["shares"])
        assert sum(result["shares"].values()) == pytest.approx(1.0, abs=1e-3)
