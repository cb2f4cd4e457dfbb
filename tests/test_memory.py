"""vad.memory: glibc's mmap threshold fixed for a stage and the workers it starts."""

from __future__ import annotations

import os
import sys

import pytest

from vad.memory import ENVIRONMENT, fixed_mmap_threshold


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_the_threshold_is_taken_here_and_passed_to_workers(monkeypatch):
    monkeypatch.delenv(ENVIRONMENT, raising=False)
    assert fixed_mmap_threshold(8 * 2**20)
    assert os.environ[ENVIRONMENT] == str(8 * 2**20)  # spawned workers start with it
    monkeypatch.setenv(ENVIRONMENT, "65536")  # a value the user chose is kept
    assert not fixed_mmap_threshold()
    assert os.environ[ENVIRONMENT] == "65536"
