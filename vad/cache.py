"""HDF5 caches: one group per video, provenance in attrs, content digests, atomic writes,
per-video resume.

Layout shared by every cache: a group `<split>/<video name>` per video (train and test clips
may share names, as Ped2's do), file attrs with the stage's settings as JSON.

Content digests: a video group's attr `digest` (DIGEST) is the digest of its own content, and a
group computed from another cache's video records that video's digest as `input_digest`
(INPUT_DIGEST). A digest is the 16-byte BLAKE2b, as 32 hex characters, of an array's dtype,
shape and bytes (`array_digest`, or `IncrementalDigest` fed frame by frame). `cache_digest`
combines a file's per-video digests into one digest of the whole cache.

Integrity: every dataset is created through `checked_dataset`, which stores a Fletcher-32
checksum with each chunk, and files use HDF5 1.10 object formats (FILE_FORMAT), whose headers,
B-trees and heaps carry checksums too. HDF5 verifies them on every read. Readers open caches with
`open_cache` and read datasets with `read_dataset`, which turn a failed checksum, a damaged header
or a truncated file into a `CacheError` naming the file (and the video and dataset at fault) and
the stage to re-run, instead of a bare h5py error.

A cache is written to `<path>.partial` and renamed only when complete, so an interrupted stage
never leaves a file that looks valid. Stages that work video by video (`ResumableCache`) keep
the partial file between runs. The partial is discarded when the stage's settings fingerprint
changed; otherwise a video is kept only if it is complete and was computed from an input with
the same content digest as now, and recomputed if not.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import h5py
import numpy as np

COMPLETE = "complete"
DIGEST = "digest"  # group attr: digest of the video's own content
INPUT_DIGEST = "input_digest"  # group attr: digest of the input video it was computed from
DIGEST_BYTES = 16

SPLITS = ("train", "test")

# The HDF5 object formats written (low, high bound): 1.10's carry checksums of the metadata,
# and any HDF5 from 1.10 on reads them.
FILE_FORMAT = ("v110", "v110")


def video_key(split: str, name: str) -> str:
    return f"{split}/{name}"


def settings_fingerprint(settings: dict) -> str:
    return json.dumps(settings, sort_keys=True, default=str)


# ---------------------------------------------------------------------------------------------
# Damaged caches

# The stage that writes a cache, by file name, else by folder (data/prepared/<method>.h5, ...).
STAGE_BY_NAME = {
    "frames.h5": "frames",
    "ground_truth.h5": "frames",
    "flow.h5": "flow",
    "dynflow.h5": "dynamic_flow",
    "objects.h5": "objects",
    "stc.h5": "stc",
}
STAGE_BY_FOLDER = {"prepared": "prepare@{stem}", "scores": "score@{stem}", "fused": "fuse"}
# h5py's words for a name that is absent (a KeyError that is no sign of damage).
ABSENT = ("doesn't exist", "component not found", "can't locate attribute")


class CacheError(ValueError):
    """A cache HDF5 cannot read as written: a failed checksum, a damaged header, a truncated
    file. The message names the file (and the video and dataset where known) and the stage
    that rewrites it."""

    def __init__(self, message: str, path: str | Path):
        super().__init__(message)
        self.path = str(path)

    def __reduce__(self) -> tuple:  # raised in worker processes: must survive pickling
        return type(self), (str(self), self.path)


def writer_stage(path: str | Path) -> str | None:
    """The DVC stage that writes the cache at `path`, or None if its name is not a known one."""
    path = Path(path)
    if path.name in STAGE_BY_NAME:
        return STAGE_BY_NAME[path.name]
    if path.parent.name in STAGE_BY_FOLDER:
        return STAGE_BY_FOLDER[path.parent.name].format(stem=path.stem)
    if path.parent.parent.name == "models":  # data/models/<method>/<file>
        return f"train@{path.parent.name}"
    return None


def rerun_advice(path: str | Path) -> str:
    stage = writer_stage(path)
    command = f"dvc repro -f -s {stage or '<stage>'}"
    return f"re-run the stage that writes it with `{command}`"


def _raised_by_h5py(error: BaseException) -> bool:
    """Whether `error` was raised inside h5py (not by other I/O in the same block)."""
    tb = error.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb is not None and str(tb.tb_frame.f_globals.get("__name__", "")).startswith("h5py")


def _is_damage(error: BaseException) -> bool:
    """An h5py failure to read a file's structure, not a missing file, a file locked by
    another process or a name that is simply absent."""
    if not _raised_by_h5py(error):
        return False
    if isinstance(error, OSError):
        return error.errno is None  # errno set: not found, permission, lock: the OS's own error
    if isinstance(error, KeyError):
        return not any(words in str(error) for words in ABSENT)
    return isinstance(error, RuntimeError)


def _reason(error: BaseException) -> str:
    """h5py's own words (a KeyError's str() would quote them)."""
    return str(error.args[0]) if error.args else type(error).__name__


@contextmanager
def open_cache(path: str | Path) -> Iterator[h5py.File]:
    """The HDF5 cache at `path`, open read-only. A damaged or truncated file, found on opening
    it or by anything h5py reads in the block, is a `CacheError` naming the file and the stage
    to re-run (a `read_dataset` error, more precise, passes through)."""
    try:
        with h5py.File(path, "r") as f:
            yield f
    except (OSError, RuntimeError, KeyError) as error:
        if not _is_damage(error):
            raise
        raise CacheError(
            f"{path}: damaged, truncated or not an HDF5 file ({_reason(error)}); "
            f"{rerun_advice(path)}",
            path,
        ) from error


def read_dataset(dataset: h5py.Dataset, selection: object = ()) -> np.ndarray:
    """`dataset[selection]` (all of it by default); a failed checksum or unreadable chunk is a
    `CacheError` naming the file, the video (`<split>/<name>`, for a video's dataset) and the
    dataset."""
    try:
        return dataset[selection]
    except OSError as error:
        path = dataset.file.filename
        *group, name = dataset.name.strip("/").split("/")
        where = f"dataset '{'/'.join(group + [name])}'"
        if len(group) == 2 and group[0] in SPLITS:
            where = f"video '{video_key(*group)}', dataset '{name}'"
        raise CacheError(
            f"{path}: checksum or read failure in {where} ({_reason(error)}); the file is damaged: "
            f"{rerun_advice(path)}",
            path,
        ) from error


@contextmanager
def exit_on_cache_error() -> Iterator[None]:
    """For a stage's entry point: a `CacheError` in the block ends the process with its message
    as one line on stderr and exit status 1, without a traceback."""
    try:
        yield
    except CacheError as error:
        raise SystemExit(f"error: {error}") from None


# ---------------------------------------------------------------------------------------------
# Content digests


def _array_hash(dtype: np.dtype, shape: tuple[int, ...]) -> hashlib.blake2b:
    """A BLAKE2b already fed the header (dtype and shape) of an array's digest."""
    header = json.dumps([np.dtype(dtype).str, [int(n) for n in shape]])
    hasher = hashlib.blake2b(digest_size=DIGEST_BYTES)
    hasher.update(header.encode())
    return hasher


def _contiguous_bytes(array: np.ndarray) -> memoryview:
    if array.size == 0:  # memoryview cannot cast an empty array's view
        return memoryview(b"")
    return memoryview(np.ascontiguousarray(array)).cast("B")


class IncrementalDigest:
    """The digest of a `shape` array of `dtype`, fed in order along its first axis.

    `update` takes one row (shape[1:]) or a block of rows at a time; `hexdigest` equals
    `array_digest` of the whole array, and fails unless exactly shape[0] rows were fed.
    """

    def __init__(self, dtype: np.dtype | type, shape: tuple[int, ...]):
        if len(shape) == 0:
            raise ValueError("an incremental digest needs an array of at least one axis")
        self.dtype = np.dtype(dtype)
        self.shape = tuple(int(n) for n in shape)
        self.rows = 0
        self._hash = _array_hash(self.dtype, self.shape)

    def update(self, rows: np.ndarray) -> None:
        rows = np.asarray(rows)
        if rows.dtype != self.dtype:
            raise ValueError(f"digest of {self.dtype} data was fed {rows.dtype}")
        if rows.shape == self.shape[1:]:
            count = 1
        elif rows.shape[1:] == self.shape[1:] and rows.ndim == len(self.shape):
            count = rows.shape[0]
        else:
            raise ValueError(f"digest of a {self.shape} array was fed rows of shape {rows.shape}")
        if self.rows + count > self.shape[0]:
            raise ValueError(
                f"digest of a {self.shape} array was fed more than {self.shape[0]} rows"
            )
        self._hash.update(_contiguous_bytes(rows))
        self.rows += count

    def hexdigest(self) -> str:
        if self.rows != self.shape[0]:
            raise ValueError(
                f"digest of a {self.shape} array was fed {self.rows} of {self.shape[0]} rows"
            )
        return self._hash.hexdigest()


def array_digest(array: np.ndarray) -> str:
    """The content digest of `array`: BLAKE2b-128 hex of its dtype, shape and C-order bytes."""
    array = np.asarray(array)
    hasher = _array_hash(array.dtype, array.shape)
    hasher.update(_contiguous_bytes(array))
    return hasher.hexdigest()


def combine_digests(digests: Mapping[str, str]) -> str:
    """One digest of named digests: BLAKE2b-128 hex of the JSON list [[name, digest], ...]
    sorted by name (so it does not depend on the order they were given in)."""
    items = sorted((str(name), str(digest)) for name, digest in digests.items())
    hasher = hashlib.blake2b(digest_size=DIGEST_BYTES)
    hasher.update(json.dumps(items).encode())
    return hasher.hexdigest()


class MissingDigestError(ValueError):
    """A video group of a cache has no `digest` attr (the cache predates content digests)."""

    def __init__(self, path: str | Path, key: str):
        super().__init__(
            f"{path}: video '{key}' has no content digest (attr '{DIGEST}'); "
            "the file was written before caches recorded digests"
        )
        self.path = str(path)
        self.key = key


@contextmanager
def _opened(source: str | Path | h5py.File) -> Iterator[h5py.File]:
    """`source` itself if it is an open file, else the file at that path (`open_cache`)."""
    if isinstance(source, h5py.File):
        yield source
    else:
        with open_cache(source) as f:
            yield f


def video_digests(source: str | Path | h5py.File) -> dict[str, str]:
    """The `digest` attr of every `<split>/<name>` video group, by key; `MissingDigestError`
    (naming the file and the video) if one has none."""
    with _opened(source) as f:
        digests = {}
        for split, name, group in iter_videos(f):
            key = video_key(split, name)
            if DIGEST not in group.attrs:
                raise MissingDigestError(f.filename, key)
            digests[key] = str(group.attrs[DIGEST])
        return digests


def input_video_digests(source: str | Path | h5py.File, stage: str) -> dict[str, str]:
    """`video_digests` of a stage's input cache; a cache written before digests existed is an
    error that names the file, the video and the stage to re-run."""
    try:
        return video_digests(source)
    except MissingDigestError as error:
        raise ValueError(f"{error}; re-run the {stage} stage (`dvc repro -f {stage}`)") from error


def cache_digest(source: str | Path | h5py.File, keys: Iterable[str] | None = None) -> str:
    """The content digest of a whole cache: `combine_digests` of its videos' digests by key.

    Reads attrs only, so it is cheap. It depends on the videos' keys and content alone: not on
    the order they were written in, the file's settings attrs, chunking or compression; it
    changes when any video's content changes, or one is added, removed or renamed. With `keys`,
    only those videos count (a KeyError names any the file lacks).
    """
    with _opened(source) as f:
        digests = video_digests(f)
        if keys is not None:
            keys = list(keys)
            missing = [key for key in keys if key not in digests]
            if missing:
                raise KeyError(f"{f.filename}: no video(s) {', '.join(map(repr, missing))}")
            digests = {key: digests[key] for key in keys}
    return combine_digests(digests)


# ---------------------------------------------------------------------------------------------
# Writing


@contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextmanager
def atomic_directory(path: str | Path) -> Iterator[Path]:
    """Yield an empty temporary folder beside `path`; it replaces `path` (and whatever was
    there) only if the block succeeds, so a failed run leaves the old folder or none."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        yield tmp
        if path.exists():
            old = path.with_name(path.name + f".old{os.getpid()}")
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old)
        else:
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


@contextmanager
def staged_outputs(*paths: str | Path) -> Iterator[list[Path]]:
    """Yield a staging path beside each of `paths`; only once the block succeeded (and wrote
    every one) are they all renamed onto `paths`. Outputs that belong together therefore appear
    together: a failure anywhere leaves none of them new, and what was at `paths` untouched."""
    outputs = [Path(path) for path in paths]
    staged = [path.with_name(path.name + f".staged{os.getpid()}") for path in outputs]
    for path in outputs:
        path.parent.mkdir(parents=True, exist_ok=True)
    try:
        yield staged
        missing = [str(path) for path in staged if not path.exists()]
        if missing:
            raise RuntimeError(f"staged output(s) {', '.join(missing)} were not written")
        for tmp, path in zip(staged, outputs, strict=True):
            os.replace(tmp, path)
    finally:
        for tmp in staged:
            if tmp.exists():
                tmp.unlink()


@contextmanager
def write_h5(path: str | Path, settings: dict | None = None) -> Iterator[h5py.File]:
    """Open a new HDF5 file for writing that appears at `path` only once closed successfully."""
    with atomic_output(path) as tmp:
        with h5py.File(tmp, "w", libver=FILE_FORMAT) as f:
            if settings is not None:
                f.attrs["settings"] = settings_fingerprint(settings)
            yield f


class ResumableCache:
    """A per-video HDF5 cache that survives interruption and resumes by input content.

    Use: `with ResumableCache(path, settings) as cache:`, `cache.retain(keys)` (the videos the
    input has now), then per video: unless `cache.is_done(key, input_digest)`,
    `group = cache.start(key)` ... `cache.finish(key, digest=..., input_digest=...)`. Leaving
    the block without error renames the partial file onto `path`.

    `settings` is what applies to every video (method, options, size); a change discards the
    whole partial. It must not hold input paths or shapes: the input's content is checked per
    video, through the `input_digest` each finished video records.
    """

    def __init__(self, path: str | Path, settings: dict):
        self.path = Path(path)
        self.partial = self.path.with_name(self.path.name + ".partial")
        self.fingerprint = settings_fingerprint(settings)
        self.file: h5py.File | None = None

    def __enter__(self) -> ResumableCache:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.partial.exists():
            try:
                f = h5py.File(self.partial, "a")
            except OSError:  # a partial file broken mid-write: start again
                self.partial.unlink()
            else:
                if f.attrs.get("settings") == self.fingerprint:
                    self.file = f
                else:
                    f.close()
                    self.partial.unlink()
        if self.file is None:
            self.file = h5py.File(self.partial, "w", libver=FILE_FORMAT)
            self.file.attrs["settings"] = self.fingerprint
        return self

    def retain(self, keys: Iterable[str]) -> None:
        """Drop every video group not in `keys` (a video an earlier input had, this one not)."""
        assert self.file is not None
        wanted = set(keys)
        for split, name, _ in list(iter_videos(self.file)):
            if video_key(split, name) not in wanted:
                del self.file[split][name]
        for split in SPLITS:
            if split in self.file and len(self.file[split]) == 0:
                del self.file[split]

    def is_done(self, key: str, input_digest: str) -> bool:
        """Whether `key` is complete and was computed from an input of digest `input_digest`."""
        assert self.file is not None
        if key not in self.file:
            return False
        attrs = self.file[key].attrs
        return bool(attrs.get(COMPLETE, False)) and attrs.get(INPUT_DIGEST) == input_digest

    def start(self, key: str) -> h5py.Group:
        """A fresh, empty group for `key` (whatever an earlier run left there is dropped)."""
        assert self.file is not None
        if key in self.file:
            del self.file[key]
        return self.file.create_group(key)

    @contextmanager
    def writing(self, key: str) -> Iterator[h5py.Group]:
        """`start(key)` for a video written piece by piece: if the block fails, the group is
        dropped again, so that a failed video leaves nothing half-written in the partial file."""
        group = self.start(key)
        try:
            yield group
        except BaseException:
            if self.file is not None and key in self.file:
                del self.file[key]
            raise

    def finish(self, key: str, *, digest: str, input_digest: str) -> None:
        """Mark `key` complete, with the digest of its content and of the input it came from."""
        assert self.file is not None
        attrs = self.file[key].attrs
        attrs[DIGEST] = digest
        attrs[INPUT_DIGEST] = input_digest
        attrs[COMPLETE] = True
        self.file.flush()

    def commit(self) -> None:
        assert self.file is not None
        self.file.close()
        self.file = None
        os.replace(self.partial, self.path)

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None
        if exc_type is None and self.partial.exists():
            os.replace(self.partial, self.path)


PARTIAL_SUFFIX = ".partial"  # ResumableCache's resume file: `<output>.partial`


def orphaned_partials(root: str | Path) -> list[Path]:
    """`<output>.partial` files under `root` whose `<output>` exists.

    Such a partial is left behind when DVC restores a stage's output from its run cache instead
    of running the stage (an interrupted run with other settings wrote the partial). It resumes
    nothing while the output is there: DVC deletes a stage's outputs before running it, and a
    stage that starts again resumes only a partial of its current settings. It is disk space
    (a flow partial can be gigabytes)."""
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(
        path
        for path in root.rglob(f"*{PARTIAL_SUFFIX}")
        if path.is_file() and path.with_name(path.name[: -len(PARTIAL_SUFFIX)]).exists()
    )


def remove_orphaned_partials(root: str | Path, log=print) -> list[Path]:
    """Delete every `orphaned_partials(root)` file, logging one line each; returns them."""
    removed = []
    for path in orphaned_partials(root):
        size = path.stat().st_size
        path.unlink()
        output = path.with_name(path.name[: -len(PARTIAL_SUFFIX)])
        log(
            f"removed {path} ({size / 1e6:.1f} MB): an interrupted run's resume file, orphaned "
            f"since {output} was restored (DVC run cache)"
        )
        removed.append(path)
    return removed


# ---------------------------------------------------------------------------------------------
# Reading and layout


def iter_videos(f: h5py.File) -> Iterator[tuple[str, str, h5py.Group]]:
    """Yield (split, name, group) for every video group, train first, names sorted."""
    for split in SPLITS:
        if split in f:
            for name in sorted(f[split]):
                yield split, name, f[split][name]


def checked_dataset(
    group: h5py.Group,
    name: str,
    data: np.ndarray | None = None,
    *,
    chunks: tuple[int, ...] | bool = True,
    **options,
) -> h5py.Dataset:
    """`group.create_dataset` with a Fletcher-32 checksum of every chunk, which HDF5 checks on
    each read: every dataset of the project's files is made here. The checksum needs chunked
    storage (`chunks`: a shape, or True to let h5py choose); a scalar cannot be chunked, so it
    is refused (store it as an attr or a 1-element array). `options`: shape, dtype,
    compression, ..."""
    shape = np.shape(data) if data is not None else options.get("shape")
    if shape == ():
        raise ValueError(
            f"{group.file.filename}: dataset '{group.name.rstrip('/')}/{name}' is a scalar, which "
            "cannot carry a checksum; store it as an attr or a 1-element array"
        )
    return group.create_dataset(name, data=data, chunks=chunks, fletcher32=True, **options)


def time_chunks(shape: tuple[int, ...], frames_per_chunk: int) -> tuple[int, ...]:
    """The chunk shape of a T×... dataset stored `frames_per_chunk` frames to a chunk."""
    return (min(frames_per_chunk, max(1, shape[0])),) + tuple(shape[1:])


def chunked_dataset(
    group: h5py.Group, name: str, data: np.ndarray, frames_per_chunk: int = 8
) -> h5py.Dataset:
    """Store a T×... array chunked along time, lightly compressed, checksummed."""
    chunks = time_chunks(data.shape, frames_per_chunk)
    return checked_dataset(group, name, data, chunks=chunks, compression="lzf")


class RowWriter:
    """A new dataset laid out as `chunked_dataset` lays it out (chunked along time, lzf,
    checksummed), of known `shape`, filled in order a block of rows at a time, with the
    content digest of what was written: a video's frames, flows or maps written in memory
    independent of its length, into the same file `chunked_dataset` of the whole array makes.

    Blocks should hold whole chunks (a multiple of `frames_per_chunk` rows, but the last), so
    that every chunk is written once."""

    def __init__(
        self,
        group: h5py.Group,
        name: str,
        shape: tuple[int, ...],
        dtype: np.dtype | type,
        frames_per_chunk: int = 8,
    ):
        self.dtype = np.dtype(dtype)
        self.dataset = checked_dataset(
            group,
            name,
            shape=tuple(shape),
            dtype=self.dtype,
            chunks=time_chunks(tuple(shape), frames_per_chunk),
            compression="lzf",
        )
        self.digest = IncrementalDigest(self.dtype, tuple(shape))

    @property
    def rows(self) -> int:
        return self.digest.rows

    def write(self, rows: np.ndarray) -> None:
        """Append `rows` (shape[1:] each; cast to the dataset's dtype as numpy casts)."""
        rows = np.asarray(rows).astype(self.dtype, copy=False)
        start = self.digest.rows
        self.digest.update(rows)  # checks the shape and the count first
        self.dataset[start : start + len(rows)] = rows

    def hexdigest(self) -> str:
        """The content digest (`array_digest` of the whole); fails unless every row was written."""
        return self.digest.hexdigest()


def iter_rows(
    dataset: h5py.Dataset, block: int, overlap: int = 0
) -> Iterator[tuple[int, np.ndarray]]:
    """(first, rows) of `dataset` in order, `block` rows at a time (`read_dataset`): rows
    first .. first + block + overlap - 1, clipped to the end; consecutive blocks share
    `overlap` rows (for windows that reach into the next block), and the last block is the
    first one that reaches the end. An empty dataset gives one empty block."""
    if block < 1 or overlap < 0:
        raise ValueError(f"iter_rows: block must be >= 1 and overlap >= 0, got {block}, {overlap}")
    total, first = len(dataset), 0
    while True:
        end = min(first + block + overlap, total)
        yield first, read_dataset(dataset, np.s_[first:end])
        if end >= total:
            return
        first += block


def copy_rows(
    source: h5py.Dataset, group: h5py.Group, name: str, frames_per_chunk: int, block: int
) -> str:
    """Copy `source` into a new `RowWriter` dataset of `group`, `block` rows at a time;
    returns the content digest."""
    writer = RowWriter(group, name, source.shape, source.dtype, frames_per_chunk)
    for _, rows in iter_rows(source, block):
        writer.write(rows)
    return writer.hexdigest()
