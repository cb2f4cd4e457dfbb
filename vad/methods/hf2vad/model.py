"""HF2-VAD's two networks as one model (Liu et al. ICCV 2021, Fig. 2): ML-MemAE-SC reconstructs
a cube's flows y_{1:t}, and the flow-guided CVAE predicts x_{t+1} from the frames x_{1:t} and the
reconstructed flows; plus the layout of STCs as tensors and the model file.

Tensors of a batch of cubes, as the released code lays them out (datasets/dataset.py
`Chunked_sample_dataset`): frames (B, T * C, S, S) in [0, 1] (uint8 / 255, ToTensor), frame-major
then channel, the last C channels being x_{t+1}; flows (B, (T - 1) * 2, S, S) as stored (float,
not rescaled).
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor, nn

from vad.methods.hf2vad.cvae import CVAEOutput, FlowGuidedCVAE, Mode
from vad.methods.hf2vad.memae import MemAEOutput, MLMemAESC
from vad.methods.hf2vad.presets import HF2VADPreset
from vad.training import atomic_torch_save, resolve_device

MODEL_FORMAT = "vad.models.hf2vad/1"


class HybridOutput(NamedTuple):
    flows: MemAEOutput  # the reconstruction y^_{1:t} and the memories' addressing weights
    frame: CVAEOutput  # x^_{t+1} and the latent distributions
    target: Tensor  # x_{t+1}, (B, C, S, S)


class HybridNetwork(nn.Module):
    """ML-MemAE-SC (`memae`) and the CVAE (`cvae`), the CVAE conditioned on the reconstructed
    flows (models/mem_cvae.py `HFVAD`); each of the t flows is reconstructed on its own."""

    def __init__(self, memae: MLMemAESC, cvae: FlowGuidedCVAE) -> None:
        super().__init__()
        self.memae = memae
        self.cvae = cvae

    def forward(
        self,
        frames: Tensor,
        flows: Tensor,
        mode: Mode = "train",
        generator: torch.Generator | None = None,
    ) -> HybridOutput:
        """frames (B, (t + 1) * C, S, S) and flows (B, t * 2, S, S) -> both networks' outputs."""
        reconstruction = self.memae.reconstruct_cube(flows)
        return self.predict(frames, reconstruction, mode, generator)

    def predict(
        self,
        frames: Tensor,
        reconstruction: MemAEOutput,
        mode: Mode = "train",
        generator: torch.Generator | None = None,
    ) -> HybridOutput:
        """The CVAE's prediction of x_{t+1} from x_{1:t} and the reconstructed flows."""
        channels = self.cvae.image_channels
        history, target = frames[:, :-channels], frames[:, -channels:]
        prediction = self.cvae(history, reconstruction.reconstruction, mode, generator)
        return HybridOutput(flows=reconstruction, frame=prediction, target=target)


def build_network(preset: HF2VADPreset, seed: int) -> HybridNetwork:
    """Both networks of `preset` (fitted to the cubes, `presets.fitted_to_cubes`), seeded."""
    return HybridNetwork(preset.memae.build(seed), preset.cvae.build(seed))


def cube_tensors(
    frames: np.ndarray, flows: np.ndarray, device: torch.device
) -> tuple[Tensor, Tensor]:
    """STC rows as stored, frames (B, T, S, S, C) uint8 and flows (B, T-1, S, S, 2) float16,
    as network inputs: (B, T * C, S, S) float32 in [0, 1] and (B, (T-1) * 2, S, S) float32."""
    return stacked_channels(frames, device).div_(255.0), stacked_channels(flows, device)


def stacked_channels(rows: np.ndarray, device: torch.device) -> Tensor:
    """(B, T, S, S, C) -> (B, T * C, S, S) float32, frame-major then channel."""
    b, t, height, width, c = rows.shape
    tensor = torch.from_numpy(np.ascontiguousarray(rows)).to(device=device, dtype=torch.float32)
    return tensor.permute(0, 1, 4, 2, 3).reshape(b, t * c, height, width)


def save_network(network: HybridNetwork, path: str | Path, extra: dict) -> None:
    """Both networks' weights and constructor arguments, and `extra` (JSON-like), atomically."""
    payload = {
        "format": MODEL_FORMAT,
        "memae": network.memae.config,
        "cvae": network.cvae.config,
        "state_dict": {k: v.detach().cpu() for k, v in network.state_dict().items()},
        "extra": dict(extra),
    }
    atomic_torch_save(payload, path)


def load_network(
    path: str | Path, device: str | torch.device = "auto"
) -> tuple[HybridNetwork, dict]:
    """The network written by `save_network` (eval mode, on `device`) and its `extra`."""
    payload = torch.load(Path(path), map_location="cpu", weights_only=True)
    if not isinstance(payload, dict) or payload.get("format") != MODEL_FORMAT:
        raise ValueError(f"{path}: not an HF2-VAD model file (expected format {MODEL_FORMAT})")
    network = HybridNetwork(MLMemAESC(**payload["memae"]), FlowGuidedCVAE(**payload["cvae"]))
    network.load_state_dict(payload["state_dict"])
    return network.to(resolve_device(device)).eval(), payload["extra"]
