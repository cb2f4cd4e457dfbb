"""Every method the pipeline knows, by the name params.yaml's `methods` list uses.

One line per method: name -> "module:attribute" of its `Method` instance. Entries are
imported only when used, so reading the registry imports no torch.
"""

from __future__ import annotations

from importlib import import_module

from vad.config import ConfigError
from vad.methods.base import Method

REGISTRY = {
    "baseline": "vad.methods.baseline.method:BASELINE",
    "gmfc_vae_rgb": "vad.methods.gmfc_vae.method:GMFC_VAE_RGB",
    "gmfc_vae_dynflow": "vad.methods.gmfc_vae.method:GMFC_VAE_DYNFLOW",
    "velocity": "vad.methods.velocity.method:VELOCITY",
    "hf2vad": "vad.methods.hf2vad.method:HF2VAD",
    "itae": "vad.methods.itae.method:ITAE",
    "dissociation": "vad.methods.dissociation.method:DISSOCIATION",
}


def method_names() -> list[str]:
    return list(REGISTRY)


def get_method(name: str) -> Method:
    """The method registered under `name` (e.g. "gmfc_vae_rgb")."""
    if name not in REGISTRY:
        raise KeyError(f"unknown method {name!r}; known methods: {', '.join(REGISTRY)}")
    module, attribute = REGISTRY[name].split(":")
    method = getattr(import_module(module), attribute)
    if not isinstance(method, Method) or method.name != name:
        raise TypeError(
            f"registry entry {name!r} ({REGISTRY[name]}) is not a Method named {name!r}"
        )
    return method


def fused_set_hint(params: dict, names: list[str]) -> str:
    """For names that are fused score sets (`fuse.models`, e.g. gmfc_vae), which methods to list
    instead: a fused set is not a method, it combines the score files of its parts."""
    fuse = params.get("fuse")
    models = fuse.get("models") if isinstance(fuse, dict) else None
    if not isinstance(models, dict):  # check-params reports a malformed `fuse` itself
        return ""
    hints = [
        f"{name} is the fused score set of {' and '.join(map(str, models[name]))} "
        f"(fuse.models.{name}): list those and it is made from them"
        for name in names
        if isinstance(models.get(name), dict)
    ]
    return "".join(f". {hint}" for hint in hints)


def enabled_methods(params: dict) -> list[str]:
    """params.yaml `methods`: a non-empty list of distinct registered method names."""
    value = params.get("methods")
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise ConfigError(
            f"params.yaml: 'methods' must be a non-empty list of method names, got {value!r}"
        )
    unknown = [name for name in value if name not in REGISTRY]
    if unknown:
        raise ConfigError(
            f"params.yaml: 'methods' names unknown method(s) {', '.join(unknown)}; "
            f"known: {', '.join(REGISTRY)}{fused_set_hint(params, unknown)}"
        )
    if len(set(value)) != len(value):
        raise ConfigError(f"params.yaml: 'methods' lists a method twice: {value}")
    return list(value)
