"""Stage `train@<stream>`: GMFC-VAE on one stream's patches (AE pre-training, GMM init, VaDE)."""

from __future__ import annotations

import argparse
import json

import torch

from vad.cache import atomic_output
from vad.config import Section, load_params
from vad.patches import STREAMS, read_patches
from vad.train import PHASES, GmfcTrainSettings, save_model, train_gmfc_vae


def settings_from_params(section: Section) -> GmfcTrainSettings:
    return GmfcTrainSettings(
        n_components=section.int("K", minimum=1),
        latent_dim=section.int("latent_dim", minimum=1),
        recon_variance=section.float("recon_variance", minimum=0.0),
        mc_samples=section.int("mc_samples", minimum=1),
        pretrain_epochs=section.int("pretrain_epochs", minimum=0),
        epochs=section.int("epochs", minimum=0),
        batch_size=section.int("batch_size", minimum=1),
        lr=section.float("lr", minimum=0.0),
        weight_decay=section.float("weight_decay", minimum=0.0),
        seed=section.int("seed", minimum=0),
    )


def history_rows(history: dict) -> list[dict]:
    """Per-epoch loss terms as DVC plot rows; `epoch` counts on across the two phases.

    Wall-clock seconds stay out (they are printed instead), so equal runs write equal files."""
    rows = []
    for phase in PHASES:
        terms = history[phase]
        for index in range(len(terms["loss"])):
            row = {"epoch": len(rows) + 1, "phase": phase}
            row.update({term: float(values[index]) for term, values in terms.items()})
            rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--stream", required=True, choices=STREAMS)
    parser.add_argument("--patches", required=True)
    parser.add_argument("--model", required=True, help="output model file")
    parser.add_argument("--workdir", required=True, help="checkpoints (resume after interruption)")
    parser.add_argument("--history", required=True, help="output loss curves (JSON)")
    args = parser.parse_args()

    section = Section(load_params(), "gmfc_vae")
    settings = settings_from_params(section)
    torch.set_num_threads(section.int("threads", minimum=1))
    device = section.str("device", ["auto", "cpu", "cuda"])
    model, history = train_gmfc_vae(read_patches(args.patches), settings, args.workdir, device)
    save_model(
        model,
        args.model,
        extra={
            "stream": args.stream,
            "settings": settings.to_dict(),
            "gmm_init": history.get("gmm_init"),
            "collapse_events": history["collapse_events"],
        },
    )
    with atomic_output(args.history) as tmp:
        tmp.write_text(json.dumps(history_rows(history), indent=1) + "\n")
    for phase in PHASES:
        seconds = history["epoch_seconds"][phase]
        print(f"{args.stream}: {phase} {len(seconds)} epoch(s) in {sum(seconds):.1f} s")
    if history["collapse_events"]:
        print(
            f"{args.stream}: {len(history['collapse_events'])} collapsed mixture component(s) "
            "re-initialised (see the model file's collapse_events)"
        )


if __name__ == "__main__":
    main()
