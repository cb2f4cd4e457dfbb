"""What the generic `prepare@` and `train@<method>` stages do for any method: read the method's
settings and inputs files (vad.methods.plan), call the method, write atomically. `score@` is
vad.methods.score_runner."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from vad.cache import atomic_directory, atomic_output
from vad.launch import current_launch
from vad.methods.stage_files import load_method, read_inputs, read_stage_settings

CODE_FILE = "code.json"  # in a train stage's workdir: the code its checkpoints come from


def run_prepare(method: str, settings_path: str, inputs_path: str, out: str) -> None:
    plan = read_stage_settings(settings_path, method, "prepare")
    inputs = read_inputs(inputs_path, method)
    out_path = Path(out)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    load_method(plan).prepare(inputs, plan["settings"], out_path)
    if not out_path.is_file():
        raise RuntimeError(f"{method}.prepare() wrote nothing to {out_path}")


def run_train(
    method: str, settings_path: str, prepared: str, model_dir: str, workdir: str, history: str
) -> None:
    """Train into a temporary folder that replaces `model_dir` only once training succeeded and
    its loss history was serialised: the model and the history appear together or not at all."""
    plan = read_stage_settings(settings_path, method, "train")
    workdir_for_code(Path(workdir), plan.get("code", {}), method)
    with atomic_directory(model_dir) as tmp, atomic_output(history) as tmp_history:
        rows = load_method(plan).train(Path(prepared), plan["settings"], tmp, Path(workdir))
        tmp_history.write_text(json.dumps(rows, indent=1) + "\n")


def workdir_for_code(workdir: Path, code: dict, method: str) -> None:
    """Create `workdir`, emptied first when its checkpoints were written by other code than the
    stage's (`code`: the digests of the modules the method's stages run, from its settings
    file; recorded in `CODE_FILE`): a checkpoint's identity holds the settings and the data,
    not the code, so a changed initialisation or loss must not resume an old run. A folder
    with files but no record (written before records existed) is emptied too. In a distributed
    run only rank 0 does this (it alone reads checkpoints: vad.training.Checkpoint)."""
    record = workdir / CODE_FILE
    if current_launch().rank != 0:
        workdir.mkdir(parents=True, exist_ok=True)
        return
    if workdir.is_dir() and any(workdir.iterdir()):
        recorded = json.loads(record.read_text()) if record.is_file() else None
        if recorded != code:
            print(f"{method}: the code changed since {workdir}'s checkpoints; starting afresh")
            shutil.rmtree(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    with atomic_output(record) as tmp:
        tmp.write_text(json.dumps(code, indent=1, sort_keys=True) + "\n")
