"""Scoring past one process (`parallel.score_jobs`, vad.methods.runner): every method that
scores each video alone gives the same score file from a pool of worker processes and from a
Dask cluster as from one process; score maps written block by block (`MapBlocks`) make the
same file as whole arrays; a method without `score_keys` still scores in one process."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import yaml

from vad.config import ConfigError
from vad.datasets import open_dataset
from vad.frame_cache import write_frame_cache
from vad.methods.plan import write_inputs, write_settings
from vad.methods.registry import get_method
from vad.methods.runner import run_prepare, run_train
from vad.methods.score_runner import run_score
from vad.motion.dynflow_runner import run_dynamic_flow_stage
from vad.motion.flow_runner import run_flow_stage
from vad.objects.runner import run_objects_stage
from vad.parallel import Engine
from vad.params.dynamic_flow import dynamic_flow_settings
from vad.params.objects import objects_settings
from vad.params.parallel import parallel_settings, score_jobs
from vad.scores import MapBlocks, ScoreWriter, VideoScores, read_scores

REPO = Path(__file__).resolve().parents[1]
SCENE = {
    "seed": 4,
    "width": 112,
    "height": 84,
    "train_videos": 2,
    "test_videos": 3,
    "frames_per_video": 16,
}
SIZE = [112, 84]  # a 4x3 grid of 28x28 patches
METHODS = ("baseline", "velocity", "gmfc_vae_rgb", "gmfc_vae_dynflow")


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """The caches of a tiny synthetic scene and every method of METHODS prepared and trained
    through the stage runners (GMFC-VAE: 1 + 1 epochs on 100 patches)."""
    root = tmp_path_factory.mktemp("run")
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["methods"] = list(METHODS)
    params["data"]["synthetic"] = dict(SCENE)
    params["flow"].update(size=SIZE, n_jobs=1, dis={"preset": "ultrafast"})
    params["dynamic_flow"].update(window=6, n_jobs=1)
    params["baseline"].update(size=SIZE, patch=28)
    params["patches"].update(size=SIZE, n_train=100)
    params["gmfc_vae"].update(
        K=2, pretrain_epochs=1, epochs=1, device="cpu", threads=1, score_batch_size=200
    )
    interim = root / "interim"
    caches = {name: interim / f"{name}.h5" for name in ("frames", "flow", "dynflow", "objects")}
    dataset = open_dataset("synthetic", None, options=SCENE)
    write_frame_cache(dataset, caches["frames"], interim / "gt.h5", "gray", progress=False)
    run_flow_stage(caches["frames"], caches["flow"], "dis", {"preset": "ultrafast"}, SIZE, 1, False)
    settings, _ = dynamic_flow_settings(params)
    run_dynamic_flow_stage(caches["flow"], caches["dynflow"], settings, n_jobs=1, progress=False)
    objects = objects_settings(params)["settings"]
    run_objects_stage(caches["frames"], caches["objects"], objects, 1, False)
    caches["stc"] = caches["objects"]  # a stand-in: only hf2vad, tested on its own, reads it
    write_settings(params, root / "settings")
    write_inputs(root / "settings" / "caches.json", caches, root / "inputs")
    threads = torch.get_num_threads()
    for name in METHODS:
        files = stage_files(root, name)
        run_prepare(name, files["settings"] / "prepare.json", files["inputs"], files["prepared"])
        run_train(
            name,
            files["settings"] / "train.json",
            files["prepared"],
            files["model"],
            root / "work" / name,
            root / "history" / f"{name}.json",
        )
    torch.set_num_threads(threads)
    return root


def stage_files(root: Path, name: str) -> dict[str, Path]:
    return {
        "settings": root / "settings" / name,
        "inputs": root / "inputs" / f"{name}.json",
        "prepared": root / "prepared" / f"{name}.h5",
        "model": root / "models" / name,
    }


def score(root: Path, name: str, out: Path, n_jobs: int = 1, engine: Engine | None = None):
    files = stage_files(root, name)
    threads = torch.get_num_threads()
    run_score(
        name,
        files["settings"] / "score.json",
        files["inputs"],
        files["prepared"],
        files["model"],
        out,
        n_jobs=n_jobs,
        engine=engine,
    )
    torch.set_num_threads(threads)
    return out


def contents(path: Path) -> dict[str, object]:
    """Every dataset (values, dtype, chunk shape) and every attr of an HDF5 file, by path."""
    with h5py.File(path, "r") as f:
        found: dict[str, object] = {"/": dict(f.attrs)}

        def visit(name: str, item: object) -> None:
            if isinstance(item, h5py.Dataset):
                found[name] = (item[()], item.dtype, item.chunks, dict(item.attrs))
            else:
                found[name] = dict(item.attrs)

        f.visititems(visit)
    return found


def assert_same_file(first: Path, second: Path) -> None:
    one, other = contents(first), contents(second)
    assert list(one) == list(other)
    for key, value in one.items():
        if isinstance(value, tuple):
            np.testing.assert_array_equal(value[0], other[key][0], err_msg=key)
            assert value[1:] == other[key][1:], key
        else:
            assert value == other[key], key


@pytest.mark.parametrize("name", METHODS)
def test_a_process_pool_scores_exactly_as_one_process(run, name):
    one = score(run, name, run / "one" / f"{name}.h5")
    pool = score(run, name, run / "pool" / f"{name}.h5", n_jobs=2)
    assert_same_file(one, pool)
    scores = read_scores(pool)
    assert set(scores.test) == {"test_00", "test_01", "test_02"} and len(scores.train) == 2
    assert not list((run / "pool").glob("*staging*")), "the staging folder was left behind"


def test_a_dask_cluster_scores_exactly_as_one_process(run):
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
        scheduler_kwargs={"dashboard_address": ":0"},
    ) as cluster:  # fmt: skip
        engine = Engine("dask", cluster.scheduler_address)
        for name in ("velocity", "gmfc_vae_dynflow"):
            one = score(run, name, run / "one_dask" / f"{name}.h5")
            assert_same_file(one, score(run, name, run / "dask" / f"{name}.h5", 2, engine))


def test_a_failing_video_is_named_and_leaves_no_score_file(run, tmp_path):
    files = stage_files(run, "baseline")
    prepared = tmp_path / "prepared.h5"
    prepared.write_bytes(files["prepared"].read_bytes())
    with h5py.File(prepared, "r+") as f:  # energies of another grid: the model cannot score them
        energy = f["test/test_01/energy"]
        wrong = np.ones((len(energy), 2, 2), energy.dtype)
        del f["test/test_01/energy"]
        f["test/test_01"].create_dataset("energy", data=wrong)
    out = tmp_path / "scores" / "baseline.h5"
    with pytest.raises(Exception) as error:
        run_score(
            "baseline",
            files["settings"] / "score.json",
            files["inputs"],
            prepared,
            files["model"],
            out,
            n_jobs=2,
        )
    assert "test/test_01" in "".join(getattr(error.value, "__notes__", []))
    assert not out.exists() and not list(out.parent.glob("*staging*"))


def test_map_blocks_write_the_same_file_as_whole_maps(tmp_path):
    rng = np.random.default_rng(0)
    maps = rng.normal(size=(150, 3, 4)).astype(np.float32)
    extras = {"explanation": np.array(["fast", "", "big"] * 50, dtype=object)}
    whole = VideoScores(maps.max(axis=(1, 2)), maps, extras=extras)
    blocks = VideoScores(
        maps.max(axis=(1, 2)),
        MapBlocks(maps.shape, lambda: (maps[i : i + 64] for i in range(0, 150, 64))),
        extras=extras,
    )
    for path, video in ((tmp_path / "whole.h5", whole), (tmp_path / "blocks.h5", blocks)):
        with ScoreWriter(path, "m", {"a": 1}) as writer:
            writer.add("test", "v", video)
    assert_same_file(tmp_path / "whole.h5", tmp_path / "blocks.h5")
    np.testing.assert_array_equal(read_scores(tmp_path / "blocks.h5").test["v"].score_maps, maps)


def test_map_blocks_that_do_not_cover_the_maps_are_refused(tmp_path):
    maps = np.zeros((10, 2, 2), np.float32)
    short = VideoScores(np.zeros(10), MapBlocks((10, 2, 2), lambda: iter([maps[:6]])))
    wrong = VideoScores(np.zeros(10), MapBlocks((10, 2, 2), lambda: iter([np.zeros((4, 2, 3))])))
    for video, message in ((short, "covered 6 of 10"), (wrong, "does not fit")):
        with pytest.raises(ValueError, match=message), ScoreWriter(tmp_path / "x.h5", "m") as w:
            w.add("test", "v", video)
        assert not (tmp_path / "x.h5").exists()


def test_score_jobs_is_checked():
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    assert score_jobs(params) == 1
    del params["parallel"]["score_jobs"]
    assert score_jobs(params) == 1  # a params file written before it existed
    params["parallel"]["score_jobs"] = 0
    with pytest.raises(ConfigError, match="score_jobs"):
        parallel_settings(params)


def test_a_method_without_score_keys_scores_in_one_process(run, monkeypatch):
    method = get_method("baseline")
    monkeypatch.setattr(type(method), "score_keys", lambda self, *args: None)
    calls = []
    original = type(method).score

    def recorded(self, *args, **kwargs):
        calls.append(kwargs.get("videos"))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(type(method), "score", recorded)
    out = score(run, "baseline", run / "no_keys" / "baseline.h5", n_jobs=2)
    assert calls == [None]
    assert_same_file(score(run, "baseline", run / "no_keys_one" / "baseline.h5"), out)
