"""The prepared file of the clip methods (ITAE, dissociation): every training video's frames at
the model's size (T x H x W x C uint8, one frame per chunk so that a clip reads one chunk per
frame), which training reads; test videos stay in the frame cache, which the score stage
reads. Written a block of frames at a time. File attr `train_digest`: the frame cache's digests
of those videos and the size (a training checkpoint resumes only on the same data)."""

from __future__ import annotations

from pathlib import Path

from vad.cache import DIGEST, checked_dataset, combine_digests, open_cache, write_h5
from vad.frame_cache import frame_blocks, video_keys, video_length
from vad.progress import progress as progress_bar


def write_prepared(frames: Path, out: Path, settings: dict, desc: str = "frames") -> int:
    """Copy the training videos of `frames` resized to settings["size"] (width, height) into
    `out`; returns the number of frames written."""
    width, height = settings["size"]
    keys = video_keys(frames, "train")
    if not keys:
        raise ValueError(f"{frames}: no training videos")
    total, digests = 0, {}
    with write_h5(out, settings) as f:
        for key in progress_bar(keys, desc=desc, unit="video"):
            count = video_length(frames, key)
            with open_cache(frames) as source:
                channels = source[key]["frames"].shape[-1]
                digests[key] = str(source[key].attrs.get(DIGEST, ""))
            dataset = checked_dataset(
                f.create_group(key),
                "frames",
                shape=(count, height, width, channels),
                dtype="uint8",
                chunks=(1, height, width, channels),
            )
            for first, block in frame_blocks(frames, key, size=(width, height)):
                dataset[first : first + len(block)] = block
            total += count
        # what a training checkpoint must share: the frames' content and the size
        f.attrs["train_digest"] = combine_digests({**digests, "size": f"{width}x{height}"})
    return total

