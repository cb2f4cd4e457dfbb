"""The `evaluate` section (stage `evaluate`).

Imports nothing of vad.eval (whose metrics load in a second), so `check-params` stays fast;
vad.eval.postprocess.Protocol checks the same values again (tests/test_params.py keeps the
choices equal).
"""

from __future__ import annotations

from vad.config import Section, check_all

SMOOTHINGS = ("none", "median", "gaussian")
NORMALIZATIONS = ("none", "minmax")
# Choices that were offered once, and why they are gone (the same text as
# vad.eval.postprocess.REMOVED_NORMALIZATIONS; tests/test_params.py keeps them equal).
REMOVED_NORMALIZATIONS = {
    "zscore": (
        "was removed: z-scoring with the training mean and std is one increasing affine map "
        "common to every video, which leaves every ROC-based metric (frame and pixel AUC, EER) "
        "unchanged; use `none` (the same numbers) or `minmax` (per test video)"
    )
}
INTERPOLATIONS = ("nearest", "bilinear")
EVALUATE_KEYS = (
    "smoothing",
    "window",
    "sigma",
    "normalization",
    "pixel_interpolation",
    "figures_per_video",
    "paper_protocols",
)
PROTOCOL_KEYS = ("smoothing", "window", "sigma", "normalization")


def evaluate_settings(params: dict) -> dict:
    """`evaluate`: {protocol: Protocol.from_params' mapping, pixel_interpolation,
    figures_per_video, paper_protocols: {score set: protocol mapping}}. `window` (an odd number
    of frames >= 1) and `sigma` (> 0) are checked whenever they are set, whichever smoothing is
    chosen, so switching smoothing cannot fail; each paper protocol is checked alike."""
    section = Section(params, "evaluate")
    return check_all(lambda: section.check_keys(EVALUATE_KEYS), lambda: _evaluate(section))[1]


def _evaluate(section: Section) -> dict:
    return {
        "protocol": _protocol(section, default=None),
        "pixel_interpolation": section.str("pixel_interpolation", list(INTERPOLATIONS)),
        "figures_per_video": section.int("figures_per_video", minimum=0),
        "paper_protocols": _paper_protocols(section),
    }


def _protocol(section: Section, default: str | None = "none") -> dict:
    """One protocol mapping (smoothing, window, sigma, normalization) of `section`; `default`
    is the smoothing and normalization when absent (None: both keys are required)."""
    smoothing = section.str("smoothing", list(SMOOTHINGS), default=default)
    window = sigma = None
    if section.values.get("window") is not None or smoothing == "median":
        window = section.int("window", minimum=1)
        if window % 2 == 0:
            raise section.error(
                "window",
                f"must be odd (a running median is centred on its frame), got {window}",
            )
    if section.values.get("sigma") is not None or smoothing == "gaussian":
        sigma = section.float("sigma", above=0.0)
    return {
        "smoothing": smoothing,
        "window": window if smoothing == "median" else None,
        "sigma": sigma if smoothing == "gaussian" else None,
        "normalization": _normalization(section, default),
    }


def _normalization(section: Section, default: str | None) -> str:
    """`normalization`, refusing a removed choice with the reason it was removed."""
    value = section.values.get("normalization")
    if isinstance(value, str) and value in REMOVED_NORMALIZATIONS:
        raise section.error("normalization", f"{value!r} {REMOVED_NORMALIZATIONS[value]}")
    return section.str("normalization", list(NORMALIZATIONS), default=default)


def _paper_protocols(section: Section) -> dict:
    """`evaluate.paper_protocols`: score-set name -> its paper's protocol (reports/
    metrics_paper.json), each checked like the main protocol."""
    protocols = section.mapping("paper_protocols")
    checked = {}
    for name in protocols:
        entry = Section({section.name: section.values}, f"{section.name}.paper_protocols.{name}")
        checked[str(name)] = check_all(
            lambda entry=entry: entry.check_keys(PROTOCOL_KEYS),
            lambda entry=entry: _protocol(entry),
        )[1]
    return checked
