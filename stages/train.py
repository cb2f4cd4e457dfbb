"""Stage `train@<method>`: train one method; checkpoints in --workdir survive interruption.

Distributed (GMFC-VAE; vad.distributed): `torchrun --nproc_per_node=N -m stages.train <the same
arguments>` trains on N processes (GPUs), rank 0 writing the outputs.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from vad.cache import exit_on_cache_error
from vad.launch import current_launch
from vad.memory import fixed_mmap_threshold
from vad.methods.runner import run_train
from vad.timing import timed_stage


def main() -> None:
    fixed_mmap_threshold()  # flat memory over many blocks (vad.memory)
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--method", required=True)
    parser.add_argument("--settings", required=True, help="data/settings/<method>/train.json")
    parser.add_argument("--prepared", required=True, help="the prepare stage's output")
    parser.add_argument("--model", required=True, help="output model folder")
    parser.add_argument("--workdir", required=True, help="checkpoints (resume after interruption)")
    parser.add_argument("--history", required=True, help="output loss curves (JSON)")
    args = parser.parse_args()
    if current_launch().is_main:
        with timed_stage(f"train@{args.method}"):
            run_train(
                args.method, args.settings, args.prepared, args.model, args.workdir, args.history
            )
        return
    # another rank of a distributed run (vad.distributed): it trains alike; its model and
    # history go to a folder that is thrown away, and its checkpoints are not written
    with tempfile.TemporaryDirectory(prefix="vad-train-rank-") as scratch:
        model, history = Path(scratch) / "model", Path(scratch) / "history.json"
        run_train(args.method, args.settings, args.prepared, model, args.workdir, history)


if __name__ == "__main__":
    with exit_on_cache_error():
        main()
