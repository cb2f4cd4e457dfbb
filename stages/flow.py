"""Stage `flow`: optical flow for every consecutive frame pair (TV-L1, DIS, Farneback, FlowNet2)."""

from __future__ import annotations

import argparse

from vad.cache import exit_on_cache_error
from vad.config import load_params
from vad.memory import fixed_mmap_threshold
from vad.motion.flow_runner import run_flow_stage
from vad.params.flow import flow_settings
from vad.params.parallel import parallel_settings
from vad.timing import timed_stage


def main() -> None:
    fixed_mmap_threshold()  # flat memory over many blocks (vad.memory)
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    params = load_params()
    settings = flow_settings(params)
    run_flow_stage(
        args.frames,
        args.out,
        method=settings["method"],
        options=settings["options"],
        size=settings["size"],
        n_jobs=settings["n_jobs"],
        engine=parallel_settings(params),
    )


if __name__ == "__main__":
    with exit_on_cache_error(), timed_stage("flow"):
        main()
