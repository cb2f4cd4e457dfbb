"""Stage `fuse`: late fusion of named score sets (`fuse.models`; GMFC-VAE's eq. 18), no
retraining, one video at a time. A fused model whose parts are not all scored is skipped, with
a note."""

from __future__ import annotations

import argparse
from contextlib import ExitStack
from pathlib import Path

from vad.cache import atomic_directory, exit_on_cache_error
from vad.config import load_params
from vad.fusion import fuse_settings, fused_stream
from vad.memory import fixed_mmap_threshold
from vad.methods.registry import method_names
from vad.scores import open_scores, write_scores
from vad.timing import timed_stage


def main() -> None:
    fixed_mmap_threshold()  # flat memory over many blocks (vad.memory)
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scores", required=True, help="folder of the methods' score files")
    parser.add_argument("--out", required=True, help="output folder, one file per fused model")
    args = parser.parse_args()
    models, normalize = fuse_settings(load_params(), method_names())
    scores = Path(args.scores)
    with timed_stage("fuse"), atomic_directory(args.out) as tmp:
        for name, weights in models.items():
            missing = [part for part in weights if not (scores / f"{part}.h5").is_file()]
            if missing:
                print(f"fuse: {name} skipped: no scores of {', '.join(missing)} (not in methods?)")
                continue
            with ExitStack() as files:  # the parts are read one video at a time
                parts = {
                    part: files.enter_context(open_scores(scores / f"{part}.h5", part))
                    for part in weights
                }
                write_scores(tmp / f"{name}.h5", fused_stream(name, parts, weights, normalize))
            print(f"fuse: {name} = " + " + ".join(f"{w:g}·{p}" for p, w in weights.items()))


if __name__ == "__main__":
    with exit_on_cache_error():
        main()
