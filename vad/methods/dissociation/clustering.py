"""Deep K-means (Chang et al. 2022, Sec. 3.5, eqs. 10-11) on the concatenated representations.

At every location (h, w) of the bottleneck the spatial and the motion representations are
concatenated along channels (early fusion) and brought into [0, 1] (`normalised`: the logistic
sigmoid; the paper says "normalize ... within [0, 1]" without saying how), giving r_hw in R^D.
With K centres c_k:

    eq. 10:  D(r, C) = sum_k softmax_k(-alpha ||r - c_k||^2) ||r - c_k||^2
    eq. 11:  L_cluster = sum_hw D(r_hw, C)   (here: the mean over locations and clips; the
             scale goes into lambda_r of eq. 12)

The soft assignment is a softmax (log-sum-exp inside torch.softmax), so a large alpha or far
centres do not overflow. The centres start from K-means (scikit-learn, seeded) on
representations of the pre-trained auto-encoders (`initial_centres`).

    kmeans = DeepKMeans(centres)                     # (K, D) tensor
    distances = kmeans(normalised(torch.cat([z_a, z_m], 1)))   # (B, h, w), eq. 10 per location
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn


def normalised(representation: Tensor) -> Tensor:
    """(B, D, h, w) concatenated representations -> r in (0, 1), elementwise."""
    return torch.sigmoid(representation)


def squared_distances(vectors: Tensor, centres: Tensor) -> Tensor:
    """(N, D) and (K, D) -> (N, K) squared Euclidean distances (never negative)."""
    cross = vectors @ centres.T
    squared = (vectors * vectors).sum(1, keepdim=True) - 2 * cross + (centres * centres).sum(1)
    return squared.clamp_min(0.0)


def soft_assignment(vectors: Tensor, centres: Tensor, alpha: float) -> Tensor:
    """Eq. 10's weights: (N, K), each row sums to one."""
    return torch.softmax(-alpha * squared_distances(vectors, centres), dim=1)


def cluster_distance(vectors: Tensor, centres: Tensor, alpha: float) -> Tensor:
    """Eq. 10: (N,) the soft-assignment-weighted squared distances to the centres."""
    squared = squared_distances(vectors, centres)
    return (torch.softmax(-alpha * squared, dim=1) * squared).sum(1)


def locations(representation: Tensor) -> Tensor:
    """(B, D, h, w) -> (B * h * w, D): one row per location."""
    return representation.permute(0, 2, 3, 1).reshape(-1, representation.shape[1])


class DeepKMeans(nn.Module):
    """K trainable centres; `forward` gives eq. 10 at every location of a representation."""

    def __init__(self, centres: Tensor | np.ndarray, alpha: float):
        super().__init__()
        centres = torch.as_tensor(np.asarray(centres, np.float32))
        if centres.ndim != 2 or len(centres) < 1:
            raise ValueError(f"centres must be (K, D) with K >= 1, got {tuple(centres.shape)}")
        if not alpha > 0:
            raise ValueError(f"alpha (eq. 10) must be positive, got {alpha}")
        self.centres = nn.Parameter(centres.clone())
        self.alpha = float(alpha)

    def forward(self, representation: Tensor) -> Tensor:
        """(B, D, h, w) normalised representations -> (B, h, w) eq. 10 distances."""
        batch, channels, height, width = representation.shape
        if channels != self.centres.shape[1]:
            raise ValueError(
                f"representation has {channels} channels, the centres {self.centres.shape[1]}"
            )
        distances = cluster_distance(locations(representation), self.centres, self.alpha)
        return distances.reshape(batch, height, width)


def cluster_loss(distances: Tensor) -> Tensor:
    """Eq. 11 from `DeepKMeans` distances: their mean over locations and clips."""
    return distances.mean()


def initial_centres(vectors: np.ndarray, clusters: int, seed: int) -> np.ndarray:
    """K-means (scikit-learn, 3 initialisations, seeded) on (N, D) representation vectors:
    the (K, D) initial centres."""
    from sklearn.cluster import KMeans

    vectors = np.asarray(vectors, np.float64)
    if vectors.ndim != 2 or len(vectors) < clusters:
        raise ValueError(
            f"K-means needs at least K = {clusters} representation vectors, got "
            f"{vectors.shape[0] if vectors.ndim == 2 else vectors.shape}"
        )
    kmeans = KMeans(n_clusters=clusters, n_init=3, random_state=seed).fit(vectors)
    return kmeans.cluster_centers_.astype(np.float32)
