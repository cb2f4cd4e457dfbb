"""Stage `patches`: GMFC-VAE training patches for the appearance and motion streams."""

from __future__ import annotations

import argparse

from vad.config import Section, load_params
from vad.patches import PatchSettings, extract_training_patches, sample_locations, write_patches


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", required=True)
    parser.add_argument("--dynflow", required=True)
    parser.add_argument("--out-rgb", required=True)
    parser.add_argument("--out-dynflow", required=True)
    args = parser.parse_args()
    section = Section(load_params(), "patches")
    settings = PatchSettings(
        size=section.size("size"),
        patch=section.int("patch", minimum=1),
        train_stride=section.int("train_stride", minimum=1),
        motion_threshold=section.float("motion_threshold", minimum=0.0),
        min_moving_pixels=section.int("min_moving_pixels", minimum=0),
        n_train=section.int("n_train", minimum=1),
        seed=section.int("seed", minimum=0),
    )
    keys, locations = sample_locations(args.frames, settings)
    for stream, out in (("rgb", args.out_rgb), ("dynflow", args.out_dynflow)):
        patches = extract_training_patches(
            stream, args.frames, args.dynflow, keys, locations, settings
        )
        write_patches(out, patches, keys, locations, stream, settings)
        print(f"{stream}: {len(patches)} training patches -> {out}")


if __name__ == "__main__":
    main()
