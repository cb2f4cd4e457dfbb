"""Stage `flow`: optical flow for every consecutive frame pair (TV-L1, DIS, Farneback, FlowNet2)."""

from __future__ import annotations

import argparse

from vad.cache import exit_on_cache_error
from vad.config import Section, load_params
from vad.motion.flow_runner import run_flow_stage
from vad.timing import timed_stage

METHODS = ["tvl1", "dis", "farneback", "flownet2"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    section = Section(load_params(), "flow")
    method = section.str("method", METHODS)
    run_flow_stage(
        args.frames,
        args.out,
        method=method,
        options=section.mapping(method),
        size=section.size("size"),
        n_jobs=section.int("n_jobs", minimum=1),
    )


if __name__ == "__main__":
    with exit_on_cache_error(), timed_stage("flow"):
        main()
