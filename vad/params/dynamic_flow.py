"""The `dynamic_flow` section (stage `dynamic_flow`)."""

from __future__ import annotations

from vad.config import Section, check_all
from vad.motion.dynamic_flow import METHODS
from vad.motion.dynflow_runner import DynamicFlowSettings

DYNAMIC_FLOW_KEYS = (
    "method",
    "window",
    "C",
    "encode_scale",
    "encode_offset",
    "output_scale",
    "n_jobs",
)


def dynamic_flow_settings(params: dict) -> tuple[DynamicFlowSettings, int]:
    """`dynamic_flow`: the settings and `n_jobs`. Rank pooling orders at least two flows (a
    window of one pools to zero), the RankSVM margin C and the encoding scale a must be > 0
    (a = 0 encodes every flow alike), and an explicit output scale too."""
    section = Section(params, "dynamic_flow")
    return check_all(lambda: section.check_keys(DYNAMIC_FLOW_KEYS), lambda: _dynamic_flow(section))[
        1
    ]


def _dynamic_flow(section: Section) -> tuple[DynamicFlowSettings, int]:
    output_scale = section.values.get("output_scale")
    settings = DynamicFlowSettings(
        method=section.str("method", list(METHODS)),
        window=section.int("window", minimum=2),
        C=section.float("C", above=0.0),
        encode_scale=section.float("encode_scale", above=0.0),
        encode_offset=section.float("encode_offset"),
        output_scale=None if output_scale is None else section.float("output_scale", above=0.0),
    )
    return settings, section.int("n_jobs", minimum=1)
