"""The trained dissociation model: the two auto-encoders (network.Dissociation), the deep
K-means centres (or none), the preset and the switches it was trained with; built, saved and
loaded here."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from vad.methods.dissociation.clustering import DeepKMeans, normalised
from vad.methods.dissociation.network import Dissociation, NetworkConfig
from vad.methods.dissociation.presets import (
    DissociationPreset,
    preset_from_json,
    preset_to_json,
)
from vad.training import atomic_torch_save, resolve_device

MODEL_FORMAT = "vad.models.dissociation/1"
STREAMS = ("spatial", "motion")


def network_config(preset: DissociationPreset, channels: int, attention: bool) -> NetworkConfig:
    """The preset's network for frames of `channels` channels."""
    if preset.network == "paper":
        return NetworkConfig.paper(channels, attention=attention)
    if preset.network == "cpu":
        return NetworkConfig.cpu(channels, attention=attention)
    raise ValueError(f"unknown dissociation network {preset.network!r}")


@dataclass
class DissociationModel:
    preset: DissociationPreset
    channels: int  # of the frames (1 gray, 3 RGB)
    streams: tuple[str, ...]  # the auto-encoders trained and scored: spatial and/or motion
    attention: bool  # the variance attention in the motion encoder
    network: Dissociation
    kmeans: DeepKMeans | None = None  # None: no deep K-means (clusters 0)

    def modules(self) -> dict[str, nn.Module]:
        found: dict[str, nn.Module] = {"network": self.network}
        if self.kmeans is not None:
            found["kmeans"] = self.kmeans
        return found

    def to(self, device: torch.device) -> DissociationModel:
        for module in self.modules().values():
            module.to(device)
        return self

    def eval(self) -> DissociationModel:
        for module in self.modules().values():
            module.eval()
        return self

    def representation(self, appearance: Tensor, motion: Tensor) -> Tensor:
        """The normalised concatenation r (Sec. 3.5) of the streams in use, (B, D, h, w)."""
        parts = {"spatial": appearance, "motion": motion}
        return normalised(torch.cat([parts[stream] for stream in self.streams], dim=1))

    def representation_channels(self) -> int:
        return self.network.config.widths[-1] * len(self.streams)


def build_model(
    preset: DissociationPreset,
    channels: int,
    streams: tuple[str, ...],
    attention: bool,
    seed: int,
    centres: np.ndarray | None = None,
) -> DissociationModel:
    """Networks of `preset` for frames of `channels` channels, initialised from `seed`; the
    deep K-means from `centres` when given."""
    if not streams or any(stream not in STREAMS for stream in streams):
        raise ValueError(f"streams must be a non-empty subset of {STREAMS}, got {streams}")
    network = Dissociation(network_config(preset, channels, attention), seed=seed)
    model = DissociationModel(preset, channels, tuple(streams), attention, network)
    if centres is not None:
        model.kmeans = DeepKMeans(centres, preset.alpha)
    return model


def save_model(model: DissociationModel, path: str | Path, seed: int) -> None:
    """Weights, centres, preset, switches and seed, atomically."""
    payload = {
        "format": MODEL_FORMAT,
        "preset": preset_to_json(model.preset),
        "channels": model.channels,
        "streams": list(model.streams),
        "attention": model.attention,
        "seed": seed,
        "state_dicts": {
            name: {k: v.detach().cpu() for k, v in module.state_dict().items()}
            for name, module in model.modules().items()
        },
    }
    atomic_torch_save(payload, path)


def load_model(path: str | Path, device: str | torch.device = "auto") -> DissociationModel:
    """The model written by `save_model`, in eval mode on `device`."""
    payload = torch.load(Path(path), map_location="cpu", weights_only=True)
    if not isinstance(payload, dict) or payload.get("format") != MODEL_FORMAT:
        raise ValueError(f"{path}: not a dissociation model file (expected {MODEL_FORMAT})")
    states = payload["state_dicts"]
    centres = states["kmeans"]["centres"].numpy() if "kmeans" in states else None
    model = build_model(
        preset_from_json(payload["preset"]),
        payload["channels"],
        tuple(payload["streams"]),
        payload["attention"],
        payload["seed"],
        centres,
    )
    for name, module in model.modules().items():
        module.load_state_dict(states[name])
    return model.to(resolve_device(device)).eval()
