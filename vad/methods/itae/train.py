"""ITAE + Glow training (Cho, Kim, Lee, "Log-likelihood loss function" and "Implementations"),
built on `vad.training`, in the paper's two steps:

1. `autoencoder`: the ITAE reconstructs training clips; loss eq. 3 + eq. 4 (L2 + gradient),
   plus (1 - MS-SSIM) for UCSD (losses.py); Adam with cosine annealing over the step's batches;
2. `glow`: the encoders frozen (eval mode, no gradient), the two Glows maximise the likelihood
   of the pooled features of their path (eqs. 5-6, features.py): loss NLL_a + NLL_m per clip,
   in nats; Adam with cosine annealing.

Each epoch draws `clips_per_epoch` of the training clips (all: None) in an order that depends
on (seed, step, epoch) only, so a run resumed from its end-of-epoch checkpoint ends with the same
weights as an uninterrupted one (bit-identical on CPU). The checkpoint resumes only the same run:
same preset (but epochs), seed and training frames.

Then every training clip is scored (clip_scores.py, clips `test_stride` apart as at test time):
per training video the frames' R, NLL_a, NLL_m (kept with the model: the training frames'
scores) and eq. 8/9's statistics: lambda_1, lambda_2 = the ranges of the training clips' NLLs;
the mean and std of the training frames' R and L.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from vad.cache import checked_dataset, open_cache, write_h5
from vad.methods.itae.clip_scores import SCORE_BATCH, likelihood_score, score_clips
from vad.methods.itae.clips import VideoClips
from vad.methods.itae.features import appearance_input, motion_input
from vad.methods.itae.losses import reconstruction_loss
from vad.methods.itae.model import ITAEModel, build_model, save_model
from vad.methods.itae.presets import ITAEPreset, preset_to_json, resolved_preset
from vad.training import (
    Checkpoint,
    epoch_order,
    guard_finite,
    history_rows,
    resolve_device,
    run_epoch,
)

log = logging.getLogger(__name__)

STEPS = ("autoencoder", "glow")
CHECKPOINT_NAME = "checkpoint.pt"
CHECKPOINT_FORMAT = "vad.train.itae/1"
GLOW_TERMS = ("loss", "nll_appearance", "nll_motion")


def loss_terms(preset: ITAEPreset, step: str) -> tuple[str, ...]:
    """The terms a step records (MS-SSIM, the similarity, only where it is in the loss)."""
    if step == "glow":
        return GLOW_TERMS
    return ("loss", "l2", "gradient", *(("ms_ssim",) if preset.ms_ssim_weight else ()))


def step_settings(preset: ITAEPreset, step: str):
    return preset.autoencoder if step == "autoencoder" else preset.glow


def run_identity(preset: ITAEPreset, seed: int, data_digest: str) -> dict:
    """What a checkpoint must share: the preset but its epoch counts, the seed, the data."""
    settings = preset_to_json(preset)
    for step in STEPS:
        del settings[step]["epochs"]
    return json.loads(json.dumps({"preset": settings, "seed": seed, "data": data_digest}))


def _reject_longer(preset: ITAEPreset) -> Callable[[dict], str | None]:
    requested = [step_settings(preset, step).epochs for step in STEPS]

    def reason(checkpoint: dict) -> str | None:
        index = STEPS.index(checkpoint["step"])
        if checkpoint["epochs"][:index] != requested[:index]:
            return f"its finished steps ran {checkpoint['epochs'][:index]} epochs"
        if checkpoint["epoch"] > requested[index]:
            return f"it has {checkpoint['epoch']} {checkpoint['step']} epochs, more than requested"
        return None

    return reason


class TrainingClips:
    """Every training clip of the prepared file: (video, start) pairs and batches of them."""

    def __init__(self, f, preset: ITAEPreset):
        self.videos = [
            VideoClips(f["train"][name]["frames"], preset.clip_length, preset.train_stride)
            for name in sorted(f["train"])
        ]
        self.pairs = [(v, s) for v, clips in enumerate(self.videos) for s in clips.starts]
        self.channels = int(f["train"][sorted(f["train"])[0]]["frames"].shape[-1])

    def batch(self, index: np.ndarray) -> torch.Tensor:
        parts = []
        for v in sorted({self.pairs[i][0] for i in index}):
            starts = [self.pairs[i][1] for i in index if self.pairs[i][0] == v]
            parts.append(self.videos[v].batch(starts))
        return torch.cat(parts)


def make_optimizer(
    model: ITAEModel, preset: ITAEPreset, step: str, batches: int
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.CosineAnnealingLR]:
    """Adam over the step's networks, cosine annealing over the step's batches."""
    settings = step_settings(preset, step)
    modules = [model.network] if step == "autoencoder" else [
        model.glow_appearance, model.glow_motion
    ]  # fmt: skip
    parameters = [p for module in modules for p in module.parameters()]
    optimizer = torch.optim.Adam(parameters, lr=settings.learning_rate)
    total = max(batches * settings.epochs, 1)
    return optimizer, torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total)


def step_losses(
    model: ITAEModel, step: str, clip: torch.Tensor
) -> dict[str, torch.Tensor]:
    """The step's loss terms on one batch of clips; "loss" is the one to minimise."""
    preset = model.preset
    if step == "autoencoder":
        output = model.network(clip)
        loss = reconstruction_loss(clip, output.reconstruction, preset.ms_ssim_weight)
        terms = {"loss": loss.total, "l2": loss.l2, "gradient": loss.gradient}
        if loss.ms_ssim is not None:
            terms["ms_ssim"] = loss.ms_ssim
        return terms
    with torch.no_grad():
        output = model.network(clip)
    nll_a = model.glow_appearance.nll(appearance_input(output.appearance, clip, preset.tau))
    nll_m = model.glow_motion.nll(motion_input(output.motion))
    return {
        "loss": nll_a.mean() + nll_m.mean(),
        "nll_appearance": nll_a.mean(),
        "nll_motion": nll_m.mean(),
    }


def batch_step(
    model: ITAEModel,
    clips: TrainingClips,
    step: str,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    epoch: tuple[int, int],
    device: torch.device,
) -> Callable[[np.ndarray, int, int], dict[str, float]]:
    """`run_epoch`'s step: one optimiser and scheduler step on a batch of clips."""

    def train_batch(batch: np.ndarray, number: int, total: int) -> dict[str, float]:
        clip = clips.batch(batch).to(device)
        losses = step_losses(model, step, clip)
        optimizer.zero_grad(set_to_none=True)
        losses["loss"].backward()
        optimizer.step()
        scheduler.step()
        values = {name: float(value.detach()) for name, value in losses.items()}
        guard_finite(values, "ITAE", step, *epoch, number, total)
        return values

    return train_batch


def set_modes(model: ITAEModel, step: str) -> None:
    model.network.train(step == "autoencoder")
    model.glow_appearance.train(step == "glow")
    model.glow_motion.train(step == "glow")


def train_model(
    prepared: Path, preset: ITAEPreset, seed: int, workdir: Path, device: torch.device
) -> tuple[ITAEModel, dict]:
    """Both steps with checkpoints in `workdir`; the model (eval mode) and the history."""
    with open_cache(prepared) as f:
        clips = TrainingClips(f, preset)
        identity = run_identity(preset, seed, str(f.attrs["train_digest"]))
        store = Checkpoint(Path(workdir) / CHECKPOINT_NAME, CHECKPOINT_FORMAT, identity, log)
        model = build_model(preset, clips.channels, seed).to(device)
        history = {step: {term: [] for term in loss_terms(preset, step)} for step in STEPS}
        history["epoch_seconds"] = {step: [] for step in STEPS}
        first, done, state = 0, 0, None
        checkpoint = store.load(reject=_reject_longer(preset))
        if checkpoint is not None:
            log.info("resuming from %s (%s epoch %d)", store.path, checkpoint["step"],
                     checkpoint["epoch"])  # fmt: skip
            for name, module in model.modules().items():
                module.load_state_dict(checkpoint["modules"][name])
            history = checkpoint["history"]
            first, done, state = STEPS.index(checkpoint["step"]), checkpoint["epoch"], checkpoint
        epochs = [step_settings(preset, step).epochs for step in STEPS]
        per_epoch = len(clips.pairs) if preset.clips_per_epoch is None else min(
            preset.clips_per_epoch, len(clips.pairs)
        )  # fmt: skip
        for index in range(first, len(STEPS)):
            step = STEPS[index]
            settings = step_settings(preset, step)
            batches = -(-per_epoch // settings.batch_size)
            optimizer, scheduler = make_optimizer(model, preset, step, batches)
            start_epoch = 0
            if state is not None and index == first:
                optimizer.load_state_dict(state["optimizer"])
                scheduler.load_state_dict(state["scheduler"])
                start_epoch = done
            for epoch in range(start_epoch, settings.epochs):
                set_modes(model, step)
                order = epoch_order(seed, index, epoch, len(clips.pairs))[:per_epoch]
                began = time.perf_counter()
                train_batch = batch_step(
                    model, clips, step, optimizer, scheduler, (epoch + 1, settings.epochs), device
                )
                terms = loss_terms(preset, step)
                means = run_epoch(train_batch, order, settings.batch_size, terms,
                                  f"{step} {epoch + 1}/{settings.epochs}")  # fmt: skip
                for term in terms:
                    history[step][term].append(means[term])
                history["epoch_seconds"][step].append(time.perf_counter() - began)
                store.save(
                    {
                        "step": step,
                        "epoch": epoch + 1,
                        "epochs": epochs,
                        "modules": {n: m.state_dict() for n, m in model.modules().items()},
                        "optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict(),
                        "history": history,
                    }
                )
            state = None
    return model.eval(), history


def training_scores(
    model: ITAEModel, prepared: Path, device: torch.device
) -> tuple[dict[str, dict[str, np.ndarray]], dict]:
    """Every training video's per-frame R, NLL_a, NLL_m (clips `test_stride` apart) and eq. 8/9's
    statistics from them."""
    preset = model.preset
    videos: dict[str, dict[str, np.ndarray]] = {}
    clip_nll_a, clip_nll_m = [], []
    with open_cache(prepared) as f:
        for name in sorted(f["train"]):
            clips = VideoClips(f["train"][name]["frames"], preset.clip_length, preset.test_stride)
            result = score_clips(model, clips, SCORE_BATCH, device)
            videos[name] = {
                "reconstruction": result.reconstruction,
                "nll_appearance": result.nll_appearance,
                "nll_motion": result.nll_motion,
            }
            clip_nll_a.append(result.nll_appearance)
            clip_nll_m.append(result.nll_motion)
    nll_a, nll_m = np.concatenate(clip_nll_a), np.concatenate(clip_nll_m)
    statistics = {
        "range_appearance": float(nll_a.max() - nll_a.min()),
        "range_motion": float(nll_m.max() - nll_m.min()),
    }
    r = np.concatenate([v["reconstruction"] for v in videos.values()])
    likelihood = likelihood_score(nll_a, nll_m, statistics)
    statistics.update(
        mean_r=float(r.mean()), std_r=float(r.std()),
        mean_l=float(likelihood.mean()), std_l=float(likelihood.std()),
    )  # fmt: skip
    return videos, statistics


def write_training_scores(path: Path, videos: dict[str, dict[str, np.ndarray]]) -> None:
    with write_h5(path) as f:
        for name, values in videos.items():
            group = f.create_group(f"train/{name}")
            for key, array in values.items():
                checked_dataset(group, key, np.asarray(array, np.float32))


def train_itae(prepared: Path, settings: dict, model_dir: Path, workdir: Path) -> list[dict]:
    """The train stage: both steps, the training scores and statistics, the model file."""
    from vad.methods.itae.method import MODEL_FILE, TRAIN_SCORES_FILE

    preset = resolved_preset(settings)
    device = resolve_device(settings["device"])
    model, history = train_model(prepared, preset, settings["seed"], workdir, device)
    videos, statistics = training_scores(model, prepared, device)
    model.statistics = statistics
    model_dir.mkdir(parents=True, exist_ok=True)
    save_model(model, model_dir / MODEL_FILE, settings["seed"])
    write_training_scores(model_dir / TRAIN_SCORES_FILE, videos)
    for step in STEPS:
        seconds = history["epoch_seconds"][step]
        print(f"itae: {step} {len(seconds)} epoch(s) in {sum(seconds):.1f} s")
    return history_rows(history, STEPS)


