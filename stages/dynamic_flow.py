"""Stage `dynamic_flow`: RankSVM (or approximate rank pooling) dynamic flow per frame."""

from __future__ import annotations

import argparse

from vad.config import Section, load_params
from vad.motion.dynflow_runner import DynamicFlowSettings, run_dynamic_flow_stage
from vad.timing import timed_stage


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--flow", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    params = load_params()
    settings = DynamicFlowSettings.from_params(params)
    run_dynamic_flow_stage(
        args.flow,
        args.out,
        settings,
        n_jobs=Section(params, "dynamic_flow").int("n_jobs", minimum=1),
    )


if __name__ == "__main__":
    with timed_stage("dynamic_flow"):
        main()
