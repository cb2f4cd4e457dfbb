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


def test_number_lists_and_booleans_are_read_with_their_bounds_and_named_errors():
    section = Section({"m": {"epochs": [2, 0], "rates": [1, 0.5], "bad": [1, True],
                             "short": [1], "low": [0, 3], "flag": True, "word": "yes",
                             "none": None}}, "m")  # fmt: skip
    assert section.numbers("epochs", 2) == [2, 0]
    rates = section.numbers("rates", 2, float, 0.0)
    assert rates == [1.0, 0.5] and all(type(v) is float for v in rates)
    assert section.numbers("none", 3) is None and section.numbers("absent", 3) is None
    with pytest.raises(ConfigError, match=r"'m.rates' must be null or a list of 2 integers"):
        section.numbers("rates", 2)  # 0.5 is no integer
    with pytest.raises(ConfigError, match=r"'m.bad' .* \[a, b\], got \[1, True\]"):
        section.numbers("bad", 2, names="[a, b]")  # a boolean is no number
    with pytest.raises(ConfigError, match=r"'m.short' must be null or a list of 2"):
        section.numbers("short", 2)
    with pytest.raises(ConfigError, match=r"'m.low' must be null or a list of 2 integers >= 1"):
        section.numbers("low", 2, int, 1)
    assert section.bool("flag") is True
    with pytest.raises(ConfigError, match=r"'m.word' must be true or false, got 'yes'"):
        section.bool("word")
