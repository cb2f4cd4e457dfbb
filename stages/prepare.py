"""Stage `prepare@<method>`: what the method's training and scoring need (e.g. patches)."""

from __future__ import annotations

import argparse

from vad.cache import exit_on_cache_error
from vad.memory import fixed_mmap_threshold
from vad.methods.runner import run_prepare
from vad.timing import timed_stage


def main() -> None:
    fixed_mmap_threshold()  # flat memory over many blocks (vad.memory)
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--method", required=True)
    parser.add_argument("--settings", required=True, help="data/settings/<method>/prepare.json")
    parser.add_argument("--inputs", required=True, help="data/inputs/<method>.json")
    parser.add_argument("--out", required=True, help="output HDF5 file")
    args = parser.parse_args()
    with timed_stage(f"prepare@{args.method}"):
        run_prepare(args.method, args.settings, args.inputs, args.out)


if __name__ == "__main__":
    with exit_on_cache_error():
        main()
