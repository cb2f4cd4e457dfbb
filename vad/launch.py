"""Which process of a `torchrun` launch this is, read from the variables torchrun sets
(WORLD_SIZE, RANK, LOCAL_RANK). No torch import, so a stage can ask before it loads torch.

A plain `python -m stages.train ...`, and a torchrun launch of one process, is rank 0 of 1:
it runs the single-process code unchanged. Example:

    launch = current_launch()      # Launch(rank=1, world_size=4, local_rank=1) under torchrun
    if launch.is_main: write_outputs()
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Launch:
    """This process's place among the processes of one training job."""

    rank: int = 0  # global rank, 0 .. world_size - 1
    world_size: int = 1  # processes over all nodes
    local_rank: int = 0  # rank on this node: the GPU it uses

    @property
    def is_main(self) -> bool:
        """Rank 0, the one process that writes checkpoints, models and histories."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def _int_variable(environ: Mapping[str, str], name: str, minimum: int) -> int:
    value = environ.get(name)
    if value is None:
        raise RuntimeError(
            f"environment variable {name} is not set although WORLD_SIZE is: launch "
            "distributed training with torchrun, which sets WORLD_SIZE, RANK and LOCAL_RANK"
        )
    try:
        number = int(value)
    except ValueError:
        number = minimum - 1
    if number < minimum:
        raise RuntimeError(f"environment variable {name}={value!r} must be an integer >= {minimum}")
    return number


def current_launch(environ: Mapping[str, str] = os.environ) -> Launch:
    """The launch described by `environ`; rank 0 of 1 when WORLD_SIZE is not set."""
    if "WORLD_SIZE" not in environ:
        return Launch()
    world_size = _int_variable(environ, "WORLD_SIZE", 1)
    rank = _int_variable(environ, "RANK", 0)
    local_rank = _int_variable(environ, "LOCAL_RANK", 0)
    if rank >= world_size:
        raise RuntimeError(f"environment variable RANK={rank} must be < WORLD_SIZE={world_size}")
    return Launch(rank=rank, world_size=world_size, local_rank=local_rank)
