"""`vad score <input> --run <bundle> [--method M] --out <dir>`: every stream of the input
scored with one scorer of a bundle, its outputs in `out` (see vad.serve.loop), a summary
returned; a truncated input raises its error after its outputs and events.json are written."""

from __future__ import annotations

from pathlib import Path

from vad.serve.bundle import load_bundle
from vad.serve.loop import EVENTS, Run, score_source, write_events
from vad.serve.scorers.build import build_scorer
from vad.serve.source import InputError, open_sources


def score_input(
    spec: str,
    bundle_path: str | Path,
    out: str | Path,
    method: str | None = None,
    progress: bool = True,
) -> list[Run]:
    """Score every stream of `spec` with the bundle's `method` (default: the bundle's default
    scorer) into `out`; stops after an interrupted stream (Ctrl-C)."""
    bundle = load_bundle(bundle_path)
    name = method or bundle.default_scorer
    stats = bundle.entry(name)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    runs: list[Run] = []
    fps: dict[str, float] = {}
    serve = bundle.manifest["serve"]
    try:
        for source in open_sources(spec):
            fps[source.name] = source.fps
            run = score_source(
                source,
                build_scorer(bundle, name),
                stats,
                bundle.params,
                bundle.manifest["training_frames"],
                serve,
                out,
                progress=progress,
            )
            runs.append(run)
            if run.interrupted or run.error:
                break
    finally:
        if runs:
            write_events(out / EVENTS, runs, stats, serve, fps)
    failed = [run.error for run in runs if run.error]
    if failed:
        raise InputError(failed[0])
    return runs
