"""HF2-VAD training (Liu et al. ICCV 2021, Sec. 4.2) on the prepared training cubes, built on
`vad.training`.

Phases, in the paper's order ("We train ML-MemAE-SC at first, then train CVAE model with the
reconstructed flows, and finally fine-tune the whole framework"), each with its own Adam
(betas, eps of the preset) and StepLR(decay_every, decay_factor) stepped per epoch:

1. `memae`: ML-MemAE-SC alone on single flows, each cube's last flow (the released
   ml_memAE_sc_train.py reads `last_flow=True`), loss eq. 3 (lambda_recon L2 + lambda_ent
   entropy);
2. `cvae`: the CVAE predicting x_{t+1} from x_{1:t} and the t flows reconstructed by the frozen
   ML-MemAE-SC (eval mode, no gradient), loss eq. 8 (KL + L2, gradient loss);
3. `finetune`: both networks in training mode, every loss (eqs. 3 + 8), the CVAE's gradients
   flowing into ML-MemAE-SC through the reconstructed flows (finetune.py).

Reproducibility: the networks are initialised from `seed`; an epoch's batches (chunk-random,
vad.methods.hf2vad.batches) and its latent noise and dropout masks are functions of
(seed, phase, epoch) only, so a run resumed from its end-of-epoch checkpoint ends with the same
weights as an uninterrupted one (bit-identical on CPU). The checkpoint resumes only the same
run: same preset (but epochs), seed and training cubes.

After training, every training cube's errors S_r, S_p (vad.methods.hf2vad.errors) give eq. 9's
statistics; they are kept with the model, by video, for the training frames' scores.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import h5py
import numpy as np
import torch

from vad.cache import checked_dataset, open_cache, read_dataset, write_h5
from vad.methods.hf2vad.batches import TrainingCubes
from vad.methods.hf2vad.errors import ErrorStatistics, video_errors
from vad.methods.hf2vad.losses import cvae_loss, memae_loss
from vad.methods.hf2vad.model import HybridNetwork, build_network, cube_tensors, stacked_channels
from vad.methods.hf2vad.prepared import training_videos
from vad.methods.hf2vad.presets import TRAINING_STAGES, HF2VADPreset, OptimizerSettings
from vad.training import Checkpoint, epoch_generator, guard_finite, run_epoch

log = logging.getLogger(__name__)

PHASES = TRAINING_STAGES  # memae, cvae, finetune
CHECKPOINT_NAME = "checkpoint.pt"
CHECKPOINT_FORMAT = "vad.train.hf2vad/1"
LOSS_TERMS = {
    "memae": ("loss", "reconstruction", "entropy"),
    "cvae": ("loss", "kl", "frame", "gradient"),
    "finetune": ("loss", "reconstruction", "entropy", "kl", "frame", "gradient"),
}
FIELDS = {"memae": ("flows",), "cvae": ("frames", "flows"), "finetune": ("frames", "flows")}


class Epoch(NamedTuple):
    phase: str
    epoch: int  # from 0
    n_epochs: int  # of the phase
    seed: int


@dataclass
class TrainedModel:
    network: HybridNetwork  # eval mode
    history: dict  # per phase, per loss term, the epoch means; "epoch_seconds" per phase
    errors: dict[str, dict]  # training video -> flow_error, frame_error, frame, num_frames
    statistics: ErrorStatistics  # of every training cube's errors (eq. 9)


def phase_settings(preset: HF2VADPreset, phase: str) -> OptimizerSettings:
    return {
        "memae": preset.memae_training,
        "cvae": preset.cvae_training,
        "finetune": preset.finetune_training,
    }[phase]


def run_identity(preset: HF2VADPreset, seed: int, data_digest: str) -> dict:
    """What a checkpoint must share to be resumed: the preset but its epoch counts, the seed
    and the training cubes (as JSON values, as a checkpoint stores them)."""
    settings = preset.to_json()
    for phase in PHASES:
        del settings[f"{phase}_training"]["epochs"]
    return json.loads(json.dumps({"preset": settings, "seed": seed, "data": data_digest}))


def make_optimizer(
    network: HybridNetwork, preset: HF2VADPreset, phase: str
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.StepLR]:
    """Adam over the phase's network(s) and its StepLR (paper Sec. 4.2; presets.py)."""
    settings = phase_settings(preset, phase)
    parameters = {
        "memae": network.memae.parameters,
        "cvae": network.cvae.parameters,
        "finetune": network.parameters,
    }[phase]()
    optimizer = torch.optim.Adam(
        parameters, lr=settings.learning_rate, betas=settings.betas, eps=settings.eps
    )
    scheduler = torch.optim.lr_scheduler.StepLR(
        optimizer, step_size=settings.decay_every, gamma=settings.decay_factor
    )
    return optimizer, scheduler


def set_modes(network: HybridNetwork, phase: str) -> None:
    """ML-MemAE-SC trains in phases memae and finetune and is frozen (eval) in phase cvae."""
    network.memae.train(phase != "cvae")
    network.cvae.train(phase != "memae")


def phase_losses(
    network: HybridNetwork,
    preset: HF2VADPreset,
    phase: str,
    batch: dict[str, np.ndarray],
    generator: torch.Generator,
    device: torch.device,
) -> dict[str, torch.Tensor]:
    """The phase's loss terms on one batch of cubes; "loss" is the one to minimise."""
    weights = preset.losses
    if phase == "memae":
        flows = stacked_channels(batch["flows"][:, -1:], device)  # the last flow of each cube
        memae = memae_loss(network.memae(flows), flows, weights.reconstruction, weights.entropy)
        return {"loss": memae.total, **_terms(memae, ("reconstruction", "entropy"))}
    frames, flows = cube_tensors(batch["frames"], batch["flows"], device)
    if phase == "cvae":
        with torch.no_grad():
            reconstruction = network.memae.reconstruct_cube(flows)
        out = network.predict(frames, reconstruction, "train", generator)
        cvae = cvae_loss(out.frame, out.target, weights.cvae, weights.gradient)
        return {"loss": cvae.total, **_terms(cvae, ("kl", "frame", "gradient"))}
    out = network(frames, flows, "train", generator)
    memae = memae_loss(out.flows, flows, weights.reconstruction, weights.entropy)
    cvae = cvae_loss(out.frame, out.target, weights.cvae, weights.gradient)
    return {
        "loss": memae.total + cvae.total,
        **_terms(memae, ("reconstruction", "entropy")),
        **_terms(cvae, ("kl", "frame", "gradient")),
    }


def _terms(losses: tuple, names: tuple[str, ...]) -> dict[str, torch.Tensor]:
    return {name: getattr(losses, name) for name in names}


def _reject_longer(preset: HF2VADPreset) -> Callable[[dict], str | None]:
    """A checkpoint cannot be continued by a run with other epochs in a finished phase, or
    fewer in its current one."""
    requested = [phase_settings(preset, phase).epochs for phase in PHASES]

    def reason(checkpoint: dict) -> str | None:
        index = PHASES.index(checkpoint["phase"])
        if checkpoint["epochs"][:index] != requested[:index]:
            return f"its finished phases ran {checkpoint['epochs'][:index]} epochs"
        if checkpoint["epoch"] > requested[index]:
            return f"it has {checkpoint['epoch']} {checkpoint['phase']} epochs, more than requested"
        return None

    return reason


def train_network(
    prepared: h5py.File,
    preset: HF2VADPreset,
    seed: int,
    workdir: str | Path,
    device: torch.device,
    progress: bool = True,
) -> TrainedModel:
    """Train both networks on the training cubes of an open prepared file (`preset` fitted to
    its cubes), checkpointing into `workdir/checkpoint.pt` after every epoch and resuming from
    it; then every training cube's errors and their statistics."""
    videos = training_videos(prepared)
    identity = run_identity(preset, seed, str(prepared.attrs["train_digest"]))
    store = Checkpoint(Path(workdir) / CHECKPOINT_NAME, CHECKPOINT_FORMAT, identity, log)
    network = build_network(preset, seed).to(device)
    history = {phase: {term: [] for term in LOSS_TERMS[phase]} for phase in PHASES}
    history["epoch_seconds"] = {phase: [] for phase in PHASES}
    first, done, state = 0, 0, None
    checkpoint = store.load(reject=_reject_longer(preset))
    if checkpoint is not None:
        where = f"{checkpoint['phase']} epoch {checkpoint['epoch']}"
        log.info("resuming from %s (%s)", store.path, where)
        network.load_state_dict(checkpoint["model"])
        history = checkpoint["history"]
        first, done, state = PHASES.index(checkpoint["phase"]), checkpoint["epoch"], checkpoint
    epochs = [phase_settings(preset, phase).epochs for phase in PHASES]

    for index in range(first, len(PHASES)):
        phase = PHASES[index]
        optimizer, scheduler = make_optimizer(network, preset, phase)
        if index == first and state is not None:
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
        start = done if index == first else 0
        cubes = TrainingCubes([group for _, group in videos], FIELDS[phase])
        for epoch in range(start, epochs[index]):
            which = Epoch(phase, epoch, epochs[index], seed)
            _run_epoch(network, preset, which, cubes, optimizer, device, history, progress)
            scheduler.step()
            store.save(
                {
                    "phase": phase,
                    "epoch": epoch + 1,
                    "epochs": epochs,
                    "model": network.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "history": history,
                }
            )
    errors = training_errors(network.eval(), videos, device)
    statistics = ErrorStatistics.of(
        np.concatenate([video["flow_error"] for video in errors.values()]),
        np.concatenate([video["frame_error"] for video in errors.values()]),
    )
    return TrainedModel(network, history, errors, statistics)


def training_errors(
    network: HybridNetwork, videos: list[tuple[str, h5py.Group]], device: torch.device
) -> dict[str, dict]:
    """Every training cube's S_r, S_p and frame, and each video's frame count, by video."""
    errors = {}
    for name, group in videos:
        flow_error, frame_error = video_errors(network, group, device)
        errors[name] = {
            "flow_error": flow_error,
            "frame_error": frame_error,
            "frame": read_dataset(group["frame"]),
            "num_frames": int(group.attrs["num_frames"]),
        }
    return errors


def _run_epoch(
    network: HybridNetwork,
    preset: HF2VADPreset,
    which: Epoch,
    cubes: TrainingCubes,
    optimizer: torch.optim.Optimizer,
    device: torch.device,
    history: dict,
    progress: bool,
) -> None:
    """One pass over the training cubes in chunk-random batches; appends the epoch means."""
    phase, epoch, n_epochs, seed = which
    phase_index = PHASES.index(phase)
    generator = epoch_generator(seed, phase_index, epoch, device)
    names = LOSS_TERMS[phase]
    parameters = [p for group in optimizer.param_groups for p in group["params"]]
    set_modes(network, phase)

    def step(index: np.ndarray, batch: int, n_batches: int) -> dict[str, float]:
        losses = phase_losses(network, preset, phase, cubes.take(index), generator, device)
        optimizer.zero_grad(set_to_none=True)
        losses["loss"].backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(parameters, math.inf)
        means = torch.stack([losses[name].detach() for name in names]).tolist()
        values = dict(zip(names, means, strict=True))
        checked = {**values, "grad_norm": float(grad_norm)}
        guard_finite(checked, "HF2-VAD", phase, epoch + 1, n_epochs, batch, n_batches)
        optimizer.step()
        return values

    start = time.perf_counter()
    order = cubes.epoch_order(seed, phase_index, epoch)
    batch_size = phase_settings(preset, phase).batch_size
    means = run_epoch(step, order, batch_size, names, f"{phase} {epoch + 1}/{n_epochs}", progress)
    for name in names:
        history[phase][name].append(means[name])
    history["epoch_seconds"][phase].append(time.perf_counter() - start)


def write_training_errors(path: Path, errors: dict[str, dict]) -> None:
    """Every training cube's S_r, S_p and frame, by video (`train/<name>`), atomically."""
    with write_h5(path) as f:
        for name, video in errors.items():
            group = f.create_group(f"train/{name}")
            for key in ("flow_error", "frame_error", "frame"):
                checked_dataset(group, key, video[key])
            group.attrs["num_frames"] = video["num_frames"]


def read_training_errors(path: Path, name: str) -> dict:
    """One training video's errors as `write_training_errors` stored them."""
    with open_cache(path) as f:
        group = f[f"train/{name}"]
        video: dict = {key: read_dataset(group[key]) for key in group}
        video["num_frames"] = int(group.attrs["num_frames"])
    return video
