"""Stage `objects`: foreground boxes of every frame (motion foreground; optionally HOG people
and a user-supplied ONNX detector), no downloaded weights."""

from __future__ import annotations

import argparse

from vad.cache import exit_on_cache_error
from vad.config import load_params
from vad.memory import fixed_mmap_threshold
from vad.objects.runner import run_objects_stage
from vad.params.objects import objects_settings
from vad.params.parallel import parallel_settings
from vad.timing import timed_stage


def main() -> None:
    fixed_mmap_threshold()  # flat memory over many blocks (vad.memory)
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    params = load_params()
    section = objects_settings(params)
    run_objects_stage(
        args.frames,
        args.out,
        section["settings"],
        n_jobs=section["n_jobs"],
        engine=parallel_settings(params),
    )


if __name__ == "__main__":
    with exit_on_cache_error(), timed_stage("objects"):
        main()
