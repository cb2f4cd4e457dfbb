from __future__ import annotations

from pathlib import Path

import pytest

from vad.config import ConfigError, Section, load_params

REPO = Path(__file__).resolve().parents[1]


def test_project_params_load_and_validate():
    params = load_params(REPO / "params.yaml")
    assert Section(params, "flow").size("size") == (420, 280)
    assert Section(params, "gmfc_vae").int("K", minimum=1) >= 1
    assert Section(params, "frames").size("size", allow_none=True) is None


@pytest.mark.parametrize(
    ("values", "call", "message"),
    [
        ({"method": "xyz"}, lambda s: s.str("method", ["dis", "tvl1"]), "flow.method"),
        ({}, lambda s: s.str("method"), "missing key 'flow.method'"),
        ({"n_jobs": 0}, lambda s: s.int("n_jobs", minimum=1), "flow.n_jobs"),
        ({"n_jobs": "2"}, lambda s: s.int("n_jobs"), "must be an integer"),
        ({"size": [420]}, lambda s: s.size("size"), "[width, height]"),
        ({"size": [420, -1]}, lambda s: s.size("size"), "flow.size"),
    ],
)
def test_errors_name_the_key(values, call, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        call(Section({"flow": values}, "flow"))


def test_missing_section_and_file(tmp_path):
    with pytest.raises(ConfigError, match="missing section 'fuse'"):
        Section({}, "fuse")
    with pytest.raises(ConfigError, match="not found"):
        load_params(tmp_path / "params.yaml")
