"""Anomaly-detection models, one file each, and a small registry of the trainable ones.

The registry is lazy so that importing a light model (e.g. `vad.models.baseline`) does not
import torch.
"""

from __future__ import annotations

from importlib import import_module

MODELS = {"gmfc_vae": "vad.models.gmfc_vae:GMFCVAE"}


def get_model_class(name: str) -> type:
    """The model class registered under `name` (e.g. "gmfc_vae")."""
    if name not in MODELS:
        raise KeyError(f"unknown model {name!r}; known: {sorted(MODELS)}")
    module, attr = MODELS[name].split(":")
    return getattr(import_module(module), attr)
