"""Stage `evaluate`: frame- and pixel-level metrics, ROC plot data and figures for every model."""

from __future__ import annotations

import argparse
import json

from vad.config import Section, load_params
from vad.eval.postprocess import Protocol


def named_paths(values: list[str]) -> dict[str, str]:
    malformed = [value for value in values if "=" not in value]
    if malformed:
        raise SystemExit(f"evaluate: expected NAME=PATH, got {malformed}")
    return dict(value.split("=", 1) for value in values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ground-truth", required=True)
    parser.add_argument("--frames", required=True)
    parser.add_argument("--metrics", required=True)
    parser.add_argument("--plots", required=True)
    parser.add_argument("--figures", required=True)
    parser.add_argument("--scores", nargs="+", required=True, metavar="MODEL=PATH")
    parser.add_argument(
        "--streams",
        nargs="*",
        default=[],
        metavar="NAME=PATH",
        help="single streams of a fused model: metrics and curves, no overlays",
    )
    args = parser.parse_args()

    section = Section(load_params(), "evaluate")
    smoothing = section.str("smoothing", ["none", "median", "gaussian"])
    protocol = Protocol.from_params(
        {
            "smoothing": smoothing,
            "window": section.int("window", minimum=1) if smoothing == "median" else None,
            "sigma": section.float("sigma", minimum=0.0) if smoothing == "gaussian" else None,
            "normalization": section.str("normalization", ["none", "minmax", "zscore"]),
        }
    )
    from vad.report import write_report  # after params are validated: imports matplotlib

    metrics = write_report(
        named_paths(args.scores),
        named_paths(args.streams),
        args.ground_truth,
        args.frames,
        protocol,
        args.metrics,
        args.plots,
        args.figures,
        interpolation=section.str("pixel_interpolation", ["nearest", "bilinear"]),
        figures_per_video=section.int("figures_per_video", minimum=0),
    )
    print(json.dumps(metrics, indent=2))


if __name__ == "__main__":
    main()
