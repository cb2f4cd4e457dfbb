"""Training past one device: `torchrun` processes training one model with
DistributedDataParallel (DDP), gloo on CPU and NCCL on CUDA, for the trainers of `vad.training`.

Data parallelism over the samples of every batch, equal to a one-process run up to float
rounding for the same (global) batch size. Without torchrun (or with one process) there is no
process group and a trainer runs its one-process code, unchanged. With W > 1 ranks:

- Every rank computes the same epoch order and so the same batches: `vad.training.epoch_order`
  is a function of (seed, phase, epoch). Rank r of W trains on the contiguous slice
  `shard_slice(len(batch), r, W)` of each batch; the slices differ in size by at most one
  sample, and a rank may get none (a last batch smaller than W).
- Gradients: each rank back-propagates the *sum* of its shard's per-sample losses times
  `loss_scale` = W / (global batch size); DDP averages the gradients over the W ranks, so every
  rank steps with sum(all per-sample gradients) / (global batch size): the gradient of the
  full-batch mean, whatever the shard sizes (an empty shard adds zero).
- Noise: a trainer draws a batch's noise for the whole global batch from the epoch's generator
  on every rank and takes the rank's slice, so each sample gets the noise it gets in a
  one-process run.
- Logged loss terms: `sum_over_ranks` all-reduces the per-term sums; divided by the global batch
  size they are the batch means every rank logs, prints and returns.
- Outputs: only rank 0 writes (`is_main_process`); `vad.training.Checkpoint` saves on rank 0
  and holds the others at a barrier until the file is written, and on resume rank 0 reads the
  checkpoint and broadcasts it (other nodes need no copy of the work folder).

Usage (as in vad.methods.gmfc_vae.train), `sample_losses` returning one loss per sample:

    with replica_session(resolve_device("auto")) as replica:  # rank 0 of 1 without torchrun
        ddp = replica.wrap(MethodsAsForward(model))  # the model itself when not distributed
        part = replica.shard(len(batch))
        losses = ddp("sample_losses", x[batch[part]])
        (losses.sum() * replica.loss_scale(len(batch))).backward()
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from vad.launch import Launch, current_launch

BACKEND_VARIABLE = "VAD_DIST_BACKEND"  # overrides the backend: "gloo" or "nccl"
BACKENDS = ("gloo", "nccl")


def shard_slice(batch_size: int, rank: int, world_size: int) -> slice:
    """Rank `rank`'s contiguous part of a batch of `batch_size`: the W slices cover the batch in
    order, without overlap, and differ in length by at most one (some are empty when
    batch_size < world_size)."""
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is not in 0..{world_size - 1}")
    return slice(batch_size * rank // world_size, batch_size * (rank + 1) // world_size)


def _group_active() -> bool:
    return dist.is_available() and dist.is_initialized()


def is_main_process() -> bool:
    """Rank 0 of the process group, or of the torchrun launch when no group is up."""
    return dist.get_rank() == 0 if _group_active() else current_launch().is_main


def barrier() -> None:
    """Wait for every rank (nothing to wait for without a process group)."""
    if _group_active():
        dist.barrier()


def broadcast_object(value: Any) -> Any:
    """Rank 0's `value` on every rank (picklable objects; `value` itself without a group)."""
    if not _group_active():
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


class MethodsAsForward(nn.Module):
    """Runs any method of `model` as the forward of a module, for DDP: `wrapper("loss", x)` is
    `model.loss(x)`. DDP prepares its gradient all-reduce in `forward`; calling a loss method of
    the model directly would skip it."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return getattr(self.model, method)(*args, **kwargs)


@dataclass(frozen=True)
class Replica:
    """This process's part in a training job: its rank, the world size and its device."""

    launch: Launch
    device: torch.device

    @property
    def rank(self) -> int:
        return self.launch.rank

    @property
    def world_size(self) -> int:
        return self.launch.world_size

    @property
    def is_main(self) -> bool:
        return self.launch.is_main

    @property
    def distributed(self) -> bool:
        return self.launch.distributed

    def shard(self, batch_size: int) -> slice:
        """This rank's part of a global batch (see `shard_slice`)."""
        return shard_slice(batch_size, self.rank, self.world_size)

    def loss_scale(self, batch_size: int) -> float:
        """The factor on the sum of this rank's per-sample losses that makes DDP's gradient
        average the gradient of the global batch's mean loss: world_size / batch_size."""
        return self.world_size / batch_size

    def sum_over_ranks(self, tensor: torch.Tensor) -> torch.Tensor:
        """All-reduce (sum) in place over the ranks; the tensor itself on one process."""
        if self.distributed:
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor

    def wrap(self, module: nn.Module, find_unused_parameters: bool = False) -> nn.Module:
        """`module` in DistributedDataParallel (its parameters broadcast from rank 0 now, its
        gradients averaged over the ranks in every backward); `module` itself on one process.
        `find_unused_parameters`: some forwards leave parameters without a gradient."""
        if not self.distributed:
            return module
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(
            module, device_ids=device_ids, find_unused_parameters=find_unused_parameters
        )

    @torch.no_grad()
    def broadcast_parameters(self, module: nn.Module) -> None:
        """Copy rank 0's parameters to every rank (after a step each rank computed alone)."""
        if self.distributed:
            for parameter in module.parameters():
                dist.broadcast(parameter.data, src=0)


def choose_backend(device: torch.device, backend: str | None = None) -> str:
    """`backend`, else $VAD_DIST_BACKEND, else "nccl" on CUDA and "gloo" on CPU; checked."""
    chosen = backend or os.environ.get(BACKEND_VARIABLE) or (
        "nccl" if device.type == "cuda" else "gloo"
    )
    if chosen not in BACKENDS:
        raise ValueError(
            f"distributed backend must be one of {BACKENDS} (argument or ${BACKEND_VARIABLE}), "
            f"got {chosen!r}"
        )
    if chosen == "nccl" and device.type != "cuda":
        raise ValueError(f"the nccl backend needs a CUDA device, training runs on {device}")
    return chosen


@contextmanager
def replica_session(device: torch.device, backend: str | None = None) -> Iterator[Replica]:
    """This process's `Replica` for one training run. Under a torchrun launch of W > 1
    processes: joins the process group (backend `backend`, else $VAD_DIST_BACKEND, else "nccl"
    on CUDA and "gloo" on CPU; one already initialised is used and left up), trains on
    cuda:LOCAL_RANK when `device` is CUDA, and leaves the group on exit. Otherwise rank 0 of 1
    on `device`, with no process group."""
    launch = current_launch()
    if not launch.distributed:
        yield Replica(launch, device)
        return
    if device.type == "cuda":
        if launch.local_rank >= torch.cuda.device_count():
            raise RuntimeError(
                f"LOCAL_RANK={launch.local_rank} but this node has {torch.cuda.device_count()} "
                "CUDA device(s): start at most one process per GPU (torchrun --nproc_per_node)"
            )
        device = torch.device("cuda", launch.local_rank)
        torch.cuda.set_device(device)
    chosen = choose_backend(device, backend)
    owner = not _group_active()
    if owner:
        dist.init_process_group(
            backend=chosen, device_id=device if chosen == "nccl" else None
        )
    if (dist.get_rank(), dist.get_world_size()) != (launch.rank, launch.world_size):
        raise RuntimeError(
            f"process group rank {dist.get_rank()} of {dist.get_world_size()} disagrees with "
            f"RANK={launch.rank}, WORLD_SIZE={launch.world_size}"
        )
    try:
        yield Replica(launch, device)
    finally:
        if owner:
            dist.destroy_process_group()
