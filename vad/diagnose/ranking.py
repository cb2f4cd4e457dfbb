"""The ROC AUC of anomalous against normal scores, as the Mann-Whitney U statistic."""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata


def separation_auc(normal: np.ndarray, anomalous: np.ndarray) -> float | None:
    """P(anomalous score > normal score) + P(tie) / 2, i.e. the area under the ROC curve of
    "anomalous = higher score"; None when either sample is empty."""
    normal = np.asarray(normal, dtype=np.float64).ravel()
    anomalous = np.asarray(anomalous, dtype=np.float64).ravel()
    if len(normal) == 0 or len(anomalous) == 0:
        return None
    for name, values in (("normal", normal), ("anomalous", anomalous)):
        if np.isnan(values).any():
            raise ValueError(f"the {name} scores hold NaN: no AUC can be computed")
    ranks = rankdata(np.concatenate([normal, anomalous]))  # ties get their mean rank
    n_normal, n_anomalous = len(normal), len(anomalous)
    u_statistic = ranks[n_normal:].sum() - n_anomalous * (n_anomalous + 1) / 2
    return float(u_statistic / (n_normal * n_anomalous))
