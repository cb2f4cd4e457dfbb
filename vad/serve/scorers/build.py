"""The streaming scorer of a bundle's method or fused model."""

from __future__ import annotations

import sys

import cv2

from vad.methods.base import StreamScorer
from vad.methods.registry import get_method
from vad.serve.bundle import Bundle
from vad.serve.scorers.fused import FusedStreamScorer


def build_scorer(bundle: Bundle, name: str) -> StreamScorer:
    """`name`'s scorer: a method's own `stream_scorer`, or the fusion of its parts' with the
    weights and training statistics the `fuse` stage used; torch and OpenCV then use the
    bundle's `serve.threads` threads."""
    scorer = _build(bundle, name)
    threads = bundle.manifest["serve"].get("threads", 1)
    cv2.setNumThreads(threads)
    if "torch" in sys.modules:  # imported by a method that uses it (set after its own setting)
        sys.modules["torch"].set_num_threads(threads)
    return scorer


def _build(bundle: Bundle, name: str) -> StreamScorer:
    entry = bundle.entry(name)
    if entry["kind"] != "fused":
        return get_method(name).stream_scorer(bundle.model_dir(name), bundle.params)
    parts = {
        part: get_method(part).stream_scorer(bundle.model_dir(part), bundle.params)
        for part in entry["parts"]
    }
    return FusedStreamScorer(
        parts,
        dict(zip(entry["parts"], entry["weights"], strict=True)),
        {part: tuple(stats) for part, stats in entry["part_statistics"].items()},
        on_maps=entry["level"] == "map",
    )
