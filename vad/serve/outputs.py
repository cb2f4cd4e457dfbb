"""Per-frame score files of `vad score`: `<name>.csv` and `<name>.jsonl`, one row per scored
frame, each row written and flushed as it comes, so that an interrupted run leaves both files
valid (every line complete) with the frames scored so far.

Columns: frame, time_s (frame / fps), score (raw), normalised ((score - training mean) /
training std), alert (1 if score > threshold), for methods with score maps the map cell of
the maximum (peak_row, peak_col) and its centre in input pixels (peak_x, peak_y), and for
methods that explain their scores (velocity) what makes the frame's top object anomalous
(explanation); empty (CSV) or null (JSONL) where a method gives none.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from types import TracebackType

import numpy as np

from vad.methods.base import ScoredFrame
from vad.serve.explained import explanation_of

FIELDS = (
    "frame",
    "time_s",
    "score",
    "normalised",
    "alert",
    "peak_row",
    "peak_col",
    "peak_x",
    "peak_y",
    "explanation",
)


def frame_row(scored: ScoredFrame, fps: float, stats: dict, frame_size: tuple[int, int]) -> dict:
    """The row of one scored frame; `stats` holds train_mean, train_std, threshold; frame_size
    is the input's (width, height)."""
    row: dict = {
        "frame": scored.index,
        "time_s": round(scored.index / fps, 4),
        "score": scored.score,
        "normalised": (scored.score - stats["train_mean"]) / stats["train_std"],
        "alert": int(scored.score > stats["threshold"]),
        "peak_row": None,
        "peak_col": None,
        "peak_x": None,
        "peak_y": None,
        "explanation": None,
    }
    if scored.score_map is not None:
        rows, cols = scored.score_map.shape
        peak_row, peak_col = np.unravel_index(int(np.argmax(scored.score_map)), (rows, cols))
        width, height = frame_size
        row.update(
            peak_row=int(peak_row),
            peak_col=int(peak_col),
            peak_x=round((peak_col + 0.5) * width / cols, 1),
            peak_y=round((peak_row + 0.5) * height / rows, 1),
        )
    explanation = explanation_of(scored)
    if explanation is not None:
        row["explanation"] = explanation.text
    return row


class FrameLog:
    """`with FrameLog(folder, name) as log: log.write(row)`: the CSV and JSONL files."""

    def __init__(self, folder: Path, name: str):
        self.csv_path = folder / f"{name}.csv"
        self.jsonl_path = folder / f"{name}.jsonl"

    def __enter__(self) -> FrameLog:
        self.csv_path.parent.mkdir(parents=True, exist_ok=True)
        self._csv_file = open(self.csv_path, "w", newline="")
        self._jsonl_file = open(self.jsonl_path, "w")
        self._csv = csv.DictWriter(self._csv_file, fieldnames=FIELDS)
        self._csv.writeheader()
        self._csv_file.flush()
        return self

    def write(self, row: dict) -> None:
        self._csv.writerow({key: "" if row[key] is None else row[key] for key in FIELDS})
        self._csv_file.flush()
        self._jsonl_file.write(json.dumps(row) + "\n")
        self._jsonl_file.flush()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._csv_file.close()
        self._jsonl_file.close()
