"""The `parallel` section: where the per-video work of the stages `flow`, `dynamic_flow`,
`objects`, `stc` and `score@<method>` runs, as a vad.parallel.Engine, and `score_jobs`, the
workers that score test videos. Dask is not imported here: checking the params stays fast."""

from __future__ import annotations

import re

from vad.config import Section, check_all
from vad.parallel import BACKENDS, DASK, Engine

PARALLEL_KEYS = ("backend", "address", "score_jobs")
NOT_IMPLEMENTED = ("ray",)
# [scheme://]host:port, as `dask scheduler` prints it (tcp://10.0.0.5:8786)
ADDRESS = re.compile(r"^(?:(?:tcp|tls|ucx|ws|wss)://)?(?:\[[0-9a-fA-F:.]+\]|[^\s:/\[\]]+):\d+$")


def parallel_settings(params: dict) -> Engine:
    """`parallel`: {backend: processes | dask, address: null | a Dask scheduler's address}.
    An address is refused with the processes backend (it would be ignored)."""
    section = Section(params, "parallel")
    return check_all(
        lambda: section.check_keys(PARALLEL_KEYS),
        lambda: _engine(section),
        lambda: score_jobs(params),
    )[1]


def score_jobs(params: dict) -> int:
    """`parallel.score_jobs`: workers of the engine that score videos (1: in the score stage's
    own process, with every thread the method's settings give it)."""
    return Section(params, "parallel").int("score_jobs", minimum=1, default=1)


def _engine(section: Section) -> Engine:
    backend = section.values.get("backend")
    if backend in NOT_IMPLEMENTED:
        raise section.error(
            "backend", f"{backend!r} is not implemented: only {' and '.join(BACKENDS)} exist"
        )
    backend = section.str("backend", list(BACKENDS))
    address = section.values.get("address")
    if address is None:
        return Engine(backend)
    if not isinstance(address, str) or not ADDRESS.match(address):
        raise section.error(
            "address",
            f"must be null or a Dask scheduler address [tcp://]host:port (tcp://10.0.0.5:8786), "
            f"got {address!r}",
        )
    if backend != DASK:
        raise section.error(
            "address",
            f"is {address} but 'parallel.backend' is {backend}: an address names a Dask "
            "scheduler (set backend: dask), or set address: null",
        )
    return Engine(backend, address)
