"""The flow stage: optical flow for every video of frames.h5 into flow.h5.

Classical methods run in parallel across videos (`n_jobs` spawned worker processes, one OpenCV
thread each, or the workers of a Dask cluster: vad.parallel's `engine`); every worker opens
frames.h5 read-only itself and streams a video's float16 flows into a staging file of its own
(next to the output: on a Dask cluster, a filesystem every worker sees), which this process,
the only writer of the output, then copies into it, video by video in the order of frames.h5
whichever worker finishes first. FlowNet2 runs in this process, batched on its device. A video
is read, its flows computed and written BLOCK_PAIRS frame pairs at a time, so memory does not
grow with the length of the videos.
The output is resumable per video (`vad.cache.ResumableCache`): after an interruption, a video
already complete is kept if its frames still have the content digest it was computed from, and
`out_path` itself appears only once every video is done.

Layout of flow.h5: group `<split>/<name>` per video with dataset `flow`, (T-1)×h×w×2 float16
(u, v in pixels of the resized frames, from frame i to frame i+1), one chunk per frame pair,
group attrs `name`, `split`, `digest` (of the flow as stored) and `input_digest` (the frames
video's `digest`); file attrs `method`, `options`, `size` (JSON) and `settings`.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Iterator
from contextlib import closing
from functools import partial
from pathlib import Path
from urllib.parse import quote

import h5py
import numpy as np

from vad.cache import (
    ResumableCache,
    RowWriter,
    copy_rows,
    input_video_digests,
    iter_rows,
    iter_videos,
    open_cache,
    read_dataset,
    video_key,
    write_h5,
)
from vad.motion.flow import (
    METHODS,
    check_finite,
    check_size,
    make_flow_estimator,
    pair_flows,
    prepare_frames,
    prepare_rgb_frames,
    resolve_options,
)
from vad.parallel import Engine, map_videos
from vad.progress import progress as progress_bar

FLOWNET2 = "flownet2"
ALL_METHODS = METHODS + (FLOWNET2,)
FLOWNET2_DEFAULTS = {"checkpoint": None, "device": "auto", "batch_size": 4}
BLOCK_PAIRS = 32  # frame pairs read, computed and written at once (one chunk each)

Size = tuple[int, int] | None
Advance = Callable[[int], object]  # progress callback: n more frame pairs done
Estimator = Callable[[np.ndarray, np.ndarray], np.ndarray]


# ---------------------------------------------------------------------------------------------
# Settings


def resolve_stage_options(method: str, options: dict | None) -> dict:
    """All options of `method` (classical: OpenCV defaults filled in), validated."""
    if method not in ALL_METHODS:
        raise ValueError(
            f"unknown optical flow method {method!r}; valid methods: {', '.join(ALL_METHODS)}"
        )
    if method != FLOWNET2:
        return resolve_options(method, options)
    options = dict(options or {})
    unknown = sorted(set(options) - set(FLOWNET2_DEFAULTS))
    if unknown:
        raise ValueError(
            f"unknown flownet2 option(s) {', '.join(map(repr, unknown))}; "
            f"valid options: {', '.join(FLOWNET2_DEFAULTS)}"
        )
    resolved = {**FLOWNET2_DEFAULTS, **options}
    if not resolved["checkpoint"]:
        raise ValueError("flownet2 option 'checkpoint' is required (path to the weights file)")
    return resolved


# ---------------------------------------------------------------------------------------------
# Reading frames


def _videos(f: h5py.File) -> Iterator[tuple[str, str, h5py.Group]]:
    for split, name, group in iter_videos(f):
        if "frames" not in group:
            raise ValueError(f"{f.filename}: video '{split}/{name}' has no 'frames' dataset")
        yield split, name, group


def read_frames(frames_path: str | Path, key: str) -> np.ndarray:
    """The T×H×W×C uint8 frames of video `key` (`<split>/<name>`) in frames.h5 (whole: for
    benchmarks on a few frames; the stage reads blocks)."""
    with open_cache(frames_path) as f:
        return read_dataset(_frames(f, frames_path, key))


def _frames(f: h5py.File, frames_path: str | Path, key: str) -> h5py.Dataset:
    if key not in f or "frames" not in f[key]:
        raise ValueError(f"{frames_path}: no dataset '{key}/frames'")
    return f[key]["frames"]


def as_stored(flows: np.ndarray) -> np.ndarray:
    """Flows as flow.h5 stores them (float16), which is what the dynamic flow is computed from."""
    return flows.astype(np.float16)


def _flow_writer(group: h5py.Group, frames: h5py.Dataset, pair_shape: tuple[int, ...]):
    """The `flow` dataset of a video of len(frames) frames, one chunk per frame pair."""
    count = max(len(frames) - 1, 0)
    return RowWriter(group, "flow", (count, *pair_shape, 2), np.float16, frames_per_chunk=1)


def compute_video_flow(
    frames_path: str | Path,
    key: str,
    group: h5py.Group,
    estimator: Estimator,
    size: Size,
    on_pair: Callable[[], object] | None = None,
) -> str:
    """Stream the flows of one video into dataset `flow` of `group`, BLOCK_PAIRS pairs at a
    time: its frames made gray at `size`, (T-1)×h×w×2 float16 flows (NaN or inf: a ValueError
    naming the video and the pair). Returns their content digest."""
    where = f"{frames_path}: video '{key}'"
    reset = getattr(estimator, "reset", None)
    if reset is not None:
        reset()  # a new video: TV-L1 forgets the previous pair's flow
    with open_cache(frames_path) as f:
        frames = _frames(f, frames_path, key)
        writer = None
        for first, block in iter_rows(frames, BLOCK_PAIRS, overlap=1):
            gray = prepare_frames(block, size, where=where)
            writer = writer or _flow_writer(group, frames, gray.shape[1:])
            flows = as_stored(pair_flows(gray, estimator, on_pair))
            check_finite(flows, where, first)
            writer.write(flows)
    assert writer is not None
    return writer.hexdigest()


def compute_video_flownet2(
    frames_path: str | Path,
    key: str,
    group: h5py.Group,
    estimator: Estimator,
    size: Size,
    batch_size: int,
    advance: Advance,
) -> str:
    """`compute_video_flow` with FlowNet2: RGB pairs in batches of `batch_size`, the same
    batches as if the video were read whole (blocks hold whole batches)."""
    where = f"{frames_path}: video '{key}'"
    block_pairs = batch_size * max(1, BLOCK_PAIRS // batch_size)
    with open_cache(frames_path) as f:
        frames = _frames(f, frames_path, key)
        writer = None
        for first, block in iter_rows(frames, block_pairs, overlap=1):
            rgb = prepare_rgb_frames(block, size, where=where)
            writer = writer or _flow_writer(group, frames, rgb.shape[1:3])
            pairs = max(len(rgb) - 1, 0)
            flows = np.empty((pairs,) + rgb.shape[1:3] + (2,), np.float16)
            for start in range(0, pairs, batch_size):
                stop = min(start + batch_size, pairs)
                flows[start:stop] = estimator(rgb[start:stop], rgb[start + 1 : stop + 1])
                advance(stop - start)
            check_finite(flows, where, first)
            writer.write(flows)
    assert writer is not None
    return writer.hexdigest()


# ---------------------------------------------------------------------------------------------
# Where flows are computed: in this process, in a worker pool, FlowNet2. Each yields
# (key, write), `write(group)` putting the video's flows into `group` and returning the digest.

Write = Callable[[h5py.Group], str]
_worker_estimator: Estimator | None = None


def _init_worker(method: str, options: dict) -> None:
    global _worker_estimator
    _worker_estimator = make_flow_estimator(method, options)


def _worker_task(key: str, frames_path: str, size: Size, staging: str) -> str:
    """In a worker: the video's flows into a staging file of its own; returns its path."""
    assert _worker_estimator is not None
    path = Path(staging) / f"{quote(key, safe='')}.h5"
    with write_h5(path) as f:
        compute_video_flow(frames_path, key, f, _worker_estimator, size)
    return str(path)


def _copy_staged(path: Path, group: h5py.Group) -> str:
    """Copy a staging file's flows into `group` a block at a time, then delete the file."""
    with open_cache(path) as f:
        digest = copy_rows(f["flow"], group, "flow", 1, BLOCK_PAIRS)
    path.unlink()
    return digest


def _in_process_flows(
    frames_path: Path, keys: list[str], method: str, options: dict, size: Size, advance: Advance
) -> Iterator[tuple[str, Write]]:
    estimator = make_flow_estimator(method, options)
    for key in keys:
        yield key, partial(
            _write_in_process, frames_path, key, estimator=estimator, size=size, advance=advance
        )


def _write_in_process(
    frames_path: Path, key: str, group: h5py.Group, estimator: Estimator, size: Size,
    advance: Advance,
) -> str:  # fmt: skip
    return compute_video_flow(frames_path, key, group, estimator, size, lambda: advance(1))


def _pool_flows(
    frames_path: Path,
    keys: list[str],
    method: str,
    options: dict,
    size: Size,
    n_jobs: int,
    staging: Path,
    engine: Engine,
) -> Iterator[tuple[str, Write]]:
    """Videos in the order of `keys` from `n_jobs` workers of `engine` (see vad.parallel); the
    workers get absolute paths (a Dask worker's directory may be another)."""
    task = partial(
        _worker_task,
        frames_path=str(frames_path.absolute()),
        size=size,
        staging=str(staging.absolute()),
    )
    results = map_videos(
        task,
        keys,
        n_jobs,
        initializer=_init_worker,
        initargs=(method, options),
        what=f"flow of {frames_path}",
        engine=engine,
    )
    with closing(results):  # a failure stops the worker pool at once
        for key, path in results:
            yield key, partial(_copy_staged, Path(path))


def _flownet2_flows(
    frames_path: Path, keys: list[str], options: dict, size: Size, advance: Advance
) -> Iterator[tuple[str, Write]]:
    from vad.motion.flownet2 import FlowNet2Estimator  # torch: imported only when used

    estimator = FlowNet2Estimator(
        options["checkpoint"], device=options["device"], batch_size=options["batch_size"]
    )
    for key in keys:
        yield key, partial(
            compute_video_flownet2,
            frames_path,
            key,
            estimator=estimator,
            size=size,
            batch_size=int(options["batch_size"]),
            advance=advance,
        )


def _produce_flows(
    frames_path: Path,
    keys: list[str],
    method: str,
    options: dict,
    size: Size,
    n_jobs: int,
    advance: Advance,
    staging: Path,
    engine: Engine,
) -> Iterator[tuple[str, Write]]:
    if method == FLOWNET2:
        return _flownet2_flows(frames_path, keys, options, size, advance)
    if engine.runs_here(n_jobs, len(keys)):
        return _in_process_flows(frames_path, keys, method, options, size, advance)
    return _pool_flows(
        frames_path, keys, method, options, size, min(n_jobs, len(keys)), staging, engine
    )


# ---------------------------------------------------------------------------------------------
# The stage


def run_flow_stage(
    frames_path: str | Path,
    out_path: str | Path,
    method: str,
    options: dict | None,
    size: Size,
    n_jobs: int,
    progress: bool = True,
    engine: Engine | None = None,
) -> Path:
    """Compute the flow of every video of `frames_path` into `out_path` (resumable, atomic).

    `size` is (width, height) or None for the native size. With `n_jobs` = 1 (or one video
    left, and no Dask cluster address in `engine`) the work runs in this process with OpenCV's
    own threading; the results, and the file's bytes, are the same for any n_jobs and engine.
    FlowNet2 always runs here (on its device).
    """
    engine = engine or Engine()
    frames_path, out_path = Path(frames_path), Path(out_path)
    if not frames_path.is_file():
        raise FileNotFoundError(f"frame cache not found: {frames_path}")
    if int(n_jobs) != n_jobs or n_jobs < 1:
        raise ValueError(f"n_jobs must be a positive integer, got {n_jobs!r}")
    size = check_size(size, "flow")
    options = resolve_stage_options(method, options)

    with open_cache(frames_path) as f:
        videos = {video_key(split, name): len(group["frames"]) for split, name, group in _videos(f)}
        input_digests = input_video_digests(f, "frames")
    settings = {"method": method, "options": options, "size": size}

    with ResumableCache(out_path, settings) as cache:
        assert cache.file is not None
        cache.file.attrs["method"] = method
        cache.file.attrs["options"] = json.dumps(options, sort_keys=True)
        cache.file.attrs["size"] = json.dumps(size)
        cache.retain(videos)
        keys = [key for key in videos if not cache.is_done(key, input_digests[key])]
        total_pairs = sum(max(videos[key] - 1, 0) for key in keys)
        bar = progress_bar(
            total=total_pairs, unit="pair", desc=f"flow {method}", disable=not progress
        )
        with (
            tempfile.TemporaryDirectory(dir=out_path.parent, prefix=f"{out_path.name}.staging")
            as staging,
            bar,
        ):
            flows = _produce_flows(
                frames_path, keys, method, options, size, n_jobs, bar.update, Path(staging), engine
            )
            with closing(flows):  # closing: a failure stops the worker pool at once
                finished_pairs = 0
                for done, (key, write) in enumerate(flows, start=1):
                    split, name = key.split("/", 1)
                    with cache.writing(key) as group:
                        digest = write(group)
                        group.attrs["name"] = name
                        group.attrs["split"] = split
                    cache.finish(key, digest=digest, input_digest=input_digests[key])
                    finished_pairs += max(videos[key] - 1, 0)
                    bar.update(finished_pairs - bar.n)  # pool workers report whole videos only
                    bar.set_postfix_str(f"{done}/{len(keys)} videos")
    return out_path
