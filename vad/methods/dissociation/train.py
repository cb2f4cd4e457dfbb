"""Dissociation training (Chang et al. 2022, Sec. 3.6 and 4.2), built on `vad.training`:

1. `autoencoders`: the spatial and the motion auto-encoder (the `streams` in use) without the
   cluster term, loss eq. 3 + eq. 6; Adam at the preset's learning rate;
2. K-means initialises the centres on the normalised concatenated representations of the
   pre-trained encoders (eval mode) at the locations of `kmeans_samples` training clips' maps
   (clustering.initial_centres), then
3. `clustering`: the alternating optimisation, per batch: the centres frozen, one Adam step of
   the auto-encoders on eq. 12 (L_a + L_m + lambda_r L_cluster; the rate drops to
   `lr_after_drop` from epoch `lr_drop_epoch`); then the auto-encoders frozen, one Adam step of
   the centres on eq. 11 (`centre_learning_rate`) with the batch's representations as the
   auto-encoders gave them before their step. With `clusters` = 0 there are no centres and
   no step 2-3 (Table 2's rows without deep K-means).

Each epoch draws `clips_per_epoch` of the training clips (all: None) in an order that depends
on (seed, phase, epoch) only, so a run resumed from its end-of-epoch checkpoint ends with the
same weights as an uninterrupted one (bit-identical on CPU). The checkpoint resumes only the
same run: same preset (but epochs), switches, seed and training frames.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from vad.cache import open_cache
from vad.methods.clip_batches import clamped_clip, gather
from vad.methods.dissociation.clips import training_starts
from vad.methods.dissociation.clustering import (
    DeepKMeans,
    cluster_loss,
    initial_centres,
    locations,
)
from vad.methods.dissociation.losses import motion_loss, spatial_loss
from vad.methods.dissociation.model import DissociationModel, build_model, save_model
from vad.methods.dissociation.presets import (
    DissociationPreset,
    preset_to_json,
    resolved_preset,
)
from vad.training import (
    Checkpoint,
    epoch_order,
    guard_finite,
    history_rows,
    resolve_device,
    run_epoch,
)

log = logging.getLogger(__name__)

PHASES = ("autoencoders", "clustering")
CHECKPOINT_NAME = "checkpoint.pt"
CHECKPOINT_FORMAT = "vad.train.dissociation/1"
KMEANS_PHASE = 2  # `epoch_order` phase index of the clips K-means is fitted on


class TrainingClips:
    """Every training clip of the prepared file: (video, start) pairs and batches of them."""

    def __init__(self, f, preset: DissociationPreset):
        names = sorted(f["train"])
        self.frames = [f["train"][name]["frames"] for name in names]
        self.length = preset.clip_length
        self.pairs = [
            (v, start)
            for v, frames in enumerate(self.frames)
            for start in training_starts(len(frames), preset.clip_length, preset.train_stride)
        ]
        self.channels = int(self.frames[0].shape[-1])

    def batch(self, index: np.ndarray) -> torch.Tensor:
        """(B, C, T, H, W) clips of the pairs at `index`, in order of video."""
        parts = []
        for v in sorted({self.pairs[i][0] for i in index}):
            count = len(self.frames[v])
            clips = [clamped_clip(s, self.length, count) for i in index
                     for u, s in [self.pairs[i]] if u == v]  # fmt: skip
            parts.append(gather(self.frames[v], clips))
        return torch.cat(parts)


def loss_terms(model: DissociationModel, phase: str) -> tuple[str, ...]:
    terms = ["loss"]
    if "spatial" in model.streams:
        terms.append("spatial")
    if "motion" in model.streams:
        terms += ["motion_l2", "motion_gradient"]
    if phase == "clustering":
        terms.append("cluster")
    return tuple(terms)


def autoencoder_losses(
    model: DissociationModel, clip: torch.Tensor, with_cluster: bool
) -> dict[str, torch.Tensor]:
    """Eq. 3 + eq. 6 (+ lambda_r eq. 11 with the centres frozen: eq. 12) on a batch; with the
    cluster term also the batch's `representation` (for the centres' step that follows)."""
    output = model.network(clip)
    fif, difference, _ = model.network.targets(clip)
    terms: dict[str, torch.Tensor] = {}
    total = clip.new_zeros(())
    if "spatial" in model.streams:
        terms["spatial"] = spatial_loss(fif, output.fif_reconstruction)
        total = total + terms["spatial"]
    if "motion" in model.streams:
        motion = motion_loss(difference, output.difference, model.preset.gradient_weight)
        terms["motion_l2"], terms["motion_gradient"] = motion.l2, motion.gradient
        total = total + motion.total
    if with_cluster:
        assert model.kmeans is not None
        representation = model.representation(output.appearance, output.motion)
        terms["cluster"] = cluster_loss(model.kmeans(representation))
        terms["representation"] = representation
        total = total + model.preset.lambda_cluster * terms["cluster"]
    terms["loss"] = total
    return terms


def representations(
    model: DissociationModel, clips: TrainingClips, preset: DissociationPreset, seed: int,
    device: torch.device,
) -> np.ndarray:  # fmt: skip
    """Normalised representation vectors of training clips (eval mode) for K-means: every
    location of clips drawn in a seeded order until `kmeans_samples` vectors, then a seeded
    subsample of that many."""
    model.eval()
    order = epoch_order(seed, KMEANS_PHASE, 0, len(clips.pairs))
    vectors, count = [], 0
    with torch.no_grad():
        for start in range(0, len(order), preset.batch_size):
            index = np.sort(order[start : start + preset.batch_size])
            output = model.network(clips.batch(index).to(device))
            rows = locations(model.representation(output.appearance, output.motion)).cpu()
            vectors.append(rows.numpy())
            count += len(rows)
            if count >= preset.kmeans_samples:
                break
    stacked = np.concatenate(vectors)
    if len(stacked) > preset.kmeans_samples:
        rng = np.random.default_rng(seed)
        stacked = stacked[np.sort(rng.choice(len(stacked), preset.kmeans_samples, False))]
    return stacked


def run_identity(
    preset: DissociationPreset, streams: tuple[str, ...], attention: bool, seed: int, data: str
) -> dict:
    """What a checkpoint must share: the preset but its epochs, the switches, seed and data."""
    settings = preset_to_json(preset)
    del settings["epochs"]
    identity = {"preset": settings, "streams": list(streams), "attention": attention,
                "seed": seed, "data": data}  # fmt: skip
    return json.loads(json.dumps(identity))


def _reject_longer(preset: DissociationPreset) -> Callable[[dict], str | None]:
    def reason(checkpoint: dict) -> str | None:
        index = PHASES.index(checkpoint["phase"])
        if index == 1 and checkpoint["epochs"][0] != preset.epochs[0]:
            return f"its auto-encoders were pre-trained {checkpoint['epochs'][0]} epochs"
        if checkpoint["epoch"] > preset.epochs[index]:
            return f"it has {checkpoint['epoch']} {checkpoint['phase']} epochs, more than requested"
        return None

    return reason


def autoencoder_rate(preset: DissociationPreset, phase: str, epoch: int) -> float:
    """Sec. 4.2: 1e-4, and 1e-5 from alternating epoch 100 (the preset's values)."""
    if phase == "clustering" and epoch >= preset.lr_drop_epoch:
        return preset.lr_after_drop
    return preset.learning_rate


class Trainer:
    """Both phases with end-of-epoch checkpoints in `workdir`."""

    def __init__(self, model: DissociationModel, clips: TrainingClips, seed: int,
                 store: Checkpoint, device: torch.device):  # fmt: skip
        self.model, self.clips, self.seed = model, clips, seed
        self.store, self.device = store, device
        self.preset = model.preset
        self.autoencoder_optimizer = torch.optim.Adam(
            model.network.parameters(), lr=self.preset.learning_rate
        )
        self.centre_optimizer: torch.optim.Optimizer | None = None
        self.history: dict = {phase: {} for phase in PHASES}
        self.history["epoch_seconds"] = {phase: [] for phase in PHASES}

    def start_clustering(self, centres: np.ndarray) -> None:
        self.model.kmeans = DeepKMeans(centres, self.preset.alpha).to(self.device)
        self.centre_optimizer = torch.optim.Adam(
            self.model.kmeans.parameters(), lr=self.preset.centre_learning_rate
        )

    def step(self, phase: str, epoch: tuple[int, int]) -> Callable[[np.ndarray, int, int], dict]:
        """`run_epoch`'s step: one batch of the phase's updates."""
        model, clustering = self.model, phase == "clustering"

        def train_batch(batch: np.ndarray, number: int, total: int) -> dict[str, float]:
            clip = self.clips.batch(batch).to(self.device)
            model.network.train()
            if clustering:  # the centres frozen while the auto-encoders train (eq. 12)
                model.kmeans.requires_grad_(False)
            losses = autoencoder_losses(model, clip, clustering)
            self.autoencoder_optimizer.zero_grad(set_to_none=True)
            losses["loss"].backward()
            self.autoencoder_optimizer.step()
            values = {n: float(v.detach()) for n, v in losses.items() if n != "representation"}
            if clustering:  # the auto-encoders frozen while the centres train (eq. 11)
                model.kmeans.requires_grad_(True)
                loss = cluster_loss(model.kmeans(losses.pop("representation").detach()))
                self.centre_optimizer.zero_grad(set_to_none=True)
                loss.backward()
                self.centre_optimizer.step()
            guard_finite(values, "dissociation", phase, *epoch, number, total)
            return values

        return train_batch

    def state(self, phase: str, epoch: int) -> dict:
        return {
            "phase": phase,
            "epoch": epoch,
            "epochs": list(self.preset.epochs),
            "modules": {n: m.state_dict() for n, m in self.model.modules().items()},
            "autoencoder_optimizer": self.autoencoder_optimizer.state_dict(),
            "centre_optimizer": None if self.centre_optimizer is None
            else self.centre_optimizer.state_dict(),
            "history": self.history,
        }  # fmt: skip

    def resume(self, checkpoint: dict) -> tuple[int, int]:
        """Load a checkpoint; the (phase index, epoch) to go on from."""
        modules = checkpoint["modules"]
        if "kmeans" in modules:
            self.start_clustering(modules["kmeans"]["centres"].numpy())
            self.centre_optimizer.load_state_dict(checkpoint["centre_optimizer"])
        self.model.network.load_state_dict(modules["network"])
        self.autoencoder_optimizer.load_state_dict(checkpoint["autoencoder_optimizer"])
        self.history = checkpoint["history"]
        return PHASES.index(checkpoint["phase"]), checkpoint["epoch"]

    def run(self) -> None:
        checkpoint = self.store.load(reject=_reject_longer(self.preset))
        first, done = 0, 0
        if checkpoint is not None:
            log.info("resuming from %s (%s epoch %d)", self.store.path, checkpoint["phase"],
                     checkpoint["epoch"])  # fmt: skip
            first, done = self.resume(checkpoint)
        phases = PHASES if self.preset.clusters > 0 else PHASES[:1]
        per_epoch = len(self.clips.pairs) if self.preset.clips_per_epoch is None else min(
            self.preset.clips_per_epoch, len(self.clips.pairs)
        )  # fmt: skip
        for index in range(first, len(phases)):
            phase = phases[index]
            epochs = self.preset.epochs[index]
            if phase == "clustering" and self.model.kmeans is None:
                vectors = representations(self.model, self.clips, self.preset, self.seed,
                                           self.device)  # fmt: skip
                self.start_clustering(initial_centres(vectors, self.preset.clusters, self.seed))
            terms = loss_terms(self.model, phase)
            for name in terms:
                self.history[phase].setdefault(name, [])
            for epoch in range(done if index == first else 0, epochs):
                for group in self.autoencoder_optimizer.param_groups:
                    group["lr"] = autoencoder_rate(self.preset, phase, epoch)
                order = epoch_order(self.seed, index, epoch, len(self.clips.pairs))[:per_epoch]
                began = time.perf_counter()
                means = run_epoch(self.step(phase, (epoch + 1, epochs)), order,
                                  self.preset.batch_size, terms,
                                  f"{phase} {epoch + 1}/{epochs}")  # fmt: skip
                for name in terms:
                    self.history[phase][name].append(means[name])
                self.history["epoch_seconds"][phase].append(time.perf_counter() - began)
                self.store.save(self.state(phase, epoch + 1))
        self.model.eval()


def train_model(
    prepared: Path,
    preset: DissociationPreset,
    streams: tuple[str, ...],
    attention: bool,
    seed: int,
    workdir: Path,
    device: torch.device,
) -> tuple[DissociationModel, dict]:
    """Both phases with checkpoints in `workdir`; the model (eval mode) and the history."""
    with open_cache(prepared) as f:
        clips = TrainingClips(f, preset)
        identity = run_identity(preset, streams, attention, seed, str(f.attrs["train_digest"]))
        model = build_model(preset, clips.channels, streams, attention, seed).to(device)
        store = Checkpoint(Path(workdir) / CHECKPOINT_NAME, CHECKPOINT_FORMAT, identity, log)
        trainer = Trainer(model, clips, seed, store, device)
        trainer.run()
    return model, trainer.history


def train_dissociation(
    prepared: Path, settings: dict, model_dir: Path, workdir: Path
) -> list[dict]:
    """The train stage: both phases with checkpoints, then the model file."""
    from vad.methods.dissociation.method import MODEL_FILE

    model, history = train_model(
        prepared,
        resolved_preset(settings),
        tuple(settings["streams"]),
        settings["attention"],
        settings["seed"],
        workdir,
        resolve_device(settings["device"]),
    )
    model_dir.mkdir(parents=True, exist_ok=True)
    save_model(model, model_dir / MODEL_FILE, settings["seed"])
    for phase in PHASES:
        seconds = history["epoch_seconds"][phase]
        print(f"dissociation: {phase} {len(seconds)} epoch(s) in {sum(seconds):.1f} s")
    return history_rows(history, PHASES)
