"""What the generic `prepare@` and `train@<method>` stages do for any method: read the method's
settings and inputs files (vad.methods.plan), call the method, write atomically. `score@` is
vad.methods.score_runner."""

from __future__ import annotations

import json
from pathlib import Path

from vad.cache import atomic_directory, atomic_output
from vad.methods.stage_files import load_method, read_inputs, read_stage_settings


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
    Path(workdir).mkdir(parents=True, exist_ok=True)
    with atomic_directory(model_dir) as tmp, atomic_output(history) as tmp_history:
        rows = load_method(plan).train(Path(prepared), plan["settings"], tmp, Path(workdir))
        tmp_history.write_text(json.dumps(rows, indent=1) + "\n")
