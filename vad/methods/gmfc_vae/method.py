"""GMFC-VAE behind the method interface: one method per stream (paper Sec. III, Fig. 1).

`gmfc_vae_rgb` (appearance) trains on frame patches, `gmfc_vae_dynflow` (motion) on dynamic-flow
patches; both read params.yaml's `patches` and `gmfc_vae` sections, and the `fuse` stage combines
them by eq. 18 into the score set `gmfc_vae`. The appearance stream reads frames.h5 only, so a
dynamic-flow change re-runs the motion stream alone.

Documented CPU budget (`make benchmark DATA=ped2`, 2 cores): 20k patches per stream with 4 + 16
epochs (RESULTS.md: the measured budget curve, and the benchmark's wall times); params.yaml's
defaults (2k patches, 3 + 6 epochs) are `make repro`'s small budget; the paper's protocol (960k
patches, TV-L1, more epochs) is a GPU run.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

from vad.config import Section, check_all
from vad.methods.base import Inputs, Method, Settings
from vad.scores import ScoreStream

STATIC_PATCH_RULES = ("mode", "score")  # see vad.methods.gmfc_vae.score
DEVICES = ["auto", "cpu", "cuda"]
MODEL_FILE = "model.pt"
CPU_BUDGET_PED2 = {
    "patches.n_train": 20000, "gmfc_vae.pretrain_epochs": 4, "gmfc_vae.epochs": 16
}
# The Table I network (model.py) decodes every latent to a 28x28 patch whatever it encodes, so
# it trains and scores 28x28 patches only (tests/test_params.py checks the model agrees).
NETWORK_PATCH = 28
PATCHES_KEYS = (
    "size",
    "patch",
    "train_stride",
    "motion_threshold",
    "min_moving_pixels",
    "n_train",
    "seed",
)
GMFC_VAE_KEYS = (
    "K",
    "latent_dim",
    "mc_samples",
    "recon_variance",
    "pretrain_epochs",
    "epochs",
    "lr",
    "weight_decay",
    "batch_size",
    "seed",
    "device",
    "threads",
    "score_batch_size",
    "static_patches",
    "train_score_stride",
)


class GmfcVaeStream(Method):
    """GMFC-VAE trained on one stream (`rgb` frames or `dynflow` dynamic flows)."""

    package = "vad.methods.gmfc_vae"
    streaming = "vad.serve.scorers.gmfc_vae:gmfc_vae_scorer"
    budgets = {"ped2": CPU_BUDGET_PED2}
    sections = ("patches", "gmfc_vae")

    def __init__(self, stream: str):
        self.stream = stream
        self.name = f"gmfc_vae_{stream}"
        self.inputs = ("frames",) if stream == "rgb" else ("frames", "dynflow")

    def settings(self, params: dict) -> dict[str, Settings]:
        patches, gmfc = Section(params, "patches"), Section(params, "gmfc_vae")
        check_all(
            lambda: patches.check_keys(PATCHES_KEYS),
            lambda: gmfc.check_keys(GMFC_VAE_KEYS),
            lambda: _network_patch(patches),
        )
        patch = {
            "size": list(patches.size("size")),
            "patch": patches.int("patch"),
            "motion_threshold": patches.float("motion_threshold", minimum=0.0),
            "min_moving_pixels": patches.int("min_moving_pixels", minimum=0),
        }
        runtime = {
            "device": gmfc.str("device", DEVICES),
            "threads": gmfc.int("threads", minimum=1),
        }
        return {
            "prepare": {
                "stream": self.stream,
                **patch,
                "train_stride": patches.int("train_stride", minimum=1),
                "n_train": patches.int("n_train", minimum=1),
                "seed": patches.int("seed", minimum=0),
            },
            "train": {
                "stream": self.stream,
                **runtime,
                "model": {
                    "n_components": gmfc.int("K", minimum=1),
                    "latent_dim": gmfc.int("latent_dim", minimum=1),
                    "recon_variance": gmfc.float("recon_variance", above=0.0),
                    "mc_samples": gmfc.int("mc_samples", minimum=1),
                    "pretrain_epochs": gmfc.int("pretrain_epochs", minimum=0),
                    "epochs": gmfc.int("epochs", minimum=0),
                    "batch_size": gmfc.int("batch_size", minimum=1),
                    "lr": gmfc.float("lr", above=0.0),
                    "weight_decay": gmfc.float("weight_decay", minimum=0.0),
                    "seed": gmfc.int("seed", minimum=0),
                },
            },
            "score": {
                "stream": self.stream,
                **runtime,
                **patch,
                "static_patches": gmfc.str("static_patches", list(STATIC_PATCH_RULES)),
                "batch_size": gmfc.int("score_batch_size", minimum=1),
                "train_stride": gmfc.int("train_score_stride", minimum=1),
            },
        }

    def prepare(self, inputs: Inputs, settings: Settings, out: Path) -> None:
        from vad.methods.gmfc_vae.patches import (
            PatchSettings,
            extract_training_patches,
            sample_locations,
            write_patches,
        )

        patch_settings = PatchSettings(
            **{key: value for key, value in settings.items() if key != "stream"}
            | {"size": tuple(settings["size"])}
        )
        keys, locations = sample_locations(inputs["frames"], patch_settings)
        dynflow = inputs["dynflow"] if self.stream == "dynflow" else None
        patches = extract_training_patches(
            self.stream, inputs["frames"], dynflow, keys, locations, patch_settings
        )
        write_patches(out, patches, keys, locations, self.stream, patch_settings)
        print(f"{self.name}: {len(patches)} training patches -> {out}")

    def train(
        self, prepared: Path, settings: Settings, model_dir: Path, workdir: Path
    ) -> list[dict]:
        import torch

        from vad.launch import current_launch
        from vad.methods.gmfc_vae.patches import read_patches
        from vad.methods.gmfc_vae.train import (
            PHASES,
            GmfcTrainSettings,
            save_model,
            train_gmfc_vae,
        )
        from vad.training import history_rows

        torch.set_num_threads(settings["threads"])
        train_settings = GmfcTrainSettings(**settings["model"])
        model, history = train_gmfc_vae(
            read_patches(prepared), train_settings, workdir, settings["device"]
        )
        rows = history_rows(history, PHASES)
        if not current_launch().is_main:  # a distributed run: rank 0 writes and reports
            return rows
        save_model(
            model,
            model_dir / MODEL_FILE,
            extra={
                "stream": self.stream,
                "settings": train_settings.to_dict(),
                "gmm_init": history.get("gmm_init"),
                "collapse_events": history["collapse_events"],
            },
        )
        for phase in PHASES:
            seconds = history["epoch_seconds"][phase]
            print(f"{self.name}: {phase} {len(seconds)} epoch(s) in {sum(seconds):.1f} s")
        if history["collapse_events"]:
            print(
                f"{self.name}: {len(history['collapse_events'])} collapsed mixture component(s) "
                "re-initialised (see the model file's collapse_events)"
            )
        return rows

    def score(
        self,
        inputs: Inputs,
        prepared: Path,
        model_dir: Path,
        settings: Settings,
        videos: Collection[str] | None = None,
    ) -> ScoreStream:
        import torch

        from vad.methods.gmfc_vae.score import score_stream
        from vad.methods.gmfc_vae.train import load_model

        torch.set_num_threads(settings["threads"])
        return score_stream(
            load_model(model_dir / MODEL_FILE, settings["device"]),
            self.name,
            self.stream,
            inputs["frames"],
            inputs["dynflow"] if self.stream == "dynflow" else None,
            size=tuple(settings["size"]),
            patch=settings["patch"],
            train_stride=settings["train_stride"],
            batch_size=settings["batch_size"],
            device=settings["device"],
            static_patches=settings["static_patches"],
            motion_threshold=settings["motion_threshold"],
            min_moving_pixels=settings["min_moving_pixels"],
            videos=videos,
        )

    def score_keys(self, inputs: Inputs, prepared: Path, settings: Settings) -> list[str]:
        from vad.frame_cache import video_keys

        return video_keys(inputs["frames"])


def _network_patch(patches: Section) -> int:
    """`patches.patch`: the network's 28, and a divisor of both sides of `patches.size` (test
    patches tile the frame, `vad.methods.gmfc_vae.patches.scoring_grid`)."""
    patch = patches.int("patch", minimum=1)
    if patch != NETWORK_PATCH:
        raise patches.error(
            "patch",
            f"must be {NETWORK_PATCH} for GMFC-VAE: its Table I network takes "
            f"{NETWORK_PATCH}x{NETWORK_PATCH} patches (vad/methods/gmfc_vae/model.py), got {patch}",
        )
    width, height = patches.size("size")
    if width % patch or height % patch:
        raise patches.error(
            "size",
            f"[{width}, {height}] must be a multiple of 'patches.patch' ({patch}) in width and "
            "height: the test patches tile the frame",
        )
    return patch


GMFC_VAE_RGB = GmfcVaeStream("rgb")
GMFC_VAE_DYNFLOW = GmfcVaeStream("dynflow")
