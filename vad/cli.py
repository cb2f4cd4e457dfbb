"""The `vad` command for what is not a DVC stage: `info` (dataset summary), `bench`
(preprocessing and scoring throughput), `export` and `score` (a run bundle, and new footage
scored with it), `benchmark` (every enabled method on a real dataset through DVC),
`experiments` (the paper's Table V and VI runs as queued DVC experiments), and `diagnose`
(why a method scores as it does, reports/diagnostics/)."""

from __future__ import annotations

import argparse
import json
import shlex
import sys

from vad.datasets import DATASET_NAMES, open_dataset
from vad.datasets.base import DatasetError
from vad.diagnose.command import add_diagnose_arguments, run_diagnose
from vad.experiments import TABLES


def info(args: argparse.Namespace) -> None:
    """The dataset's JSON summary; with --check, after decoding every frame and mask, with the
    problems found under "problems" (and on stderr), exiting with status 1 if there are any."""
    dataset = open_dataset(args.name, args.root or None, layout=args.layout, scenes=args.scenes)
    summary = dataset.summary()
    if not args.check:
        print(json.dumps(summary, indent=2))
        return
    from vad.dataset_check import check_dataset

    summary["problems"] = problems = check_dataset(dataset)
    for problem in problems:
        print(f"vad: problem: {problem}", file=sys.stderr)
    print(json.dumps(summary, indent=2))
    if problems:
        print(f"vad: {len(problems)} problem(s) found in {args.root}", file=sys.stderr)
        sys.exit(1)


def bench(args: argparse.Namespace) -> None:
    if args.what == "scale":  # the embedded synthetic scene: no dataset
        from vad.bench.scale import dotted_overrides, run_scale_benchmark

        report = run_scale_benchmark(
            scales=args.scales,
            out=args.out or "reports/bench/scale.json",
            overrides=dotted_overrides(args.set),
            base_frames=args.base_frames,
            keep=args.keep,
            command="python -m vad " + shlex.join(args.argv),
        )
        print(json.dumps({"ratios": report["ratios"], "per_frame": report["per_frame"]}, indent=2))
        return
    if args.what != "score" and args.name is None:
        raise ValueError(f"vad bench {args.what} needs a dataset name and root")
    if args.what == "objects":  # default out: reports/<name>/objects.json
        from vad.bench.objects import run_objects_benchmark

        report = run_objects_benchmark(args.name, args.root, out=args.out)
        print(json.dumps({k: v for k, v in report.items() if k != "per_video"}, indent=2))
        return
    out = args.out or f"reports/bench/{args.what}.json"
    if args.what == "decode":
        from vad.bench.decode import run_decode_benchmark

        report = run_decode_benchmark(args.name, args.root, out, args.trials, args.seed)
        print(json.dumps(report, indent=2))
        return
    if args.what == "velocity":
        from vad.bench.velocity import run_velocity_benchmark

        caches = {"frames": args.frames_h5, "flow": args.flow_h5, "objects": args.objects_h5}
        report = run_velocity_benchmark(
            args.name, args.root, out=out, caches=caches, ablation=not args.no_ablation
        )
        print(json.dumps(report, indent=2))
        return
    if args.what == "score":
        from vad.bench.score import run_score_benchmark

        report = run_score_benchmark(args.bundle, out=out, frames=args.frames, recipe=args.recipe)
        print(json.dumps(report, indent=2))
        return
    from vad.bench.motion import run_motion_benchmark

    report = run_motion_benchmark(
        args.name,
        args.root,
        out=out,
        layout=args.layout,
        videos=args.videos,
        windows=args.windows,
        measure_tvl1_default=args.measure_tvl1_default,
    )
    print(json.dumps(report, indent=2))


def export(args: argparse.Namespace) -> None:
    from vad.serve.export import export_bundle

    path = export_bundle(args.dir, methods=args.method or None, rev=args.rev)
    print(f"vad export: run bundle written to {path}")


def score(args: argparse.Namespace) -> None:
    from vad.methods.base import StreamingUnsupported
    from vad.serve.command import score_input

    try:
        runs = score_input(args.input, args.bundle, args.out, method=args.method)
    except StreamingUnsupported as error:
        raise ValueError(str(error)) from error
    except KeyboardInterrupt:  # before the first frame: once scoring, the loop handles Ctrl-C
        print("vad score: interrupted before scoring began", file=sys.stderr)
        sys.exit(130)
    for run in runs:
        events = len(run.events)
        print(
            f"vad score: {run.name}: {run.scored} of {run.frames} frames scored at "
            f"{run.fps:.1f} fps, {events} event(s) -> {args.out}"
        )
    if any(run.interrupted for run in runs):
        print("vad score: interrupted; the outputs hold the frames scored so far", file=sys.stderr)
        sys.exit(130)


def benchmark(args: argparse.Namespace) -> None:
    from vad.bench.pipeline import assemble_report, refresh_report, run_benchmark

    methods = args.methods.split(",") if args.methods else None
    if args.assemble:
        assemble_report(args.name, out=args.out)
        return
    if args.root is None:
        raise SystemExit("vad benchmark: the dataset folder (root) is required to run")
    if args.refresh:
        refresh_report(args.name, args.root, out=args.out, methods=methods)
        return
    run_benchmark(args.name, args.root, out=args.out, methods=methods)


def experiments(args: argparse.Namespace) -> None:
    from vad.experiments import main as run_paper_experiments

    run_paper_experiments(
        args.prefix, args.set, args.table, args.dataset, args.root, args.collect
    )


def check_params(args: argparse.Namespace) -> None:
    """Validate the params file (every error, not the first), then remove orphaned resume files
    under the data/ folder beside it. Imports no torch: about a second."""
    from pathlib import Path

    from vad.cache import remove_orphaned_partials
    from vad.params.check import check_params_file

    errors, methods = check_params_file(args.params)
    for error in errors:
        print(error, file=sys.stderr)
    if errors:
        print(
            f"{args.params}: {len(errors)} error{'s' if len(errors) > 1 else ''}",
            file=sys.stderr,
        )
        sys.exit(1)
    remove_orphaned_partials(Path(args.params).parent / "data")
    print(f"{args.params}: OK (methods: {', '.join(methods)})")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="vad", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    p = commands.add_parser("info", help="print a JSON summary of a dataset")
    p.add_argument("name", choices=DATASET_NAMES)
    p.add_argument("root", nargs="?", default="")
    p.add_argument("--layout", default="auto")
    p.add_argument(
        "--scenes",
        nargs="+",
        metavar="SCENE",
        help="shanghaitech: only these scenes' clips (ids such as 01 04), as data.scenes",
    )
    p.add_argument(
        "--check",
        action="store_true",
        help="decode every frame and mask and report every problem found (exit status 1 if any)",
    )
    p.set_defaults(run=info)

    p = commands.add_parser("bench", help="benchmarks writing JSON under reports/bench/")
    p.add_argument(
        "what",
        choices=["motion", "decode", "objects", "velocity", "score", "scale"],
        help="motion: flow and dynamic-flow throughput; decode: cost and reach of the corrupt-"
        "JPEG check; objects: the objects stage's anomalous-object recall, boxes and time per "
        "frame (reports/<name>/objects.json); velocity: the velocity method's fit and scoring "
        "times and an attribute ablation; score: `vad score` frames per second per method; "
        "scale: peak memory and time of every pipeline stage on synthetic scenes of 1x, 4x "
        "and 16x the default video length",
    )
    p.add_argument(
        "name", nargs="?", choices=DATASET_NAMES, help="dataset (not for score and scale)"
    )
    p.add_argument("root", nargs="?", default="")
    p.add_argument("--layout", default="auto")
    p.add_argument("--out", default=None, help="default reports/bench/<what>.json")
    p.add_argument("--trials", type=int, default=100, help="decode: damaged frames per cell")
    p.add_argument("--seed", type=int, default=0, help="decode: random seed")
    for cache in ("frames", "flow", "objects"):
        p.add_argument(
            f"--{cache}-h5", default=None, help=f"velocity: an existing {cache} cache to reuse"
        )
    p.add_argument("--no-ablation", action="store_true", help="velocity: skip the ablation")
    p.add_argument(
        "--run", dest="bundle", default="bundle", help="score: the bundle timed"
    )
    p.add_argument("--frames", type=int, default=300, help="score: frames timed per frame size")
    p.add_argument("--recipe", default="", help="score: how the bundle was made (recorded)")
    p.add_argument(
        "--videos", type=int, default=0, help="limit to the first N videos (0 = the whole dataset)"
    )
    p.add_argument(
        "--windows",
        type=int,
        default=10,
        help="dynamic-flow windows timed against the scikit-learn reference",
    )
    p.add_argument(
        "--measure-tvl1-default",
        action="store_true",
        help="run TV-L1 at OpenCV's default quality over the whole dataset "
        "(about 40 minutes for Ped2 on 2 cores) instead of extrapolating its time",
    )
    p.add_argument(
        "--scales",
        type=int,
        nargs="+",
        default=[1, 4, 16],
        help="scale: video lengths, in multiples of the default (or of --base-frames)",
    )
    p.add_argument(
        "--base-frames", type=int, default=None, help="scale: frames per video at 1x"
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="scale: a params override over the bench's own (repeatable), e.g. --set "
        "data.synthetic.width=120",
    )
    p.add_argument("--keep", default=None, help="scale: keep each scale's work folder here")
    p.set_defaults(run=bench)

    p = commands.add_parser(
        "export", help="write a run bundle (models, params, statistics) for `vad score`"
    )
    p.add_argument("dir", help="the bundle folder to write")
    p.add_argument("--rev", default=None, help="a git revision or DVC experiment name")
    p.add_argument(
        "--method", action="append", default=[], help="a method or fused model (repeatable)"
    )
    p.set_defaults(run=export)

    p = commands.add_parser(
        "score", help="score a video, a folder, a camera index or a stream URL with a bundle"
    )
    p.add_argument("input", help="video file, folder of videos or frames, camera index or URL")
    p.add_argument("--run", dest="bundle", required=True, help="the run bundle (`vad export`)")
    p.add_argument("--method", default=None, help="default: the bundle's first scorer")
    p.add_argument("--out", required=True, help="folder for the scores, events and videos")
    p.set_defaults(run=score)

    p = commands.add_parser(
        "benchmark",
        help="every enabled method on a real dataset at its CPU budget (dvc exp run); "
        "writes the run's folder reports/<name>/all/ (or /<m1+m2>/), reports/<name>/'s newest "
        "row of every score set, and RESULTS.md's tables",
    )
    p.add_argument("name", choices=DATASET_NAMES)
    p.add_argument("root", nargs="?", default=None, help="the dataset folder")
    p.add_argument("--out", default=None, help="dataset report folder (default reports/<name>)")
    p.add_argument(
        "--methods",
        default=None,
        help="comma-separated methods instead of params.yaml's (reports/<name>/<m1+m2>/)",
    )
    p.add_argument(
        "--refresh",
        action="store_true",
        help="run nothing: recompute run.json's frames and throughput and the RESULTS.md "
        "block from the report folder's stage times",
    )
    p.add_argument(
        "--assemble",
        action="store_true",
        help="run nothing: rebuild reports/<name>/metrics.json, metrics_paper.json, "
        "sources.json, summary.md and RESULTS.md's rows block from the run folders under it",
    )
    p.set_defaults(run=benchmark)

    p = commands.add_parser(
        "experiments",
        help="queue and run a paper's tables as DVC experiments: GMFC-VAE's Table V (K) and "
        "VI (alpha, beta), or dissociation's Table 2 (components) and 3 (clusters)",
    )
    p.add_argument(
        "--table",
        choices=list(TABLES),
        default="gmfc_vae",
        help=f"whose tables: {', '.join(TABLES)} (default gmfc_vae)",
    )
    p.add_argument(
        "--dataset",
        choices=DATASET_NAMES,
        default=None,
        help="run on this real dataset (with --root): the table's methods alone at their CPU "
        "budget; rows into reports/<dataset>/experiments/<table>/ and reports/<dataset>/",
    )
    p.add_argument("--root", default=None, help="the dataset folder (with --dataset)")
    p.add_argument(
        "--collect",
        action="store_true",
        help="queue nothing: write the rows of the table's finished experiments (with "
        "--dataset, --root and the same --prefix/--set as when they ran)",
    )
    p.add_argument("--prefix", default="", help="prepended to every experiment name")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a further `dvc exp run -S` override for every experiment (repeatable), "
        "e.g. --set data.name=ped2 --set data.root=/path/to/ped2",
    )
    p.set_defaults(run=experiments)

    p = commands.add_parser(
        "diagnose",
        help="patch-level AUCs of a trained method's scores on the test ground truth "
        "(reports/diagnostics/<method>.json and figures)",
    )
    add_diagnose_arguments(p)
    p.set_defaults(run=run_diagnose)

    p = commands.add_parser(
        "check-params",
        help="validate all of params.yaml (every section and method) before `dvc repro`, and "
        "remove orphaned *.partial resume files under data/",
    )
    p.add_argument("--params", default="params.yaml")
    p.set_defaults(run=check_params)

    args = parser.parse_args(argv)
    args.argv = list(argv) if argv is not None else sys.argv[1:]
    try:
        args.run(args)
    except (DatasetError, FileNotFoundError, ValueError) as error:
        print(f"vad: error: {error}", file=sys.stderr)
        sys.exit(2)
