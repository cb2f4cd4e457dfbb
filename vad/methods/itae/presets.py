"""ITAE + Glow hyper-parameters per dataset (Cho, Kim, Lee, "Implementations"), and a CPU
configuration.

From the paper: clips of T = 16 frames, the appearance path every tau = 4th; frames resized to
256x256, except UCSD, whose original 240x360 frames are used with the latent map at 1/4 of the
input, multi-scale SSIM added to the reconstruction loss and the test reconstruction score the
maximum over 32x32 patches; Adam with cosine annealing; first step (ITAE) batch 2 / 4 / 8 and
learning rate 1e-3 / 1e-3 / 2e-4, second step (Glows) batch 20 / 32 / 16 and 5e-4 / 5e-4 / 1e-4
for UCSD / CUHK Avenue / ShanghaiTech; Glow K = 32, L = 3 (L = 1 for UCSD).

Not in the paper, our choices (DEVIATIONS.md, "ITAE + Glow"): the epochs of both steps, the
Glow's coupling width, lambda_L of eq. 9 (1), the frames between training and test clip starts,
and everything of `cpu`. ShanghaiTech's MOG background removal is not implemented.

`cpu`: 160x112 gray frames, the network's small configuration (network.ITAEConfig.cpu), 12 + 6
epochs of at most 256 clips, Glow K = 8, L = 1 of width 64, batch 8 / 32: the Ped2 budget of
`make benchmark` (ITAE.budgets), meant to train in well under an hour on 2 cores.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace


@dataclass(frozen=True)
class StepSettings:
    """One training step's Adam + cosine annealing: batch, learning rate, epochs."""

    batch_size: int
    learning_rate: float
    epochs: int


@dataclass(frozen=True)
class ITAEPreset:
    name: str
    size: tuple[int, int]  # (width, height) the clips are resized to
    network: str  # network.ITAEConfig: paper | paper_ucsd | cpu
    clip_length: int  # T
    tau: int  # the appearance path's frame interval
    ms_ssim_weight: float  # UCSD: 1 (MS-SSIM added), else 0
    patch: int  # test reconstruction score: max over patch x patch means (UCSD 32); 0: mean
    autoencoder: StepSettings
    glow: StepSettings
    glow_steps: int  # K
    glow_levels: int  # L
    glow_hidden: int  # coupling network width (Glow paper: 512)
    clips_per_epoch: int | None  # training clips drawn per epoch (None: all)
    train_stride: int  # frames between training clip starts
    test_stride: int  # frames between test clip starts (every frame's clips are averaged)
    lambda_l: float  # eq. 9

    def with_overrides(self, **values: object) -> ITAEPreset:
        """This preset with the non-None values replaced (params.yaml's `itae` overrides)."""
        return replace(self, **{k: v for k, v in values.items() if v is not None})


PAPER_COMMON = dict(
    clip_length=16,
    tau=4,
    glow_steps=32,
    glow_hidden=512,
    clips_per_epoch=None,
    train_stride=1,
    test_stride=1,
    lambda_l=1.0,
)

PRESETS: dict[str, ITAEPreset] = {
    "ped2": ITAEPreset(
        name="ped2",
        size=(360, 240),
        network="paper_ucsd",
        ms_ssim_weight=1.0,
        patch=32,
        autoencoder=StepSettings(2, 1e-3, 60),
        glow=StepSettings(20, 5e-4, 30),
        glow_levels=1,
        **PAPER_COMMON,
    ),
    "avenue": ITAEPreset(
        name="avenue",
        size=(256, 256),
        network="paper",
        ms_ssim_weight=0.0,
        patch=0,
        autoencoder=StepSettings(4, 1e-3, 60),
        glow=StepSettings(32, 5e-4, 30),
        glow_levels=3,
        **PAPER_COMMON,
    ),
    "shanghaitech": ITAEPreset(
        name="shanghaitech",
        size=(256, 256),
        network="paper",
        ms_ssim_weight=0.0,
        patch=0,
        autoencoder=StepSettings(8, 2e-4, 20),
        glow=StepSettings(16, 1e-4, 10),
        glow_levels=3,
        **PAPER_COMMON,
    ),
    "cpu": ITAEPreset(
        name="cpu",
        size=(160, 112),
        network="cpu",
        clip_length=16,
        tau=4,
        ms_ssim_weight=1.0,
        patch=16,
        autoencoder=StepSettings(8, 1e-3, 12),
        glow=StepSettings(32, 5e-4, 6),
        glow_steps=8,
        glow_levels=1,
        glow_hidden=64,
        clips_per_epoch=256,
        train_stride=2,
        test_stride=4,
        lambda_l=1.0,
    ),
}


def resolved_preset(settings: dict) -> ITAEPreset:
    """The preset named by a stage's settings with its params.yaml overrides applied."""
    preset = PRESETS[settings["preset"]]
    steps = []
    for i, step in enumerate((preset.autoencoder, preset.glow)):
        steps.append(
            StepSettings(
                batch_size=settings["batch_sizes"][i]
                if settings.get("batch_sizes")
                else step.batch_size,
                learning_rate=settings["learning_rates"][i]
                if settings.get("learning_rates")
                else step.learning_rate,
                epochs=settings["epochs"][i] if settings.get("epochs") else step.epochs,
            )
        )
    return preset.with_overrides(
        size=tuple(settings["size"]) if settings.get("size") else None,
        autoencoder=steps[0],
        glow=steps[1],
        **{key: settings.get(key) for key in (
            "clips_per_epoch", "train_stride", "test_stride", "glow_steps", "glow_levels",
            "glow_hidden", "lambda_l")},
    )  # fmt: skip


def preset_to_json(preset: ITAEPreset) -> dict:
    return asdict(preset)


def preset_from_json(values: dict) -> ITAEPreset:
    return ITAEPreset(
        **{
            **values,
            "size": tuple(values["size"]),
            "autoencoder": StepSettings(**values["autoencoder"]),
            "glow": StepSettings(**values["glow"]),
        }
    )
