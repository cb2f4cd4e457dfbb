"""Stage `stc`: HF2-VAD's spatio-temporal cubes, the frames and flows of every object box over
the frames before it, resized to a small square (vad.stc)."""

from __future__ import annotations

import argparse

from vad.cache import exit_on_cache_error
from vad.config import load_params
from vad.memory import fixed_mmap_threshold
from vad.params.parallel import parallel_settings
from vad.params.stc import stc_settings
from vad.stc.runner import run_stc_stage
from vad.timing import timed_stage


def main() -> None:
    fixed_mmap_threshold()  # flat memory over many blocks (vad.memory)
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", required=True)
    parser.add_argument("--flow", required=True)
    parser.add_argument("--objects", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    params = load_params()
    section = stc_settings(params)
    run_stc_stage(
        args.frames,
        args.flow,
        args.objects,
        args.out,
        section["settings"],
        n_jobs=section["n_jobs"],
        engine=parallel_settings(params),
    )


if __name__ == "__main__":
    with exit_on_cache_error(), timed_stage("stc"):
        main()
