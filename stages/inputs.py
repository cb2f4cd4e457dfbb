"""Stage `inputs`: the content digest of each cache every method reads, one file per method
(data/inputs/<method>.json; see vad.methods.plan)."""

from __future__ import annotations

import argparse

from vad.cache import exit_on_cache_error
from vad.methods.plan import write_inputs
from vad.timing import timed_stage


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--caches", required=True, help="the settings stage's caches.json")
    parser.add_argument(
        "--cache", action="append", required=True, metavar="NAME=PATH", help="a cache (repeat)"
    )
    parser.add_argument("--out", required=True, help="output folder")
    args = parser.parse_args()
    malformed = [value for value in args.cache if "=" not in value]
    if malformed:
        parser.error(f"--cache expects NAME=PATH, got {malformed}")
    with timed_stage("inputs"):
        write_inputs(args.caches, dict(value.split("=", 1) for value in args.cache), args.out)


if __name__ == "__main__":
    with exit_on_cache_error():
        main()
