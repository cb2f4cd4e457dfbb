"""DVC past one machine, done locally: a one-stage pipeline in a git repo whose `origin` is a bare
repository and whose default DVC remote is a folder (as a shared mount would be). Machine A runs
the stage and experiments (one directly, two through the queue with two workers) and pushes
them; machine B, a clone, pulls the outputs and the experiments and finds A's exact bytes. The
stage writes random bytes, so a byte-equal output on B was transferred, not recomputed.

The commands are those of the README section "Running on several machines"."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from test_pipeline import dvc, experiments_by_name, run

from vad.experiments import queue_rows

pytestmark = pytest.mark.slow

STAGE = '''"""Write out/greeting.bin: the greeting `repeat` times, then 4 KiB of random bytes."""
import os
from pathlib import Path

import yaml

greeting = yaml.safe_load(Path("params.yaml").read_text())["greeting"]
Path("out").mkdir(exist_ok=True)
text = (greeting["text"] + "\\n") * greeting["repeat"]
Path("out/greeting.bin").write_bytes(text.encode() + os.urandom(4096))
'''
DVC_YAML = """stages:
  write:
    cmd: python write.py
    deps:
      - write.py
    params:
      - greeting
    outs:
      - out
"""
OUTPUT = Path("out") / "greeting.bin"


def git(repo: Path, *args: str) -> str:
    return run(["git", *args], repo)


def machine_a(root: Path, origin: Path, storage: Path) -> Path:
    """A new project with the shared DVC remote as its default and `origin` as its git remote,
    reproduced, committed and pushed (code and dvc.lock to git, the output to DVC storage)."""
    project = root / "machine-a"
    project.mkdir()
    (project / "write.py").write_text(STAGE)
    (project / "dvc.yaml").write_text(DVC_YAML)
    (project / "params.yaml").write_text("greeting:\n  text: hello\n  repeat: 3\n")
    git(project, "init", "-q", "-b", "main")
    dvc(project, "init", "-q")
    dvc(project, "config", "core.analytics", "false")
    dvc(project, "remote", "add", "-d", "shared", str(storage))
    dvc(project, "repro")
    git(project, "add", "-A")
    git(project, "commit", "-qm", "one-stage pipeline")
    git(project, "remote", "add", "origin", str(origin))
    git(project, "push", "-q", "origin", "main")
    dvc(project, "push")
    return project


def wait_for_queue(project: Path, names: set[str], timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while (state := queue_rows(dvc(project, "queue", "status"), names)) != dict.fromkeys(
        names, "Success"
    ):
        for name, status in state.items():
            assert status != "Failed", dvc(project, "queue", "logs", name)
        assert time.monotonic() < deadline, f"queue still {state}"
        time.sleep(1)


def test_outputs_and_experiments_travel_through_the_remotes(tmp_path):
    origin, storage = tmp_path / "origin.git", tmp_path / "dvc-storage"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(origin))
    a = machine_a(tmp_path, origin, storage)
    assert (storage / "files" / "md5").is_dir()  # the remote is DVC's content-addressed store

    # machine B: a clone has code and dvc.lock; `dvc pull` brings the output from storage
    git(tmp_path, "clone", "-q", str(origin), "machine-b")
    b = tmp_path / "machine-b"
    assert not (b / OUTPUT).exists()
    dvc(b, "pull")
    assert (b / OUTPUT).read_bytes() == (a / OUTPUT).read_bytes()
    assert json.loads(dvc(b, "status", "--json")) == {}

    # A runs an experiment in its workspace and two through the queue with two workers
    dvc(a, "exp", "run", "-n", "louder", "-S", "greeting.repeat=5")
    louder = (a / OUTPUT).read_bytes()
    assert louder.startswith(b"hello\n" * 5)
    dvc(a, "exp", "run", "--queue", "-n", "q7", "-S", "greeting.repeat=7")
    dvc(a, "exp", "run", "--queue", "-n", "q9", "-S", "greeting.repeat=9")
    dvc(a, "queue", "start", "-j", "2")
    wait_for_queue(a, {"q7", "q9"})
    dvc(a, "exp", "push", "origin", "louder", "q7", "q9")  # git refs, and outputs to storage
    dvc(a, "push", "--run-cache")  # the stage runs' records, for B to reuse

    # B sees A's experiments on origin, pulls them and applies one with its output
    listed = dvc(b, "exp", "list", "origin", "--name-only").split()
    assert sorted(listed) == ["louder", "q7", "q9"]
    dvc(b, "exp", "pull", "origin", "louder", "q7", "q9")
    shown = experiments_by_name(b)
    repeats = {
        name: shown[name]["params"]["params.yaml"]["data"]["greeting"]["repeat"]
        for name in ("louder", "q7", "q9")
    }
    assert repeats == {"louder": 5, "q7": 7, "q9": 9}
    dvc(b, "exp", "apply", "louder")
    assert (b / OUTPUT).read_bytes() == louder
    assert "repeat: 5" in (b / "params.yaml").read_text()

    # with A's run cache, B asking for q7's parameters gets q7's output without running the stage
    dvc(b, "pull", "--run-cache")
    output = dvc(b, "exp", "run", "-n", "again", "-S", "greeting.repeat=7")
    assert "Stage 'write' is cached - skipping run, checking out outputs" in output
    again = (b / OUTPUT).read_bytes()
    dvc(b, "exp", "apply", "q7")
    assert (b / OUTPUT).read_bytes() == again
    assert again.startswith(b"hello\n" * 7)
