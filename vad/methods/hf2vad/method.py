"""HF2-VAD behind the method interface (Liu et al. ICCV 2021): flow reconstruction by
ML-MemAE-SC and flow-guided frame prediction by a CVAE on the STCs of every object box (the
`stc` stage's stc.h5), fused per object by eq. 9.

prepare: the training videos' cubes copied from stc.h5 (prepared.py); train: ML-MemAE-SC, then
the CVAE on its reconstructed flows, then both fine-tuned (train.py), and every training cube's
errors for eq. 9's statistics; score: per object eq. 9, per frame the maximum over its objects,
maps holding each object's score over its box (score.py, errors.py).

params.yaml `hf2vad`: `preset` (ped2 | avenue | shanghaitech | cpu_small, presets.py) with
optional overrides of its epochs and batch sizes per training stage ([memae, cvae, finetune])
and of the networks' sizes; `score_parts` is read by the score stage only: `full` is eq. 9 with
the preset's (w_r, w_p), `flow` the flow reconstruction error alone and `frame` the frame
prediction error alone (Table 1's "w/o FP" and "w/o FR" rows as scores of one trained model), so
an ablation re-runs scoring, not training.

Documented CPU budget (`make benchmark DATA=ped2`): `cpu_small` at its full size and 10 + 3 + 1
epochs (49 minutes of training on Ped2's cubes on one core, presets.py); params.yaml's
defaults shrink it further for the synthetic scene; the paper's presets are GPU runs.
Settings import no torch, so that `python -m vad check-params` stays fast.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

from vad.config import Section, check_all
from vad.methods.base import Inputs, Method, Settings
from vad.scores import ScoreStream

PRESET_NAMES = ("ped2", "avenue", "shanghaitech", "cpu_small")  # = presets.PRESETS (tested)
SCORE_PARTS = ("full", "flow", "frame")
DEVICES = ["auto", "cpu", "cuda"]
STAGES = 3  # memae, cvae, finetune (presets.TRAINING_STAGES)
LEVELS = 4  # both networks' levels (paper App. A)
MODEL_FILE = "model.pt"
ERRORS_FILE = "train_errors.h5"
# cpu_small as presets.py defines it (tests/test_hf2vad_method.py checks), whatever the defaults
CPU_BUDGET_PED2 = {
    "hf2vad.preset": "cpu_small",
    "hf2vad.epochs": [10, 3, 1],
    "hf2vad.batch_sizes": [64, 64, 64],
    "hf2vad.memae_channels": [8, 16, 32, 64],
    "hf2vad.num_slots": 100,
    "hf2vad.cvae_channels": [16, 32, 32, 32],
}
KEYS = (
    "preset",
    "epochs",
    "batch_sizes",
    "memae_channels",
    "num_slots",
    "cvae_channels",
    "seed",
    "device",
    "threads",
    "score_parts",
    "map_cell",
)


def cvae_channels(section: Section) -> list[int] | None:
    """`cvae_channels`: null or LEVELS channel counts, the last two equal (the CVAE's two latent
    levels share their layers)."""
    channels = section.numbers("cvae_channels", LEVELS, int, 1)
    if channels is not None and channels[-1] != channels[-2]:
        raise section.error(
            "cvae_channels", f"must end with two equal counts (the latent levels), got {channels}"
        )
    return channels


class HF2VADMethod(Method):
    name = "hf2vad"
    package = "vad.methods.hf2vad"
    inputs = ("stc",)
    budgets = {"ped2": CPU_BUDGET_PED2}

    def settings(self, params: dict) -> dict[str, Settings]:
        section = Section(params, "hf2vad")
        return check_all(lambda: section.check_keys(KEYS), lambda: self._settings(section))[1]

    def _settings(self, section: Section) -> dict[str, Settings]:
        num_slots = section.values.get("num_slots")
        if num_slots is not None:
            num_slots = section.int("num_slots", minimum=1)
        preset = section.str("preset", list(PRESET_NAMES))
        runtime = {
            "device": section.str("device", DEVICES),
            "threads": section.int("threads", minimum=1),
        }
        return {
            "prepare": {},
            "train": {
                "preset": preset,
                "epochs": section.numbers("epochs", STAGES, int, 0),
                "batch_sizes": section.numbers("batch_sizes", STAGES, int, 1),
                "memae_channels": section.numbers("memae_channels", LEVELS, int, 1),
                "num_slots": num_slots,
                "cvae_channels": cvae_channels(section),
                "seed": section.int("seed", minimum=0),
                **runtime,
            },
            "score": {
                "preset": preset,
                "score_parts": section.str("score_parts", list(SCORE_PARTS)),
                "map_cell": section.int("map_cell", minimum=1),
                **runtime,
            },
        }

    def prepare(self, inputs: Inputs, settings: Settings, out: Path) -> None:
        from vad.methods.hf2vad.prepared import write_prepared

        count = write_prepared(inputs["stc"], out, settings)
        print(f"{self.name}: {count} training cubes -> {out}")

    def train(
        self, prepared: Path, settings: Settings, model_dir: Path, workdir: Path
    ) -> list[dict]:
        import torch

        from vad.cache import open_cache
        from vad.methods.hf2vad.model import save_network
        from vad.methods.hf2vad.prepared import cube_layout
        from vad.methods.hf2vad.presets import customized, fitted_to_cubes, get_preset
        from vad.methods.hf2vad.train import (
            PHASES,
            train_network,
            write_training_errors,
        )
        from vad.training import history_rows, resolve_device

        torch.set_num_threads(settings["threads"])
        preset = customized(
            get_preset(settings["preset"]),
            **{key: settings[key] for key in
               ("epochs", "batch_sizes", "memae_channels", "num_slots", "cvae_channels")},
        )  # fmt: skip
        with open_cache(prepared) as f:
            layout = cube_layout(f)
            preset = fitted_to_cubes(preset, layout.frames, layout.size, layout.channels)
            trained = train_network(
                f, preset, settings["seed"], workdir, resolve_device(settings["device"])
            )
        save_network(
            trained.network,
            model_dir / MODEL_FILE,
            extra={
                "preset": settings["preset"],
                "training": preset.to_json(),
                "statistics": trained.statistics.to_json(),
            },
        )
        write_training_errors(model_dir / ERRORS_FILE, trained.errors)
        for phase in PHASES:
            seconds = trained.history["epoch_seconds"][phase]
            print(f"{self.name}: {phase} {len(seconds)} epoch(s) in {sum(seconds):.1f} s")
        return history_rows(trained.history, PHASES)

    def score(
        self,
        inputs: Inputs,
        prepared: Path,
        model_dir: Path,
        settings: Settings,
        videos: Collection[str] | None = None,
    ) -> ScoreStream:
        import torch

        from vad.methods.hf2vad.errors import ErrorStatistics
        from vad.methods.hf2vad.model import load_network
        from vad.methods.hf2vad.presets import get_preset
        from vad.methods.hf2vad.score import score_stream, stream_weights
        from vad.training import resolve_device

        torch.set_num_threads(settings["threads"])
        device = resolve_device(settings["device"])
        network, extra = load_network(model_dir / MODEL_FILE, device)
        weights = stream_weights(get_preset(settings["preset"]), settings["score_parts"])
        attrs = {
            "preset": settings["preset"],
            "score_parts": settings["score_parts"],
            "weights": [weights.flow, weights.frame],
            "map_cell": settings["map_cell"],
        }
        return score_stream(
            self.name,
            network,
            ErrorStatistics(**extra["statistics"]),
            weights,
            inputs["stc"],
            model_dir / ERRORS_FILE,
            settings["map_cell"],
            device,
            attrs,
            videos,
        )

    def score_keys(self, inputs: Inputs, prepared: Path, settings: Settings) -> list[str]:
        """stc.h5's videos, training videos first: each one's scores depend on the model and
        its own cubes (or its training errors) only."""
        from vad.frame_cache import video_keys

        return video_keys(inputs["stc"])


HF2VAD = HF2VADMethod()
