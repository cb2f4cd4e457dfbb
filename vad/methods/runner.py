"""What the generic `prepare@`, `train@` and `score@<method>` stages do for any method: read the
method's settings and inputs files (vad.methods.plan), call the method, write atomically."""

from __future__ import annotations

import json
from pathlib import Path

from vad.cache import atomic_directory, atomic_output
from vad.methods.stage_files import load_method, read_inputs, read_stage_settings
from vad.scores import ScoreSet, ScoreWriter


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


def run_score(
    method: str, settings_path: str, inputs_path: str, prepared: str, model_dir: str, out: str
) -> None:
    """Score with the method and write each video's scores as the method yields them (the
    file appears only once every video is written)."""
    plan = read_stage_settings(settings_path, method, "score")
    inputs = read_inputs(inputs_path, method)
    scores = load_method(plan).score(inputs, Path(prepared), Path(model_dir), plan["settings"])
    stream = scores.stream() if isinstance(scores, ScoreSet) else scores
    if stream.model != method:
        raise ValueError(f"{method}.score() returned the scores of {stream.model!r}")
    with ScoreWriter(out, stream.model, stream.attrs) as writer:
        for split, name, video in stream.videos:
            writer.add(split, name, video)
        if not writer.counts["test"]:
            raise ValueError(f"{method}.score() scored no test video")
