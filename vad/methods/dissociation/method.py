"""Spatio-temporal dissociation with variance attention and deep K-means (Chang et al., Pattern
Recognition 2022) behind the method interface: a spatial auto-encoder reconstructs a clip's
first frame, a U-Net motion auto-encoder with variance attention predicts the difference between
its last and first frames from the frames before the last, and deep K-means pulls their
concatenated bottleneck representations towards K centres. No optical flow.

prepare: the training videos' frames at the model's size (vad.methods.resized_frames); train:
the auto-encoders, K-means, then the alternating optimisation (train.py); score: eq. 13's
pixel-level fusion of prediction error and cluster distance per frame (score.py), as score maps
too; new footage frame by frame through vad.serve.scorers.dissociation (`vad score`).

params.yaml `dissociation`: `preset` (ped2 | avenue | shanghaitech: the paper's, for a GPU |
cpu, presets.py) with optional overrides; `streams`, `attention` and `clusters` switch the
components of the paper's Table 2 (`python -m vad experiments --table dissociation` queues that
ablation). Settings import no torch.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

from vad.config import ConfigError, Section, check_all
from vad.methods.base import Inputs, Method, Settings
from vad.scores import ScoreStream

PRESET_NAMES = ("ped2", "avenue", "shanghaitech", "cpu")  # = presets.PRESETS (tested)
STREAM_NAMES = ("spatial", "motion")
DEVICES = ["auto", "cpu", "cuda"]
MODEL_FILE = "model.pt"
CPU_BUDGET_PED2 = {
    "dissociation.preset": "cpu",
    "dissociation.epochs": [20, 10],
    "dissociation.clips_per_epoch": 512,
    "dissociation.threads": 2,
}
KEYS = (
    "preset", "size", "epochs", "batch_size", "learning_rate", "centre_learning_rate",
    "clusters", "alpha", "lambda_cluster", "kmeans_samples", "clips_per_epoch", "train_stride",
    "streams", "attention", "map_cell", "seed", "device", "threads", "gradient_weight",
)  # fmt: skip


def optional(section: Section, key: str, read) -> object:
    """None when the key is null, else `read(key)` (which validates it)."""
    return None if section.values.get(key) is None else read(key)


def stream_list(section: Section) -> list[str]:
    value = section.values.get("streams")
    if (
        not isinstance(value, list)
        or not value
        or any(v not in STREAM_NAMES for v in value)
        or len(set(value)) != len(value)
    ):
        raise section.error("streams", f"must be a non-empty list of {list(STREAM_NAMES)} "
                            f"without repeats, got {value!r}")  # fmt: skip
    return [stream for stream in STREAM_NAMES if stream in value]


class DissociationMethod(Method):
    name = "dissociation"
    package = "vad.methods.dissociation"
    inputs = ("frames",)
    budgets = {"ped2": CPU_BUDGET_PED2}
    streaming = "vad.serve.scorers.dissociation:dissociation_scorer"

    def settings(self, params: dict) -> dict[str, Settings]:
        section = Section(params, "dissociation")
        return check_all(lambda: section.check_keys(KEYS), lambda: self._settings(section))[1]

    def _settings(self, section: Section) -> dict[str, Settings]:
        from vad.methods.dissociation.presets import PRESETS

        preset = section.str("preset", list(PRESET_NAMES))
        size = optional(section, "size", section.size)
        overrides = {
            "size": list(size) if size is not None else None,
            "epochs": section.numbers("epochs", 2, names="[autoencoders, alternating]"),
            "batch_size": optional(section, "batch_size", lambda k: section.int(k, minimum=1)),
            "learning_rate": optional(
                section, "learning_rate", lambda k: section.float(k, minimum=0.0)
            ),
            "centre_learning_rate": optional(
                section, "centre_learning_rate", lambda k: section.float(k, minimum=0.0)
            ),
            "clusters": optional(section, "clusters", lambda k: section.int(k, minimum=0)),
            "alpha": optional(section, "alpha", lambda k: section.float(k, above=0.0)),
            "lambda_cluster": optional(
                section, "lambda_cluster", lambda k: section.float(k, minimum=0.0)
            ),
            "kmeans_samples": optional(
                section, "kmeans_samples", lambda k: section.int(k, minimum=1)
            ),
            "clips_per_epoch": optional(
                section, "clips_per_epoch", lambda k: section.int(k, minimum=1)
            ),
            "train_stride": optional(section, "train_stride", lambda k: section.int(k, minimum=1)),
            "gradient_weight": optional(
                section, "gradient_weight", lambda k: section.float(k, minimum=0.0)
            ),
        }
        chosen = PRESETS[preset]
        width, height = overrides["size"] or chosen.size
        if width % 8 or height % 8:
            raise ConfigError(
                f"params.yaml: 'dissociation.size' must be multiples of 8 (the encoders halve "
                f"it 3 times), got {[width, height]}"
            )
        clusters = overrides["clusters"] if overrides["clusters"] is not None else chosen.clusters
        samples = overrides["kmeans_samples"] or chosen.kmeans_samples
        if 0 < clusters and samples < clusters:
            raise ConfigError(
                f"params.yaml: 'dissociation.kmeans_samples' ({samples}) must be at least "
                f"'clusters' ({clusters})"
            )
        model = {
            "preset": preset,
            **overrides,
            "streams": stream_list(section),
            "attention": section.bool("attention"),
            "seed": section.int("seed", minimum=0),
        }
        runtime = {
            "device": section.str("device", DEVICES),
            "threads": section.int("threads", minimum=1),
        }
        return {
            "prepare": {"size": [width, height]},
            "train": {**model, **runtime},
            "score": {**model, "map_cell": section.int("map_cell", minimum=1), **runtime},
        }

    def prepare(self, inputs: Inputs, settings: Settings, out: Path) -> None:
        from vad.methods.resized_frames import write_prepared

        count = write_prepared(inputs["frames"], out, settings, desc="dissociation frames")
        print(f"{self.name}: {count} training frames at {settings['size']} -> {out}")

    def train(
        self, prepared: Path, settings: Settings, model_dir: Path, workdir: Path
    ) -> list[dict]:
        import torch

        from vad.methods.dissociation.train import train_dissociation

        torch.set_num_threads(settings["threads"])
        return train_dissociation(prepared, settings, model_dir, workdir)

    def score(
        self,
        inputs: Inputs,
        prepared: Path,
        model_dir: Path,
        settings: Settings,
        videos: Collection[str] | None = None,
    ) -> ScoreStream:
        import torch

        from vad.methods.dissociation.score import score_stream

        torch.set_num_threads(settings["threads"])
        return score_stream(self.name, inputs["frames"], model_dir, settings, videos)

    def score_keys(self, inputs: Inputs, prepared: Path, settings: Settings) -> list[str]:
        """The frame cache's videos, training first: each one's scores depend on the model
        and its own frames only."""
        from vad.frame_cache import video_keys

        return video_keys(inputs["frames"])


DISSOCIATION = DissociationMethod()
