"""GMFC-VAE training (paper Sec. IV-C) on one stream's patches, built on `vad.training`.

Phases: (1) auto-encoder pre-training of the same network on mu~ (`pretrain_epochs`);
(2) GMM initialisation of the prior from the pre-trained latents (scikit-learn, diagonal);
(3) joint VaDE training of encoder, decoder and prior on eq. 14 (`epochs`).

Reproducibility: the model is initialised from `seed`; the batch order and the
reparameterisation noise of an epoch are functions of (seed, phase, epoch) only, so an
interrupted run resumed from its end-of-epoch checkpoint ends with the same weights as an
uninterrupted one (bit-identical on CPU). Patches stay uint8 in memory and are scaled to [0, 1]
one batch at a time.

Distributed: under `torchrun --nproc_per_node=N` the N ranks train one model, each on its shard
of every (global) batch, with DDP (`vad.distributed`: sharding, loss scaling, noise slicing);
the losses and weights equal a one-process run up to float rounding, and rank 0 alone writes.
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture

from vad.distributed import MethodsAsForward, Replica, broadcast_object, replica_session
from vad.methods.gmfc_vae.model import GMFCVAE
from vad.training import (
    Checkpoint,
    atomic_torch_save,
    data_fingerprint,
    epoch_generator,
    epoch_order,
    guard_finite,
    resolve_device,
    run_epoch,
)

log = logging.getLogger(__name__)

PATCH_SIZE = 28
CHECKPOINT_NAME = "checkpoint.pt"
CHECKPOINT_FORMAT = "vad.train.gmfc_vae/1"
MODEL_FORMAT = "vad.models.gmfc_vae/1"
PHASES = ("pretrain", "vade")
INITIAL_POSTERIOR_VARIANCE_RATIO = 0.01  # sigma~^2 / mean sigma_c^2 when VaDE starts
LOSS_TERMS = {
    "pretrain": ("loss", "reconstruction"),
    "vade": ("loss", "reconstruction", "kl_latent", "kl_cluster"),
}


@dataclass(frozen=True)
class GmfcTrainSettings:
    """Everything that defines a GMFC-VAE training run (defaults: paper Sec. IV-C, Table V)."""

    n_components: int = 20  # K; Table V / IV-E: 20 is the paper's choice
    latent_dim: int = 64  # Table I
    recon_variance: float = 0.5  # sigma_x^2 of eq. 9: weight 1 on the summed squared error
    mc_samples: int = 1  # L in eq. 14
    pretrain_epochs: int = 10  # not given in the paper
    epochs: int = 20  # not given in the paper
    batch_size: int = 100  # IV-C
    lr: float = 1e-4  # IV-C, Adam
    beta1: float = 0.9  # IV-C "momentum of 0.9"
    weight_decay: float = 5e-4  # IV-C; applied to network weights, not to the prior
    gmm_fit_samples: int = 20_000  # latents the GMM initialisation is fitted on (at most)
    collapse_fraction: float = 0.01  # component c collapsed when pi_c < collapse_fraction / K
    seed: int = 0

    def __post_init__(self) -> None:
        positive_ints = ("n_components", "latent_dim", "mc_samples", "batch_size")
        for name in positive_ints + ("gmm_fit_samples",):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"GmfcTrainSettings.{name} must be an integer >= 1, got {value!r}")
        for name in ("pretrain_epochs", "epochs", "seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"GmfcTrainSettings.{name} must be an integer >= 0, got {value!r}")
        for name in ("recon_variance", "lr"):
            if not getattr(self, name) > 0:
                raise ValueError(f"GmfcTrainSettings.{name} must be > 0, got {getattr(self, name)}")
        if not 0 <= self.beta1 < 1:
            raise ValueError(f"GmfcTrainSettings.beta1 must be in [0, 1), got {self.beta1}")
        if self.weight_decay < 0:
            raise ValueError(
                f"GmfcTrainSettings.weight_decay must be >= 0, got {self.weight_decay}"
            )
        if not 0 <= self.collapse_fraction < 1:
            value = self.collapse_fraction
            raise ValueError(f"GmfcTrainSettings.collapse_fraction must be in [0, 1), got {value}")

    def to_dict(self) -> dict:
        return asdict(self)

    def run_identity(self) -> dict:
        """The settings a checkpoint must share to be resumed: all but the epoch counts."""
        identity = self.to_dict()
        del identity["epochs"], identity["pretrain_epochs"]
        return identity


# ---- data ------------------------------------------------------------------------------------


def check_patches(patches: np.ndarray) -> np.ndarray:
    """Validate (N, 28, 28, C) uint8 patches; return them unchanged."""
    if not isinstance(patches, np.ndarray) or patches.dtype != np.uint8:
        raise TypeError(
            f"patches must be a uint8 numpy array, got {getattr(patches, 'dtype', patches)}"
        )
    if patches.ndim != 4 or patches.shape[1:3] != (PATCH_SIZE, PATCH_SIZE) or patches.shape[0] < 1:
        raise ValueError(f"patches must have shape (N, 28, 28, C) with N >= 1, got {patches.shape}")
    return patches


def to_tensor(batch: np.ndarray, device: torch.device) -> torch.Tensor:
    """uint8 (B, 28, 28, C) -> float32 (B, C, 28, 28) in [0, 1] on `device`."""
    tensor = torch.from_numpy(np.ascontiguousarray(batch)).to(device, non_blocking=True)
    return tensor.permute(0, 3, 1, 2).float().div_(255.0)


# ---- model, optimiser, GMM initialisation, collapse rule ----------------------------------------


def build_model(settings: GmfcTrainSettings, in_channels: int) -> GMFCVAE:
    """A freshly initialised model; the global torch RNG of the caller is left untouched."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(settings.seed)
        return GMFCVAE(
            n_components=settings.n_components,
            latent_dim=settings.latent_dim,
            in_channels=in_channels,
            recon_variance=settings.recon_variance,
        )


def make_optimizer(model: GMFCVAE, settings: GmfcTrainSettings, phase: str) -> torch.optim.Adam:
    """Adam (IV-C). Weight decay on the network only: decaying mu_c / log sigma_c^2 to 0 would
    pull the prior towards N(0, I) for no reason. Pre-training does not touch the prior."""
    betas = (settings.beta1, 0.999)
    groups = [{"params": model.network_parameters(), "weight_decay": settings.weight_decay}]
    if phase == "vade":
        groups.append({"params": model.prior_parameters(), "weight_decay": 0.0})
    return torch.optim.Adam(groups, lr=settings.lr, betas=betas)


@torch.no_grad()
def encode_means(
    model: GMFCVAE, patches: np.ndarray, batch_size: int, device: torch.device
) -> torch.Tensor:
    """Encoder means mu~ of uint8 patches, (N, J) float32 on `device`."""
    was_training = model.training
    model.eval()
    means = [
        model.encode_mean(to_tensor(patches[start : start + batch_size], device))
        for start in range(0, len(patches), batch_size)
    ]
    model.train(was_training)
    return torch.cat(means)


def fit_gmm_prior(
    model: GMFCVAE, patches: np.ndarray, settings: GmfcTrainSettings, device: torch.device
) -> dict:
    """Fit GaussianMixture(K, diag) on <= gmm_fit_samples pre-trained latents; set the prior."""
    n = len(patches)
    n_fit = min(n, settings.gmm_fit_samples)
    if n_fit < settings.n_components:
        raise ValueError(f"GMM initialisation needs >= K={settings.n_components} patches, got {n}")
    rng = np.random.default_rng(settings.seed)
    subset = np.sort(rng.choice(n, size=n_fit, replace=False))
    latents = encode_means(model, patches[subset], 1000, device).double().cpu().numpy()
    gmm = GaussianMixture(
        n_components=settings.n_components,
        covariance_type="diag",
        random_state=settings.seed,
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        gmm.fit(latents)
    model.init_prior_from_gmm(gmm.weights_, gmm.means_, gmm.covariances_)
    # q(z|x) starts 10x narrower (std) than the mean mixture component
    initial_log_var = float(np.log(np.mean(gmm.covariances_) * INITIAL_POSTERIOR_VARIANCE_RATIO))
    model.reset_log_var_head(initial_log_var)
    info = {
        "n_samples": int(n_fit),
        "converged": bool(gmm.converged_),
        "n_iter": int(gmm.n_iter_),
        "lower_bound": float(gmm.lower_bound_),
        "warnings": [str(w.message) for w in caught],
        "mean_component_variance": float(np.mean(gmm.covariances_)),
        "initial_posterior_log_var": initial_log_var,
    }
    log.info("GMM prior initialised from %d latents: %s", n_fit, info)
    return info


@torch.no_grad()
def reinitialise_collapsed_components(
    model: GMFCVAE, optimizer: torch.optim.Optimizer, latents: torch.Tensor, threshold: float
) -> list[dict]:
    """Collapse rule: every component with pi_c < threshold is re-initialised.

    Its mean moves to the latent (encoder mean) of the worst-explained sample of `latents`
    (highest sample energy, a different sample for each collapsed component), its variance to
    the per-dimension mean variance of the surviving components, and its logit to the log mean
    weight of the survivors (pi is renormalised by the softmax). Its Adam moments are zeroed so
    the stale momentum does not drag it back. Returns one record per re-initialised component.
    """
    weights = model.mixture_weights()
    collapsed = torch.nonzero(weights < threshold).flatten().tolist()
    if not collapsed:
        return []
    alive = [c for c in range(model.n_components) if c not in collapsed]
    energy = model.sample_energy(latents)
    worst_first = torch.argsort(energy, descending=True)
    mean_log_var = model.prior_log_var()[alive].exp().mean(0).log()
    mean_logit = torch.logsumexp(model.pi_logits[alive], 0) - math.log(len(alive))
    records = []
    for i, c in enumerate(collapsed):
        sample = worst_first[i % len(worst_first)]
        records.append(
            {"component": c, "weight": float(weights[c]), "energy": float(energy[sample])}
        )
        model.mu_c[c] = latents[sample]
        model.log_var_c[c] = mean_log_var
        model.pi_logits[c] = mean_logit
        for param in model.prior_parameters():
            for moment in optimizer.state.get(param, {}).values():
                if torch.is_tensor(moment) and moment.shape == param.shape:
                    moment[c] = 0
    return records


# ---- checkpoints and model files -------------------------------------------------------------


def save_model(model: GMFCVAE, path: str | Path, extra: dict | None = None) -> None:
    """Write the weights with the architecture settings (atomic). `extra`: JSON-like metadata."""
    payload = {
        "format": MODEL_FORMAT,
        "config": model.config,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "extra": dict(extra or {}),
    }
    atomic_torch_save(payload, path)


def _load_model_payload(path: str | Path) -> dict:
    payload = torch.load(Path(path), map_location="cpu", weights_only=True)
    if not isinstance(payload, dict) or payload.get("format") != MODEL_FORMAT:
        raise ValueError(f"{path}: not a GMFC-VAE model file (expected format {MODEL_FORMAT})")
    return payload


def load_model(path: str | Path, device: str | torch.device = "auto") -> GMFCVAE:
    """Rebuild a model written by `save_model`, in eval mode on `device`."""
    payload = _load_model_payload(path)
    model = GMFCVAE(**payload["config"])
    model.load_state_dict(payload["state_dict"])
    return model.to(resolve_device(device)).eval()


def load_model_extra(path: str | Path) -> dict:
    """The `extra` metadata stored by `save_model`."""
    return _load_model_payload(path)["extra"]


def _too_long(settings: GmfcTrainSettings):
    """A checkpoint cannot be continued by a run that asks for fewer epochs than it has."""

    def reason(checkpoint: dict) -> str | None:
        if checkpoint["phase"] == "pretrain" and checkpoint["epoch"] > settings.pretrain_epochs:
            return f"it has {checkpoint['epoch']} pre-training epochs, more than requested"
        if checkpoint["phase"] == "vade" and (
            checkpoint["pretrain_epochs"] != settings.pretrain_epochs
            or checkpoint["epoch"] > settings.epochs
        ):
            return "its pre-training length differs or it has more VaDE epochs than requested"
        return None

    return reason


# ---- the loop --------------------------------------------------------------------------------


def _new_history() -> dict:
    return {
        **{phase: {term: [] for term in LOSS_TERMS[phase]} for phase in PHASES},
        "epoch_seconds": {phase: [] for phase in PHASES},
        "gmm_init": None,
        "collapse_events": [],
    }


def _run_epoch(
    model: GMFCVAE,
    optimizer: torch.optim.Optimizer,
    patches: np.ndarray,
    settings: GmfcTrainSettings,
    phase: str,
    epoch: int,
    n_epochs: int,
    replica: Replica,
    objective: torch.nn.Module,
    history: dict,
    progress: bool,
) -> None:
    """One pass over the shuffled patches; appends the epoch means to `history`.

    On one process a step is the batch mean loss of eq. 14. Distributed (`vad.distributed`),
    rank r computes the per-sample losses of its shard of the batch through `objective` (the
    model in DDP), with its slice of the noise drawn for the whole batch, and back-propagates
    their sum times world_size / batch size; DDP's average of the ranks' gradients is then the
    gradient of the whole batch's mean loss, also for an uneven last batch.
    """
    model.train()
    device = replica.device
    phase_index = PHASES.index(phase)
    noise = epoch_generator(settings.seed, phase_index, epoch, device)
    threshold = settings.collapse_fraction / settings.n_components
    names = LOSS_TERMS[phase]

    def batch_loss(index: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """The loss to back-propagate and the batch means of the `names` terms."""
        if not replica.distributed:
            x = to_tensor(patches[index], device)
            if phase == "pretrain":
                total, terms = model.pretrain_loss(x)
            else:
                total, terms = model.loss(x, n_samples=settings.mc_samples, generator=noise)
            return total, torch.stack([terms[n].detach() for n in names])
        part = replica.shard(len(index))
        x = to_tensor(patches[index[part]], device)
        if phase == "pretrain":
            per_sample = objective("pretrain_sample_losses", x)
        else:
            eps = model.draw_noise(len(index), settings.mc_samples, noise)[:, part]
            per_sample = objective("sample_losses", x, eps=eps)
        total = per_sample["loss"].sum() * replica.loss_scale(len(index))
        sums = torch.stack([per_sample[n].detach().sum() for n in names])
        return total, replica.sum_over_ranks(sums) / len(index)

    def step(index: np.ndarray, batch: int, n_batches: int) -> dict[str, float]:
        total, means = batch_loss(index)
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), float("inf"))
        min_weight = model.mixture_weights().min().detach()
        values = torch.stack([*means, grad_norm, min_weight]).tolist()
        losses = dict(zip(names, values, strict=False))
        guard_finite(
            {**losses, "grad_norm": values[-2]},
            "GMFC-VAE",
            phase,
            epoch + 1,
            n_epochs,
            batch,
            n_batches,
        )
        optimizer.step()
        if phase == "vade" and values[-1] < threshold:
            latents = encode_means(model, patches[index], len(index), device)
            for record in reinitialise_collapsed_components(model, optimizer, latents, threshold):
                record.update(phase=phase, epoch=epoch + 1, batch=batch)
                history["collapse_events"].append(record)
                log.warning("mixture component collapsed and re-initialised: %s", record)
            replica.broadcast_parameters(model)  # every rank did the same; rank 0's rules
        return losses

    start = time.perf_counter()
    order = epoch_order(settings.seed, phase_index, epoch, len(patches))
    means = run_epoch(
        step, order, settings.batch_size, names, f"{phase} {epoch + 1}/{n_epochs}", progress
    )
    for name in names:
        history[phase][name].append(means[name])
    history["epoch_seconds"][phase].append(time.perf_counter() - start)
    log.info(
        "%s epoch %d/%d: %s", phase, epoch + 1, n_epochs, {n: round(means[n], 4) for n in names}
    )


def train_gmfc_vae(
    patches: np.ndarray,
    settings: GmfcTrainSettings,
    workdir: str | Path,
    device: str | torch.device = "auto",
    progress: bool = True,
) -> tuple[GMFCVAE, dict]:
    """Pre-train, GMM-initialise and VaDE-train a GMFC-VAE on (N, 28, 28, C) uint8 patches.

    Writes `workdir/checkpoint.pt` at the end of every epoch and resumes from it when it was
    written with the same settings (epoch counts may grow) and data. Returns the model (eval
    mode) and the history: per-epoch means of each loss term per phase, epoch seconds, the GMM
    initialisation summary and the collapse events.

    Under `torchrun` with W > 1 processes (`vad.distributed`) every rank calls this with the
    same patches and settings; each trains on its shard of every batch (`batch_size` is the
    global batch), on cuda:LOCAL_RANK when `device` is CUDA, and only rank 0 writes the
    checkpoint. Every rank returns the same model and history, equal to a one-process run up
    to float rounding.
    """
    patches = check_patches(patches)
    with replica_session(resolve_device(device)) as replica:
        return _train(patches, settings, Path(workdir), replica, progress)


def _train(
    patches: np.ndarray,
    settings: GmfcTrainSettings,
    workdir: Path,
    replica: Replica,
    progress: bool,
) -> tuple[GMFCVAE, dict]:
    device = replica.device
    identity = {**settings.run_identity(), "data": data_fingerprint(patches)}
    store = Checkpoint(workdir / CHECKPOINT_NAME, CHECKPOINT_FORMAT, identity, log)

    model = build_model(settings, in_channels=patches.shape[-1]).to(device)
    history = _new_history()
    phase, done, optimizer_state = "pretrain", 0, None
    checkpoint = store.load(reject=_too_long(settings))
    if checkpoint is not None:
        log.info(
            "resuming from %s (%s, epoch %d)", store.path, checkpoint["phase"], checkpoint["epoch"]
        )
        model.load_state_dict(checkpoint["model"])
        history = checkpoint["history"]
        phase, done, optimizer_state = (
            checkpoint["phase"],
            checkpoint["epoch"],
            checkpoint["optimizer"],
        )

    def save_checkpoint(phase: str, epoch: int, optimizer: torch.optim.Optimizer) -> None:
        payload = {
            "settings": settings.to_dict(),
            "pretrain_epochs": settings.pretrain_epochs,
            "phase": phase,
            "epoch": epoch,
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "history": history,
        }
        store.save(payload)

    def train_epochs(phase: str, first: int, n_epochs: int, optimizer: torch.optim.Optimizer):
        # the model in DDP (the model itself on one process, unused); pre-training leaves F6
        # and the prior without gradients. A phase's wrapper is gone before the next is made:
        # each one's gradient hooks live as long as it does.
        objective = replica.wrap(MethodsAsForward(model), find_unused_parameters=phase != "vade")
        for epoch in range(first, n_epochs):
            _run_epoch(
                model,
                optimizer,
                patches,
                settings,
                phase,
                epoch,
                n_epochs,
                replica,
                objective,
                history,
                progress,
            )
            save_checkpoint(phase, epoch + 1, optimizer)

    if phase == "pretrain":
        optimizer = make_optimizer(model, settings, "pretrain")
        if optimizer_state is not None:
            optimizer.load_state_dict(optimizer_state)
        train_epochs("pretrain", done, settings.pretrain_epochs, optimizer)
        history["gmm_init"] = broadcast_object(fit_gmm_prior(model, patches, settings, device))
        replica.broadcast_parameters(model)  # every rank fitted the same GMM; rank 0's rules
        phase, done, optimizer_state = "vade", 0, None
        save_checkpoint("vade", 0, make_optimizer(model, settings, "vade"))

    optimizer = make_optimizer(model, settings, "vade")
    if optimizer_state is not None:
        optimizer.load_state_dict(optimizer_state)
    train_epochs("vade", done, settings.epochs, optimizer)
    return model.eval(), history
