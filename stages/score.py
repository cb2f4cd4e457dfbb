"""Stage `score@<method>`: frame scores and score maps of every video (vad.scores format)."""

from __future__ import annotations

import argparse

from vad.cache import exit_on_cache_error
from vad.config import load_params
from vad.memory import fixed_mmap_threshold
from vad.methods.score_runner import run_score
from vad.params.parallel import parallel_settings, score_jobs
from vad.timing import timed_stage


def main() -> None:
    fixed_mmap_threshold()  # flat memory over many blocks (vad.memory)
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--method", required=True)
    parser.add_argument("--settings", required=True, help="data/settings/<method>/score.json")
    parser.add_argument("--inputs", required=True, help="data/inputs/<method>.json")
    parser.add_argument("--prepared", required=True, help="the prepare stage's output")
    parser.add_argument("--model", required=True, help="the train stage's model folder")
    parser.add_argument("--out", required=True, help="output score file")
    args = parser.parse_args()
    params = load_params()
    with timed_stage(f"score@{args.method}"):
        run_score(
            args.method,
            args.settings,
            args.inputs,
            args.prepared,
            args.model,
            args.out,
            n_jobs=score_jobs(params),
            engine=parallel_settings(params),
        )


if __name__ == "__main__":
    with exit_on_cache_error():
        main()
