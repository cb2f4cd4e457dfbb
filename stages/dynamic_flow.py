"""Stage `dynamic_flow`: RankSVM (or approximate rank pooling) dynamic flow per frame."""

from __future__ import annotations

import argparse

from vad.cache import exit_on_cache_error
from vad.config import load_params
from vad.memory import fixed_mmap_threshold
from vad.motion.dynflow_runner import run_dynamic_flow_stage
from vad.params.dynamic_flow import dynamic_flow_settings
from vad.params.parallel import parallel_settings
from vad.timing import timed_stage


def main() -> None:
    fixed_mmap_threshold()  # flat memory over many blocks (vad.memory)
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--flow", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    params = load_params()
    settings, n_jobs = dynamic_flow_settings(params)
    run_dynamic_flow_stage(
        args.flow, args.out, settings, n_jobs=n_jobs, engine=parallel_settings(params)
    )


if __name__ == "__main__":
    with exit_on_cache_error(), timed_stage("dynamic_flow"):
        main()
