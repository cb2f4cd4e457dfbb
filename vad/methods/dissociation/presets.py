"""Spatio-temporal dissociation hyper-parameters per dataset (Chang et al. 2022, Sec. 4.2 and
4.4), and a CPU configuration.

From the paper: frames resized to 256x256; T = 5 (the motion auto-encoder sees 4 consecutive
frames, the spatial one the first); K = 32 cluster centres for every dataset; Adam; first the
two auto-encoders without the cluster term (eqs. 3 and 6) at learning rate 1e-4 for 50 epochs
(UCSD Ped2) or 100 (Avenue, ShanghaiTech); then K-means on the concatenated representations
initialises the centres; then the alternating optimisation (eq. 12 for the auto-encoders, lr
1e-4 and 1e-5 from epoch 100; eq. 11 for the centres, lr 1e-5) for 100 epochs (Ped2) or 200.

Not in the paper, our choices (DEVIATIONS.md, "Spatio-temporal dissociation"): the batch size,
alpha of eq. 10, lambda_r of eq. 12, how many representations K-means is fitted on, a weight on
eq. 6's gradient term (the paper's 1 by default), and everything of `cpu`.

`cpu`: 160x112 frames, the small network (network.NetworkConfig.cpu), 20 + 10 epochs of at most
512 clips, batch 8, K-means on 20000 vectors: the Ped2 budget of `make benchmark`
(DISSOCIATION.budgets, with 2 threads), meant to train in well under an hour on 2 cores.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace


@dataclass(frozen=True)
class DissociationPreset:
    name: str
    size: tuple[int, int]  # (width, height) the frames are resized to
    network: str  # network.NetworkConfig: paper | cpu
    clip_length: int  # T: the motion input's T - 1 frames and the last frame (LIF)
    epochs: tuple[int, int]  # (auto-encoders alone, alternating with the centres)
    batch_size: int
    learning_rate: float  # the auto-encoders' Adam
    lr_drop_epoch: int  # alternating epoch from which the auto-encoders' rate is lr_after_drop
    lr_after_drop: float
    centre_learning_rate: float  # eq. 11's Adam on the centres
    clusters: int  # K; 0: no deep K-means (Table 2's rows without it)
    alpha: float  # eq. 10's soft-assignment sharpness
    lambda_cluster: float  # lambda_r of eq. 12
    kmeans_samples: int  # representation vectors the initial K-means is fitted on
    clips_per_epoch: int | None  # training clips drawn per epoch (None: all)
    train_stride: int  # frames between training clip starts
    gradient_weight: float = 1.0  # weight of eq. 6's gradient term (1: the paper's sum)

    def with_overrides(self, **values: object) -> DissociationPreset:
        """This preset with the non-None values replaced (params.yaml's overrides)."""
        return replace(self, **{k: v for k, v in values.items() if v is not None})


PAPER_COMMON = dict(
    size=(256, 256),
    network="paper",
    clip_length=5,
    batch_size=4,
    learning_rate=1e-4,
    lr_drop_epoch=100,
    lr_after_drop=1e-5,
    centre_learning_rate=1e-5,
    clusters=32,
    alpha=1.0,
    lambda_cluster=0.1,
    kmeans_samples=50_000,
    clips_per_epoch=None,
    train_stride=1,
)

PRESETS: dict[str, DissociationPreset] = {
    "ped2": DissociationPreset(name="ped2", epochs=(50, 100), **PAPER_COMMON),
    "avenue": DissociationPreset(name="avenue", epochs=(100, 200), **PAPER_COMMON),
    "shanghaitech": DissociationPreset(name="shanghaitech", epochs=(100, 200), **PAPER_COMMON),
    "cpu": DissociationPreset(
        **{
            **PAPER_COMMON,
            "size": (160, 112),
            "network": "cpu",
            "batch_size": 8,
            "kmeans_samples": 20_000,
            "clips_per_epoch": 512,
            "train_stride": 2,
        },
        name="cpu",
        epochs=(20, 10),
    ),
}

OVERRIDABLE = (
    "size", "epochs", "batch_size", "learning_rate", "centre_learning_rate", "clusters",
    "alpha", "lambda_cluster", "kmeans_samples", "clips_per_epoch", "train_stride",
    "gradient_weight",
)  # fmt: skip


def resolved_preset(settings: dict) -> DissociationPreset:
    """The preset named by a stage's settings with its params.yaml overrides applied."""
    values = {key: settings.get(key) for key in OVERRIDABLE}
    for key in ("size", "epochs"):
        if values[key] is not None:
            values[key] = tuple(values[key])
    return PRESETS[settings["preset"]].with_overrides(**values)


def preset_to_json(preset: DissociationPreset) -> dict:
    return asdict(preset)


def preset_from_json(values: dict) -> DissociationPreset:
    return DissociationPreset(
        **{**values, "size": tuple(values["size"]), "epochs": tuple(values["epochs"])}
    )
