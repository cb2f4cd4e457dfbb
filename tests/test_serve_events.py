"""Alert events from hand-made score sequences: thresholding, gap merging, minimum duration,
peaks, and the incremental tracker agreeing with the whole-sequence function."""

from __future__ import annotations

import pytest

from vad.serve.events import EventTracker, find_events

HIGH, LOW = 5.0, 0.0


def spans(events) -> list[tuple[int, int]]:
    return [(event.start, event.end) for event in events]


def test_contiguous_runs_above_the_threshold_are_events():
    scores = [LOW, HIGH, HIGH, LOW, LOW, LOW, HIGH, LOW]
    assert spans(find_events(scores, threshold=1.0)) == [(1, 2), (6, 6)]


def test_a_score_equal_to_the_threshold_is_not_above_it():
    assert find_events([1.0, 1.0, 1.0], threshold=1.0) == []


def test_runs_within_the_merge_gap_become_one_event():
    scores = [HIGH, LOW, LOW, HIGH, LOW, LOW, LOW, HIGH]  # gaps of 2 and 3 frames
    assert spans(find_events(scores, threshold=1.0, merge_gap=2)) == [(0, 3), (7, 7)]
    assert spans(find_events(scores, threshold=1.0, merge_gap=3)) == [(0, 7)]
    assert spans(find_events(scores, threshold=1.0, merge_gap=1)) == [(0, 0), (3, 3), (7, 7)]


def test_short_events_are_dropped_after_merging():
    scores = [HIGH, LOW, HIGH, LOW, LOW, LOW, HIGH, HIGH]
    # merged 0..2 lasts 3 frames; 6..7 lasts 2
    assert spans(find_events(scores, threshold=1.0, min_duration=3, merge_gap=1)) == [(0, 2)]


def test_the_peak_is_the_highest_score_of_the_event():
    scores = [LOW, 2.0, 7.0, 3.0, LOW, 9.0, LOW]
    (first, second) = find_events(scores, threshold=1.0)
    assert (first.peak_frame, first.peak_score) == (2, 7.0)
    assert (second.peak_frame, second.peak_score, second.duration) == (5, 9.0, 1)
    assert first.to_dict() == {
        "start": 1,
        "end": 3,
        "peak_frame": 2,
        "peak_score": 7.0,
        "duration": 3,
    }


def test_an_event_open_at_the_end_is_closed_by_finish():
    tracker = EventTracker(threshold=1.0, min_duration=2)
    for frame, score in enumerate([LOW, HIGH, HIGH]):
        tracker.update(frame, score)
    assert tracker.events == []  # still open
    assert spans(tracker.finish()) == [(1, 2)]


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="min_duration"):
        EventTracker(1.0, min_duration=0)
