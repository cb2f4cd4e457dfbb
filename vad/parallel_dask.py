"""The `dask` engine of vad.parallel: per-video tasks on the workers of a Dask distributed
cluster, which may span several machines. Imported only when params.yaml chooses it.

With no address, a LocalCluster of `n_jobs` spawned worker processes (one thread each, no
per-worker memory cap, as the process pool) is started for the call and closed after it. With
an address, the tasks go to that running scheduler, whose workers all share the work (the
window of tasks in flight follows their number); it is left running.

Each worker process runs the caller's initializer (one OpenCV and BLAS thread, then e.g. the
flow estimator) before its first task of a call, from inside the task itself: workers that join
the cluster later are initialised the same way, and two calls sharing a cluster each see their
own initializer's state. Workers must run one thread each (`dask worker ... --nthreads 1`):
the per-process state an initializer builds (an OpenCV estimator, a detector) is not shared
between threads safely, so a worker with more threads is refused.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from uuid import uuid4

from vad.parallel import Submit, start_worker

CONNECT_TIMEOUT_S = 20.0  # how long to wait for the scheduler at `parallel.address`

_initialized: str | None = None  # token of the call whose initializer last ran in this process


@dataclass(frozen=True)
class OnWorker:
    """A call's task as a Dask worker runs it: its initializer first (once per call and
    process), then the task."""

    task: Callable[[str], object]
    initializer: Callable[..., object] | None
    initargs: tuple
    token: str

    def __call__(self, key: str) -> object:
        global _initialized
        _check_one_thread()
        if _initialized != self.token:
            start_worker(self.initializer, self.initargs)
            _initialized = self.token
        return self.task(key)


def _check_one_thread() -> None:
    from distributed import get_worker

    worker = get_worker()
    if worker.state.nthreads > 1:
        raise RuntimeError(
            f"Dask worker {worker.address} runs {worker.state.nthreads} threads; vad's tasks "
            "need one thread per worker process (start it with `dask worker SCHEDULER "
            "--nthreads 1`)"
        )


@contextmanager
def dask_executor(
    address: str | None,
    n_jobs: int,
    task: Callable[[str], object],
    initializer: Callable[..., object] | None,
    initargs: tuple,
    what: str,
) -> Iterator[tuple[Submit, int]]:
    """(submit, number of workers) on the cluster at `address` (None: a LocalCluster of
    `n_jobs` workers); on a failure or early exit the tasks in flight are cancelled, and what
    was started is closed."""
    import dask
    from distributed import Client, LocalCluster

    cluster = None
    if address is None:
        with dask.config.set({"distributed.worker.multiprocessing-method": "spawn"}):
            cluster = LocalCluster(
                n_workers=n_jobs,
                threads_per_worker=1,
                processes=True,
                memory_limit=0,
                dashboard_address=None,
                scheduler_kwargs={"dashboard_address": ":0"},  # its HTTP server: any free port
            )
        client = Client(cluster, set_as_default=False)
    else:
        try:
            client = Client(address, timeout=CONNECT_TIMEOUT_S, set_as_default=False)
        except (OSError, TimeoutError) as error:
            raise ConnectionError(
                f"{what}: no Dask scheduler answered at parallel.address {address} within "
                f"{CONNECT_TIMEOUT_S:g} s ({error}); start one there (`dask scheduler`) or set "
                "parallel.address: null for a local cluster"
            ) from error
    try:
        threads = client.nthreads()
        crowded = {worker: n for worker, n in threads.items() if n > 1}
        if crowded:
            raise RuntimeError(
                f"{what}: Dask workers at {address} run more than one thread ({crowded}); vad's "
                "tasks need one thread per worker process (`dask worker SCHEDULER --nthreads 1`)"
            )
        executor = client.get_executor(pure=False)
        token = uuid4().hex
        on_worker = OnWorker(task, initializer, initargs, token)

        def submit(key: str):
            return executor.submit(on_worker, key, key=f"{key} ({token[:8]})")

        try:
            yield submit, len(threads) if address is not None and threads else n_jobs
        except BaseException:  # a failure here or in the consumer: cancel the work in flight
            executor.shutdown(wait=False)
            raise
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
