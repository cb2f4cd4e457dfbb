"""Training toolkit shared by every deep method: devices, seeded epochs, checkpoints with a
run identity and exact resume, a guard against non-finite values, byte-stable atomic
`torch.save`, and one epoch loop with progress.

Reproducibility rule: the sample order and the noise of an epoch are functions of
(seed, phase, epoch) only (`derived_seed`), so a run resumed from its end-of-epoch checkpoint
ends with the same weights as an uninterrupted one (bit-identical on CPU). The same rule lets
`torchrun` processes train one model on shards of every batch (`vad.distributed`): they all
see the same batches; `Checkpoint` and `run_epoch` write and print on rank 0 only. Usage:

    checkpoint = Checkpoint(workdir / "checkpoint.pt", "vad.train.mymethod/1", identity)
    state = checkpoint.load()              # None: start fresh
    means = run_epoch(step, epoch_order(seed, 0, epoch, n), 64, ("loss",), "epoch 1/5")
    checkpoint.save({"epoch": epoch + 1, "model": model.state_dict(), ...})
"""

from __future__ import annotations

import hashlib
import io
import logging
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from vad.cache import atomic_output
from vad.distributed import barrier, broadcast_object, is_main_process
from vad.progress import progress as progress_bar

log = logging.getLogger(__name__)


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """ "auto" -> CUDA when present, else CPU; "cuda" without a GPU is an error."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' requested but torch sees no CUDA device")
    return device


def derived_seed(seed: int, phase: int, epoch: int, stream: int) -> int:
    """A 63-bit seed that depends only on (seed, phase index, epoch, stream)."""
    sequence = np.random.SeedSequence([seed, phase, epoch, stream])
    return int(sequence.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


def epoch_order(seed: int, phase: int, epoch: int, n: int) -> np.ndarray:
    """The shuffled sample order of one epoch (stream 0 of `derived_seed`)."""
    return np.random.default_rng(derived_seed(seed, phase, epoch, 0)).permutation(n)


def epoch_generator(seed: int, phase: int, epoch: int, device: torch.device) -> torch.Generator:
    """The torch generator for an epoch's sampling noise (stream 1 of `derived_seed`)."""
    generator = torch.Generator(device=device)
    generator.manual_seed(derived_seed(seed, phase, epoch, 1))
    return generator


def batches(order: np.ndarray, batch_size: int) -> Iterator[np.ndarray]:
    for start in range(0, len(order), batch_size):
        yield order[start : start + batch_size]


def data_fingerprint(data: np.ndarray) -> str:
    """Shape + BLAKE2b of the bytes: a checkpoint is only resumed on the same training data."""
    digest = hashlib.blake2b(np.ascontiguousarray(data).data, digest_size=16).hexdigest()
    return f"{data.shape}:{digest}"


def atomic_torch_save(payload: dict, path: str | Path) -> None:
    """torch.save through memory, then an atomic rename. (Saved straight to a file, the
    archive's inner folder is named after the per-process temporary file, so equal payloads
    would not give equal bytes.)"""
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    with atomic_output(path) as tmp:
        tmp.write_bytes(buffer.getvalue())


class Checkpoint:
    """The end-of-epoch checkpoint of one training run, resumed only by the same run.

    `identity` is everything the run's result depends on except the epoch counts (settings,
    a fingerprint of the data); a checkpoint written under another identity or format, or one
    that cannot be read, is ignored with a warning and training starts fresh.
    """

    def __init__(self, path: str | Path, format: str, identity: dict, logger=log):
        self.path = Path(path)
        self.format = format
        self.identity = identity
        self.log = logger

    def load(self, reject: Callable[[dict], str | None] | None = None) -> dict | None:
        """The checkpoint if it continues this run; `reject(checkpoint)` may veto it by
        returning the reason (e.g. it has more epochs than now requested). In a distributed
        run rank 0 reads it and every rank gets rank 0's answer (`vad.distributed`)."""
        return broadcast_object(self._load(reject) if is_main_process() else None)

    def _load(self, reject: Callable[[dict], str | None] | None) -> dict | None:
        if not self.path.exists():
            return None
        try:
            checkpoint = torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception as error:  # a corrupt file must not block training
            self.log.warning(
                "ignoring unreadable checkpoint %s (%s); starting fresh", self.path, error
            )
            return None
        reason = None
        if checkpoint.get("format") != self.format or checkpoint.get("identity") != self.identity:
            reason = "it was written with different settings or data"
        elif reject is not None:
            reason = reject(checkpoint)
        if reason is not None:
            self.log.warning("not resuming from %s: %s; starting fresh", self.path, reason)
            return None
        return checkpoint

    def save(self, state: dict) -> None:
        """Write the checkpoint (atomic); in a distributed run rank 0 writes it while the
        other ranks wait at a barrier until it is there."""
        if is_main_process():
            atomic_torch_save(
                {"format": self.format, "identity": self.identity, **state}, self.path
            )
        barrier()


def guard_finite(
    values: Mapping[str, float],
    model: str,
    phase: str,
    epoch: int,
    n_epochs: int,
    batch: int,
    n_batches: int,
) -> None:
    """Stop with an error naming phase, epoch and batch when any value is NaN or infinite."""
    if all(math.isfinite(value) for value in values.values()):
        return
    described = ", ".join(f"{name}={value:.6g}" for name, value in values.items())
    raise FloatingPointError(
        f"{model} training diverged: non-finite loss or gradient in phase '{phase}', "
        f"epoch {epoch}/{n_epochs}, batch {batch}/{n_batches} ({described})"
    )


def run_epoch(
    step: Callable[[np.ndarray, int, int], Mapping[str, float]],
    order: np.ndarray,
    batch_size: int,
    names: Sequence[str],
    desc: str,
    progress: bool = True,
) -> dict[str, float]:
    """One pass over `order` in batches: `step(sorted batch indices, batch number, number of
    batches)` trains on a batch and returns its loss terms; returns each term's sample-weighted
    mean over the epoch (`names` are the terms averaged and shown). With `progress`, a bar
    while it runs and one line with the means when it ends (in a distributed run on rank 0
    only; there `step` shards the batch itself and returns the global batch's means)."""
    progress = progress and is_main_process()
    start = time.perf_counter()
    sums = dict.fromkeys(names, 0.0)
    seen = 0
    n_batches = math.ceil(len(order) / batch_size)
    bar = progress_bar(
        batches(order, batch_size),
        total=n_batches,
        desc=desc,
        unit="batch",
        disable=not progress,
        leave=False,
    )
    for number, index in enumerate(bar, start=1):
        index = np.sort(index)  # sorted reads are faster; the batch is a set
        values = step(index, number, n_batches)
        for name in names:
            sums[name] += values[name] * len(index)
        seen += len(index)
        bar.set_postfix({name: f"{sums[name] / seen:.4g}" for name in names})
    bar.close()
    means = {name: sums[name] / seen for name in names}
    if progress:
        terms = ", ".join(f"{name}={value:.4g}" for name, value in means.items())
        print(f"{desc}: {terms} ({time.perf_counter() - start:.1f} s)", flush=True)
    return means


def history_rows(history: Mapping[str, Mapping[str, Sequence[float]]], phases: Sequence[str]
                 ) -> list[dict]:  # fmt: skip
    """Per-epoch loss terms as DVC plot rows: `epoch` counts on across the phases, `loss`
    comes first, and every row has every term (None where its phase has none: DVC plots rows
    of equal keys only). Wall-clock seconds stay out (printed instead), so equal runs write
    equal files."""
    terms = dict.fromkeys(term for phase in phases for term in history.get(phase, {}))
    names = ["loss", *(term for term in terms if term != "loss")]
    rows = []
    for phase in phases:
        terms_of_phase = history.get(phase, {})
        for index in range(len(terms_of_phase.get("loss", []))):
            row = {"epoch": len(rows) + 1, "phase": phase}
            row.update({name: float(terms_of_phase[name][index]) if name in terms_of_phase
                        else None for name in names})  # fmt: skip
            rows.append(row)
    return rows
