"""The evaluation of a video a block of frames at a time (vad.eval.stream, Protocol.map_rows,
PixelRocAccumulator.video) against the whole video at once: post-processed maps equal bit for
bit, and the pixel-level ROC exactly, whatever the blocks, the smoothing and its reach."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from vad.eval.metrics import PixelRocAccumulator
from vad.eval.postprocess import Protocol, smooth_along_time, smoothing_halo
from vad.eval.stream import StreamedEvaluation
from vad.eval.video_rows import StoredRows

LENGTHS = {"a": 20, "b": 7, "c": 1}
PROTOCOLS = [
    Protocol(),
    Protocol(normalization="minmax"),
    Protocol(smoothing="median", window=3),
    Protocol(smoothing="median", window=5, normalization="minmax"),  # reaches past a block of 3
    Protocol(smoothing="median", window=41),  # longer than every video
    Protocol(smoothing="gaussian", sigma=0.4, normalization="minmax"),  # radius 2
    Protocol(smoothing="gaussian", sigma=2.0),  # radius 8: past a block of 3
    Protocol(smoothing="gaussian", sigma=6.0, normalization="minmax"),  # radius 24: past "a"
]
BLOCKS = [1, 3, 50]  # 50: longer than every video
EDGES = [0, 2, 3, 8, 100]  # uneven blocks


def random_video(
    rng: np.random.Generator, n_frames: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Frame scores, a (T, 3, 4) float32 map, (T, 12, 16) masks and labels that disagree with
    the masks now and then, with ties."""
    mask = np.zeros((n_frames, 12, 16), bool)
    for t in range(n_frames):
        if rng.random() < 0.6:
            top, left = rng.integers(0, 8), rng.integers(0, 10)
            mask[t, top : top + rng.integers(1, 5), left : left + rng.integers(1, 7)] = True
    labels = mask.any(axis=(1, 2))
    flip = rng.random(n_frames) < 0.2
    labels[flip] = ~labels[flip]
    cells = mask.reshape(n_frames, 3, 4, 4, 4).mean(axis=(2, 4))
    score_map = (cells + rng.random(cells.shape)).astype(np.float32)
    score_map[rng.random(score_map.shape) < 0.1] = 0.5
    scores = score_map.max(axis=(1, 2)) + rng.random(n_frames).astype(np.float32)
    return scores, score_map, mask, labels


@pytest.fixture(scope="module")
def videos() -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(5)
    return {name: random_video(rng, length) for name, length in LENGTHS.items()}


def block_ranges(n_frames: int, block: int) -> list[tuple[int, int]]:
    return [(first, min(first + block, n_frames)) for first in range(0, n_frames, block)]


def assert_same_pixel_roc(got: StreamedEvaluation, want: StreamedEvaluation) -> None:
    got_metrics, got_curves = got.result()
    want_metrics, want_curves = want.result()
    for got_curve, want_curve in zip(got_curves.values(), want_curves.values(), strict=True):
        for got_array, want_array in zip(got_curve, want_curve, strict=True):
            np.testing.assert_array_equal(got_array, want_array)
    assert got_metrics == want_metrics


@pytest.mark.parametrize("block", BLOCKS)
@pytest.mark.parametrize("protocol", PROTOCOLS, ids=lambda p: str(p.as_dict()))
def test_a_video_in_blocks_is_evaluated_as_the_whole_video(videos, protocol, block):
    labels = {name: video[3] for name, video in videos.items()}
    whole = StreamedEvaluation(protocol, labels, pixels=True)
    blocks = StreamedEvaluation(protocol, labels, pixels=True)
    for name, (scores, score_map, mask, _) in videos.items():
        processed, processed_map = whole.add(name, scores, score_map, mask)
        with blocks.video(name, scores, score_map, mask.shape) as video:
            for first, end in block_ranges(len(scores), block):
                rows = video.add_block(first, end, mask[first:end])
                assert rows.dtype == processed_map.dtype == np.float32
                np.testing.assert_array_equal(rows, processed_map[first:end])
        np.testing.assert_array_equal(blocks.scores[name], processed)
    assert_same_pixel_roc(blocks, whole)
    assert blocks.result()[0]["pixel_n_videos"] == len(videos)


@pytest.mark.parametrize("protocol", PROTOCOLS[3::2], ids=lambda p: str(p.as_dict()))
def test_a_map_read_from_a_file_a_block_at_a_time_is_post_processed_as_in_memory(
    tmp_path, videos, protocol
):
    """Only the block and its halo are read from the file, and give the rows of the whole."""
    scores, score_map, _, _ = videos["a"]
    _, whole = protocol.apply_video("a", scores, score_map)
    affine = protocol.frame_scores("a", scores)[1]
    with h5py.File(tmp_path / "maps.h5", "w") as f:
        f["maps"] = score_map
    with h5py.File(tmp_path / "maps.h5", "r") as f:
        stored = StoredRows(f["maps"])
        read: list[slice] = []

        class Recorded:
            shape = stored.shape

            def __getitem__(self, rows: slice) -> np.ndarray:
                read.append(rows)
                return stored[rows]

        for first, end in block_ranges(len(scores), 3):
            rows = protocol.map_rows("a", Recorded(), affine, first, end)
            np.testing.assert_array_equal(rows, whole[first:end])
            assert read[-1] == slice(
                max(0, first - protocol.halo), min(len(scores), end + protocol.halo)
            )


@pytest.mark.parametrize("window", [2, 3, 4, 6, 9])
def test_the_median_halo_covers_even_and_odd_windows(videos, window):
    """scipy centres an even window one frame off (w // 2 frames before, w // 2 - 1 after):
    a halo of w // 2 on both sides still gives the rows of the whole video."""
    _, score_map, _, _ = videos["a"]
    whole = smooth_along_time(score_map, "median", window=window)
    halo = smoothing_halo("median", window=window)
    assert halo == window // 2
    for first, end in block_ranges(len(score_map), 3):
        start, stop = max(0, first - halo), min(len(score_map), end + halo)
        slab = smooth_along_time(score_map[start:stop], "median", window=window)
        np.testing.assert_array_equal(slab[first - start : end - start], whole[first:end])
    with pytest.raises(AssertionError):  # one frame less on either side would not do
        for first, end in block_ranges(len(score_map), 3):
            start, stop = max(0, first - halo + 1), min(len(score_map), end + halo - 1)
            slab = smooth_along_time(score_map[start:stop], "median", window=window)
            np.testing.assert_array_equal(slab[first - start : end - start], whole[first:end])


def test_the_gaussian_halo_is_scipys_kernel_radius():
    assert smoothing_halo("gaussian", sigma=2.0) == 8
    assert smoothing_halo("gaussian", sigma=0.4) == 2
    assert smoothing_halo("gaussian", sigma=0.1) == 0
    assert Protocol(smoothing="gaussian", sigma=3).halo == 12
    assert Protocol().halo == 0


def test_the_pixel_roc_takes_blocks_of_any_size(videos):
    """Uneven blocks, and whole videos, give the same critical values and ROC."""
    whole, blocks = PixelRocAccumulator(), PixelRocAccumulator()
    for name, (_, score_map, mask, labels) in videos.items():
        whole.add(name, score_map, mask, labels)
        with blocks.video(name, labels, mask.shape) as video:
            for first, end in zip(EDGES[:-1], EDGES[1:], strict=True):
                if first < len(labels):
                    video.add_block(score_map[first:end], mask[first:end])
    got, want = blocks.result(), whole.result()
    for got_array, want_array in zip(got.curve, want.curve, strict=True):
        np.testing.assert_array_equal(got_array, want_array)
    assert got.counts() == want.counts()


def opened(videos, protocol: Protocol) -> StreamedEvaluation:
    return StreamedEvaluation(protocol, {name: v[3] for name, v in videos.items()}, pixels=True)


def test_a_bad_block_names_the_video_and_the_frame(videos):
    scores, score_map, mask, _ = videos["a"]
    broken = score_map.copy()
    broken[6, 1, 2] = np.nan
    evaluation = opened(videos, Protocol(smoothing="median", window=3))
    with (
        pytest.raises(ValueError, match=r"video 'a': score map contains NaN .* \(frame 6\)"),
        evaluation.video("a", scores, broken, mask.shape) as video,
    ):
        video.add_block(0, 3, mask[:3])
        video.add_block(3, 6, mask[3:6])  # frames 2 .. 6 are read: frame 6 is its halo
    with (
        pytest.raises(ValueError, match=r"'a': score map has 3 frames, mask 2 .*from frame 3\)"),
        evaluation.video("a", scores, score_map, mask.shape) as video,
    ):
        video.add_block(0, 3, mask[:3])
        video.add_block(3, 6, mask[3:5])
    with (
        pytest.raises(ValueError, match=r"'a': blocks must follow each other .* frames 4 \.\. 5"),
        evaluation.video("a", scores, score_map, mask.shape) as video,
    ):
        video.add_block(0, 3, mask[:3])
        video.add_block(4, 6, mask[4:6])
    with (
        pytest.raises(ValueError, match=r"'a' counts at pixel level: frames 0 \.\. 2 need"),
        evaluation.video("a", scores, score_map, mask.shape) as video,
    ):
        video.add_block(0, 3)
    with (
        pytest.raises(ValueError, match="video 'a': its blocks gave 6 of its 20 frames"),
        evaluation.video("a", scores, score_map, mask.shape) as video,
    ):
        video.add_block(0, 6, mask[:6])
    assert "a" not in evaluation.scores  # a video that failed is not counted, and may be redone
    with evaluation.video("a", scores, score_map, mask.shape) as video:
        video.add_block(0, 20, mask)
    assert "a" in evaluation.scores


@pytest.mark.parametrize(
    ("video", "message"),
    [
        ({"scores": np.ones(19)}, "video 'a': 19 scores but 20 labels"),
        ({"score_map": np.ones((19, 3, 4))}, r"video 'a': score map must be \(20, h, w\)"),
        ({"mask_shape": (19, 12, 16)}, "video 'a': 19 masks but 20 labels"),
        ({"mask_shape": (20, 12)}, r"video 'a': mask must be \(T, H, W\)"),
    ],
)
def test_a_video_whose_parts_disagree_is_refused_when_opened(videos, video, message):
    scores, score_map, mask, _ = videos["a"]
    given = {"scores": scores, "score_map": score_map, "mask_shape": mask.shape, **video}
    evaluation = opened(videos, Protocol())
    with pytest.raises(ValueError, match=message), evaluation.video("a", **given):
        pytest.fail("the video was opened")
