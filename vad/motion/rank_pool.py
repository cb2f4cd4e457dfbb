"""Rank pooling of a window of flows: the exact linear RankSVM of eq. 4 and its approximation.

Fan et al. (GMFC-VAE), eq. 4, after Fernando et al. (rank pooling) and Bilen et al. (dynamic
images): for a window of t flows with time-varying means V_k = (1/k) sum_{tau<=k} f_tau, find

    d* = argmin_d 1/2 ||d||^2 + C sum_{k>l} xi_kl
         s.t. <d, V_k> >= <d, V_l> + 1 - xi_kl,  xi_kl >= 0,  for all pairs k > l.   (eq. 4)

Its dual has one variable per pair, 0 <= alpha_kl <= C, and depends on the V_k only through
their Gram matrix G = V V^T (in fact through the pair differences, so centring the V_k is exact):

    max_alpha  sum alpha - 1/2 alpha^T Q alpha,   Q = A G A^T,
    d = sum_p alpha_p (V_k - V_l) = sum_k beta_k V_k,  beta = A^T alpha,

with A the (pairs x t) incidence matrix (+1 at the later, -1 at the earlier mean). This module
solves that dual to optimality from G alone (batched over many windows), certifies each solution
by its duality gap, and turns mean coefficients beta into coefficients on the flows themselves.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import scipy.linalg
from threadpoolctl import threadpool_limits

# Relative duality gap at which a window counts as solved (typically reached: 1e-15 to 1e-11).
# Windows that end above it but below _GAP_LIMIT are kept with a warning, beyond it an error.
DEFAULT_TOLERANCE = 1e-8
_GAP_LIMIT = 1e-4
DEFAULT_MAX_ITERATIONS = 60
# Fraction of the distance to the boundary an interior-point step may cover.
_STEP_FRACTION = 0.99
# Gap allowed for rounding, in units of the magnitudes that make up the gap (a few eps).
_ROUNDING = 8 * np.finfo(np.float64).eps
# Polishing starts once the relative gap is below this; margin thresholds tried by it.
_POLISH_BELOW = 1e-4
_POLISH_THRESHOLDS = (1e-3, 1e-6)
_POLISH_ROUNDS = 4
_MARGIN_SLACK = 1e-12
_SINGULAR_CUTOFF = 1e-13
# Relative residual a Newton solve must reach before the direct fallback is used.
_SOLVE_ACCURACY = 1e-10
# Eigenvalues of a window's Gram below t * this * the largest are rounding noise.
_EIGEN_ROUNDING = 16 * np.finfo(np.float64).eps


@dataclass(frozen=True)
class RankSVMSolution:
    """Solutions of eq. 4 for a batch of windows, expressed on their time-varying means.

    alpha: (..., t(t-1)/2) dual variables in [0, C], one per pair of `ordered_pairs(t)`.
    beta: (..., t) with d = sum_p alpha_p (V_k - V_l) = sum_k beta_k V_k (sum_k beta_k = 0).
    objective: (...) the primal objective of eq. 4 at that d.
    gap: (...) its duality gap, a certificate: objective - optimum <= gap.
    iterations: interior-point iterations used.
    """

    alpha: np.ndarray
    beta: np.ndarray
    objective: np.ndarray
    gap: np.ndarray
    iterations: int


def ordered_pairs(length: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (later, earlier) of all t(t-1)/2 pairs k > l of a window of `length` means."""
    later, earlier = np.tril_indices(length, k=-1)
    return later, earlier


def time_varying_means(window_flows: np.ndarray) -> np.ndarray:
    """V_k = (1/k) sum_{tau<=k} f_tau for a (t, D) window of flattened flows (eq. 4)."""
    flows = np.asarray(window_flows, dtype=np.float64)
    if flows.ndim != 2:
        raise ValueError(f"window flows must be (t, D), got shape {flows.shape}")
    return np.cumsum(flows, axis=0) / np.arange(1, len(flows) + 1)[:, None]


def mean_to_flow_coefficients(beta: np.ndarray) -> np.ndarray:
    """Coefficients gamma on the flows with sum_k beta_k V_k = sum_tau gamma_tau f_tau.

    gamma_tau = sum_{k>=tau} beta_k / k, a reversed cumulative sum (works on (..., t)).
    """
    beta = np.asarray(beta, dtype=np.float64)
    weighted = beta / np.arange(1, beta.shape[-1] + 1)
    return np.flip(np.cumsum(np.flip(weighted, axis=-1), axis=-1), axis=-1)


def approx_rank_pool_coefficients(length: int) -> np.ndarray:
    """Bilen et al.'s approximate rank pooling: alpha_tau on the flows of a window of `length`.

    alpha_tau = 2(T - tau + 1) - (T + 1)(H_T - H_{tau-1}), H_k the k-th harmonic number
    (Bilen et al., CVPR 2016, Sec. 3.2); it is mean_to_flow_coefficients of beta_k = 2k - T - 1.
    """
    if length < 1:
        raise ValueError(f"window length must be >= 1, got {length}")
    tau = np.arange(1, length + 1)
    harmonic = np.concatenate([[0.0], np.cumsum(1.0 / tau)])
    return 2.0 * (length - tau + 1) - (length + 1) * (harmonic[length] - harmonic[tau - 1])


def centred_gram(gram: np.ndarray) -> np.ndarray:
    """J G J with J = I - 11^T/t: the Gram of the centred means, same pair differences."""
    gram = np.asarray(gram, dtype=np.float64)
    row_mean = gram.mean(axis=-1, keepdims=True)
    col_mean = gram.mean(axis=-2, keepdims=True)
    return gram - row_mean - col_mean + gram.mean(axis=(-2, -1), keepdims=True)


def rank_svm_objective(d: np.ndarray, means: np.ndarray, C: float) -> float:
    """Primal objective of eq. 4, 1/2 ||d||^2 + C sum_{k>l} max(0, 1 - <d, V_k - V_l>)."""
    d = np.asarray(d, dtype=np.float64)
    scores = np.asarray(means, dtype=np.float64) @ d
    later, earlier = ordered_pairs(len(scores))
    hinge = np.maximum(0.0, 1.0 - (scores[later] - scores[earlier]))
    return float(0.5 * d @ d + C * hinge.sum())


def solve_rank_svm(
    gram: np.ndarray,
    C: float = 1.0,
    tol: float = DEFAULT_TOLERANCE,
    max_iterations: int = DEFAULT_MAX_ITERATIONS,
) -> RankSVMSolution:
    """Solve eq. 4 exactly for windows given by the (..., t, t) Gram of their means.

    The box-constrained dual is solved by a primal-dual interior-point method (Mehrotra
    predictor-corrector; Newton systems reduced to t x t by the Woodbury identity, since
    Q = Z Z^T has rank < t), and every iterate close to the optimum is polished by exact
    Newton steps on the face its margins suggest (a primal-dual active-set step). A window is
    solved once the duality gap of its point d = sum alpha_p (V_k - V_l) is at most `tol`
    times its objective, beyond the rounding of the margins; the gap bounds how far the
    objective can be above the optimum. A window that ends above `tol` is kept with a
    warning, one above 1e-4 raises RuntimeError.
    """
    _check_C(C)
    gram = np.asarray(gram, dtype=np.float64)
    if gram.ndim < 2 or gram.shape[-1] != gram.shape[-2]:
        raise ValueError(f"gram must be (..., t, t), got shape {gram.shape}")
    if not np.all(np.isfinite(gram)):
        raise ValueError("gram contains NaN or inf")
    batch_shape, length = gram.shape[:-2], gram.shape[-1]
    if length < 2:  # no pairs: the optimum of 1/2 ||d||^2 alone is d = 0
        zeros = np.zeros(batch_shape)
        no_pairs = np.zeros((*batch_shape, 0))
        return RankSVMSolution(no_pairs, np.zeros((*batch_shape, length)), zeros, zeros, 0)

    later, earlier = ordered_pairs(length)
    # Many tiny factorisations: a multithreaded BLAS only adds synchronisation (badly so on a
    # loaded machine), so the solver runs single-threaded.
    with threadpool_limits(limits=1, user_api="blas"):
        factors = _gram_factors(centred_gram(gram.reshape(-1, length, length)))
        # Rows z_p: the pair differences V_k - V_l in coordinates of the means' span, scaled
        # so that the box is [0, 1]: with alpha = C a the dual is C (sum a - 1/2 a^T C Q a).
        pair_coords = np.sqrt(C) * (factors[:, later] - factors[:, earlier])
        fractions, iterations, gap, objective = _interior_point(pair_coords, C, tol, max_iterations)
    alpha = C * fractions
    beta = np.zeros((len(alpha), length))
    np.add.at(beta.T, later, alpha.T)
    np.add.at(beta.T, earlier, -alpha.T)
    return RankSVMSolution(
        alpha=alpha.reshape(*batch_shape, len(later)),
        beta=beta.reshape(*batch_shape, length),
        objective=objective.reshape(batch_shape),
        gap=gap.reshape(batch_shape),
        iterations=iterations,
    )


def rank_svm_window(
    means: np.ndarray, C: float = 1.0, tol: float = DEFAULT_TOLERANCE
) -> np.ndarray:
    """The dynamic vector d of eq. 4 for one window of time-varying means V (t, D)."""
    means = np.asarray(means, dtype=np.float64)
    if means.ndim != 2:
        raise ValueError(f"means must be (t, D), got shape {means.shape}")
    if not np.all(np.isfinite(means)):
        raise ValueError("means contain NaN or inf")
    centred = means - means.mean(axis=0)
    with threadpool_limits(limits=1, user_api="blas"):  # see solve_rank_svm
        gram = centred @ centred.T
    return solve_rank_svm(gram, C=C, tol=tol).beta @ centred


def _check_C(C: float) -> None:
    if not (np.isfinite(C) and C > 0):
        raise ValueError(f"C (the soft margin of eq. 4) must be a positive number, got {C}")


def _gram_factors(gram: np.ndarray) -> np.ndarray:
    """X with X X^T = G for symmetric PSD G (batched).

    Eigenvalues within rounding of zero (|lambda| <= t eps lambda_max, which includes the
    slightly negative ones) are set to zero: a Gram matrix computed in float64 does not know
    its spectrum any better, and noise directions would otherwise enter the margins.
    """
    eigenvalues, eigenvectors = np.linalg.eigh(gram)
    floor = _EIGEN_ROUNDING * gram.shape[-1] * eigenvalues[:, -1:]
    kept = np.where(eigenvalues > floor, eigenvalues, 0.0)
    return eigenvectors * np.sqrt(kept)[:, None, :]


def _interior_point(
    pair_coords: np.ndarray, C: float, tol: float, max_iterations: int
) -> tuple[np.ndarray, int, np.ndarray, np.ndarray]:
    """Minimise 1/2 a^T Z Z^T a - 1^T a over 0 <= a <= 1 for a batch of Z (B, P, r).

    Interior-point steps bring each window close to its optimum; from there every iterate is
    also polished by exact Newton steps on the faces it suggests (`_polish`), which land on
    the optimum to rounding once the face is right. A window is done once its duality gap is
    at most tol * objective + (rounding of the margins); the best point so far is kept.
    Returns a, the iterations used, and per window the gap and the primal objective of eq. 4
    (original units: alpha = C a).
    """
    state = _starting_point(pair_coords)
    incumbent = _Incumbent(pair_coords, C, state[0])
    active = np.flatnonzero(incumbent.excess > tol)
    iterations = 0
    while active.size and iterations < max_iterations:
        iterations += 1
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            stepped = _mehrotra_step(pair_coords[active], *(part[active] for part in state))
        finite = np.all([np.isfinite(part).all(axis=1) for part in stepped], axis=0)
        for part, new in zip(state, stepped, strict=True):
            part[active] = np.where(finite[:, None], new, part[active])
        incumbent.offer(active, state[0][active])
        close = active[incumbent.excess[active] < _POLISH_BELOW]
        if close.size:
            for candidate in _polish(pair_coords[close], state[0][close]):
                incumbent.offer(close, candidate)
        active = active[(incumbent.excess[active] > tol) & finite]
    relative = incumbent.gap / incumbent.objective
    unsolved = np.flatnonzero(incumbent.excess > tol)
    if unsolved.size:
        worst = unsolved[np.argmax(relative[unsolved])]
        message = (
            f"RankSVM (eq. 4): {unsolved.size} window(s) above relative duality gap {tol:g} "
            f"after {iterations} iterations; worst: window {worst} at {relative[worst]:.3g}"
        )
        if incumbent.excess[worst] > _GAP_LIMIT:
            raise RuntimeError(message)
        warnings.warn(message + " (kept: the gap bounds its suboptimality)", stacklevel=3)
    return incumbent.fractions, iterations, incumbent.gap, incumbent.objective


class _Incumbent:
    """Best dual point so far per window, with its duality gap and primal objective."""

    def __init__(self, pair_coords: np.ndarray, C: float, fractions: np.ndarray) -> None:
        self.pair_coords, self.C = pair_coords, C
        self.pair_norms = np.linalg.norm(pair_coords, axis=2)
        self.fractions = fractions.copy()
        self.gap, self.objective, rounding = _duality_gap(
            pair_coords, fractions, C, self.pair_norms
        )
        self.excess = (self.gap - rounding) / self.objective

    def offer(self, windows: np.ndarray, candidate: np.ndarray) -> None:
        """Keep candidate rows (one per index in `windows`) that certify a smaller gap."""
        gap, objective, rounding = _duality_gap(
            self.pair_coords[windows], candidate, self.C, self.pair_norms[windows]
        )
        excess = (gap - rounding) / objective
        better = excess < self.excess[windows]
        improved = windows[better]
        self.fractions[improved] = candidate[better]
        self.gap[improved], self.objective[improved] = gap[better], objective[better]
        self.excess[improved] = excess[better]


def _starting_point(pair_coords: np.ndarray) -> tuple[np.ndarray, ...]:
    """a at the minimum of the dual along a = c 1 (c <= 1/2), multipliers dual-feasible and
    with balanced complementarity; the state (a, 1 - a, lam, mu) as arrays (B, P)."""
    pairs = pair_coords.shape[1]
    column_sums = pair_coords.sum(axis=1)  # Z^T 1
    curvature = np.einsum("br,br->b", column_sums, column_sums)
    with np.errstate(divide="ignore"):
        level = np.where(curvature > 0, pairs / curvature, 0.5)
    a = np.repeat(np.clip(level, 1e-12, 0.5)[:, None], pairs, axis=1)
    slack = 1.0 - a
    gradient = _margins(pair_coords, a) - 1.0
    balance = np.maximum(np.abs(gradient).mean(axis=1, keepdims=True) * a, 1e-300)
    lam = np.maximum(gradient, 0.0) + balance / a
    mu = np.maximum(-gradient, 0.0) + balance / slack
    return a, slack, lam, mu


def _polish(pair_coords: np.ndarray, fractions: np.ndarray) -> list[np.ndarray]:
    """Candidate exact solutions near `fractions`, by a primal-dual active-set iteration.

    A face is a split of the pairs into a = 0 (margin > 1), a = 1 (margin < 1) and free (the
    margin support vectors, margin exactly 1). Starting from the split the margins of
    `fractions` suggest (each threshold in _POLISH_THRESHOLDS), the minimum-change Newton step
    on the free pairs makes all their margins exactly 1, which is the optimum of the dual on
    that face; free pairs that leave the box and fixed pairs whose margins then violate their
    side swap over, and the step is repeated. Every step's point, clipped to the box, is a
    candidate; the caller keeps whichever certifies the smallest duality gap.
    """
    margins = _margins(pair_coords, fractions)
    candidates = []
    for delta in _POLISH_THRESHOLDS:
        at_zero, at_one = margins > 1.0 + delta, margins < 1.0 - delta
        for _ in range(_POLISH_ROUNDS):
            free = ~(at_zero | at_one)
            point = _face_optimum(pair_coords, fractions, at_zero, at_one, free)
            candidates.append(np.clip(point, 0.0, 1.0))
            point_margins = _margins(pair_coords, point)
            leave_low, leave_high = free & (point < 0.0), free & (point > 1.0)
            join_from_zero = at_zero & (point_margins < 1.0 - _MARGIN_SLACK)
            join_from_one = at_one & (point_margins > 1.0 + _MARGIN_SLACK)
            if not np.any(leave_low | leave_high | join_from_zero | join_from_one):
                break
            at_zero = (at_zero & ~join_from_zero) | leave_low
            at_one = (at_one & ~join_from_one) | leave_high
    return candidates


def _face_optimum(
    pair_coords: np.ndarray,
    fractions: np.ndarray,
    at_zero: np.ndarray,
    at_one: np.ndarray,
    free: np.ndarray,
) -> np.ndarray:
    """a with a = 0 / 1 on the fixed pairs and margins exactly 1 on the free ones, the free
    part changed as little as possible from `fractions` (minimum-norm step, unclipped; a
    second step with the same factorisation removes the first one's rounding)."""
    point = np.where(at_zero, 0.0, np.where(at_one, 1.0, fractions))
    basis, singular, _ = np.linalg.svd(pair_coords * free[:, :, None], full_matrices=False)
    kept = singular > _SINGULAR_CUTOFF * singular[:, :1]
    inverse_sq = np.where(kept, 1.0 / np.where(kept, singular, 1.0) ** 2, 0.0)
    for _ in range(2):
        shortfall = np.where(free, 1.0 - _margins(pair_coords, point), 0.0)
        coefficients = inverse_sq * _project(basis, shortfall)
        point = point + (basis @ coefficients[:, :, None])[:, :, 0]
    return point


def _margins(pair_coords: np.ndarray, fractions: np.ndarray) -> np.ndarray:
    """(Z Z^T a)_p: in original units, the margin <d, V_k - V_l> of each pair."""
    return (pair_coords @ _project(pair_coords, fractions)[:, :, None])[:, :, 0]


def _project(pair_coords: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Z^T v per window: (B, P, r), (B, P) -> (B, r)."""
    return (values[:, None, :] @ pair_coords)[:, 0, :]


def _duality_gap(
    pair_coords: np.ndarray, fractions: np.ndarray, C: float, pair_norms: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Primal objective of eq. 4 at d = sum alpha_p (V_k - V_l), primal minus dual, and a
    bound on the rounding error of that difference.

    In original units ||d||^2 = C ||Z^T a||^2 and the dual is C sum a - 1/2 ||d||^2. Each
    margin z_p . w is computed to about eps ||z_p|| ||w||, and so is each hinge term.
    """
    weights = _project(pair_coords, fractions)
    norm_sq = C * np.einsum("br,br->b", weights, weights)
    margins = (pair_coords @ weights[:, :, None])[:, :, 0]
    hinge = np.maximum(0.0, 1.0 - margins).sum(axis=1)
    objective = 0.5 * norm_sq + C * hinge
    gap = norm_sq + C * (hinge - fractions.sum(axis=1))
    magnitude = C * (1.0 + pair_norms * np.linalg.norm(weights, axis=1)[:, None]).sum(axis=1)
    rounding = _ROUNDING * (magnitude + norm_sq + C * fractions.sum(axis=1))
    return np.maximum(gap, 0.0), objective, rounding


def _mehrotra_step(
    z: np.ndarray, a: np.ndarray, slack: np.ndarray, lam: np.ndarray, mu: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One predictor-corrector step for min 1/2 a^T Z Z^T a - 1^T a, 0 <= a <= 1.

    KKT: Z Z^T a - 1 - lam + mu = 0, a lam = 0, slack mu = 0, slack = 1 - a, lam, mu >= 0.
    """
    residual = _margins(z, a) - 1.0 - lam + mu
    complementarity = (a * lam + slack * mu).mean(axis=1, keepdims=True)
    solve = _newton_solver(z, lam / a + mu / slack)

    def direction(target_lower: np.ndarray, target_upper: np.ndarray):
        # lam da + a dlam = target_lower; -mu da + slack dmu = target_upper.
        da = solve(-residual + target_lower / a - target_upper / slack)
        dlam = (target_lower - lam * da) / a
        dmu = (target_upper + mu * da) / slack
        return da, dlam, dmu

    da, dlam, dmu = direction(-a * lam, -slack * mu)
    step = _step_length((a, slack, lam, mu), (da, -da, dlam, dmu))
    predicted = (a + step * da) * (lam + step * dlam) + (slack - step * da) * (mu + step * dmu)
    sigma = (predicted.mean(axis=1, keepdims=True) / complementarity) ** 3
    target = sigma * complementarity
    da, dlam, dmu = direction(target - a * lam - da * dlam, target - slack * mu + da * dmu)
    step = _STEP_FRACTION * _step_length((a, slack, lam, mu), (da, -da, dlam, dmu))
    return a + step * da, slack - step * da, lam + step * dlam, mu + step * dmu


def _newton_solver(z: np.ndarray, diagonal: np.ndarray):
    """x -> (diag(diagonal) + Z Z^T)^{-1} x, batched.

    By the Woodbury identity (a t x t solve, the capacitance matrix I + Z^T diag^-1 Z rescaled
    to unit diagonal) plus one step of iterative refinement against the exact product. When
    the diagonal spans many decades and Z Z^T is large, that subtraction can lose everything;
    windows whose residual stays large are solved directly instead (Cholesky of the P x P
    matrix, kept for the corrector's solve).
    """
    scaled = z / diagonal[:, :, None]
    capacitance = np.eye(z.shape[2]) + z.transpose(0, 2, 1) @ scaled
    unit = 1.0 / np.sqrt(np.einsum("brr->br", capacitance))
    capacitance *= unit[:, :, None] * unit[:, None, :]
    # A window whose state has broken down gets a harmless system; its caller discards it.
    capacitance[~np.isfinite(capacitance).all(axis=(1, 2))] = np.eye(z.shape[2])
    inverse = np.linalg.pinv(capacitance, hermitian=True)
    factors: dict[int, object] = {}

    def woodbury(rhs: np.ndarray) -> np.ndarray:
        projected = _project(scaled, rhs) * unit
        coefficients = (inverse @ projected[:, :, None])[:, :, 0] * unit
        return rhs / diagonal - (scaled @ coefficients[:, :, None])[:, :, 0]

    def residual(x: np.ndarray, rhs: np.ndarray) -> np.ndarray:
        return rhs - diagonal * x - _margins(z, x)

    def direct(window: int, rhs: np.ndarray) -> np.ndarray:
        if window not in factors:
            matrix = z[window] @ z[window].T + np.diag(diagonal[window])
            try:
                factors[window] = scipy.linalg.cho_factor(matrix)
            except (np.linalg.LinAlgError, ValueError):
                factors[window] = None
        if factors[window] is None:
            return np.full_like(rhs, np.nan)
        return scipy.linalg.cho_solve(factors[window], rhs)

    def solve(rhs: np.ndarray) -> np.ndarray:
        x = woodbury(rhs)
        x += woodbury(residual(x, rhs))
        error = np.linalg.norm(residual(x, rhs), axis=1)
        scale = np.linalg.norm(rhs, axis=1) + np.linalg.norm(diagonal * x, axis=1)
        for window in np.flatnonzero(~(error <= _SOLVE_ACCURACY * scale)):
            x[window] = direct(window, rhs[window])
        return x

    return solve


def _step_length(values: tuple[np.ndarray, ...], changes: tuple[np.ndarray, ...]) -> np.ndarray:
    """Largest step in (0, 1] keeping every value + step * change nonnegative, per window."""
    ratios = np.ones((len(values[0]), 1))
    for value, change in zip(values, changes, strict=True):
        with np.errstate(divide="ignore", invalid="ignore"):
            limits = np.where(change < 0, -value / change, np.inf)
        ratios = np.minimum(ratios, limits.min(axis=1, keepdims=True))
    return ratios
