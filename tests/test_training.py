"""vad.training, the toolkit every deep method trains with: seeds, checkpoints, the NaN guard,
byte-stable saves and the epoch loop."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from vad.training import (
    Checkpoint,
    atomic_torch_save,
    data_fingerprint,
    derived_seed,
    epoch_generator,
    epoch_order,
    guard_finite,
    history_rows,
    resolve_device,
    run_epoch,
)


def test_devices() -> None:
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="no CUDA"):
            resolve_device("cuda")


def test_epoch_order_and_noise_depend_only_on_seed_phase_and_epoch() -> None:
    first = epoch_order(0, 1, 0, 50)
    assert np.array_equal(np.sort(first), np.arange(50))
    assert np.array_equal(first, epoch_order(0, 1, 0, 50))
    for other in (epoch_order(0, 1, 1, 50), epoch_order(0, 0, 0, 50), epoch_order(1, 1, 0, 50)):
        assert not np.array_equal(first, other)
    assert derived_seed(3, 1, 2, 0) != derived_seed(3, 1, 2, 1)  # order and noise streams
    assert 0 <= derived_seed(3, 1, 2, 0) < 2**63
    cpu = torch.device("cpu")
    a = torch.randn(4, generator=epoch_generator(5, 0, 2, cpu))
    b = torch.randn(4, generator=epoch_generator(5, 0, 2, cpu))
    c = torch.randn(4, generator=epoch_generator(5, 0, 3, cpu))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_data_fingerprint_sees_shape_and_content() -> None:
    data = np.zeros((4, 3), np.uint8)
    changed = data.copy()
    changed[2, 1] = 1
    assert data_fingerprint(data) == data_fingerprint(data.copy())
    assert data_fingerprint(data) != data_fingerprint(changed)
    assert data_fingerprint(data) != data_fingerprint(data.reshape(3, 4))


def test_atomic_torch_save_gives_equal_bytes_for_equal_payloads(tmp_path: Path) -> None:
    payload = {"weights": torch.arange(6.0), "meta": {"epoch": 2}}
    atomic_torch_save(payload, tmp_path / "a.pt")
    atomic_torch_save(payload, tmp_path / "b.pt")
    assert (tmp_path / "a.pt").read_bytes() == (tmp_path / "b.pt").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.pt", "b.pt"]  # no temporary left


def test_checkpoint_resumes_only_the_same_run(tmp_path: Path, caplog) -> None:
    path = tmp_path / "checkpoint.pt"
    Checkpoint(path, "fmt/1", {"lr": 0.1}).save({"epoch": 3})
    assert Checkpoint(path, "fmt/1", {"lr": 0.1}).load()["epoch"] == 3
    with caplog.at_level(logging.WARNING, logger="vad.training"):
        assert Checkpoint(path, "fmt/1", {"lr": 0.2}).load() is None
        assert Checkpoint(path, "fmt/2", {"lr": 0.1}).load() is None
        too_long = Checkpoint(path, "fmt/1", {"lr": 0.1}).load(
            reject=lambda state: "too many epochs" if state["epoch"] > 2 else None
        )
        assert too_long is None
    assert caplog.text.count("starting fresh") == 3 and "too many epochs" in caplog.text
    path.write_bytes(b"not a checkpoint")
    assert Checkpoint(path, "fmt/1", {"lr": 0.1}).load() is None
    assert Checkpoint(tmp_path / "absent.pt", "fmt/1", {}).load() is None


def test_guard_finite_names_phase_epoch_and_batch() -> None:
    guard_finite({"loss": 1.0, "grad_norm": 2.0}, "M", "warmup", 1, 5, 3, 10)
    with pytest.raises(
        FloatingPointError,
        match=r"M training diverged.*phase 'warmup', epoch 2/5, batch 3/10 "
        r"\(loss=nan, grad_norm=2\)",
    ):
        guard_finite({"loss": float("nan"), "grad_norm": 2.0}, "M", "warmup", 2, 5, 3, 10)
    with pytest.raises(FloatingPointError, match="grad_norm=inf"):
        guard_finite({"loss": 1.0, "grad_norm": float("inf")}, "M", "main", 1, 1, 1, 1)


def test_run_epoch_weights_batch_means_by_batch_size() -> None:
    seen = []

    def step(index: np.ndarray, batch: int, n_batches: int) -> dict[str, float]:
        seen.append((list(index), batch, n_batches))
        return {"loss": float(index.sum()), "other": 1.0}

    means = run_epoch(step, np.array([4, 0, 3, 1, 2]), 2, ("loss",), "test", progress=False)
    assert seen == [([0, 4], 1, 3), ([1, 3], 2, 3), ([2], 3, 3)]  # each batch sorted
    assert means == {"loss": pytest.approx((4 * 2 + 4 * 2 + 2 * 1) / 5)}


def test_history_rows_count_epochs_across_phases_with_every_term_in_every_row():
    history = {
        "pretrain": {"reconstruction": [3.0, 2.0], "loss": [3.0, 2.0]},
        "unused": {"loss": []},
        "joint": {"loss": [1.5], "kl": [np.float32(0.5)]},
        "epoch_seconds": {"pretrain": [9.0, 9.0], "joint": [9.0]},  # not a phase: left out
    }
    rows = history_rows(history, ("pretrain", "unused", "joint"))
    assert rows == [
        {"epoch": 1, "phase": "pretrain", "loss": 3.0, "reconstruction": 3.0, "kl": None},
        {"epoch": 2, "phase": "pretrain", "loss": 2.0, "reconstruction": 2.0, "kl": None},
        {"epoch": 3, "phase": "joint", "loss": 1.5, "reconstruction": None, "kl": 0.5},
    ]
    assert [list(row) for row in rows][0][:3] == ["epoch", "phase", "loss"]  # loss first
    assert type(rows[2]["kl"]) is float  # numpy scalars become JSON-ready floats
