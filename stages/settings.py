"""Stage `settings`: every method's validated settings, caches and code digest, one file per
method and stage kind (data/settings/<method>/<kind>.json; see vad.methods.plan). It depends on
all of params.yaml and comes first in `dvc repro`, so it checks all of it (vad.params.check),
and a bad value anywhere fails the run in a second."""

from __future__ import annotations

import argparse

from vad.config import load_params
from vad.methods.plan import write_settings
from vad.params.check import check_params
from vad.timing import timed_stage


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", required=True, help="output folder")
    args = parser.parse_args()
    params = load_params()
    errors = check_params(params)  # all of params.yaml: this stage runs first in `dvc repro`
    if errors:
        raise SystemExit("\n".join(errors))
    with timed_stage("settings"):
        names = write_settings(params, args.out)
    print(f"settings of {len(names)} method(s) -> {args.out}: {', '.join(names)}")


if __name__ == "__main__":
    main()
