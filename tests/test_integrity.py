"""Checksums in every cache, and damaged caches reported as errors that name the file, the video
and the dataset at fault and the stage to re-run (issue #15).

The caches here are written by the project's own writers, then damaged on disk: bytes flipped
inside a chunk's data (found with h5py's chunk index), a header overwritten, a file cut short.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from h5py import h5o

from vad.cache import (
    CacheError,
    array_digest,
    checked_dataset,
    exit_on_cache_error,
    open_cache,
    video_digests,
    write_h5,
    writer_stage,
)
from vad.datasets.synthetic import open_synthetic
from vad.frame_cache import load_frames, load_ground_truth, video_keys, write_frame_cache
from vad.fusion import fuse
from vad.methods.base import Inputs
from vad.methods.baseline.method import BASELINE, MODEL_FILE
from vad.methods.gmfc_vae.patches import (
    PatchSettings,
    extract_training_patches,
    sample_locations,
    stream_frames,
    write_patches,
)
from vad.motion.dynflow_runner import DynamicFlowSettings, run_dynamic_flow_stage
from vad.motion.flow_runner import run_flow_stage
from vad.scores import ScoreSet, VideoScores, read_scores, write_scores

REPO = Path(__file__).resolve().parents[1]
SCENE = dict(width=96, height=64, train_videos=1, test_videos=2, frames_per_video=6)
FLOW_SIZE = (48, 32)
DYNAMIC = DynamicFlowSettings(window=3)
FLIPPED = 50


@pytest.fixture(scope="module")
def caches(tmp_path_factory) -> Path:
    """frames.h5, ground_truth.h5, flow.h5 and dynflow.h5 of a tiny scene, written once by the
    frames, flow and dynamic-flow stages' code (tests damage copies of them)."""
    folder = tmp_path_factory.mktemp("caches")
    write_frame_cache(
        open_synthetic(**SCENE), folder / "frames.h5", folder / "ground_truth.h5", progress=False
    )
    run_flow_stage(
        folder / "frames.h5",
        folder / "flow.h5",
        "dis",
        {"preset": "ultrafast"},
        FLOW_SIZE,
        1,
        False,
    )
    run_dynamic_flow_stage(folder / "flow.h5", folder / "dynflow.h5", DYNAMIC, progress=False)
    return folder


@pytest.fixture
def copies(caches, tmp_path) -> Path:
    for path in caches.glob("*.h5"):
        shutil.copy(path, tmp_path / path.name)
    return tmp_path


def flip_bytes(path: Path, offset: int, count: int = FLIPPED) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        original = f.read(count)
        f.seek(offset)
        f.write(bytes(byte ^ 0xFF for byte in original))


def lzf_literals(stream: bytes) -> list[int]:
    """Offsets of the literal bytes of an LZF stream: changing them changes the decoded data but
    not its length, so LZF itself cannot notice (a changed control byte it often can)."""
    literals, at = [], 0
    while at < len(stream):
        control = stream[at]
        at += 1
        if control < 32:  # a run of control + 1 literal bytes
            literals.extend(range(at, at + control + 1))
            at += control + 1
        else:  # a back-reference: one more byte, two for the longest lengths
            at += 2 if control >> 5 == 7 else 1
    return literals


def damage_chunk(path: Path, dataset: str, chunk: int) -> None:
    """Flip FLIPPED bytes of data in one chunk of `dataset`, spread over the chunk as bit rot
    would, and only bytes that its compression cannot tell are damaged: what is left to notice
    it is the checksum alone."""
    with h5py.File(path, "r") as f:
        ds = f[dataset]
        info = ds.id.get_chunk_info(chunk)
        mask, stored = ds.id.read_direct_chunk(info.chunk_offset)
        checksum = 4 if ds.fletcher32 else 0
        body = stored[: len(stored) - checksum]
        compressed = ds.compression == "lzf" and not mask & 1  # bit 0: LZF skipped the chunk
        candidates = lzf_literals(body) if compressed else list(range(len(body)))
    assert len(candidates) >= FLIPPED, f"chunk {chunk} of {dataset} is too small to damage"
    step = len(candidates) // FLIPPED
    with open(path, "r+b") as f:
        for index in candidates[::step][:FLIPPED]:
            f.seek(info.byte_offset + index)
            byte = f.read(1)[0]
            f.seek(info.byte_offset + index)
            f.write(bytes([byte ^ 0xFF]))


def first_test_video(path: Path) -> str:
    return video_keys(path, "test")[0]


# ---------------------------------------------------------------------------------------------
# Every dataset carries a checksum


def test_a_writer_that_calls_create_dataset_directly_is_a_failure():
    """Datasets are made by vad.cache.checked_dataset alone, so none can miss its checksum."""
    offenders = [
        f"{path.relative_to(REPO)}:{number}"
        for folder in ("vad", "stages")
        for path in sorted((REPO / folder).rglob("*.py"))
        if path != REPO / "vad" / "cache.py"
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if re.search(r"\bcreate_dataset\(", line)
    ]
    assert offenders == [], "create datasets with vad.cache.checked_dataset"


def checksummed(folder: Path) -> dict[str, bool]:
    """Whether each dataset of every HDF5 file under `folder` has a Fletcher-32 checksum, by
    `<file>:<dataset>`."""
    found = {}

    def visit(name: str, item: object, path: Path) -> None:
        if isinstance(item, h5py.Dataset):
            found[f"{path.relative_to(folder)}:{name}"] = item.fletcher32

    for path in sorted(folder.rglob("*.h5")):
        with h5py.File(path, "r") as f:
            f.visititems(lambda name, item, path=path: visit(name, item, path))
    return found


def test_every_file_the_writers_make_checksums_every_dataset_and_its_metadata(caches, tmp_path):
    frames, dynflow = caches / "frames.h5", caches / "dynflow.h5"
    prepared, model = tmp_path / "prepared" / "baseline.h5", tmp_path / "models" / "baseline"
    prepared.parent.mkdir()
    grid = {"size": [48, 32], "patch": 16}
    BASELINE.prepare(Inputs({"frames": frames}), grid, prepared)
    BASELINE.train(prepared, {}, model, tmp_path / "work")
    scores = BASELINE.score(Inputs({"frames": frames}), prepared, model, {}).collect()
    scores.train["extra"] = VideoScores(np.ones(3, np.float32), frame_indices=np.arange(3))
    write_scores(tmp_path / "scores" / "baseline.h5", scores)
    fused = fuse("fused", {"baseline": scores}, {"baseline": 1.0})
    write_scores(tmp_path / "fused" / "fused.h5", fused)
    settings = PatchSettings(size=(56, 28), n_train=40)
    keys, locations = sample_locations(frames, settings, progress=False)
    patches = extract_training_patches("dynflow", frames, dynflow, keys, locations, settings, False)
    write_patches(tmp_path / "patches.h5", patches, keys, locations, "dynflow", settings)
    for path in caches.glob("*.h5"):
        shutil.copy(path, tmp_path / path.name)

    datasets = checksummed(tmp_path)
    kinds = {name.rsplit("/", 1)[-1].rsplit(":", 1)[-1] for name in datasets}
    assert {"frames", "labels", "masks", "flow", "dynflow", "energy", "mean", "std"} <= kinds
    assert {
        "frame_scores",
        "score_maps",
        "frame_indices",
        "patches",
        "locations",
        "videos",
    } <= kinds
    assert [name for name, checked in datasets.items() if not checked] == []
    for path in tmp_path.rglob("*.h5"):
        with h5py.File(path, "r") as f:  # superblock 2+ and v2 object headers: checksummed
            assert f.id.get_create_plist().get_version()[0] >= 2, path


def test_a_scalar_dataset_is_refused_because_it_cannot_carry_a_checksum(tmp_path):
    with write_h5(tmp_path / "x.h5") as f:
        with pytest.raises(ValueError, match=r"'/model/C' is a scalar.*attr or a 1-element"):
            checked_dataset(f.create_group("model"), "C", np.float64(1.0))


def test_checksums_do_not_change_the_content_digests(caches):
    """The digests are those of the arrays read back, whatever the storage filters."""
    for name, dataset in [("flow.h5", "flow"), ("dynflow.h5", "dynflow"), ("frames.h5", "frames")]:
        with h5py.File(caches / name, "r") as f:
            for key, digest in video_digests(f).items():
                assert digest == array_digest(f[key][dataset][()]), (name, key)


# ---------------------------------------------------------------------------------------------
# Damaged data: the checksum fails, the error names the file, the video and the dataset


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_flipped_bytes_in_the_flow_stop_the_dynamic_flow_naming_file_video_dataset(copies, n_jobs):
    flow, out = copies / "flow.h5", copies / "dynflow_new.h5"
    key = first_test_video(flow)
    damage_chunk(flow, f"{key}/flow", chunk=1)
    with pytest.raises(CacheError) as caught:
        run_dynamic_flow_stage(flow, out, DYNAMIC, n_jobs=n_jobs, progress=False)
    message = str(caught.value)
    assert message.startswith(f"{flow}: checksum or read failure in video '{key}', dataset 'flow'")
    assert "the file is damaged" in message and "`dvc repro -f -s flow`" in message
    assert caught.value.path == str(flow)
    assert not out.exists()


def test_flipped_bytes_in_frames_fail_load_frames_for_that_video_only(copies):
    frames = copies / "frames.h5"
    damaged, intact = video_keys(frames)[:2]
    damage_chunk(frames, f"{damaged}/frames", chunk=0)
    with pytest.raises(
        CacheError,
        match=re.escape(
            f"{frames}: checksum or read failure in video '{damaged}', dataset 'frames'"
        ),
    ) as caught:
        load_frames(frames, damaged)
    assert "`dvc repro -f -s frames`" in str(caught.value)
    assert load_frames(frames, intact).shape[0] == SCENE["frames_per_video"]


def test_flipped_bytes_in_a_file_level_dataset_name_the_dataset(tmp_path):
    path = tmp_path / "scores" / "baseline.h5"
    scores = ScoreSet(model="baseline")
    scores.test["01"] = VideoScores(np.linspace(0, 1, 400, dtype=np.float32))
    write_scores(path, scores)
    damage_chunk(path, "test/01/frame_scores", chunk=0)
    with pytest.raises(
        CacheError, match=r"video 'test/01', dataset 'frame_scores'.*score@baseline"
    ):
        read_scores(path)


# ---------------------------------------------------------------------------------------------
# Damaged headers and truncated files: the error names the file and the stage to re-run


def overwrite_signature(path: Path) -> None:
    with open(path, "r+b") as f:
        f.write(b"\0" * 8)


def truncate(path: Path) -> None:
    os.truncate(path, path.stat().st_size // 2)


READERS = {
    "frames.h5": lambda path, folder: video_keys(path),
    "ground_truth.h5": lambda path, folder: load_ground_truth(path),
    "flow.h5": lambda path, folder: run_dynamic_flow_stage(path, folder / "out.h5", DYNAMIC),
    "dynflow.h5": lambda path, folder: stream_frames(
        "dynflow", folder / "frames.h5", path, "test/01", (48, 32)
    ),
}
STAGES = {"frames.h5": "frames", "ground_truth.h5": "frames", "flow.h5": "flow"}
STAGES["dynflow.h5"] = "dynamic_flow"


@pytest.mark.parametrize("damage", [overwrite_signature, truncate])
@pytest.mark.parametrize("name", list(READERS))
def test_a_damaged_header_or_truncated_file_names_the_file_and_the_stage(copies, name, damage):
    path = copies / name
    damage(path)
    with pytest.raises(CacheError) as caught:
        READERS[name](path, copies)
    message = str(caught.value)
    assert message.startswith(f"{path}: damaged, truncated or not an HDF5 file (")
    assert message.endswith(
        f"re-run the stage that writes it with `dvc repro -f -s {STAGES[name]}`"
    )
    expected = "file signature not found" if damage is overwrite_signature else "truncated file"
    assert expected in message
    assert not (copies / "out.h5").exists()


def test_a_damaged_video_object_header_is_a_cache_error(copies):
    frames = copies / "frames.h5"
    key = first_test_video(frames)
    with h5py.File(frames, "r") as f:
        header = h5o.get_info(f[key].id).addr
    flip_bytes(frames, header, 4)  # the object header's signature
    with pytest.raises(CacheError, match=re.escape(f"{frames}: damaged")):
        load_frames(frames, key)


def test_errors_that_are_not_damage_pass_through(tmp_path, caches):
    with pytest.raises(FileNotFoundError):
        video_keys(tmp_path / "missing.h5")
    with pytest.raises(KeyError, match="no video 'test/nope'"):
        load_frames(caches / "frames.h5", "test/nope")
    frames = caches / "frames.h5"
    absent = [
        lambda f: f["nope"],
        lambda f: f["test/nope/frames"],
        lambda f: f.attrs["nope"],
        lambda f: f[first_test_video(frames)]["nope"],
    ]
    for read in absent:
        with pytest.raises(KeyError) as caught, open_cache(frames) as f:
            read(f)
        assert caught.type is KeyError
    with pytest.raises(OSError, match="disk full") as caught, open_cache(frames):
        raise OSError("disk full")  # not raised by h5py: not a damaged cache
    assert not isinstance(caught.value, CacheError)


@pytest.mark.parametrize(
    "path, stage",
    [
        ("data/interim/frames.h5", "frames"),
        ("data/interim/ground_truth.h5", "frames"),
        ("data/interim/flow.h5", "flow"),
        ("data/interim/dynflow.h5", "dynamic_flow"),
        ("data/prepared/gmfc_vae_rgb.h5", "prepare@gmfc_vae_rgb"),
        ("data/models/baseline/model.h5", "train@baseline"),
        ("data/scores/baseline.h5", "score@baseline"),
        ("data/fused/gmfc_vae.h5", "fuse"),
        ("elsewhere/cache.h5", None),
    ],
)
def test_the_stage_that_writes_each_cache(path, stage):
    assert writer_stage(path) == stage


def test_a_model_file_error_names_the_train_stage(tmp_path, caches):
    prepared, model = tmp_path / "prepared" / "baseline.h5", tmp_path / "models" / "baseline"
    prepared.parent.mkdir()
    BASELINE.prepare(
        Inputs({"frames": caches / "frames.h5"}), {"size": [48, 32], "patch": 16}, prepared
    )
    BASELINE.train(prepared, {}, model, tmp_path / "work")
    overwrite_signature(model / MODEL_FILE)
    with pytest.raises(CacheError, match=re.escape("`dvc repro -f -s train@baseline`")):
        BASELINE.score(Inputs({"frames": caches / "frames.h5"}), prepared, model, {})


# ---------------------------------------------------------------------------------------------
# A stage's command line: one line, no traceback, a non-zero exit


def test_exit_on_cache_error_makes_one_line_and_leaves_other_errors_alone():
    with pytest.raises(SystemExit) as caught, exit_on_cache_error():
        raise CacheError("data/interim/flow.h5: damaged", "data/interim/flow.h5")
    assert caught.value.code == "error: data/interim/flow.h5: damaged"
    with pytest.raises(ValueError, match="not a cache"), exit_on_cache_error():
        raise ValueError("not a cache")


def test_a_stage_run_on_a_damaged_cache_prints_one_line_and_fails(copies):
    flow = copies / "flow.h5"
    overwrite_signature(flow)
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "stages.motion_figures",
            "--frames",
            str(copies / "frames.h5"),
            "--flow",
            str(flow),
            "--dynflow",
            str(copies / "dynflow.h5"),
            "--out",
            str(copies / "figures"),
        ],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), "VAD_TIMINGS_DIR": str(copies / "timings")},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 1
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith(f"error: {flow}: damaged, truncated or not an HDF5 file")
    assert lines[0].endswith("`dvc repro -f -s flow`")
