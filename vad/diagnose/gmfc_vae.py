"""GMFC-VAE diagnosis (issue #12): how well each stream's model tells anomalous test patches from
normal ones, by the score the method uses and by the two it could have used.

Per stream (`rgb`, `dynflow`): the test patches of the scoring grid (`patches.size` cut into
`patches.patch` cells, 15x10 at 420x280; vad.methods.gmfc_vae.patches.scoring_grid) that move
by the score stage's own rule (vad.methods.gmfc_vae.score.moving_patches, the frame-difference
test that also selects training patches), labelled from the ground-truth masks
(vad.diagnose.patch_labels), at most `max_patches` of each class drawn with `seed`. For each,
the patch-level ROC AUC of anomalous against normal patches of:

- energy: the sample energy (eq. 17) of the encoder mean, what the method scores with
  (vad.methods.gmfc_vae.score.energies);
- reconstruction: the squared error, summed over the patch's pixels in [0, 1], between the patch
  and the decoder's output for the encoder mean;
- neg_elbo: the negative ELBO (eq. 14: reconstruction + KL to the mixture prior), the training
  loss of each patch: the model's own `loss` on that patch alone, with `elbo_samples` draws
  of z fixed by `seed`;
- kl: the KL part of neg_elbo alone (kl_latent + kl_cluster).

The model, the grid and the moving rule are those of the run: data/models/gmfc_vae_<stream>
and data/settings/gmfc_vae_<stream>/score.json (what score@gmfc_vae_<stream> read).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch.func import vmap

from vad.cache import atomic_output, cache_digest
from vad.diagnose.figures import plot_energy_histograms, plot_extremes
from vad.diagnose.patch_labels import ANOMALOUS, CLASS_NAMES, NORMAL, cell_coverage, patch_classes
from vad.diagnose.ranking import separation_auc
from vad.frame_cache import load_ground_truth, load_masks, video_keys
from vad.methods.gmfc_vae.method import MODEL_FILE
from vad.methods.gmfc_vae.model import GMFCVAE
from vad.methods.gmfc_vae.patches import scoring_grid, stream_frames
from vad.methods.gmfc_vae.score import energies, mode_energy, moving_patches
from vad.methods.gmfc_vae.train import load_model, load_model_extra, to_tensor
from vad.methods.stage_files import read_stage_settings
from vad.progress import progress as progress_bar
from vad.training import resolve_device

METHOD = "gmfc_vae"
STREAMS = ("rgb", "dynflow")
SCORES = {
    "energy": "sample energy of the encoder mean (eq. 17), the method's score",
    "reconstruction": "sum of squared errors of the decoded encoder mean (pixels in [0, 1])",
    "neg_elbo": "negative ELBO (eq. 14) of the patch alone, the model's own loss",
    "kl": "KL part of neg_elbo (kl_latent + kl_cluster)",
}
QUANTILES = (0.05, 0.5, 0.95)
BATCH = 256  # patches per forward pass (the negative ELBO decodes elbo_samples latents each)
REPORT = f"{METHOD}.json"
HISTOGRAMS = f"{METHOD}_energy_hist.png"
EXTREMES = f"{METHOD}_extremes.png"


@dataclass(frozen=True)
class DiagnosisInputs:
    """The caches and run folders read (default paths: `vad diagnose --help`)."""

    frames: Path
    dynflow: Path
    ground_truth: Path
    models: Path  # holds gmfc_vae_<stream>/model.pt (train@gmfc_vae_<stream>)
    settings: Path  # holds gmfc_vae_<stream>/score.json (the settings stage)


@dataclass(frozen=True)
class DiagnosisOptions:
    mask_fraction: float = 0.1  # a patch is anomalous when the mask covers >= this of it
    max_patches: int = 5000  # per class and stream, drawn with `seed`
    seed: int = 0
    elbo_samples: int = 4  # draws of z per patch for the negative ELBO
    extremes: int = 8  # highest- and lowest-energy patches shown per stream

    def __post_init__(self) -> None:
        if not 0 < self.mask_fraction <= 1:
            raise ValueError(f"--mask-fraction must be in (0, 1], got {self.mask_fraction}")
        for name in ("max_patches", "elbo_samples", "extremes"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1")
        if self.seed < 0:
            raise ValueError(f"--seed must be >= 0, got {self.seed}")


@dataclass
class LabelledPatches:
    """The moving, unambiguous test patches of the grid: where they are and their class."""

    keys: list[str]  # test videos with masks, in the frame cache's order
    frame_counts: list[int]  # frames of each
    locations: np.ndarray  # (N, 4) int64: index into keys, frame, row, col
    classes: np.ndarray  # (N,) ANOMALOUS or NORMAL
    counts: dict  # {"moving" | "static": {"anomalous" | "normal" | "ambiguous": n}}
    without_masks: list[str]  # test videos left out: no pixel-level ground truth
    grid: tuple[int, int]  # (rows, cols)


def _require(path: Path, what: str, stage: str) -> None:
    if not path.exists():
        raise FileNotFoundError(f"{path}: {what} not found; it is made by `dvc repro {stage}`")


def check_inputs(inputs: DiagnosisInputs) -> None:
    """Every file read exists, or a FileNotFoundError naming it and the stage that makes it."""
    _require(inputs.frames, "frame cache", "frames")
    _require(inputs.ground_truth, "ground-truth cache", "frames")
    _require(inputs.dynflow, "dynamic-flow cache", "dynamic_flow")
    for stream in STREAMS:
        method = f"{METHOD}_{stream}"
        _require(inputs.models / method, "model folder", f"train@{method}")
        _require(inputs.models / method / MODEL_FILE, "model file", f"train@{method}")
        _require(inputs.settings / method / "score.json", "score settings", "settings")


def label_test_patches(
    frames_path: Path,
    ground_truth_path: Path,
    settings: dict,
    mask_fraction: float,
    progress: bool = True,
) -> LabelledPatches:
    """Class of every scoring-grid patch of the test videos with masks; keeps the moving
    anomalous and moving normal ones, counts all."""
    size, patch = tuple(settings["size"]), settings["patch"]
    rows, cols = size[1] // patch, size[0] // patch
    _, with_masks = load_ground_truth(ground_truth_path)
    counts = {motion: {name: 0 for name in CLASS_NAMES.values()} for motion in ("moving", "static")}
    keys, frame_counts, locations, classes, without_masks = [], [], [], [], []
    for key in progress_bar(
        video_keys(frames_path, "test"), desc="label patches", unit="video", disable=not progress
    ):
        name = key.split("/", 1)[1]
        if name not in with_masks:
            without_masks.append(name)
            continue
        moving = moving_patches(
            frames_path,
            key,
            size,
            patch,
            settings["motion_threshold"],
            settings["min_moving_pixels"],
        )
        masks = load_masks(ground_truth_path, name)
        if len(masks) != len(moving):
            raise ValueError(
                f"{ground_truth_path}: video {name!r} has {len(masks)} masks for "
                f"{len(moving)} frames in {frames_path}"
            )
        video_classes = patch_classes(cell_coverage(masks, rows, cols), mask_fraction)
        for motion, selected in (("moving", moving), ("static", ~moving)):
            for value, class_name in CLASS_NAMES.items():
                counts[motion][class_name] += int(
                    np.count_nonzero(selected & (video_classes == value))
                )
        frame, row, col = np.nonzero(
            moving & ((video_classes == ANOMALOUS) | (video_classes == NORMAL))
        )
        locations.append(np.stack([np.full_like(frame, len(keys)), frame, row, col], axis=1))
        classes.append(video_classes[frame, row, col])
        keys.append(key)
        frame_counts.append(len(moving))
    if not keys:
        raise ValueError(
            f"{ground_truth_path}: no test video has pixel-level masks; patch labels need them"
        )
    return LabelledPatches(
        keys=keys,
        frame_counts=frame_counts,
        locations=np.concatenate(locations).astype(np.int64),
        classes=np.concatenate(classes).astype(np.int8),
        counts=counts,
        without_masks=without_masks,
        grid=(rows, cols),
    )


def sample_patches(classes: np.ndarray, max_patches: int, seed: int) -> np.ndarray:
    """Sorted indices of at most `max_patches` anomalous and `max_patches` normal patches,
    drawn without replacement by a generator seeded with `seed` (anomalous first)."""
    rng = np.random.default_rng(seed)
    chosen = []
    for value in (ANOMALOUS, NORMAL):
        pool = np.flatnonzero(classes == value)
        chosen.append(rng.choice(pool, size=min(max_patches, len(pool)), replace=False))
    return np.sort(np.concatenate(chosen))


def extract_patches(
    stream: str,
    inputs: DiagnosisInputs,
    labelled: LabelledPatches,
    locations: np.ndarray,
    settings: dict,
    progress: bool = True,
) -> np.ndarray:
    """(N, patch, patch, 3) uint8 grid patches of one stream at `locations`."""
    patch = settings["patch"]
    out = np.empty((len(locations), patch, patch, 3), np.uint8)
    for index, key in enumerate(
        progress_bar(labelled.keys, desc=f"{stream} patches", unit="video", disable=not progress)
    ):
        rows = np.flatnonzero(locations[:, 0] == index)
        if len(rows) == 0:
            continue
        data = stream_frames(stream, inputs.frames, inputs.dynflow, key, tuple(settings["size"]))
        if len(data) != labelled.frame_counts[index]:
            source = inputs.frames if stream == "rgb" else inputs.dynflow
            raise ValueError(
                f"{source}: video {key!r} has {len(data)} {stream} frames, "
                f"{labelled.frame_counts[index]} in {inputs.frames}"
            )
        _, frame, row, col = locations[rows].T
        out[rows] = scoring_grid(data, patch)[frame, row, col]
    return out


@torch.no_grad()
def patch_scores(
    model: GMFCVAE,
    patches: np.ndarray,
    elbo_samples: int,
    seed: int,
    device: str,
    score_batch_size: int = 2000,
) -> dict[str, np.ndarray]:
    """Each score of SCORES for every patch, float64 (N,). The negative ELBO's draws come from
    one generator seeded with `seed`, in patch order, so they do not depend on the batching."""
    torch_device = resolve_device(device)
    model = model.to(torch_device).eval()
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn((elbo_samples, len(patches), model.latent_dim), generator=generator)

    def loss_terms(x: torch.Tensor, eps: torch.Tensor) -> dict[str, torch.Tensor]:
        return model.loss(x[None], eps=eps[:, None])[1]  # eq. 14 of one patch

    per_patch_loss = vmap(loss_terms, in_dims=(0, 1))
    scores = {"energy": energies(model, patches, score_batch_size, torch_device)}
    parts: dict[str, list[np.ndarray]] = {"reconstruction": [], "neg_elbo": [], "kl": []}
    for start in range(0, len(patches), BATCH):
        x = to_tensor(patches[start : start + BATCH], torch_device)
        decoded = model.decode(model.encode_mean(x))
        parts["reconstruction"].append((x - decoded).pow(2).flatten(1).sum(1).cpu().numpy())
        terms = per_patch_loss(x, noise[:, start : start + BATCH].to(torch_device))
        parts["neg_elbo"].append(terms["loss"].cpu().numpy())
        parts["kl"].append((terms["kl_latent"] + terms["kl_cluster"]).cpu().numpy())
    for name, values in parts.items():
        scores[name] = np.concatenate(values).astype(np.float64)
    return scores


def _summary(values: np.ndarray) -> dict:
    if len(values) == 0:
        return {"mean": None, **{f"q{round(q * 100):02d}": None for q in QUANTILES}}
    return {
        "mean": float(values.mean()),
        **{f"q{round(q * 100):02d}": float(np.quantile(values, q)) for q in QUANTILES},
    }


def _file_md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _label_key(settings: dict) -> tuple:
    return (
        tuple(settings["size"]),
        settings["patch"],
        settings["motion_threshold"],
        settings["min_moving_pixels"],
    )


def diagnose_stream(
    stream: str,
    inputs: DiagnosisInputs,
    options: DiagnosisOptions,
    settings: dict,
    labelled: LabelledPatches,
    progress: bool = True,
) -> tuple[dict, dict]:
    """One stream's report entry, and what its figures show (energies by class, extremes)."""
    method = f"{METHOD}_{stream}"
    model_path = inputs.models / method / MODEL_FILE
    extra = load_model_extra(model_path)
    if extra.get("stream") != stream:
        raise ValueError(
            f"{model_path}: holds a model of stream {extra.get('stream')!r}, not {stream!r}"
        )
    torch.set_num_threads(settings["threads"])
    model = load_model(model_path, settings["device"])
    chosen = sample_patches(labelled.classes, options.max_patches, options.seed)
    classes = labelled.classes[chosen]
    patches = extract_patches(
        stream, inputs, labelled, labelled.locations[chosen], settings, progress
    )
    scores = patch_scores(
        model,
        patches,
        options.elbo_samples,
        options.seed,
        settings["device"],
        settings["batch_size"],
    )
    anomalous, normal = classes == ANOMALOUS, classes == NORMAL
    order = np.argsort(scores["energy"], kind="stable")
    shown = min(options.extremes, len(order))
    entry = {
        "model": {
            "path": str(model_path),
            "md5": _file_md5(model_path),
            "config": model.config,
            "train_settings": extra.get("settings"),
            "collapse_events": len(extra.get("collapse_events") or []),
        },
        "score_settings": {
            "path": str(inputs.settings / method / "score.json"),
            **{
                key: settings[key]
                for key in ("size", "patch", "motion_threshold", "min_moving_pixels")
            },
            "static_patches": settings["static_patches"],
        },
        "grid": {"rows": labelled.grid[0], "cols": labelled.grid[1]},
        "mode_energy": mode_energy(model),
        "counts": labelled.counts,
        "sampled": {"anomalous": int(anomalous.sum()), "normal": int(normal.sum())},
        "auc": {
            name: separation_auc(values[normal], values[anomalous])
            for name, values in scores.items()
        },
        "summary": {
            name: {"anomalous": _summary(values[anomalous]), "normal": _summary(values[normal])}
            for name, values in scores.items()
        },
    }
    energy = scores["energy"]
    figure_data = {
        "normal": energy[normal],
        "anomalous": energy[anomalous],
        "auc": entry["auc"]["energy"],
        "highest": [(patches[i], energy[i], bool(anomalous[i])) for i in order[::-1][:shown]],
        "lowest": [(patches[i], energy[i], bool(anomalous[i])) for i in order[:shown]],
    }
    return entry, figure_data


def diagnose_gmfc_vae(
    inputs: DiagnosisInputs, options: DiagnosisOptions, out_dir: Path, progress: bool = True
) -> dict:
    """Write out_dir/gmfc_vae.json and its two figures (each atomically, the JSON last);
    return the report."""
    check_inputs(inputs)
    streams, figure_data, labels = {}, {}, {}
    for stream in STREAMS:
        method = f"{METHOD}_{stream}"
        plan = read_stage_settings(inputs.settings / method / "score.json", method, "score")
        settings = plan["settings"]
        key = _label_key(settings)
        if key not in labels:  # both streams share the patches section: label once
            labels[key] = label_test_patches(
                inputs.frames, inputs.ground_truth, settings, options.mask_fraction, progress
            )
        streams[stream], figure_data[stream] = diagnose_stream(
            stream, inputs, options, settings, labels[key], progress
        )
        print(f"vad diagnose: {method}: patch AUC {_format_aucs(streams[stream]['auc'])}")
    out_dir = Path(out_dir)
    plot_energy_histograms(figure_data, out_dir / HISTOGRAMS)
    plot_extremes(figure_data, out_dir / EXTREMES)
    labelled = next(iter(labels.values()))
    report = {
        "method": METHOD,
        "inputs": {
            "frames": {"path": str(inputs.frames), "digest": cache_digest(inputs.frames)},
            "dynflow": {"path": str(inputs.dynflow), "digest": cache_digest(inputs.dynflow)},
            "ground_truth": {
                "path": str(inputs.ground_truth),
                "digest": cache_digest(inputs.ground_truth),
            },
        },
        "options": asdict(options),
        "label_rule": (
            f"a moving grid patch is anomalous when its ground-truth mask covers >= "
            f"{options.mask_fraction} of its pixels, normal when it covers none, ambiguous "
            "(left out) otherwise; moving: score.moving_patches (frame difference)"
        ),
        "scores": SCORES,
        "videos": {
            "labelled": [key.split("/", 1)[1] for key in labelled.keys],
            "without_masks": labelled.without_masks,
        },
        "streams": streams,
        "figures": {"energy_histograms": HISTOGRAMS, "extremes": EXTREMES},
    }
    with atomic_output(out_dir / REPORT) as tmp:
        tmp.write_text(json.dumps(report, indent=2) + "\n")
    return report


def _format_aucs(aucs: dict) -> str:
    return ", ".join(
        f"{name} {'n/a' if value is None else f'{value:.3f}'}" for name, value in aucs.items()
    )
