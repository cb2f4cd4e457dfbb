"""The ROC AUC of anomalous against normal scores (scikit-learn's, as vad.eval uses)."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score


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
    labels = np.concatenate([np.zeros(len(normal), bool), np.ones(len(anomalous), bool)])
    return float(roc_auc_score(labels, np.concatenate([normal, anomalous])))
