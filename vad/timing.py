"""Wall time of each stage run, for `vad benchmark`: data/timings/<stage>.json.

These files are outside DVC's view (not outputs, gitignored), so timings never change a
tracked hash. `VAD_TIMINGS_DIR` moves them (the benchmark points it at its own folder, which
also works for `dvc exp run --temp` and a `dvc queue` worker started with it set). Inside a DVC
experiment (DVC sets `DVC_EXP_NAME` for its stages) they go to a subfolder named after the
experiment, so that the experiments of one queue keep their own times. Usage in a stage script:

    with timed_stage("train@gmfc_vae_rgb"):
        ...
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from vad.cache import atomic_output

DEFAULT_DIR = Path("data/timings")


def timings_dir() -> Path:
    """Where this process's stage times go: VAD_TIMINGS_DIR (or data/timings), in a subfolder
    named after the DVC experiment when it runs inside one."""
    base = Path(os.environ.get("VAD_TIMINGS_DIR") or DEFAULT_DIR)
    experiment = os.environ.get("DVC_EXP_NAME")
    return base / experiment if experiment else base


@contextmanager
def timed_stage(stage: str) -> Iterator[None]:
    """Record the seconds the block took, only when it succeeds."""
    start = time.perf_counter()
    yield
    seconds = time.perf_counter() - start
    with atomic_output(timings_dir() / f"{stage}.json") as tmp:
        tmp.write_text(json.dumps({"stage": stage, "seconds": round(seconds, 3)}) + "\n")


def read_timings(folder: str | Path | None = None) -> dict[str, float]:
    """Seconds per stage name from a timings folder (missing folder: none)."""
    folder = Path(folder) if folder is not None else timings_dir()
    if not folder.is_dir():
        return {}
    records = (json.loads(path.read_text()) for path in sorted(folder.glob("*.json")))
    return {record["stage"]: float(record["seconds"]) for record in records}
