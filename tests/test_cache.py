from __future__ import annotations

import h5py
import numpy as np
import pytest

from vad.cache import (
    DIGEST,
    INPUT_DIGEST,
    IncrementalDigest,
    MissingDigestError,
    ResumableCache,
    RowWriter,
    array_digest,
    atomic_output,
    cache_digest,
    chunked_dataset,
    copy_rows,
    iter_rows,
    staged_outputs,
    video_digests,
    write_h5,
)


def test_atomic_output_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.json"
    with pytest.raises(RuntimeError):
        with atomic_output(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_write_h5_appears_only_when_closed(tmp_path):
    target = tmp_path / "cache.h5"
    with write_h5(target, {"a": 1}) as f:
        f.create_dataset("x", data=np.arange(3))
        assert not target.exists()
    with h5py.File(target) as f:
        assert f["x"][()].tolist() == [0, 1, 2]
        assert '"a": 1' in f.attrs["settings"]


# ---------------------------------------------------------------------------------------------
# Content digests


def test_array_digest_is_a_stable_16_byte_hex():
    data = np.arange(12, dtype=np.uint8).reshape(3, 4)
    digest = array_digest(data)
    assert len(digest) == 32 and int(digest, 16) >= 0
    assert array_digest(data.copy()) == digest
    assert array_digest(np.asfortranarray(data)) == digest  # same content, other memory layout


def test_array_digest_changes_with_one_value_the_dtype_or_the_shape():
    data = np.arange(12, dtype=np.uint8).reshape(3, 4)
    changed = data.copy()
    changed[2, 3] += 1
    digests = {
        array_digest(data),
        array_digest(changed),
        array_digest(data.astype(np.int8)),  # same bytes, other dtype
        array_digest(data.reshape(4, 3)),  # same bytes, other shape
        array_digest(data.reshape(12)),
    }
    assert len(digests) == 5


def test_incremental_digest_equals_the_one_shot_digest():
    frames = np.random.default_rng(0).integers(0, 256, (5, 4, 6, 3), dtype=np.uint8)
    one_row_at_a_time = IncrementalDigest(frames.dtype, frames.shape)
    for frame in frames:
        one_row_at_a_time.update(frame)
    in_blocks = IncrementalDigest(np.uint8, frames.shape)
    in_blocks.update(frames[:2])
    in_blocks.update(frames[2:])
    assert one_row_at_a_time.hexdigest() == in_blocks.hexdigest() == array_digest(frames)


def test_incremental_digest_rejects_wrong_or_missing_rows():
    digest = IncrementalDigest(np.uint8, (2, 4))
    with pytest.raises(ValueError, match="fed float32"):
        digest.update(np.zeros(4, np.float32))
    with pytest.raises(ValueError, match="rows of shape"):
        digest.update(np.zeros(5, np.uint8))
    digest.update(np.zeros(4, np.uint8))
    with pytest.raises(ValueError, match="1 of 2 rows"):
        digest.hexdigest()
    digest.update(np.zeros(4, np.uint8))
    with pytest.raises(ValueError, match="more than 2 rows"):
        digest.update(np.zeros(4, np.uint8))


def _write_videos(path, videos: dict[str, np.ndarray]) -> None:
    """A cache with one dataset `x` and its digest per video, written in the order given."""
    with write_h5(path, {"order": list(videos)}) as f:
        for key, data in videos.items():
            group = f.create_group(key)
            group.create_dataset("x", data=data)
            group.attrs[DIGEST] = array_digest(data)


VIDEOS = {"train/a": np.arange(4), "test/b": np.ones((2, 3)), "test/c": np.zeros(5, np.uint8)}


def test_video_digests_reads_every_video(tmp_path):
    _write_videos(tmp_path / "c.h5", VIDEOS)
    expected = {key: array_digest(data) for key, data in VIDEOS.items()}
    assert video_digests(tmp_path / "c.h5") == expected
    with h5py.File(tmp_path / "c.h5", "r") as f:
        assert video_digests(f) == expected


def test_video_digests_names_the_file_and_the_video_without_one(tmp_path):
    _write_videos(tmp_path / "c.h5", VIDEOS)
    with h5py.File(tmp_path / "c.h5", "a") as f:
        del f["test/b"].attrs[DIGEST]
    with pytest.raises(MissingDigestError, match=r"c\.h5: video 'test/b' has no content digest"):
        video_digests(tmp_path / "c.h5")
    with pytest.raises(MissingDigestError):
        cache_digest(tmp_path / "c.h5")


def test_cache_digest_does_not_depend_on_write_order_or_file_settings(tmp_path):
    _write_videos(tmp_path / "one.h5", VIDEOS)
    _write_videos(tmp_path / "two.h5", dict(reversed(VIDEOS.items())))  # other settings attr too
    digest = cache_digest(tmp_path / "one.h5")
    assert len(digest) == 32
    assert cache_digest(tmp_path / "two.h5") == digest
    assert cache_digest(tmp_path / "one.h5", ["test/c", "train/a", "test/b"]) == digest


def test_cache_digest_changes_when_one_video_changes(tmp_path):
    _write_videos(tmp_path / "one.h5", VIDEOS)
    changed = dict(VIDEOS, **{"test/c": np.array([0, 0, 1, 0, 0], np.uint8)})
    _write_videos(tmp_path / "changed.h5", changed)
    renamed = {("test/d" if key == "test/c" else key): data for key, data in VIDEOS.items()}
    _write_videos(tmp_path / "renamed.h5", renamed)
    digests = {cache_digest(tmp_path / name) for name in ("one.h5", "changed.h5", "renamed.h5")}
    assert len(digests) == 3
    # Restricted to the videos that did not change, the two caches agree.
    assert cache_digest(tmp_path / "one.h5", ["train/a", "test/b"]) == cache_digest(
        tmp_path / "changed.h5", ["train/a", "test/b"]
    )
    with pytest.raises(KeyError, match="'test/x'"):
        cache_digest(tmp_path / "one.h5", ["test/x"])


# ---------------------------------------------------------------------------------------------
# Resumable caches


def _fill(cache: ResumableCache, key: str, value: int, input_digest: str = "in") -> None:
    group = cache.start(key)
    data = np.full(2, value)
    group.create_dataset("x", data=data)
    cache.finish(key, digest=array_digest(data), input_digest=input_digest)


def test_resumable_cache_keeps_complete_videos(tmp_path):
    target = tmp_path / "flow.h5"
    with pytest.raises(RuntimeError):
        with ResumableCache(target, {"method": "dis"}) as cache:
            _fill(cache, "train/01", 1)
            cache.start("train/02")  # started, never finished
            raise RuntimeError("interrupted")
    assert not target.exists()
    with ResumableCache(target, {"method": "dis"}) as cache:
        assert cache.is_done("train/01", "in")
        assert not cache.is_done("train/02", "in")
        _fill(cache, "train/02", 2)
    with h5py.File(target) as f:
        assert f["train/01/x"][()].tolist() == [1, 1]
        assert f["train/02/x"][()].tolist() == [2, 2]
        assert f["train/02"].attrs[DIGEST] == array_digest(np.full(2, 2))
        assert f["train/02"].attrs[INPUT_DIGEST] == "in"
    assert video_digests(target) == {
        "train/01": array_digest(np.full(2, 1)),
        "train/02": array_digest(np.full(2, 2)),
    }


def test_resumable_cache_redoes_a_video_whose_input_changed(tmp_path):
    target = tmp_path / "flow.h5"
    with pytest.raises(RuntimeError):
        with ResumableCache(target, {"method": "dis"}) as cache:
            _fill(cache, "train/01", 1, input_digest="old frames")
            _fill(cache, "train/02", 2, input_digest="same frames")
            raise RuntimeError("interrupted")
    with ResumableCache(target, {"method": "dis"}) as cache:
        assert not cache.is_done("train/01", "new frames")
        assert cache.is_done("train/02", "same frames")
        _fill(cache, "train/01", 3, input_digest="new frames")
    with h5py.File(target) as f:
        assert f["train/01/x"][()].tolist() == [3, 3]
        assert f["train/01"].attrs[INPUT_DIGEST] == "new frames"


def test_resumable_cache_retains_only_the_inputs_videos(tmp_path):
    target = tmp_path / "flow.h5"
    with pytest.raises(RuntimeError):
        with ResumableCache(target, {"method": "dis"}) as cache:
            _fill(cache, "train/01", 1)
            _fill(cache, "test/01", 2)  # a video the next input no longer has
            raise RuntimeError("interrupted")
    with ResumableCache(target, {"method": "dis"}) as cache:
        cache.retain(["train/01", "train/02"])
        assert cache.is_done("train/01", "in")
        _fill(cache, "train/02", 3)
    with h5py.File(target) as f:
        assert sorted(f) == ["train"] and sorted(f["train"]) == ["01", "02"]


def test_resumable_cache_discards_partial_with_other_settings(tmp_path):
    target = tmp_path / "flow.h5"
    with pytest.raises(RuntimeError):
        with ResumableCache(target, {"method": "dis"}) as cache:
            _fill(cache, "train/01", 1)
            raise RuntimeError("interrupted")
    with ResumableCache(target, {"method": "tvl1"}) as cache:
        assert not cache.is_done("train/01", "in")
        assert "train/01" not in cache.file


def test_staged_outputs_appear_together_or_not_at_all(tmp_path):
    first, second = tmp_path / "a.h5", tmp_path / "sub" / "b.h5"
    first.write_text("old a")
    with pytest.raises(RuntimeError, match="second failed"), staged_outputs(first, second) as tmp:
        tmp[0].write_text("new a")
        raise RuntimeError("second failed")
    assert first.read_text() == "old a" and not second.exists()
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["a.h5"]
    with staged_outputs(first, second) as tmp:
        for path in tmp:
            path.write_text(f"new {path.name[0]}")
    assert (first.read_text(), second.read_text()) == ("new a", "new b")
    with pytest.raises(RuntimeError, match="not written"), staged_outputs(first, second) as tmp:
        tmp[0].write_text("only a")
    assert first.read_text() == "new a"


def test_a_dataset_written_a_block_at_a_time_is_the_file_of_the_whole_array(tmp_path):
    """RowWriter (whole chunks in order) makes the same file, bit for bit, as `chunked_dataset`
    of the whole array, with its content digest; `iter_rows` reads it back in blocks whose
    overlaps reach into the next one; `copy_rows` copies it the same way."""
    data = np.random.default_rng(0).integers(0, 255, (21, 6, 5, 3), dtype=np.uint8)
    with write_h5(tmp_path / "whole.h5", {"s": 1}) as f:
        chunked_dataset(f.create_group("train/a"), "x", data, frames_per_chunk=4)
    with write_h5(tmp_path / "blocks.h5", {"s": 1}) as f:
        writer = RowWriter(f.create_group("train/a"), "x", data.shape, np.uint8, 4)
        for start in range(0, 21, 8):
            writer.write(data[start : start + 8])
        assert writer.hexdigest() == array_digest(data)
    assert (tmp_path / "whole.h5").read_bytes() == (tmp_path / "blocks.h5").read_bytes()
    with h5py.File(tmp_path / "blocks.h5") as f:
        blocks = list(iter_rows(f["train/a/x"], 8, overlap=2))
        assert [(first, len(rows)) for first, rows in blocks] == [(0, 10), (8, 10), (16, 5)]
        for first, rows in blocks:
            np.testing.assert_array_equal(rows, data[first : first + len(rows)])
        with write_h5(tmp_path / "copy.h5", {"s": 1}) as out:
            digest = copy_rows(f["train/a/x"], out.create_group("train/a"), "x", 4, 8)
    assert digest == array_digest(data)
    assert (tmp_path / "copy.h5").read_bytes() == (tmp_path / "whole.h5").read_bytes()


def test_a_row_writer_refuses_rows_of_another_shape_or_too_many(tmp_path):
    with write_h5(tmp_path / "x.h5") as f:
        writer = RowWriter(f, "x", (3, 2), np.float32, 1)
        with pytest.raises(ValueError, match="rows of shape"):
            writer.write(np.zeros((1, 3), np.float32))
        writer.write(np.zeros((3, 2)))  # cast to the dataset's dtype
        with pytest.raises(ValueError, match="more than 3 rows"):
            writer.write(np.zeros((1, 2), np.float32))


def test_a_video_that_fails_while_written_leaves_no_group(tmp_path):
    with ResumableCache(tmp_path / "c.h5", {"s": 1}) as cache:
        with pytest.raises(RuntimeError, match="half"):
            with cache.writing("train/a") as group:
                group.create_dataset("x", data=np.zeros(3))
                raise RuntimeError("half-written")
        assert "train/a" not in cache.file
