"""Stage `motion_figures`: frame, optical flow and dynamic flow side by side (paper Fig. 2)."""

from __future__ import annotations

import argparse

import numpy as np

from vad.cache import (
    atomic_directory,
    exit_on_cache_error,
    iter_videos,
    open_cache,
    read_dataset,
    video_key,
)
from vad.frame_cache import load_frame
from vad.timing import timed_stage
from vad.viz import flow_to_rgb, save_image_row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", required=True)
    parser.add_argument("--flow", required=True)
    parser.add_argument("--dynflow", required=True)
    parser.add_argument("--out", required=True, help="output folder of PNG figures")
    parser.add_argument("--videos", type=int, default=3, help="test videos shown")
    args = parser.parse_args()

    # the folder appears complete or not at all (a failure leaves no half set of figures)
    with (
        atomic_directory(args.out) as out,
        open_cache(args.flow) as flows,
        open_cache(args.dynflow) as dynamic,
    ):
        names = [name for split, name, _ in iter_videos(dynamic) if split == "test"]
        for name in names[: args.videos]:
            key = video_key("test", name)
            maps = dynamic[key]["dynflow"]
            index = len(maps) // 2  # the middle frame of the clip
            size = (maps.shape[2], maps.shape[1])
            frame = load_frame(args.frames, key, index, size, color="gray")[..., 0]
            pairs = flows[key]["flow"]
            flow = read_dataset(pairs, min(index, len(pairs) - 1)).astype(np.float32)
            dyn = read_dataset(maps, index)
            dyn_uv = dyn[..., :2].astype(np.float32) - 128.0
            save_image_row(
                [frame, flow_to_rgb(flow), flow_to_rgb(dyn_uv), dyn[..., 2]],
                [
                    f"video {name}, frame {index}",
                    "optical flow (colour: direction)",
                    "dynamic flow (F^u, F^v)",
                    "dynamic flow magnitude (channel 3)",
                ],
                out / f"{name}_{index:04d}.png",
            )


if __name__ == "__main__":
    with exit_on_cache_error(), timed_stage("motion_figures"):
        main()
