"""ITAE + Glow behind the method interface (Cho, Kim, Lee): a two-path (appearance / motion)
3D auto-encoder reconstructs clips of T frames of the frame cache, and a Glow per path models
the density of its pooled latent features. The one seed method without optical flow.

prepare: the training videos' frames at the model's size (prepared.py); train: the ITAE, then
the two Glows on the frozen encoders' features (train.py), then every training clip's scores
for eq. 9's statistics; score: eq. 7's reconstruction error R per frame (UCSD: the maximum
over patches), eq. 8's NLL L, eq. 9 combined with training statistics (score.py); the
per-pixel error as score maps.

params.yaml `itae`: `preset` (ped2 | avenue | shanghaitech: the paper's, for a GPU | cpu,
presets.py) with optional overrides; `score_parts` is read by the score stage only: `full`
(eq. 9), `reconstruction` (ITAE alone, Table 2's "ITAE" row) or `likelihood` (the Glows'
eq. 8 alone), so an ablation re-runs scoring, not training. Settings import no torch.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

from vad.config import ConfigError, Section, check_all
from vad.methods.base import Inputs, Method, Settings
from vad.scores import ScoreStream

PRESET_NAMES = ("ped2", "avenue", "shanghaitech", "cpu")  # = presets.PRESETS (tested)
SCORE_PARTS = ("full", "reconstruction", "likelihood")
DEVICES = ["auto", "cpu", "cuda"]
MODEL_FILE = "model.pt"
TRAIN_SCORES_FILE = "train_scores.h5"
CPU_BUDGET_PED2 = {"itae.preset": "cpu", "itae.epochs": [12, 6], "itae.clips_per_epoch": 256}
KEYS = (
    "preset",
    "size",
    "epochs",
    "batch_sizes",
    "learning_rates",
    "clips_per_epoch",
    "train_stride",
    "test_stride",
    "glow_steps",
    "glow_levels",
    "glow_hidden",
    "lambda_l",
    "score_parts",
    "map_cell",
    "seed",
    "device",
    "threads",
)


STEP_NAMES = "[autoencoder, glow]"


def optional_int(section: Section, key: str, minimum: int) -> int | None:
    return None if section.values.get(key) is None else section.int(key, minimum=minimum)


class ITAEMethod(Method):
    name = "itae"
    package = "vad.methods.itae"
    inputs = ("frames",)
    budgets = {"ped2": CPU_BUDGET_PED2}

    def settings(self, params: dict) -> dict[str, Settings]:
        section = Section(params, "itae")
        return check_all(lambda: section.check_keys(KEYS), lambda: self._settings(section))[1]

    def _settings(self, section: Section) -> dict[str, Settings]:
        from vad.methods.itae.presets import PRESETS

        preset = section.str("preset", list(PRESET_NAMES))
        size = section.values.get("size")
        if size is not None:
            size = section.size("size")
        lambda_l = section.values.get("lambda_l")
        if lambda_l is not None:
            lambda_l = section.float("lambda_l", minimum=0.0)
        overrides = {
            "size": list(size) if size is not None else None,
            "epochs": section.numbers("epochs", 2, int, 0, STEP_NAMES),
            "batch_sizes": section.numbers("batch_sizes", 2, int, 1, STEP_NAMES),
            "learning_rates": section.numbers("learning_rates", 2, float, 0.0, STEP_NAMES),
            "clips_per_epoch": optional_int(section, "clips_per_epoch", 1),
            "train_stride": optional_int(section, "train_stride", 1),
            "test_stride": optional_int(section, "test_stride", 1),
            "glow_steps": optional_int(section, "glow_steps", 1),
            "glow_levels": optional_int(section, "glow_levels", 1),
            "glow_hidden": optional_int(section, "glow_hidden", 1),
            "lambda_l": lambda_l,
        }
        chosen = PRESETS[preset]
        width, height = overrides["size"] or chosen.size
        levels = overrides["glow_levels"] or chosen.glow_levels
        runtime = {
            "device": section.str("device", DEVICES),
            "threads": section.int("threads", minimum=1),
        }
        if width % 8 or height % 8:
            raise ConfigError(
                f"params.yaml: 'itae.size' must be multiples of 8 (the encoders halve it up "
                f"to 3 times), got {[width, height]}"
            )
        return {
            "prepare": {"size": [width, height]},
            "train": {
                "preset": preset,
                **overrides,
                "glow_levels": levels,
                "seed": section.int("seed", minimum=0),
                **runtime,
            },
            "score": {
                "preset": preset,
                **overrides,
                "glow_levels": levels,
                "score_parts": section.str("score_parts", list(SCORE_PARTS)),
                "map_cell": section.int("map_cell", minimum=1),
                **runtime,
            },
        }

    def prepare(self, inputs: Inputs, settings: Settings, out: Path) -> None:
        from vad.methods.resized_frames import write_prepared

        count = write_prepared(inputs["frames"], out, settings, desc="itae frames")
        print(f"{self.name}: {count} training frames at {settings['size']} -> {out}")

    def train(
        self, prepared: Path, settings: Settings, model_dir: Path, workdir: Path
    ) -> list[dict]:
        import torch

        from vad.methods.itae.train import train_itae

        torch.set_num_threads(settings["threads"])
        return train_itae(prepared, settings, model_dir, workdir)

    def score(
        self,
        inputs: Inputs,
        prepared: Path,
        model_dir: Path,
        settings: Settings,
        videos: Collection[str] | None = None,
    ) -> ScoreStream:
        import torch

        from vad.methods.itae.score import score_stream

        torch.set_num_threads(settings["threads"])
        return score_stream(self.name, inputs["frames"], model_dir, settings, videos)

    def score_keys(self, inputs: Inputs, prepared: Path, settings: Settings) -> list[str]:
        """The frame cache's videos, training first: each one's scores depend on the model
        and its own frames (or the training scores kept with the model) only."""
        from vad.frame_cache import video_keys

        return video_keys(inputs["frames"])


ITAE = ITAEMethod()
