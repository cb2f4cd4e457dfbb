"""Stage `dynamic_flow`: RankSVM (or approximate rank pooling) dynamic flow per frame."""

from __future__ import annotations

import argparse

from vad.cache import exit_on_cache_error
from vad.config import Section, load_params
from vad.motion.dynflow_runner import DynamicFlowSettings, run_dynamic_flow_stage
from vad.timing import timed_stage


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--flow", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    section = Section(load_params(), "dynamic_flow")
    settings = DynamicFlowSettings(
        method=section.str("method", ["ranksvm", "approx"]),
        window=section.int("window", minimum=1),
        C=section.float("C", minimum=0.0),
        encode_scale=section.float("encode_scale"),
        encode_offset=section.float("encode_offset"),
        output_scale=None
        if section.values.get("output_scale") is None
        else section.float("output_scale", minimum=0.0),
    )
    run_dynamic_flow_stage(args.flow, args.out, settings, n_jobs=section.int("n_jobs", minimum=1))


if __name__ == "__main__":
    with exit_on_cache_error(), timed_stage("dynamic_flow"):
        main()
