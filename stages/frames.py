"""Stage `frames`: read the dataset named in params.yaml into the frame and ground-truth caches."""

from __future__ import annotations

import argparse
import sys

from vad.config import Section, load_params
from vad.datasets import CORRUPT_FRAMES, corrupt_frame_warnings, open_dataset
from vad.frame_cache import COLORS, write_frame_cache
from vad.timing import timed_stage


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", required=True, help="output frames.h5")
    parser.add_argument("--ground-truth", required=True, help="output ground_truth.h5")
    args = parser.parse_args()

    params = load_params()
    data, frames = Section(params, "data"), Section(params, "frames")
    name = data.str("name")
    dataset = open_dataset(
        name,
        data.str("root", default="") or None,
        layout=data.str("layout", default="auto"),
        options=data.mapping("synthetic") if name == "synthetic" else None,
        corrupt_frames=data.str("corrupt_frames", list(CORRUPT_FRAMES), default="error"),
    )
    write_frame_cache(
        dataset,
        args.frames,
        args.ground_truth,
        color=frames.str("color", list(COLORS)),
        size=frames.size("size", allow_none=True),
    )
    for line in corrupt_frame_warnings(dataset.videos):  # only with data.corrupt_frames: warn
        print(f"frames: warning: {line}", file=sys.stderr)


if __name__ == "__main__":
    with timed_stage("frames"):
        main()
