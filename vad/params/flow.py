"""The `flow` section (stage `flow`)."""

from __future__ import annotations

from pathlib import Path

from vad.config import ConfigError, Section, check_all
from vad.motion.flow_runner import ALL_METHODS, FLOWNET2, resolve_stage_options

FLOW_KEYS = ("method", "size", "n_jobs", *ALL_METHODS)


def flow_settings(params: dict) -> dict:
    """`flow`: {method, options (the method's mapping as written), size, n_jobs}. The chosen
    method's options are resolved as the stage will (names and types); another method's
    non-empty options are checked too, so a typo waits for no switch of method."""
    section = Section(params, "flow")
    return check_all(lambda: section.check_keys(FLOW_KEYS), lambda: _flow(section))[1]


def _flow(section: Section) -> dict:
    method = section.str("method", list(ALL_METHODS))
    for name in ALL_METHODS:
        options = section.mapping(name)
        if name != method and not options:
            continue
        try:
            resolved = resolve_stage_options(name, options)
        except (TypeError, ValueError) as error:
            raise ConfigError(f"params.yaml: 'flow.{name}': {error}") from None
        if name == method == FLOWNET2 and not Path(str(resolved["checkpoint"])).is_file():
            raise ConfigError(
                f"params.yaml: 'flow.{FLOWNET2}.checkpoint' {resolved['checkpoint']}: "
                "no such file (FlowNet2's weights)"
            )
    return {
        "method": method,
        "options": section.mapping(method),
        "size": section.size("size"),
        "n_jobs": section.int("n_jobs", minimum=1),
    }
