"""A scored frame that also says why: the object that makes it anomalous and in what respect
(the velocity method's explanation of its top object), for the score files and the overlay.

`ExplainedFrame` is a `ScoredFrame` (index, score, score_map) with an `explanation` attribute,
so that code reading only the score (the event tracker, fusion) needs no change;
`explanation_of` reads it from any scored frame (None without one).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vad.methods.base import ScoredFrame


@dataclass(frozen=True)
class Explanation:
    text: str  # e.g. "speed: mean speed 3.1x the training median (above 99.9% of ...)"
    box: tuple[float, float, float, float]  # the object's [x1, y1, x2, y2], fractions of the frame


class ExplainedFrame(ScoredFrame):
    """A ScoredFrame with the explanation of its top object (None: a frame without objects)."""

    explanation: Explanation | None

    def __new__(
        cls,
        index: int,
        score: float,
        score_map: np.ndarray | None,
        explanation: Explanation | None,
    ) -> ExplainedFrame:
        frame = super().__new__(cls, index, score, score_map)
        frame.explanation = explanation
        return frame


def explanation_of(scored: ScoredFrame | None) -> Explanation | None:
    return getattr(scored, "explanation", None)
