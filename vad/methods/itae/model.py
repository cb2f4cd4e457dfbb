"""The trained ITAE + Glow model: the auto-encoder, the two Glows (appearance, motion), the
preset they were built from, and eq. 8/9's training statistics; built, saved and loaded here."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from vad.methods.itae.features import input_channels
from vad.methods.itae.glow import Glow
from vad.methods.itae.network import ITAE, ITAEConfig
from vad.methods.itae.presets import ITAEPreset, preset_from_json, preset_to_json
from vad.training import atomic_torch_save, resolve_device

MODEL_FORMAT = "vad.models.itae/1"


def network_config(preset: ITAEPreset, channels: int) -> ITAEConfig:
    """The preset's network (network.ITAEConfig) for clips of `channels` channels."""
    if preset.network == "paper":
        return ITAEConfig.paper(channels)
    if preset.network == "paper_ucsd":
        return ITAEConfig.paper(channels, ucsd=True)
    if preset.network == "cpu":
        return ITAEConfig.cpu(channels)
    raise ValueError(f"unknown ITAE network {preset.network!r}")


@dataclass
class ITAEModel:
    preset: ITAEPreset
    channels: int  # of the clips (1 gray, 3 RGB)
    network: ITAE
    glow_appearance: Glow
    glow_motion: Glow
    statistics: dict = field(default_factory=dict)  # eq. 8/9 training statistics

    def modules(self) -> dict[str, nn.Module]:
        return {
            "network": self.network,
            "glow_appearance": self.glow_appearance,
            "glow_motion": self.glow_motion,
        }

    def to(self, device: torch.device) -> ITAEModel:
        for module in self.modules().values():
            module.to(device)
        return self

    def eval(self) -> ITAEModel:
        for module in self.modules().values():
            module.eval()
        return self


def build_model(preset: ITAEPreset, channels: int, seed: int) -> ITAEModel:
    """Networks of `preset` for clips of `channels` channels, initialised from `seed`."""
    appearance, motion = input_channels(channels, preset.clip_length, preset.tau)
    glows = [
        Glow(
            count,
            steps=preset.glow_steps,
            levels=preset.glow_levels,
            hidden=preset.glow_hidden,
            seed=seed + offset,
        )
        for offset, count in ((1, appearance), (2, motion))
    ]
    network = ITAE(network_config(preset, channels), seed=seed)
    return ITAEModel(preset, channels, network, *glows)


def save_model(model: ITAEModel, path: str | Path, seed: int) -> None:
    """Weights, preset, channels, seed and statistics, atomically."""
    payload = {
        "format": MODEL_FORMAT,
        "preset": preset_to_json(model.preset),
        "channels": model.channels,
        "seed": seed,
        "statistics": dict(model.statistics),
        "state_dicts": {
            name: {k: v.detach().cpu() for k, v in module.state_dict().items()}
            for name, module in model.modules().items()
        },
    }
    atomic_torch_save(payload, path)


def load_model(path: str | Path, device: str | torch.device = "auto") -> ITAEModel:
    """The model written by `save_model`, in eval mode on `device`."""
    payload = torch.load(Path(path), map_location="cpu", weights_only=True)
    if not isinstance(payload, dict) or payload.get("format") != MODEL_FORMAT:
        raise ValueError(f"{path}: not an ITAE model file (expected format {MODEL_FORMAT})")
    model = build_model(preset_from_json(payload["preset"]), payload["channels"], payload["seed"])
    for name, module in model.modules().items():
        module.load_state_dict(payload["state_dicts"][name])
    model.statistics = payload["statistics"]
    return model.to(resolve_device(device)).eval()
