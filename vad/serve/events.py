"""Alert events: contiguous runs of frames whose score is above the threshold.

Runs at most `merge_gap` frames apart are merged into one event (the frames between count as
part of it); events shorter than `min_duration` frames after merging are dropped. An event
records its first and last frame (inclusive), and the frame and score of its peak. Works
incrementally, one frame at a time, so a stream of any length needs no score history.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass


@dataclass
class Event:
    start: int
    end: int  # inclusive
    peak_frame: int
    peak_score: float

    @property
    def duration(self) -> int:
        return self.end - self.start + 1

    def to_dict(self) -> dict:
        return {**asdict(self), "duration": self.duration}


class EventTracker:
    """Feed (frame, score) in frame order with `update`; `finish` closes the last event."""

    def __init__(self, threshold: float, min_duration: int = 1, merge_gap: int = 0):
        if min_duration < 1 or merge_gap < 0:
            raise ValueError(
                f"events need min_duration >= 1 and merge_gap >= 0, got {min_duration}, {merge_gap}"
            )
        self.threshold, self.min_duration, self.merge_gap = threshold, min_duration, merge_gap
        self.events: list[Event] = []
        self.open: Event | None = None  # the event the last above-threshold frame belongs to

    def update(self, frame: int, score: float) -> None:
        if self.open is not None and frame - self.open.end - 1 > self.merge_gap:
            self._close()
        if score <= self.threshold:
            return
        if self.open is None:
            self.open = Event(frame, frame, frame, score)
            return
        self.open.end = frame
        if score > self.open.peak_score:
            self.open.peak_frame, self.open.peak_score = frame, score

    def finish(self) -> list[Event]:
        self._close()
        return self.events

    def _close(self) -> None:
        if self.open is not None and self.open.duration >= self.min_duration:
            self.events.append(self.open)
        self.open = None


def find_events(
    scores: Iterable[float], threshold: float, min_duration: int = 1, merge_gap: int = 0
) -> list[Event]:
    """The events of a whole score sequence (frame i has score scores[i])."""
    tracker = EventTracker(threshold, min_duration, merge_gap)
    for frame, score in enumerate(scores):
        tracker.update(frame, float(score))
    return tracker.finish()
