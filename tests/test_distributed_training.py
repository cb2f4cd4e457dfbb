"""Training past one process (vad.launch, vad.distributed): the torchrun environment, the shards
of an uneven batch, the loss scaling that makes the ranks' averaged gradient the whole batch's,
and GMFC-VAE trained through the train stage's command by two gloo ranks (torchrun) like by one
process, resuming from a checkpoint."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import vad.methods.gmfc_vae.train as train_module
from vad.config import load_params
from vad.distributed import BACKEND_VARIABLE, Replica, choose_backend, shard_slice
from vad.launch import Launch, current_launch
from vad.methods.gmfc_vae.model import GMFCVAE
from vad.methods.gmfc_vae.patches import PatchSettings, read_patches, write_patches
from vad.methods.gmfc_vae.train import load_model
from vad.methods.plan import settings_files
from vad.methods.registry import get_method
from vad.methods.runner import run_train
from vad.methods.stage_files import dump

REPO = Path(__file__).resolve().parents[1]
PARAMS = load_params(REPO / "params.yaml")
METHOD = "gmfc_vae_rgb"
# 161 patches in batches of 40: the last batch has one patch, so one of two ranks gets none
N_PATCHES, BATCH_SIZE, LR = 161, 40, 1e-3


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread here as in the workers (the stage sets `threads`: 1), restored after."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_launch_is_read_from_the_torchrun_environment() -> None:
    assert current_launch({}) == Launch(rank=0, world_size=1, local_rank=0)
    launch = current_launch({"WORLD_SIZE": "4", "RANK": "3", "LOCAL_RANK": "1"})
    assert (launch.rank, launch.world_size, launch.local_rank) == (3, 4, 1)
    assert launch.distributed and not launch.is_main
    assert not current_launch({"WORLD_SIZE": "1", "RANK": "0", "LOCAL_RANK": "0"}).distributed
    with pytest.raises(RuntimeError, match="RANK=4 must be < WORLD_SIZE=4"):
        current_launch({"WORLD_SIZE": "4", "RANK": "4", "LOCAL_RANK": "0"})
    with pytest.raises(RuntimeError, match="LOCAL_RANK is not set"):
        current_launch({"WORLD_SIZE": "2", "RANK": "0"})
    with pytest.raises(RuntimeError, match="WORLD_SIZE='two' must be an integer >= 1"):
        current_launch({"WORLD_SIZE": "two", "RANK": "0", "LOCAL_RANK": "0"})


def test_backend_is_nccl_on_cuda_and_gloo_on_cpu_unless_overridden(monkeypatch) -> None:
    monkeypatch.delenv(BACKEND_VARIABLE, raising=False)
    assert choose_backend(torch.device("cpu")) == "gloo"
    assert choose_backend(torch.device("cuda", 1)) == "nccl"
    assert choose_backend(torch.device("cuda", 0), "gloo") == "gloo"
    monkeypatch.setenv(BACKEND_VARIABLE, "gloo")
    assert choose_backend(torch.device("cuda", 0)) == "gloo"
    with pytest.raises(ValueError, match="nccl backend needs a CUDA device"):
        choose_backend(torch.device("cpu"), "nccl")
    monkeypatch.setenv(BACKEND_VARIABLE, "mpi")
    with pytest.raises(ValueError, match=r"VAD_DIST_BACKEND\), got 'mpi'"):
        choose_backend(torch.device("cpu"))


@pytest.mark.parametrize("batch, world", [(5, 2), (1, 2), (7, 3), (2, 3), (16, 4), (40, 1)])
def test_shards_split_an_uneven_batch_in_order(batch: int, world: int) -> None:
    parts = [shard_slice(batch, rank, world) for rank in range(world)]
    sizes = [part.stop - part.start for part in parts]
    covered = np.concatenate([np.arange(batch)[part] for part in parts])
    assert np.array_equal(covered, np.arange(batch))  # in order, no gap, no overlap
    assert max(sizes) - min(sizes) <= 1 and sum(sizes) == batch
    with pytest.raises(ValueError, match="rank 2 is not in 0..1"):
        shard_slice(batch, 2, 2)


@pytest.mark.parametrize("batch, world", [(5, 2), (2, 3)])
def test_scaled_shard_losses_average_to_the_full_batch_gradient(batch: int, world: int) -> None:
    """What DDP computes (the mean over ranks of each rank's gradient of its scaled shard sum)
    is the gradient of the batch mean loss, with uneven and empty shards; the noise is the
    batch's, sliced."""
    torch.manual_seed(0)
    model = GMFCVAE(n_components=3, latent_dim=4).double()
    x = torch.rand(batch, 3, 28, 28, dtype=torch.float64)
    eps = model.draw_noise(batch, 2, torch.Generator().manual_seed(1))

    def gradient(loss: torch.Tensor) -> torch.Tensor:
        model.zero_grad(set_to_none=False)
        loss.backward()
        return torch.cat([p.grad.flatten() for p in model.parameters()])

    full = gradient(model.loss(x, eps=eps)[0])
    ranks = []
    for rank in range(world):
        replica = Replica(Launch(rank, world, 0), torch.device("cpu"))
        part = replica.shard(batch)
        losses = model.sample_losses(x[part], eps=eps[:, part])["loss"]
        ranks.append(gradient(losses.sum() * replica.loss_scale(batch)))
    torch.testing.assert_close(torch.stack(ranks).mean(0), full, rtol=1e-10, atol=1e-12)
    assert full.abs().max() > 0


def _patches(n: int) -> np.ndarray:
    """Bright discs of random place, size and colour on black: (n, 28, 28, 3) uint8."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:28, 0:28]
    centre = rng.uniform(6, 22, (2, n, 1, 1))
    radius = rng.uniform(3, 8, (n, 1, 1))
    disc = ((yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 < radius**2).astype(np.float64)
    return np.round(disc[..., None] * rng.uniform(60, 255, (n, 1, 1, 3))).astype(np.uint8)


def _write_settings(path: Path) -> dict:
    params = copy.deepcopy(PARAMS)
    params["gmfc_vae"].update(K=3, latent_dim=16, pretrain_epochs=2, epochs=2, lr=LR)
    params["gmfc_vae"].update(batch_size=BATCH_SIZE, device="cpu", threads=1)
    settings = settings_files(get_method(METHOD), params)["train"]
    path.write_text(dump(settings))
    return settings["settings"]["model"]


def _stage_arguments(root: Path, run: str) -> list[str]:
    return [
        *("--method", METHOD, "--settings", str(root / "train.json")),
        *("--prepared", str(root / "prepared.h5"), "--model", str(root / run / "model")),
        *("--workdir", str(root / run / "work"), "--history", str(root / run / "history.json")),
    ]


def _interrupted_after_one_epoch(root: Path, run: str, model_settings: dict, monkeypatch) -> None:
    """A one-process run stopped after pre-training epoch 1: its checkpoint in run/work."""
    calls = []

    def stop_at_the_second_epoch(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt("simulated interruption")
        return original(*args, **kwargs)

    original = train_module._run_epoch
    monkeypatch.setattr(train_module, "_run_epoch", stop_at_the_second_epoch)
    with pytest.raises(KeyboardInterrupt):
        train_module.train_gmfc_vae(
            read_patches(root / "prepared.h5"),
            train_module.GmfcTrainSettings(**model_settings),
            root / run / "work",
            device="cpu",
            progress=False,
        )
    monkeypatch.setattr(train_module, "_run_epoch", original)


def test_two_gloo_ranks_train_gmfc_vae_like_one_process(tmp_path: Path, monkeypatch) -> None:
    """One process trains 2 + 2 epochs through run_train; two torchrun ranks run the stage's
    command, resuming from a checkpoint written after pre-training epoch 1 (rank 0 reads it)."""
    patches = _patches(N_PATCHES)
    locations = np.zeros((N_PATCHES, 4), np.int32)
    write_patches(tmp_path / "prepared.h5", patches, ["train/v"], locations, "rgb", PatchSettings())
    model_settings = _write_settings(tmp_path / "train.json")

    run_train(*_stage_arguments(tmp_path, "single")[1::2])  # the stage's argument values
    _interrupted_after_one_epoch(tmp_path, "ddp", model_settings, monkeypatch)
    done = subprocess.run(
        [
            *(sys.executable, "-m", "torch.distributed.run", "--standalone"),
            *("--nproc_per_node=2", "-m", "stages.train", *_stage_arguments(tmp_path, "ddp")),
        ],
        cwd=REPO,
        env={
            **os.environ,
            "PYTHONPATH": str(REPO),
            "OMP_NUM_THREADS": "1",
            "VAD_TIMINGS_DIR": str(tmp_path / "timings"),
        },
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    single = json.loads((tmp_path / "single" / "history.json").read_text())
    ddp = json.loads((tmp_path / "ddp" / "history.json").read_text())
    phases = [(row["epoch"], row["phase"]) for row in ddp]
    assert phases == [(1, "pretrain"), (2, "pretrain"), (3, "vade"), (4, "vade")]
    assert [(row["epoch"], row["phase"]) for row in single] == phases
    for one, two in zip(single, ddp, strict=True):
        for term, value in one.items():
            if isinstance(value, float):
                assert two[term] == pytest.approx(value, rel=1e-5), (one, two)

    # rank 0 alone wrote the outputs, timed the stage and reported
    for run in ("single", "ddp"):
        assert sorted(p.name for p in (tmp_path / run / "model").iterdir()) == ["model.pt"]
        work = sorted(p.name for p in (tmp_path / run / "work").iterdir())
        assert work == ["checkpoint.pt", "code.json"]  # code.json: vad.methods.runner
    assert sorted(p.name for p in (tmp_path / "timings").iterdir()) == [f"train@{METHOD}.json"]
    assert done.stdout.count(f"{METHOD}: vade 2 epoch(s)") == 1

    # weights: equal up to rounding, which Adam may turn into a step of up to about lr for a
    # parameter whose gradient is ~0 (its sign then decides the step)
    one = load_model(tmp_path / "single" / "model" / "model.pt", "cpu").state_dict()
    two = load_model(tmp_path / "ddp" / "model" / "model.pt", "cpu").state_dict()
    for name in one:
        torch.testing.assert_close(two[name], one[name], rtol=1e-3, atol=2 * LR, msg=name)
