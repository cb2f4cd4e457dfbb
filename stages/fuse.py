"""Stage `fuse`: eq. 18 late fusion of the appearance and motion energies (no retraining)."""

from __future__ import annotations

import argparse

from vad.config import Section, load_params
from vad.fusion import NORMALIZATIONS, fuse
from vad.scores import read_scores, write_scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--appearance", required=True)
    parser.add_argument("--motion", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    section = Section(load_params(), "fuse")
    fused = fuse(
        read_scores(args.appearance),
        read_scores(args.motion),
        alpha=section.float("alpha"),
        beta=section.float("beta"),
        normalize=section.str("normalize", list(NORMALIZATIONS)),
    )
    write_scores(args.out, fused)


if __name__ == "__main__":
    main()
