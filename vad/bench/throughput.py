"""Test frames per second of each method, from a benchmark's seconds per stage (run.json's
`throughput`).

Scoring new footage costs, per test frame: the method's score stage (which covers the test
videos only), plus its share of every cache stage it reads, directly or through another cache
(a cache stage covers every frame, training and test: its seconds × test frames / all frames),
plus the same share of its prepare stage when that stage also works on the test videos
(`Method.prepare_reads_test`: velocity describes every object there). Training, the training
part of prepare, fusion and evaluation are excluded. These are the pipeline's batch times on
the benchmark's machine, several stages running one after the other; `vad bench score`
measures streaming instead.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

# the stages that write each shared cache, with the caches they read in turn
CACHE_STAGES: dict[str, tuple[str, ...]] = {
    "frames": ("frames",),
    "flow": ("flow", "frames"),
    "dynflow": ("dynamic_flow", "flow", "frames"),
    "objects": ("objects", "frames"),
    "stc": ("stc", "objects", "flow", "frames"),
}


def scoring_stages(method: str, inputs: Sequence[str], prepare_reads_test: bool) -> list[str]:
    """The stages whose time scoring new footage with `method` takes, in pipeline order."""
    stages = {stage for cache in inputs for stage in CACHE_STAGES[cache]}
    order = ["frames", "flow", "dynamic_flow", "objects", "stc"]
    chosen = [stage for stage in order if stage in stages]
    if prepare_reads_test:
        chosen.append(f"prepare@{method}")
    return [*chosen, f"score@{method}"]


def throughput(
    stage_seconds: Mapping[str, float],
    train_frames: int,
    test_frames: int,
    methods: Mapping[str, tuple[Sequence[str], bool]],
) -> dict[str, dict]:
    """Per method (name -> (inputs, prepare_reads_test)): its stages, milliseconds per test
    frame and test frames per second. A method whose stages were not all timed is left out."""
    if test_frames <= 0:
        raise ValueError(f"throughput needs test frames, got {test_frames}")
    share = test_frames / (train_frames + test_frames)
    report = {}
    for name, (inputs, prepare_reads_test) in methods.items():
        stages = scoring_stages(name, inputs, prepare_reads_test)
        if any(stage not in stage_seconds for stage in stages):
            continue
        seconds = sum(
            stage_seconds[stage] * (1.0 if stage.startswith("score@") else share)
            for stage in stages
        )
        report[name] = {
            "stages": stages,
            "ms_per_test_frame": round(1000 * seconds / test_frames, 2),
            "test_frames_per_second": round(test_frames / seconds, 1) if seconds else None,
        }
    return report
