"""Shared test fixtures: the real Ped2 location (tests using it skip when it is absent)."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PED2_ROOT = (REPO / ".." / "shared" / "datasets" / "ped2").resolve()


@pytest.fixture
def ped2_root() -> Path:
    if not (PED2_ROOT / "training" / "frames").is_dir():
        pytest.skip(f"real Ped2 not found at {PED2_ROOT}")
    return PED2_ROOT
