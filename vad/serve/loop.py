"""`vad score` on one source: frames in, scores, events and the annotated video out.

Each frame is brought to the training run's stored form (its `frames.color`, and its frame
size: `frames.size`, or the size of the training frames when that is null), pushed to the
scorer, and every frame it returns is written to the CSV/JSONL files, the event tracker and the
annotated video. Only the frames still waiting for their score are kept (at most the scorer's
latency + 1). Ctrl-C ends the stream: the waiting frames are scored as at the end of a video,
and every output is closed valid. A truncated input is scored as far as it decodes, then its
error is raised.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from time import perf_counter

import numpy as np

from vad.cache import atomic_output
from vad.frame_cache import stored_frame
from vad.methods.base import ScoredFrame, StreamScorer
from vad.progress import progress as progress_bar
from vad.serve.annotate import AnnotatedVideo
from vad.serve.events import EventTracker
from vad.serve.outputs import FrameLog, frame_row
from vad.serve.source import InputError, Source

EVENTS = "events.json"


@dataclass
class Run:
    """What a scored source produced, and where the time went."""

    name: str
    frames: int = 0
    scored: int = 0
    interrupted: bool = False
    error: str | None = None
    seconds: dict[str, float] = field(default_factory=dict)  # decode, score, write
    score_parts: dict[str, float] = field(default_factory=dict)  # the scorer's own split
    events: list[dict] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def fps(self) -> float:
        total = sum(self.seconds.values())
        return self.frames / total if total > 0 else 0.0


# Mean spread of the channels (max - min, gray levels) below which a frame counts as gray: gray
# video through a YUV codec is not exactly gray (MJPG ~0, MPEG-4 part 2 at OpenCV's default
# quality 3.0 on the synthetic scene); colour footage spreads far more.
GRAY_TOLERANCE = 6.0


def is_gray(frame: np.ndarray) -> bool:
    """Whether an RGB frame is gray: its channels differ by under GRAY_TOLERANCE on average
    (gray video decoded through a YUV codec is not exactly equal in R, G and B)."""
    channels = frame.astype(np.int16)
    spread = channels.max(axis=-1) - channels.min(axis=-1)
    return float(spread.mean()) < GRAY_TOLERANCE


def input_warnings(frame: np.ndarray, training: dict, where: str) -> list[str]:
    """Differences between the first input frame and the training frames, as messages."""
    messages = []
    width, height = training["size"]
    if (frame.shape[1], frame.shape[0]) != (width, height):
        messages.append(
            f"{where}: frames are {frame.shape[1]}x{frame.shape[0]}, the run was trained on "
            f"{width}x{height}; they are resized to {width}x{height}"
        )
    looks_gray = is_gray(frame)
    if training["color"] == "rgb" and looks_gray:
        messages.append(
            f"{where}: the input is gray but the run was trained on colour frames; "
            "scores of the appearance model may be unreliable"
        )
    if training["color"] == "gray" and not looks_gray:
        messages.append(f"{where}: colour input; converted to gray as the training frames were")
    return messages


def score_source(
    source: Source,
    scorer: StreamScorer,
    stats: dict,
    params: dict,
    training: dict,
    serve: dict,
    out: Path,
    progress: bool = True,
) -> Run:
    """Score every frame of `source` into `out`; `stats` is the scorer's bundle entry
    (train_mean, train_std, threshold), `training` the bundle's training frames."""
    color = training["color"]
    frames_size = params.get("frames", {}).get("size")
    size = tuple(frames_size) if frames_size else tuple(training["size"])
    run = Run(source.name, seconds=dict.fromkeys(("decode", "score", "write"), 0.0))
    tracker = EventTracker(stats["threshold"], serve["min_duration"], serve["merge_gap"])
    waiting: dict[int, np.ndarray] = {}  # input frames not scored yet, by index
    input_size: tuple[int, int] | None = None

    with (
        FrameLog(out, source.name) as log,
        AnnotatedVideo(out / f"{source.name}.mp4", source.fps, stats) as video,
        progress_bar(desc=f"score {source.name}", unit="frame", disable=not progress) as bar,
    ):

        def emit(scored_frames: list[ScoredFrame]) -> None:
            start = perf_counter()
            for scored in scored_frames:
                row = frame_row(scored, source.fps, stats, input_size)
                log.write(row)
                tracker.update(scored.index, scored.score)
                video.write(waiting.pop(scored.index), scored)
                run.scored += 1
            run.seconds["write"] += perf_counter() - start

        frames = iter(source.frames)
        try:
            while True:
                start = perf_counter()
                frame = next(frames, None)
                run.seconds["decode"] += perf_counter() - start
                if frame is None:
                    break
                if input_size is None:
                    input_size = (frame.shape[1], frame.shape[0])
                    run.warnings = input_warnings(frame, training, source.where)
                    for message in run.warnings:
                        print(f"vad score: warning: {message}", file=sys.stderr)
                waiting[run.frames] = frame
                run.frames += 1
                start = perf_counter()
                scored = scorer.push(stored_frame(frame, color, size))
                run.seconds["score"] += perf_counter() - start
                emit(scored)
                bar.update(1)
        except KeyboardInterrupt:
            run.interrupted = True
        except InputError as error:
            run.error = str(error)
        start = perf_counter()
        scored = scorer.finish()
        run.seconds["score"] += perf_counter() - start
        emit(scored)
        for index in sorted(waiting):  # frames no score could be given (e.g. a lone frame)
            video.write(waiting.pop(index), None)
    run.events = [event.to_dict() for event in tracker.finish()]
    run.score_parts = dict(scorer.timings)
    return run


def write_events(path: Path, runs: list[Run], stats: dict, serve: dict, fps: dict) -> None:
    """events.json: per scored source, its events (frames and seconds) and the settings."""
    content = {
        "threshold": stats["threshold"],
        "threshold_quantile": serve["threshold_quantile"],
        "min_duration": serve["min_duration"],
        "merge_gap": serve["merge_gap"],
        "videos": {
            run.name: {
                "frames": run.frames,
                "interrupted": run.interrupted,
                "error": run.error,
                "events": [
                    {
                        **event,
                        "start_s": round(event["start"] / fps[run.name], 3),
                        "end_s": round((event["end"] + 1) / fps[run.name], 3),
                    }
                    for event in run.events
                ],
            }
            for run in runs
        },
    }
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(content, indent=2) + "\n")
