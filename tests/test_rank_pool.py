"""Exact RankSVM of eq. 4 (GMFC-VAE) and approximate rank pooling: vad.motion.rank_pool."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.optimize import minimize
from sklearn.svm import LinearSVC

from vad.bench.rank_svm import benchmark_rank_svm
from vad.motion.rank_pool import (
    approx_rank_pool_coefficients,
    mean_to_flow_coefficients,
    ordered_pairs,
    rank_svm_objective,
    rank_svm_window,
    solve_rank_svm,
    time_varying_means,
)


def reference_objective(means: np.ndarray, C: float) -> float:
    """Eq. 4's optimum by two independent solvers on the explicit pair differences (the better
    of the two: each alone stalls on some degenerate windows).

    scikit-learn's LinearSVC (hinge, no intercept, same C: the primal of eq. 4) and scipy's
    trust-constr on the dual box QP max sum alpha - 1/2 ||sum alpha_p (V_k - V_l)||^2.
    """
    later, earlier = ordered_pairs(len(means))
    differences = means[later] - means[earlier]
    signs = np.where(np.arange(len(later)) % 2 == 0, 1.0, -1.0)
    model = LinearSVC(
        C=C, loss="hinge", fit_intercept=False, dual=True, tol=1e-10, max_iter=10**5, random_state=0
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a stalled liblinear only makes its objective worse
        model.fit(differences * signs[:, None], signs)
    gram = differences @ differences.T
    dual = minimize(
        lambda alpha: 0.5 * alpha @ gram @ alpha - alpha.sum(),
        np.full(len(later), C / 2),
        jac=lambda alpha: gram @ alpha - 1.0,
        hess=lambda alpha: gram,
        method="trust-constr",
        bounds=[(0.0, C)] * len(later),
        options={"gtol": 1e-13, "xtol": 1e-15, "maxiter": 3000},
    )
    return min(
        rank_svm_objective(model.coef_.ravel(), means, C),
        rank_svm_objective(dual.x @ differences, means, C),
    )


def window_flows(kind: str, length: int, dim: int, rng: np.random.Generator) -> np.ndarray:
    if kind == "trend":  # steady motion plus noise: the hard-margin regime of real windows
        return 128 * np.linspace(0, 1, length)[:, None] * rng.normal(size=dim) + rng.normal(
            size=(length, dim)
        )
    if kind == "walk":
        return np.cumsum(rng.normal(size=(length, dim)), axis=0)
    if kind == "repeats":  # a few flows repeated: rank-deficient, constraints in conflict
        base = rng.normal(size=(max(2, length // 3), dim))
        return 20 * base[rng.integers(0, len(base), length)]
    return 1e-3 * rng.normal(size=(length, dim))  # "faint": tiny motion, every alpha at C


CASES = [
    (kind, length, dim, C)
    for kind, length, dim in [
        ("trend", 20, 500),
        ("trend", 5, 50),
        ("walk", 12, 200),
        ("repeats", 15, 300),
        ("faint", 8, 100),
    ]
    for C in (0.01, 1.0, 100.0)
]


@pytest.mark.parametrize(("kind", "length", "dim", "C"), CASES)
def test_objective_matches_independent_solver(kind: str, length: int, dim: int, C: float) -> None:
    rng = np.random.default_rng(length * dim)
    means = time_varying_means(window_flows(kind, length, dim, rng))
    ours = rank_svm_objective(rank_svm_window(means, C=C), means, C)
    reference = reference_objective(means, C)
    assert ours <= reference * (1 + 1e-6)  # never worse than an independent solver
    assert ours == pytest.approx(reference, rel=1e-4)


@pytest.mark.parametrize(("kind", "C"), [("trend", 1.0), ("repeats", 100.0), ("faint", 1.0)])
def test_solution_satisfies_kkt_conditions(kind: str, C: float) -> None:
    rng = np.random.default_rng(7)
    means = time_varying_means(window_flows(kind, 16, 120, rng))
    solution = solve_rank_svm(means @ means.T, C=C)
    later, earlier = ordered_pairs(16)
    differences = means[later] - means[earlier]
    d = solution.alpha @ differences
    np.testing.assert_allclose(d, solution.beta @ means, atol=1e-9 * np.abs(d).max())
    assert np.all((solution.alpha >= 0) & (solution.alpha <= C))
    margins = differences @ d
    # Complementarity: alpha = 0 above the margin, alpha = C below it (up to rounding).
    slack = 1e-6
    assert np.all(solution.alpha[margins > 1 + slack] <= 1e-9 * C)
    assert np.all(solution.alpha[margins < 1 - slack] >= C * (1 - 1e-9))
    primal = rank_svm_objective(d, means, C)
    dual = solution.alpha.sum() - 0.5 * d @ d
    assert primal == pytest.approx(solution.objective, rel=1e-9)
    assert 0 <= primal - dual <= 1e-8 * primal + 1e-12


def test_batched_windows_are_solved_independently() -> None:
    rng = np.random.default_rng(3)
    means = np.stack([time_varying_means(window_flows("trend", 10, 80, rng)) for _ in range(4)])
    batched = solve_rank_svm(means @ means.transpose(0, 2, 1), C=1.0)
    for index in range(4):
        single = solve_rank_svm(means[index] @ means[index].T, C=1.0)
        np.testing.assert_allclose(batched.beta[index], single.beta, rtol=1e-6, atol=1e-12)


def test_constant_window_gives_zero_direction_with_every_pair_at_C() -> None:
    means = np.tile(np.arange(30.0), (6, 1))
    solution = solve_rank_svm(means @ means.T, C=2.0)
    d = rank_svm_window(means, C=2.0)
    assert np.all(np.isfinite(d)) and np.all(d == 0)
    np.testing.assert_allclose(solution.alpha, 2.0)
    assert solution.objective == pytest.approx(2.0 * 15)  # every hinge is 1


def test_single_mean_has_no_pairs_and_zero_direction() -> None:
    d = rank_svm_window(np.ones((1, 5)))
    np.testing.assert_array_equal(d, np.zeros(5))


def test_direction_ranks_a_monotone_window_in_order() -> None:
    rng = np.random.default_rng(0)
    means = time_varying_means(window_flows("trend", 10, 300, rng))
    scores = means @ rank_svm_window(means)
    assert np.all(np.diff(scores) >= 1 - 1e-6)  # separable: every margin is met


def test_bad_input_is_rejected() -> None:
    with pytest.raises(ValueError, match="NaN or inf"):
        rank_svm_window(np.array([[0.0, np.nan], [1.0, 2.0]]))
    with pytest.raises(ValueError, match="NaN or inf"):
        solve_rank_svm(np.array([[np.inf, 0.0], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="C"):
        rank_svm_window(np.eye(3), C=0.0)
    with pytest.raises(ValueError, match=r"\(t, D\)"):
        rank_svm_window(np.ones(4))


def test_time_varying_means_are_running_averages() -> None:
    flows = np.array([[2.0, 0.0], [4.0, 2.0], [0.0, 4.0]])
    np.testing.assert_allclose(time_varying_means(flows), [[2, 0], [3, 1], [2, 2]])


def test_mean_coefficients_carry_over_to_flows() -> None:
    rng = np.random.default_rng(1)
    flows, beta = rng.normal(size=(7, 11)), rng.normal(size=7)
    gamma = mean_to_flow_coefficients(beta)
    np.testing.assert_allclose(gamma @ flows, beta @ time_varying_means(flows), atol=1e-12)


def test_approx_rank_pooling_matches_bilen_closed_form() -> None:
    # T = 3: H = (0, 1, 3/2, 11/6); alpha_t = 2(T - t + 1) - (T + 1)(H_T - H_{t-1}).
    np.testing.assert_allclose(approx_rank_pool_coefficients(3), [-4 / 3, 2 / 3, 2 / 3])
    np.testing.assert_allclose(approx_rank_pool_coefficients(1), [0.0])
    # Same as the mean coefficients beta_k = 2k - T - 1 carried over to the flows.
    length = 9
    beta = 2.0 * np.arange(1, length + 1) - length - 1
    np.testing.assert_allclose(
        approx_rank_pool_coefficients(length), mean_to_flow_coefficients(beta), atol=1e-12
    )
    assert approx_rank_pool_coefficients(20).sum() == pytest.approx(0.0, abs=1e-9)


def test_benchmark_reports_agreement_on_a_small_video() -> None:
    rng = np.random.default_rng(5)
    drift = np.linspace(0, 1, 9)[:, None, None, None] * rng.normal(size=(1, 6, 8, 2))
    flows = (drift + 0.05 * rng.normal(size=(9, 6, 8, 2))).astype(np.float32)
    report = benchmark_rank_svm(flows, window=5, windows_timed=2)
    assert report["windows_timed"] == 2 and report["video_windows"] == 5
    assert report["reference_converged"]
    assert report["max_relative_objective_difference"] < 1e-4
    assert report["max_ours_above_reference"] < 1e-4
    assert report["max_pipeline_relative_difference"] < 1e-5
    for key in ("ranksvm_s_per_flow", "approx_s_per_flow", "reference_s_per_flow"):
        assert report[key] > 0


@pytest.mark.ped2
def test_real_ped2_window_matches_reference(ped2_root) -> None:
    cv2 = pytest.importorskip("cv2")
    paths = sorted((ped2_root / "testing" / "frames" / "01").glob("*.jpg"))[60:71]
    frames = [cv2.resize(cv2.imread(str(p), cv2.IMREAD_GRAYSCALE), (210, 140)) for p in paths]
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    flows = np.stack([dis.calc(a, b, None) for a, b in zip(frames, frames[1:], strict=False)])
    means = time_varying_means(np.clip(16 * flows.reshape(len(flows), -1) + 128, 0, 255))
    ours = rank_svm_objective(rank_svm_window(means), means, 1.0)
    reference = reference_objective(means, 1.0)
    assert ours <= reference * (1 + 1e-6)
    assert ours == pytest.approx(reference, rel=1e-4)
