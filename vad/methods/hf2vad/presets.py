"""HF2-VAD's hyper-parameters per dataset (Liu et al. ICCV 2021), and a small CPU configuration.

Sources, abbreviated in the comments:
  paper      the ICCV 2021 paper (Sec. 4.2 "Implementation details", Appendix A);
  memae_cfg  LiUzHiAn/hf2vad cfgs/ml_memAE_sc_cfg.yaml (ML-MemAE-SC training, Ped2);
  cvae_cfg   LiUzHiAn/hf2vad cfgs/cfg.yaml (CVAE training with ML-MemAE-SC frozen, Ped2);
  ft_cfg     LiUzHiAn/hf2vad cfgs/finetune_cfg.yaml (joint fine-tuning, Ped2);
  code       the released Python (models/*.py, *_train.py, finetune.py).
The repository ships configurations for Ped2 only; Avenue and ShanghaiTech take the paper's
per-dataset values and Ped2's configuration for everything the paper does not give per dataset.
Where paper and configuration disagree, the configuration of the stage it names wins and the
comment says so.

`cpu_small` is Ped2's preset shrunk (ML-MemAE-SC channels / 4 and 100 slots, CVAE channels
/ 4, batch 64, 10 + 3 + 1 epochs) to train the three stages on Ped2's ~24k training cubes in
under an hour on one CPU core: 49 min measured (RESULTS.md, `--table hf2vad`), epochs of 60 s
(ML-MemAE-SC), 508-584 s (CVAE, the frozen ML-MemAE-SC reconstructing its 4 flows) and 648-672 s
(joint fine-tuning) with two such runs side by side on 2 cores, one torch thread each.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from vad.methods.hf2vad.cvae import FlowGuidedCVAE
from vad.methods.hf2vad.memae import MLMemAESC


@dataclass(frozen=True)
class MemAESettings:
    flow_channels: int = 2  # paper App. A: input flow (32, 32, 2); memae_cfg motion_channels
    num_flows: int = 1  # memae_cfg num_flows; code mem_cvae.py: one flow at a time
    input_size: int = 32  # paper Sec. 4.2: STCs resized to 32x32
    channels: tuple[int, ...] = (32, 64, 128, 256)  # paper App. A; memae_cfg feature_root 32
    memory_levels: tuple[int, ...] = (1, 2, 3)  # paper Sec. 4.2: 3 memories; memae_cfg mem_usage
    num_slots: int = 2000  # paper Sec. 4.2 / App. A "2K"; memae_cfg num_slots
    shrink_threshold: float = 0.0005  # memae_cfg shrink_thres (= 1 / num_slots)
    similarity: str = "dot"  # code ml_memAE_sc.py: F.linear(query, memory) then softmax
    addressing: str = "map"  # code ml_memAE_sc.py: a sample's whole feature map is one query

    def build(self, seed: int = 0) -> MLMemAESC:
        return MLMemAESC(**asdict(self), seed=seed)


@dataclass(frozen=True)
class CVAESettings:
    image_channels: int = 3  # code: frames read as 3-channel BGR (cv2.imread), Ped2 included
    history: int = 4  # paper Sec. 4.2: t = 4; cvae_cfg clip_hist
    flow_channels: int = 2  # cvae_cfg motion_channels
    num_flows: int = 4  # cvae_cfg num_flows; paper App. C: all 4 flows reconstructed
    input_size: int = 32  # paper Sec. 4.2; cvae_cfg spatial_size
    channels: tuple[int, ...] = (64, 128, 128, 128)  # paper App. A; cvae_cfg nf_start, nf_max
    dropout: float = 0.1  # cvae_cfg dropout_prob
    learn_variance: bool = False  # code vunet.py/loss.py: unit-variance latents

    def build(self, seed: int = 0) -> FlowGuidedCVAE:
        return FlowGuidedCVAE(**asdict(self), seed=seed)


@dataclass(frozen=True)
class OptimizerSettings:
    epochs: int
    batch_size: int
    learning_rate: float = 1e-4  # paper Sec. 4.2; memae_cfg, cvae_cfg lr
    betas: tuple[float, float] = (0.9, 0.999)  # paper Sec. 4.2 (Adam)
    eps: float = 1e-7  # code *_train.py, finetune.py: optim.Adam(..., eps=1e-7)
    decay_every: int = 50  # paper Sec. 4.2: lr x 0.8 every 50 epochs; code StepLR(50, 0.8)
    decay_factor: float = 0.8


@dataclass(frozen=True)
class LossWeights:
    reconstruction: float = 1.0  # lambda_recon, paper Sec. 4.2; memae_cfg lam_recon
    entropy: float = 2e-4  # lambda_ent, paper Sec. 4.2; memae_cfg lam_sparse
    cvae: float = 1.0  # lambda_CVAE, paper Sec. 4.2; cvae_cfg lam_kl = lam_frame = 1
    gradient: float = 1.0  # lambda_gd, paper Sec. 4.2; cvae_cfg lam_grad


@dataclass(frozen=True)
class ScoreSettings:
    flow_weight: float  # w_r of eq. 9, paper Sec. 4.2
    frame_weight: float  # w_p of eq. 9
    median_window: int = 17  # paper Sec. 4.2: frame scores median-filtered over 17 frames


@dataclass(frozen=True)
class HF2VADPreset:
    memae: MemAESettings
    cvae: CVAESettings
    memae_training: OptimizerSettings  # stage 1: ML-MemAE-SC alone
    cvae_training: OptimizerSettings  # stage 2: CVAE on the frozen ML-MemAE-SC's flows
    finetune_training: OptimizerSettings  # stage 3: both, all losses
    losses: LossWeights
    scoring: ScoreSettings

    def to_json(self) -> dict:
        return asdict(self)


PED2 = HF2VADPreset(
    memae=MemAESettings(),
    # The project's Ped2 frames are gray (1 channel); the released code replicates them to 3.
    cvae=CVAESettings(image_channels=1),
    # memae_cfg: batch 256, 80 epochs (the paper's "(128, 80)" for Ped2 is used for the CVAE).
    memae_training=OptimizerSettings(epochs=80, batch_size=256),
    cvae_training=OptimizerSettings(epochs=80, batch_size=128),  # paper Sec. 4.2; cvae_cfg
    # ft_cfg: lr 8e-5, batch 128, 80 epochs.
    finetune_training=OptimizerSettings(epochs=80, batch_size=128, learning_rate=8e-5),
    losses=LossWeights(),
    scoring=ScoreSettings(flow_weight=1.0, frame_weight=0.1),  # paper Sec. 4.2; cvae_cfg w_r, w_p
)

AVENUE = HF2VADPreset(
    memae=MemAESettings(),  # paper Sec. 4.2: 3 memories, as Ped2
    cvae=CVAESettings(image_channels=3),
    memae_training=OptimizerSettings(epochs=80, batch_size=128),  # paper Sec. 4.2: (128, 80)
    cvae_training=OptimizerSettings(epochs=80, batch_size=128),
    # Fine-tuning lr: Ped2's ft_cfg value (the paper gives none).
    finetune_training=OptimizerSettings(epochs=80, batch_size=128, learning_rate=8e-5),
    losses=LossWeights(),
    scoring=ScoreSettings(flow_weight=0.05, frame_weight=1.0),  # paper Sec. 4.2
)

SHANGHAITECH = HF2VADPreset(
    # Paper Sec. 4.2: 2 memories. Which two is not released; the paper's two-memory variant
    # (Fig. 4 (e)) has the bottleneck memory and the next level's memory + skip: levels 2, 3.
    memae=MemAESettings(memory_levels=(2, 3)),
    cvae=CVAESettings(image_channels=3),
    memae_training=OptimizerSettings(epochs=50, batch_size=256),  # paper Sec. 4.2: (256, 50)
    cvae_training=OptimizerSettings(epochs=50, batch_size=256),
    finetune_training=OptimizerSettings(epochs=50, batch_size=256, learning_rate=8e-5),
    losses=LossWeights(),
    scoring=ScoreSettings(flow_weight=0.02, frame_weight=1.0),  # paper Sec. 4.2
)

CPU_SMALL = replace(
    PED2,
    memae=replace(PED2.memae, channels=(8, 16, 32, 64), num_slots=100, shrink_threshold=1.0 / 100),
    cvae=replace(PED2.cvae, channels=(16, 32, 32, 32)),
    memae_training=OptimizerSettings(epochs=10, batch_size=64),
    cvae_training=OptimizerSettings(epochs=3, batch_size=64),
    finetune_training=OptimizerSettings(epochs=1, batch_size=64, learning_rate=8e-5),
)

PRESETS: dict[str, HF2VADPreset] = {
    "ped2": PED2,
    "avenue": AVENUE,
    "shanghaitech": SHANGHAITECH,
    "cpu_small": CPU_SMALL,
}


def get_preset(name: str) -> HF2VADPreset:
    """The preset called `name`; ValueError naming the known ones otherwise."""
    if name not in PRESETS:
        raise ValueError(f"unknown HF2-VAD preset {name!r}; known: {', '.join(sorted(PRESETS))}")
    return PRESETS[name]


TRAINING_STAGES = ("memae", "cvae", "finetune")  # Sec. 4.2's order, as in params.yaml lists


def customized(
    preset: HF2VADPreset,
    epochs: list[int] | None = None,
    batch_sizes: list[int] | None = None,
    memae_channels: list[int] | None = None,
    num_slots: int | None = None,
    cvae_channels: list[int] | None = None,
) -> HF2VADPreset:
    """`preset` with params.yaml's overrides (None keeps the preset's value): epochs and batch
    sizes per training stage (TRAINING_STAGES order), the networks' channels, and the memory
    slots (the shrinkage threshold follows as 1 / slots, as in memae_cfg)."""
    trainings = [preset.memae_training, preset.cvae_training, preset.finetune_training]
    if epochs is not None:
        trainings = [replace(t, epochs=int(e)) for t, e in zip(trainings, epochs, strict=True)]
    if batch_sizes is not None:
        trainings = [
            replace(t, batch_size=int(b)) for t, b in zip(trainings, batch_sizes, strict=True)
        ]
    memae, cvae = preset.memae, preset.cvae
    if memae_channels is not None:
        memae = replace(memae, channels=tuple(int(c) for c in memae_channels))
    if num_slots is not None:
        memae = replace(memae, num_slots=int(num_slots), shrink_threshold=1.0 / num_slots)
    if cvae_channels is not None:
        cvae = replace(cvae, channels=tuple(int(c) for c in cvae_channels))
    return replace(
        preset,
        memae=memae,
        cvae=cvae,
        memae_training=trainings[0],
        cvae_training=trainings[1],
        finetune_training=trainings[2],
    )


def fitted_to_cubes(preset: HF2VADPreset, frames: int, size: int, channels: int) -> HF2VADPreset:
    """`preset` with the networks' input shapes taken from the STCs (params.yaml `stc`,
    `frames.color`): `frames` frames of `size` x `size` pixels and `channels` channels, i.e.
    t = frames - 1 past frames and flows (the paper's t = 4, 32 px; colour on Avenue and
    ShanghaiTech, gray Ped2 as this project stores it)."""
    return replace(
        preset,
        memae=replace(preset.memae, input_size=size),
        cvae=replace(
            preset.cvae,
            image_channels=channels,
            history=frames - 1,
            num_flows=frames - 1,
            input_size=size,
        ),
    )
