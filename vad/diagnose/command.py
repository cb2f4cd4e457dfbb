"""`vad diagnose <method>`: its arguments and its run (imports torch only when run)."""

from __future__ import annotations

import argparse
from pathlib import Path

METHODS = ("gmfc_vae",)


def add_diagnose_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("method", choices=METHODS)
    parser.add_argument("--frames", default="data/interim/frames.h5", help="frame cache")
    parser.add_argument("--dynflow", default="data/interim/dynflow.h5", help="dynamic flows")
    parser.add_argument(
        "--ground-truth",
        default="data/interim/ground_truth.h5",
        help="labels and masks (the evaluate stage's)",
    )
    parser.add_argument(
        "--models", default="data/models", help="folder of the trained models (<method>/)"
    )
    parser.add_argument(
        "--settings",
        default="data/settings",
        help="folder of the settings stage's files: the grid and moving rule scored with",
    )
    parser.add_argument("--out", default="reports/diagnostics", help="report folder")
    parser.add_argument(
        "--mask-fraction",
        type=float,
        default=0.1,
        help="a patch is anomalous when the mask covers at least this fraction of its pixels "
        "(normal: none; in between: left out)",
    )
    parser.add_argument(
        "--max-patches", type=int, default=5000, help="per class and stream, drawn with --seed"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--elbo-samples", type=int, default=4, help="draws of z per patch for the negative ELBO"
    )


def run_diagnose(args: argparse.Namespace) -> None:
    from vad.diagnose.gmfc_vae import DiagnosisInputs, DiagnosisOptions, diagnose_gmfc_vae

    options = DiagnosisOptions(
        mask_fraction=args.mask_fraction,
        max_patches=args.max_patches,
        seed=args.seed,
        elbo_samples=args.elbo_samples,
    )
    inputs = DiagnosisInputs(
        frames=Path(args.frames),
        dynflow=Path(args.dynflow),
        ground_truth=Path(args.ground_truth),
        models=Path(args.models),
        settings=Path(args.settings),
    )
    diagnose_gmfc_vae(inputs, options, Path(args.out))
    print(f"vad diagnose: {args.method} -> {Path(args.out)}")
