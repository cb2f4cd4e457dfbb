"""The `stc` section (stage `stc`): HF2-VAD's spatio-temporal cubes, with unknown keys refused."""

from __future__ import annotations

from vad.config import Section, check_all
from vad.stc.settings import (
    DEFAULT_FLOW_UNITS,
    FLOW_UNITS,
    PAPER_FRAMES,
    PAPER_SIZE,
    CubeSettings,
)

STC_KEYS = ("frames", "size", "flow_units", "n_jobs")


def stc_settings(params: dict) -> dict:
    """`stc`: {settings: CubeSettings, n_jobs}. A cube needs at least 2 frames (one flow);
    `frames` and `size` default to the paper's 5 (t = 4 past frames and the predicted one)
    and 32; `flow_units` to "frame" (u, v in frame pixels, as the released code)."""
    section = Section(params, "stc")
    return check_all(
        lambda: section.check_keys(STC_KEYS),
        lambda: {
            "settings": CubeSettings(
                frames=section.int("frames", minimum=2, default=PAPER_FRAMES),
                size=section.int("size", minimum=1, default=PAPER_SIZE),
                flow_units=section.str("flow_units", list(FLOW_UNITS), default=DEFAULT_FLOW_UNITS),
            ),
            "n_jobs": section.int("n_jobs", minimum=1, default=2),
        },
    )[1]
