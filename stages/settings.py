"""Stage `settings`: every method's validated settings, caches and code digest, one file per
method and stage kind (data/settings/<method>/<kind>.json; see vad.methods.plan)."""

from __future__ import annotations

import argparse

from vad.config import load_params
from vad.methods.plan import write_settings
from vad.timing import timed_stage


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", required=True, help="output folder")
    args = parser.parse_args()
    with timed_stage("settings"):
        names = write_settings(load_params(), args.out)
    print(f"settings of {len(names)} method(s) -> {args.out}: {', '.join(names)}")


if __name__ == "__main__":
    main()
