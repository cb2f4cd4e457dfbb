"""Stage `score@<stream>`: GMFC-VAE sample energies (eq. 17) of every test patch of one stream."""

from __future__ import annotations

import argparse

import torch

from vad.config import Section, load_params
from vad.patches import STREAMS
from vad.score import STATIC_PATCH_RULES, score_stream
from vad.scores import write_scores
from vad.train import load_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--stream", required=True, choices=STREAMS)
    parser.add_argument("--frames", required=True)
    parser.add_argument("--dynflow", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    params = load_params()
    patches, gmfc = Section(params, "patches"), Section(params, "gmfc_vae")
    torch.set_num_threads(gmfc.int("threads", minimum=1))
    device = gmfc.str("device", ["auto", "cpu", "cuda"])
    scores = score_stream(
        load_model(args.model, device),
        args.stream,
        args.frames,
        args.dynflow,
        size=patches.size("size"),
        patch=patches.int("patch", minimum=1),
        train_stride=gmfc.int("train_score_stride", minimum=1),
        batch_size=gmfc.int("score_batch_size", minimum=1),
        device=device,
        static_patches=gmfc.str("static_patches", list(STATIC_PATCH_RULES)),
        motion_threshold=patches.float("motion_threshold", minimum=0.0),
        min_moving_pixels=patches.int("min_moving_pixels", minimum=0),
    )
    write_scores(args.out, scores)


if __name__ == "__main__":
    main()
