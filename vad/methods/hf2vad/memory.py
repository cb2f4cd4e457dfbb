"""The memory module of ML-MemAE-SC (Liu et al. ICCV 2021, Sec. 3.1), after MemAE (Gong et al.
ICCV 2019, Sec. 3.3).

A memory is a matrix M in R^{N x C} of N slots m_i. A query z in R^C is represented by a
weighted sum of slots, z^ = w^T M, where the addressing weights are a softmax over the
query-slot similarities, w_i = exp(d(z, m_i)) / sum_j exp(d(z, m_j)) (MemAE eqs. 4-5), hard-shrunk
so that only slots close enough to the query take part (MemAE eq. 7):

    w^_i = max(w_i - lambda, 0) * w_i / (|w_i - lambda| + eps),   then   w^ <- w^ / ||w^||_1

and whose entropy sum_i -w^_i log w^_i is the sparsity loss of eq. 2 (HF2-VAD; MemAE eq. 9).

d is the dot product z . m_i in HF2-VAD's released code (LiUzHiAn/hf2vad, models/ml_memAE_sc.py,
`Memory`), the cosine similarity in MemAE; both are offered (`similarity`). What a query is (the
whole flattened feature map of a sample, as in the released code, or each spatial position, as
in MemAE) is the caller's choice: this module sees rows of a (Q, C) matrix.
"""

from __future__ import annotations

import math
from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

Similarity = Literal["dot", "cosine"]
SHRINK_EPS = 1e-12  # eps of the hard shrinkage (MemAE eq. 7; released code: 1e-12)
NORM_EPS = 1e-12  # a row whose weights all shrank to zero stays zero instead of dividing by 0
ENTROPY_FLOOR = 1e-12  # log(w) is taken of max(w, floor): 0 log 0 = 0 with a finite gradient


class MemoryRead(NamedTuple):
    read: Tensor  # (Q, C): w^T M for every query
    weights: Tensor  # (Q, N): the shrunk, L1-normalised addressing weights


def hard_shrink(weights: Tensor, threshold: float, eps: float = SHRINK_EPS) -> Tensor:
    """MemAE eq. 7 on non-negative weights: w where w > threshold, 0 elsewhere (continuous ReLU
    form, so that the kept weights stay differentiable), each row then rescaled to sum to 1."""
    shrunk = F.relu(weights - threshold) * weights / ((weights - threshold).abs() + eps)
    return shrunk / shrunk.sum(dim=-1, keepdim=True).clamp_min(NORM_EPS)


def addressing_entropy(weights: Tensor) -> Tensor:
    """Mean over queries of the entropy -sum_k w_k log w_k of each row of `weights` (..., N):
    one memory's term of eq. 2 (the released code averages over queries, it sums over slots)."""
    log_weights = torch.log(weights.clamp_min(ENTROPY_FLOOR))
    return -(weights * log_weights).sum(dim=-1).mean()


class Memory(nn.Module):
    """N x C memory with softmax addressing, hard shrinkage and read-out (Sec. 3.1, eq. 2)."""

    def __init__(
        self,
        num_slots: int,
        slot_dim: int,
        shrink_threshold: float,
        similarity: Similarity = "dot",
    ) -> None:
        super().__init__()
        if num_slots < 1 or slot_dim < 1:
            raise ValueError(f"Memory needs num_slots, slot_dim >= 1; got {num_slots}, {slot_dim}")
        if not 0.0 <= shrink_threshold < 1.0:
            raise ValueError(f"Memory shrink_threshold must be in [0, 1); got {shrink_threshold}")
        if similarity not in ("dot", "cosine"):
            raise ValueError(f"Memory similarity must be 'dot' or 'cosine'; got {similarity!r}")
        self.num_slots = num_slots
        self.slot_dim = slot_dim
        self.shrink_threshold = float(shrink_threshold)
        self.similarity = similarity
        self.slots = nn.Parameter(torch.empty(num_slots, slot_dim))
        self.reset_parameters()

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Slots ~ U(-1/sqrt(C), 1/sqrt(C)), as the released code initialises them."""
        bound = 1.0 / math.sqrt(self.slot_dim)
        nn.init.uniform_(self.slots, -bound, bound, generator=generator)

    def address(self, queries: Tensor) -> Tensor:
        """(Q, C) queries -> (Q, N) addressing weights: softmax of the similarities (computed
        with the max subtracted, i.e. log-sum-exp), hard-shrunk when the threshold is > 0."""
        if queries.dim() != 2 or queries.shape[1] != self.slot_dim:
            raise ValueError(
                f"Memory expects queries of shape (Q, {self.slot_dim}); got {tuple(queries.shape)}"
            )
        if self.similarity == "cosine":
            logits = F.normalize(queries, dim=1) @ F.normalize(self.slots, dim=1).t()
        else:
            logits = queries @ self.slots.t()
        weights = torch.softmax(logits, dim=1)
        if self.shrink_threshold > 0:
            weights = hard_shrink(weights, self.shrink_threshold)
        return weights

    def forward(self, queries: Tensor) -> MemoryRead:
        weights = self.address(queries)
        return MemoryRead(read=weights @ self.slots, weights=weights)
