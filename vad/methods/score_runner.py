"""What the generic `score@<method>` stage does for any method: read the method's settings and
inputs files (vad.methods.plan), score, and write the score file as the videos come (it
appears only once complete), in one process or on the workers of `parallel`'s engine."""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Iterator
from contextlib import closing
from functools import partial
from pathlib import Path
from urllib.parse import quote

from vad.cache import open_cache
from vad.methods.stage_files import load_method, read_inputs, read_stage_settings
from vad.parallel import Engine, map_videos
from vad.scores import ScoreSet, ScoreStream, ScoreWriter, staged_video


def run_score(
    method: str,
    settings_path: str,
    inputs_path: str,
    prepared: str,
    model_dir: str,
    out: str,
    n_jobs: int = 1,
    engine: Engine | None = None,
) -> None:
    """Score with the method and write each video's scores as the method yields them (the
    file appears only once every video is written). With `n_jobs` > 1 (or a Dask cluster's
    address in `engine`) and a method that scores each video alone (`Method.score_keys`), the
    videos are scored by the workers of `engine`, each into a staging score file of its own
    that this process copies into the output, in the method's order: the same file as one
    process writes."""
    plan = read_stage_settings(settings_path, method, "score")
    inputs = read_inputs(inputs_path, method)
    scorer = load_method(plan)
    engine = engine or Engine()
    keys = None
    if not engine.runs_here(n_jobs, 2):
        keys = scorer.score_keys(inputs, Path(prepared), plan["settings"])
    if keys is None or engine.runs_here(n_jobs, len(keys)):
        scores = scorer.score(inputs, Path(prepared), Path(model_dir), plan["settings"])
        _write(method, _as_stream(method, scores), out, staged=None)
        return
    header = _as_stream(
        method, scorer.score(inputs, Path(prepared), Path(model_dir), plan["settings"], videos=())
    )
    out_path = Path(out)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_path.parent, prefix=f"{out_path.name}.staging") as tmp:
        task = partial(  # absolute paths: a Dask worker's directory may be another
            _score_staged,
            method=method,
            settings_path=str(Path(settings_path).absolute()),
            inputs_path=str(Path(inputs_path).absolute()),
            prepared=str(Path(prepared).absolute()),
            model_dir=str(Path(model_dir).absolute()),
            staging=str(Path(tmp).absolute()),
        )
        results = map_videos(task, keys, n_jobs, what=f"scores of {method}", engine=engine)
        with closing(results):  # a failure stops the workers at once
            _write(method, header, out, staged=results)


def _as_stream(method: str, scores: ScoreStream | ScoreSet) -> ScoreStream:
    stream = scores.stream() if isinstance(scores, ScoreSet) else scores
    if stream.model != method:
        raise ValueError(f"{method}.score() returned the scores of {stream.model!r}")
    return stream


def _write(
    method: str, stream: ScoreStream, out: str, staged: Iterator[tuple[str, str]] | None
) -> None:
    """The score file of `stream`'s model and attrs: its own videos, or (`staged`) those of
    the staging files the workers wrote, copied a block of map frames at a time."""
    with ScoreWriter(out, stream.model, stream.attrs) as writer:
        if staged is None:
            for split, name, video in stream.videos:
                writer.add(split, name, video)
        else:
            for key, path in staged:
                split, name = key.split("/", 1)
                with open_cache(path) as f:
                    writer.add(split, name, staged_video(f[key]))
                Path(path).unlink()
        if not writer.counts["test"]:
            raise ValueError(f"{method}.score() scored no test video")


def _score_staged(
    key: str,
    method: str,
    settings_path: str,
    inputs_path: str,
    prepared: str,
    model_dir: str,
    staging: str,
) -> str:
    """In a worker: the scores of video `key` into a staging score file; returns its path."""
    plan = read_stage_settings(settings_path, method, "score")
    inputs = read_inputs(inputs_path, method)
    scores = load_method(plan).score(
        inputs, Path(prepared), Path(model_dir), plan["settings"], videos=(key,)
    )
    stream = _as_stream(method, scores)
    if "torch" in sys.modules:  # one thread per worker, as OpenCV and BLAS (vad.parallel)
        sys.modules["torch"].set_num_threads(1)
    path = Path(staging) / f"{quote(key, safe='')}.h5"
    with ScoreWriter(path, stream.model, stream.attrs) as writer:
        for split, name, video in stream.videos:
            if f"{split}/{name}" != key:
                raise ValueError(f"{method}.score(videos=[{key!r}]) yielded video {split}/{name}")
            writer.add(split, name, video)
    if sum(writer.counts.values()) != 1:
        raise ValueError(f"{method}.score(videos=[{key!r}]) yielded no scores for it")
    return str(path)
