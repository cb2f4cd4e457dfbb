"""Run a function over many videos in worker processes, yielding results as they finish.

Workers are spawned (never forked: setting OpenCV's thread count in a forked child after the
parent used OpenCV threads can deadlock) and limit OpenCV and the BLAS libraries to one thread
each before any work, so `n_jobs` workers use `n_jobs` cores. With n_jobs <= 1 everything runs
in this process. The task's result must not depend on which process computes it, so any n_jobs
gives identical outputs. A worker that dies (killed for memory, say) raises an error naming the
video instead of hanging, and any failure stops the work still in flight at once.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import TypeVar

Result = TypeVar("Result")


def _start_worker(initializer: Callable[..., object] | None, initargs: tuple) -> None:
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
) -> Iterator[tuple[str, Result]]:
    """Yield (key, task(key)) for every key in completion order.

    `task`, `initializer` and `initargs` must be picklable (module-level functions, partials).
    In-process runs call `initializer` here first, so a task can rely on it either way.
    """
    if n_jobs <= 1 or len(keys) <= 1:
        if initializer is not None:
            initializer(*initargs)
        for key in keys:
            yield key, task(key)
        return
    pool = ProcessPoolExecutor(
        min(n_jobs, len(keys)),
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_start_worker,
        initargs=(initializer, initargs),
    )
    try:
        running = {pool.submit(task, key): key for key in keys}
        while running:
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:  # dropped once yielded: finished results are not kept
                key = running.pop(future)
                try:
                    result = future.result()
                except BrokenProcessPool as error:
                    raise RuntimeError(
                        f"{what}: a worker process died abruptly (out of memory?) while video "
                        f"'{key}' was queued or running"
                    ) from error
                yield key, result
    except BaseException:  # a failure here or in the consumer: stop the work in flight now
        _terminate_workers(pool)
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _terminate_workers(pool: ProcessPoolExecutor) -> None:
    if hasattr(pool, "terminate_workers"):  # Python >= 3.14
        pool.terminate_workers()
        return
    for process in list((pool._processes or {}).values()):  # no public way before 3.14
        process.terminate()
