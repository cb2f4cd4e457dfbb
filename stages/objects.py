"""Stage `objects`: foreground boxes of every frame (motion foreground; optionally HOG people
and a user-supplied ONNX detector), no downloaded weights."""

from __future__ import annotations

import argparse

from vad.config import Section, load_params
from vad.objects.runner import run_objects_stage
from vad.objects.settings import resolve_settings
from vad.timing import timed_stage


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    params = load_params()
    settings = resolve_settings(params)
    n_jobs = Section(params, "objects").int("n_jobs", minimum=1, default=2)
    run_objects_stage(args.frames, args.out, settings, n_jobs=n_jobs)


if __name__ == "__main__":
    with timed_stage("objects"):
        main()
