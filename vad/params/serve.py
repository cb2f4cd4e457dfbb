"""The `serve` section (`vad export`, `vad score`; no DVC stage reads it)."""

from __future__ import annotations

from vad.config import Section, check_all

SERVE_KEYS = ("threshold_quantile", "min_duration", "merge_gap", "threads")


def serve_settings(params: dict) -> dict:
    """`serve`: {threshold_quantile in [0, 1), min_duration >= 1, merge_gap >= 0, threads >= 1}."""
    section = Section(params, "serve")
    return check_all(lambda: section.check_keys(SERVE_KEYS), lambda: _serve(section))[1]


def _serve(section: Section) -> dict:
    quantile = section.float("threshold_quantile", minimum=0.0)
    if quantile >= 1.0:
        raise section.error("threshold_quantile", f"must be < 1, got {quantile}")
    return {
        "threshold_quantile": quantile,
        "min_duration": section.int("min_duration", minimum=1),
        "merge_gap": section.int("merge_gap", minimum=0),
        "threads": section.int("threads", minimum=1, default=1),
    }
