"""Stage `frames`: read the dataset named in params.yaml into the frame and ground-truth caches."""

from __future__ import annotations

import argparse
import sys

from vad.config import load_params
from vad.datasets import corrupt_frame_warnings, open_dataset
from vad.frame_cache import write_frame_cache
from vad.memory import fixed_mmap_threshold
from vad.params.data import data_settings, frames_settings
from vad.timing import timed_stage


def main() -> None:
    fixed_mmap_threshold()  # flat memory over many blocks (vad.memory)
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", required=True, help="output frames.h5")
    parser.add_argument("--ground-truth", required=True, help="output ground_truth.h5")
    args = parser.parse_args()

    params = load_params()
    data, frames = data_settings(params), frames_settings(params)
    dataset = open_dataset(
        data["name"],
        data["root"],
        layout=data["layout"],
        options=data["options"],
        corrupt_frames=data["corrupt_frames"],
        scenes=data["scenes"],
    )
    write_frame_cache(
        dataset, args.frames, args.ground_truth, color=frames["color"], size=frames["size"]
    )
    for line in corrupt_frame_warnings(dataset.videos):  # only with data.corrupt_frames: warn
        print(f"frames: warning: {line}", file=sys.stderr)


if __name__ == "__main__":
    with timed_stage("frames"):
        main()
