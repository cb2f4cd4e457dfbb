"""Benchmark: the exact RankSVM of eq. 4 against a scikit-learn reference on real windows.

The reference solves the same problem the textbook way: the explicit pairwise differences
V_k - V_l of a window (t(t-1)/2 rows of D = 2HW values) go to LinearSVC with labels +1 (every
other row negated together with its label, since LinearSVC needs two classes: the hinge loss is
unchanged), hinge loss, no intercept and the same C, i.e. 1/2 ||d||^2 + C sum hinge (eq. 4).
Ours (vad.motion.dynamic_flow) works from one banded Gram matrix per video and small dual QPs.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.svm import LinearSVC

from vad.motion.dynamic_flow import window_dynamic_flows, window_layout
from vad.motion.rank_pool import (
    ordered_pairs,
    rank_svm_objective,
    rank_svm_window,
    time_varying_means,
)

REFERENCE_TOLERANCE = 1e-10
REFERENCE_MAX_ITERATIONS = 100_000


def benchmark_rank_svm(
    flows: np.ndarray,
    window: int = 20,
    C: float = 1.0,
    a: float = 16.0,
    b: float = 128.0,
    windows_timed: int = 3,
    repeats: int = 3,
    name: str = "video",
) -> dict:
    """Time dynamic flow by exact RankSVM, approximate rank pooling and the LinearSVC reference.

    `flows` (N, H, W, 2) is one video's optical flow. ranksvm and approx are timed on the whole
    video (seconds per dynamic flow, the way the pipeline runs them); the reference, and our
    single-window solver `rank_svm_window` (no sharing between windows), on `windows_timed`
    windows spread over the video. On those windows the objectives of eq. 4 of our float64
    solution and of the reference are compared, and the pipeline's float32 output checked
    against ours. Our timings are the best of `repeats` runs (the reference runs once: it is
    slower by orders of magnitude), so a busy machine inflates them less.
    """
    num_windows, length = window_layout(len(flows), window)
    if length < 2:
        raise ValueError(f"{name}: a window of {length} flow has no pairs to rank")
    timed = np.unique(np.linspace(0, num_windows - 1, max(1, windows_timed)).round().astype(int))

    ranksvm_seconds, (dynamic, _) = _best_time(
        repeats, window_dynamic_flows, flows, window, "ranksvm", C, a, b, name
    )
    approx_seconds, _ = _best_time(
        repeats, window_dynamic_flows, flows, window, "approx", C, a, b, name
    )

    reference_seconds, single_seconds, converged = [], [], True
    ours, reference, pipeline_difference = [], [], []
    for index in timed:
        seconds, single = _best_time(repeats, _single_window, flows, index, length, C, a, b)
        single_seconds.append(seconds)
        start = time.perf_counter()
        means = _window_means(flows, index, length, a, b)
        d_reference, fitted = _reference_rank_svm(means, C)
        reference_seconds.append(time.perf_counter() - start)
        converged &= fitted
        ours.append(rank_svm_objective(single, means, C))
        reference.append(rank_svm_objective(d_reference, means, C))
        pipeline = dynamic[index].reshape(-1)
        pipeline_difference.append(np.linalg.norm(pipeline - single) / np.linalg.norm(single))

    ours, reference = np.array(ours), np.array(reference)
    reference_per_flow = float(np.mean(reference_seconds))
    return {
        "video": name,
        "flows": len(flows),
        "dimension": int(np.prod(flows.shape[1:])),
        "window": length,
        "C": C,
        "video_windows": num_windows,
        "windows_timed": len(timed),
        "ranksvm_s_per_flow": ranksvm_seconds / num_windows,
        "approx_s_per_flow": approx_seconds / num_windows,
        "reference_s_per_flow": reference_per_flow,
        "ranksvm_single_window_s": float(np.mean(single_seconds)),
        "speedup_reference_over_ranksvm": reference_per_flow * num_windows / ranksvm_seconds,
        "speedup_reference_over_single_window": reference_per_flow / np.mean(single_seconds),
        "max_relative_objective_difference": float(np.max(np.abs(ours - reference) / reference)),
        # > 0 would mean the reference found a lower objective than ours.
        "max_ours_above_reference": float(np.max((ours - reference) / reference)),
        # The video pipeline's float32 output against the single-window float64 solution.
        "max_pipeline_relative_difference": float(np.max(pipeline_difference)),
        "reference_converged": bool(converged),
    }


def _best_time(repeats: int, function: Callable, *arguments: object) -> tuple[float, object]:
    """Shortest wall time of `repeats` calls, and the last call's result."""
    best = np.inf
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        result = function(*arguments)
        best = min(best, time.perf_counter() - start)
    return best, result


def _single_window(
    flows: np.ndarray, start: int, length: int, C: float, a: float, b: float
) -> np.ndarray:
    """One window from scratch: encoding, means, their Gram matrix and the exact RankSVM."""
    return rank_svm_window(_window_means(flows, start, length, a, b), C=C)


def _window_means(flows: np.ndarray, start: int, length: int, a: float, b: float) -> np.ndarray:
    """Time-varying means (t, D) of the encoded flows start .. start + length - 1."""
    window = flows[start : start + length].reshape(length, -1).astype(np.float64)
    return time_varying_means(np.clip(window * a + b, 0.0, 255.0))


def _reference_rank_svm(means: np.ndarray, C: float) -> tuple[np.ndarray, bool]:
    """d of eq. 4 by LinearSVC on the explicit pair differences; and whether it converged."""
    later, earlier = ordered_pairs(len(means))
    signs = np.where(np.arange(len(later)) % 2 == 0, 1.0, -1.0)
    differences = (means[later] - means[earlier]) * signs[:, None]
    model = LinearSVC(
        C=C,
        loss="hinge",
        fit_intercept=False,
        dual=True,
        tol=REFERENCE_TOLERANCE,
        max_iter=REFERENCE_MAX_ITERATIONS,
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        model.fit(differences, signs)
    converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
    return model.coef_.ravel(), converged
