"""Stage `evaluate`: frame- and pixel-level metrics, ROC plot data, figures and the summary
table for every enabled method (params `methods`) and every fused model whose parts are all
enabled."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vad.cache import exit_on_cache_error
from vad.config import load_params
from vad.eval.postprocess import Protocol
from vad.memory import fixed_mmap_threshold
from vad.methods.registry import enabled_methods
from vad.params.evaluate import evaluate_settings
from vad.scores import read_score_attrs
from vad.timing import timed_stage


def score_sets(methods: list[str], scores: Path, fused: Path) -> tuple[dict, dict]:
    """(name -> score file, name -> kind) in report order: methods that are not part of a fused
    model, then fused models, then their parts."""
    missing = [name for name in methods if not (scores / f"{name}.h5").is_file()]
    if missing:
        raise SystemExit(
            f"evaluate: no score file for {', '.join(missing)} in {scores} (run `dvc repro`)"
        )
    part_of: dict[str, str] = {}
    fused_files = {}
    for path in sorted(fused.glob("*.h5")):
        parts = read_score_attrs(path).get("parts", [])
        if set(parts) <= set(methods):
            fused_files[path.stem] = path
            part_of.update(dict.fromkeys(parts, path.stem))
        else:
            print(f"evaluate: {path.stem} left out: its parts {parts} are not all in `methods`")
    order = [name for name in methods if name not in part_of]
    sources = {name: scores / f"{name}.h5" for name in order}
    kinds = dict.fromkeys(order, "method")
    sources.update(fused_files)
    kinds.update(dict.fromkeys(fused_files, "fused"))
    for name in methods:
        if name in part_of:
            sources[name] = scores / f"{name}.h5"
            kinds[name] = f"part of {part_of[name]}"
    return {name: str(path) for name, path in sources.items()}, kinds


def main() -> None:
    fixed_mmap_threshold()  # flat memory over many blocks (vad.memory)
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scores", required=True, help="folder of the methods' score files")
    parser.add_argument("--fused", required=True, help="folder of the fused score files")
    parser.add_argument("--ground-truth", required=True)
    parser.add_argument("--frames", required=True)
    parser.add_argument("--metrics", required=True)
    parser.add_argument("--plots", required=True)
    parser.add_argument("--figures", required=True)
    parser.add_argument("--summary", required=True, help="output Markdown table")
    parser.add_argument(
        "--metrics-paper", required=True, help="metrics under each paper's own protocol"
    )
    args = parser.parse_args()

    params = load_params()
    settings = evaluate_settings(params)
    protocol = Protocol.from_params(settings["protocol"])
    paper_protocols = {
        name: Protocol.from_params(value) for name, value in settings["paper_protocols"].items()
    }
    sources, kinds = score_sets(enabled_methods(params), Path(args.scores), Path(args.fused))
    from vad.report import write_report  # imports matplotlib

    with timed_stage("evaluate"):
        write_report(
            sources,
            kinds,
            args.ground_truth,
            args.frames,
            protocol,
            args.metrics,
            args.plots,
            args.figures,
            args.summary,
            interpolation=settings["pixel_interpolation"],
            figures_per_video=settings["figures_per_video"],
            paper_protocols=paper_protocols,
            paper_metrics_path=args.metrics_paper,
        )
    sys.stdout.write(Path(args.summary).read_text())


if __name__ == "__main__":
    with exit_on_cache_error():
        main()
