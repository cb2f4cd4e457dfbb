"""Run a function over many videos in worker processes, yielding results in the videos' order.

Two engines (params.yaml `parallel`, an `Engine`): `processes`, a pool of spawned worker
processes on this machine (the default), and `dask`, the workers of a Dask distributed cluster
(vad.parallel_dask: a LocalCluster started for the call, or a running scheduler's address),
which can span several machines.

Workers are spawned (never forked: setting OpenCV's thread count in a forked child after the
parent used OpenCV threads can deadlock) and limit OpenCV and the BLAS libraries to one thread
each before any work, so `n_jobs` workers use `n_jobs` cores. With n_jobs <= 1 (or one video)
everything runs in this process, unless a Dask cluster's address is given.

Results come back in the order of `keys`, whichever worker finishes first, so a stage writes its
HDF5 groups in the same order every time and its file has the same content (and, in all but two
observed runs, the same bytes) for any engine and n_jobs (the task's result must not depend on
which process computes it). At most
2 × (number of workers) videos are in flight, so finished results waiting for an earlier,
slower video are few. A failing task re-raises its own error with a note naming the video; a
worker that dies (killed for memory, say) raises an error naming the video instead of hanging;
any failure stops the work still in flight at once.
"""

from __future__ import annotations

import multiprocessing
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from itertools import islice
from typing import TypeVar

Result = TypeVar("Result")

PROCESSES = "processes"
DASK = "dask"
BACKENDS = (PROCESSES, DASK)
TASKS_PER_WORKER = 2  # videos submitted ahead per worker: the bound on results held here


@dataclass(frozen=True)
class Engine:
    """Where per-video work runs: `backend` processes (a local pool) or dask; for dask,
    `address` is a running scheduler's (tcp://host:8786), or None for a LocalCluster started
    for each call."""

    backend: str = PROCESSES
    address: str | None = None

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(
                f"unknown parallel backend {self.backend!r}: only {' and '.join(BACKENDS)} exist"
            )
        if self.address is not None and self.backend != DASK:
            raise ValueError(f"a scheduler address ({self.address}) needs the dask backend")

    def runs_here(self, n_jobs: int, videos: int) -> bool:
        """Whether `videos` videos with `n_jobs` workers run in this process: one worker or
        one video, and no Dask cluster given by address (whose workers are meant to do it)."""
        if videos == 0:
            return True
        return (n_jobs <= 1 or videos <= 1) and self.address is None


def start_worker(initializer: Callable[..., object] | None, initargs: tuple) -> None:
    """Prepare a worker process: one OpenCV and one BLAS thread, then the caller's
    initializer."""
    import cv2
    from threadpoolctl import threadpool_limits

    cv2.setNumThreads(1)
    threadpool_limits(1)
    if initializer is not None:
        initializer(*initargs)


def map_videos(
    task: Callable[[str], Result],
    keys: list[str],
    n_jobs: int,
    initializer: Callable[..., object] | None = None,
    initargs: tuple = (),
    what: str = "work",
    engine: Engine | None = None,
) -> Iterator[tuple[str, Result]]:
    """Yield (key, task(key)) for every key, in the order of `keys`.

    `task`, `initializer` and `initargs` must be picklable (module-level functions, partials).
    In-process runs call `initializer` here first, so a task can rely on it either way. The
    task's file paths must be valid where the workers run (absolute paths on a filesystem
    every Dask worker sees).
    """
    engine = engine or Engine()
    if not keys:
        return
    if engine.runs_here(n_jobs, len(keys)):
        if initializer is not None:
            initializer(*initargs)
        for key in keys:
            try:
                result = task(key)
            except Exception as error:
                error.add_note(f"{what}: raised while computing video '{key}'")
                raise
            yield key, result
        return
    if engine.backend == DASK:
        from vad.parallel_dask import dask_executor  # dask: imported only when chosen

        executor = dask_executor(
            engine.address, min(n_jobs, len(keys)), task, initializer, initargs, what
        )
    else:
        executor = _process_pool(min(n_jobs, len(keys)), task, initializer, initargs)
    with executor as (submit, workers):
        yield from _in_key_order(submit, keys, workers, what)


Submit = Callable[[str], Future]  # starts the task of one video


@contextmanager
def _process_pool(
    n_jobs: int,
    task: Callable[[str], object],
    initializer: Callable[..., object] | None,
    initargs: tuple,
) -> Iterator[tuple[Submit, int]]:
    """(submit, number of workers) of a pool of `n_jobs` spawned processes, stopped on exit."""
    pool = ProcessPoolExecutor(
        n_jobs,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=start_worker,
        initargs=(initializer, initargs),
    )
    try:
        yield partial(pool.submit, task), n_jobs
    except BaseException:  # a failure here or in the consumer: stop the work in flight now
        _terminate_workers(pool)
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _in_key_order(
    submit: Submit, keys: list[str], workers: int, what: str
) -> Iterator[tuple[str, Result]]:
    """(key, result) in the order of `keys`, with at most TASKS_PER_WORKER × `workers` tasks
    submitted and not yet yielded. A failed video raises as soon as it is seen, after the
    finished videos before it are yielded (so a resumable stage keeps them)."""
    upcoming = iter(keys)
    pending: deque[tuple[str, Future]] = deque()

    def top_up() -> None:
        for key in islice(upcoming, max(TASKS_PER_WORKER * workers - len(pending), 0)):
            pending.append((key, submit(key)))

    top_up()
    while pending:
        while pending and pending[0][1].done():
            key, future = pending.popleft()
            result = _result(future, key, what)
            top_up()  # before yielding: workers keep busy while the caller writes
            yield key, result
            del result  # not kept while waiting for the next video
        failed = [(key, future) for key, future in pending if _failed(future)]
        if failed:  # a later video failed: stop now, not once the videos before it are done
            _result(failed[0][1], failed[0][0], what)
        running = [future for _, future in pending if not future.done()]
        if running:
            wait(running, return_when=FIRST_COMPLETED)


def _failed(future: Future) -> bool:
    return future.done() and (future.cancelled() or future.exception() is not None)


def _result(future: Future, key: str, what: str) -> object:
    """The future's result; its error with a note naming the video, or one saying the worker
    computing it died."""
    try:
        return future.result()
    except BrokenProcessPool as error:
        raise RuntimeError(
            f"{what}: a worker process died abruptly (out of memory?) while video "
            f"'{key}' was queued or running"
        ) from error
    except Exception as error:
        if type(error).__name__ == "KilledWorker":  # distributed's; dask is not imported here
            raise RuntimeError(
                f"{what}: Dask workers died (out of memory?) each time they ran video '{key}'"
            ) from error
        error.add_note(f"{what}: raised while computing video '{key}'")
        raise


def _terminate_workers(pool: ProcessPoolExecutor) -> None:
    if hasattr(pool, "terminate_workers"):  # Python >= 3.14
        pool.terminate_workers()
        return
    for process in list((pool._processes or {}).values()):  # no public way before 3.14
        process.terminate()
