"""Strong duality of deep linear networks (Zhang, Shao & Salakhutdinov 2019; seed section 2.1).

Shapes follow the project's convention, not the seed's: ``X`` is ``(n, d0)``, ``Y`` is ``(n, dH)``,
weights are in PyTorch's ``(out, in)`` layout, and the network maps ``X`` to
``X W_1^T W_2^T ... W_H^T``. In the seed's notation (``X_s = X^T``, ``Y_s = Y^T``) the primal is

    P(W) = 1/2 ||Y_s - W_H ... W_1 X_s||_F^2
           + gamma/H ( ||W_1 X_s||_{S_H}^H + sum_{i>=2} ||W_i||_{S_H}^H )               (seed eq. 2)

and the dual, with ``Ytil_s = Y_s X_s^+ X_s`` (here ``Ytil = X X^+ Y``), is

    max_L  D(L) = -1/2 ||Ytil - L||_(d_min)^2 + 1/2 ||Y||_F^2                           (seed eq. 3)
    s.t.   ||L||_2 <= gamma,  rowspace(L_s) in rowspace(X_s)  (here: columns of L in col(X)) (eq. 4)

where ``||A||_(k)^2`` is the sum of the ``k`` largest squared singular values. All in float64.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from typing import Literal, get_args

import numpy as np

Method = Literal["closed_form", "cvxpy", "douglas_rachford"]
METHODS: tuple[Method, ...] = get_args(Method)

_RANK_RTOL = 1e-10
#: Largest |entry| of X or Y accepted: objectives hold squares of sums of entries, and float64
#: overflows at about 1.8e308.
MAX_ENTRY = 1e100
#: How close a solver's dual value must come to the closed-form optimum D* (relative to
#: max(1, |D*|)) to be returned: the closed form is exact for every d_min, so it certifies.
CERTIFY_RTOL = 1e-6


# --------------------------------------------------------------------------------------------
# Validation and small linear-algebra pieces
# --------------------------------------------------------------------------------------------
def _as_data(X: np.ndarray, Y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Float64 copies of ``X`` (n, d0) and ``Y`` (n, dH), with shapes and finiteness checked."""
    X = np.asarray(X, dtype=np.float64)
    Y = np.asarray(Y, dtype=np.float64)
    if Y.ndim == 1:
        Y = Y[:, None]
    if X.ndim != 2 or Y.ndim != 2:
        raise ValueError(f"X and Y must be 2-D (n, d); got X {X.shape}, Y {Y.shape}")
    if X.shape[0] != Y.shape[0]:
        raise ValueError(
            f"X and Y must have the same number of rows n; got {X.shape[0]} and {Y.shape[0]}"
        )
    if X.shape[0] < 1 or X.shape[1] < 1 or Y.shape[1] < 1:
        raise ValueError(f"X and Y must be non-empty; got X {X.shape}, Y {Y.shape}")
    for name, array in (("X", X), ("Y", Y)):
        if not np.all(np.isfinite(array)):
            raise ValueError(f"{name} must be finite (no NaN or inf)")
        largest = float(np.max(np.abs(array)))
        if largest > MAX_ENTRY:
            raise ValueError(
                f"{name}'s entries must be at most {MAX_ENTRY:g} in magnitude, got {largest:.3g}: "
                "the objectives square them (float64 overflows past 1e308); rescale the data"
            )
    return X, Y


def _check_gamma(gamma: float) -> float:
    try:
        value = float(gamma) if isinstance(gamma, int | float | np.number) else float("nan")
    except (TypeError, ValueError, OverflowError):
        value = float("nan")
    if isinstance(gamma, bool) or not np.isfinite(value) or value < 0:
        raise ValueError(f"gamma must be a finite number >= 0, got {gamma!r}")
    return value


def _check_d_min(d_min: int) -> int:
    if not isinstance(d_min, int | np.integer) or isinstance(d_min, bool) or d_min < 1:
        raise ValueError(f"d_min must be an integer >= 1, got {d_min!r}")
    return int(d_min)


def _check_positive(name: str, value: float, high: float = float("inf")) -> float:
    """``value`` as a float in ``(0, high]``; ``ValueError`` naming ``name`` otherwise."""
    try:
        number = float(value) if isinstance(value, int | float | np.number) else float("nan")
    except (TypeError, ValueError, OverflowError):
        number = float("nan")
    if isinstance(value, bool) or not (np.isfinite(number) and 0 < number <= high):
        raise ValueError(f"{name} must be a finite number in (0, {high:g}], got {value!r}")
    return number


def column_space_basis(X: np.ndarray) -> np.ndarray:
    """Orthonormal basis ``Q`` (n, r) of the column space of ``X`` (n, d0), ``r = rank X``.

    ``Q Q^T = X X^+`` is the projector that the seed writes as ``X_s^+ X_s`` acting on rows.
    """
    U, s, _ = np.linalg.svd(X, full_matrices=False)
    rank = int(np.sum(s > _RANK_RTOL * max(s[0], 1e-300))) if s.size else 0
    return U[:, :rank]


def projected_targets(X: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """``Ytil = X X^+ Y`` (n, dH): the seed's ``Y_s X_s^+ X_s`` transposed."""
    X, Y = _as_data(X, Y)
    Q = column_space_basis(X)
    return Q @ (Q.T @ Y)


def top_k_squared_norm(A: np.ndarray, k: int) -> float:
    """``||A||_(k)^2 = sum_{j<=k} sigma_j(A)^2``, the k largest squared singular values."""
    s = np.linalg.svd(A, compute_uv=False)
    return float(np.sum(s[:k] ** 2))


def schatten_power(A: np.ndarray, p: int) -> float:
    """``||A||_{S_p}^p = sum_j sigma_j(A)^p``."""
    s = np.linalg.svd(A, compute_uv=False)
    return float(np.sum(s**p))


# --------------------------------------------------------------------------------------------
# Objectives
# --------------------------------------------------------------------------------------------
def network_output(weights: list[np.ndarray], X: np.ndarray) -> np.ndarray:
    """``X W_1^T ... W_H^T`` (n, dH): the seed's ``W_H ... W_1 X_s`` transposed."""
    out = np.asarray(X, dtype=np.float64)
    for W in weights:
        out = out @ np.asarray(W, dtype=np.float64).T
    return out


def _check_weights(weights: list[np.ndarray], d0: int, dH: int) -> list[np.ndarray]:
    weights = [np.asarray(W, dtype=np.float64) for W in weights]
    if len(weights) < 2:
        raise ValueError(f"the network needs H >= 2 layers, got H = {len(weights)}")
    previous = d0
    for i, W in enumerate(weights, start=1):
        if W.ndim != 2 or W.shape[1] != previous:
            raise ValueError(
                f"W_{i} must have shape (d_{i}, {previous}) in (out, in) layout, got {W.shape}"
            )
        previous = W.shape[0]
    if previous != dH:
        raise ValueError(f"W_H must have {dH} rows to match Y, got {previous}")
    return weights


def primal_objective(
    weights: list[np.ndarray], X: np.ndarray, Y: np.ndarray, gamma: float
) -> float:
    """Seed eq. (2) at ``weights = [W_1, ..., W_H]`` (each ``(d_i, d_{i-1})``).

    ``P = 1/2 ||Y - X W_1^T ... W_H^T||_F^2 + gamma/H (||X W_1^T||_{S_H}^H
    + sum_{i>=2} ||W_i||_{S_H}^H)``.
    """
    X, Y = _as_data(X, Y)
    gamma = _check_gamma(gamma)
    weights = _check_weights(weights, X.shape[1], Y.shape[1])
    H = len(weights)
    fit = 0.5 * float(np.sum((Y - network_output(weights, X)) ** 2))
    reg = schatten_power(X @ weights[0].T, H) + sum(schatten_power(W, H) for W in weights[1:])
    return fit + gamma / H * reg


def dual_objective(Lambda: np.ndarray, X: np.ndarray, Y: np.ndarray, d_min: int) -> float:
    """Seed eq. (3): ``D(L) = -1/2 ||Ytil - L||_(d_min)^2 + 1/2 ||Y||_F^2``.

    ``Lambda`` has the shape of ``Y`` (n, dH). Feasibility (eq. 4) is not checked here; see
    `dual_infeasibility`.
    """
    X, Y = _as_data(X, Y)
    d_min = _check_d_min(d_min)
    Lambda = np.asarray(Lambda, dtype=np.float64).reshape(Y.shape)
    Ytil = projected_targets(X, Y)
    return -0.5 * top_k_squared_norm(Ytil - Lambda, d_min) + 0.5 * float(np.sum(Y**2))


def dual_infeasibility(Lambda: np.ndarray, X: np.ndarray, gamma: float) -> float:
    """How far ``Lambda`` is from the dual feasible set (eq. 4), 0 when feasible.

    ``max( (||L||_2 - gamma)_+ , ||(I - X X^+) L||_F )``.
    """
    Lambda = np.asarray(Lambda, dtype=np.float64)
    Q = column_space_basis(np.asarray(X, dtype=np.float64))
    spectral = float(np.linalg.norm(Lambda, 2)) if Lambda.size else 0.0
    outside = float(np.linalg.norm(Lambda - Q @ (Q.T @ Lambda)))
    return max(spectral - float(gamma), 0.0, outside)


def default_d_min(X: np.ndarray, Y: np.ndarray, hidden_widths: list[int]) -> int:
    """``d_min = min(d_0, d_1, ..., d_H, n)``."""
    n, d0 = np.shape(X)
    dH = np.shape(Y)[1] if np.ndim(Y) == 2 else 1
    return int(min([d0, dH, n, *hidden_widths]))


# --------------------------------------------------------------------------------------------
# Solvers
# --------------------------------------------------------------------------------------------
@dataclass
class DualSolution:
    """Solution of the dual (eq. 3-4).

    ``Lambda`` (n, dH) is the maximiser, ``value`` = D(Lambda). For Douglas-Rachford,
    ``history_value`` (D at the feasible iterate), ``history_infeasibility`` (how far the other
    iterate is from ``||L||_2 <= gamma``) and ``history_residual`` (``||x - y||_F``) hold one
    entry per iteration.
    """

    Lambda: np.ndarray
    value: float
    method: str
    iterations: int = 0
    seconds: float = 0.0
    infeasibility: float = 0.0
    history_value: np.ndarray = field(default_factory=lambda: np.zeros(0))
    history_infeasibility: np.ndarray = field(default_factory=lambda: np.zeros(0))
    history_residual: np.ndarray = field(default_factory=lambda: np.zeros(0))


def closed_form_dual(X: np.ndarray, Y: np.ndarray, gamma: float) -> np.ndarray:
    """``L* = U diag(min(s_j, gamma)) V^T`` where ``Ytil = U diag(s) V^T``.

    Optimal for every ``d_min``: by Weyl's inequality no feasible ``L`` makes any of the top
    singular values of ``Ytil - L`` smaller than ``(s_j - gamma)_+``, and this ``L`` attains it.
    """
    Ytil = projected_targets(X, Y)
    U, s, Vt = np.linalg.svd(Ytil, full_matrices=False)
    return (U * np.minimum(s, _check_gamma(gamma))) @ Vt


def closed_form_dual_value(
    singular_values: np.ndarray, Y_norm_sq: float, gamma: float, d_min: int
) -> float:
    """``D* = 1/2 ||Y||_F^2 - 1/2 sum_{j<=d_min} (s_j - gamma)_+^2`` from the singular values
    ``s`` of ``Ytil`` (sorted in decreasing order)."""
    s = np.sort(np.asarray(singular_values, dtype=np.float64))[::-1][:d_min]
    return 0.5 * Y_norm_sq - 0.5 * float(np.sum(np.maximum(s - gamma, 0.0) ** 2))


def _reduced_problem(X: np.ndarray, Y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``Q`` (n, r) spanning col(X) and ``M = Q^T Y`` (r, dH).

    Every feasible ``L`` is ``Q C`` and ``sigma(Ytil - Q C) = sigma(M - C)``, so the dual becomes
    ``max -1/2 ||M - C||_(k)^2 + 1/2||Y||^2`` s.t. ``||C||_2 <= gamma``, with the subspace
    constraint ``L (I - X^+ X) = 0`` (seed layout) built in.
    """
    Q = column_space_basis(X)
    return Q, Q.T @ Y


def _solve_cvxpy(
    X: np.ndarray, Y: np.ndarray, gamma: float, d_min: int, tol: float
) -> tuple[np.ndarray, int]:
    """The SDP: ``||A||_(k)^2 = min { k s + tr Z : Z >= 0, [[s I + Z, A], [A^T, I]] >= 0 }``."""
    import cvxpy as cp

    Q, M = _reduced_problem(X, Y)
    r, dH = M.shape
    if r == 0:
        return np.zeros_like(Y), 0
    A_rows = min(r, dH)  # orient A = M - C so that the PSD block is as small as possible
    C = cp.Variable((r, dH))
    A = (M - C) if r <= dH else (M - C).T
    s = cp.Variable()
    Z = cp.Variable((A_rows, A_rows), symmetric=True)
    other = max(r, dH)
    block = cp.bmat([[s * np.eye(A_rows) + Z, A], [A.T, np.eye(other)]])
    k = min(d_min, A_rows)
    constraints = [Z >> 0, 0.5 * (block + block.T) >> 0, cp.sigma_max(C) <= gamma]
    problem = cp.Problem(cp.Minimize(k * s + cp.trace(Z)), constraints)
    try:
        with warnings.catch_warnings():  # OPTIMAL_INACCURATE is checked below instead
            warnings.simplefilter("ignore", UserWarning)
            problem.solve(
                solver=cp.CLARABEL, tol_gap_abs=tol, tol_gap_rel=tol, tol_feas=tol, max_iter=500
            )
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as error:  # noqa: BLE001 - Clarabel's Rust panic is a BaseException
        raise ValueError(
            f"cvxpy/Clarabel failed on the dual ({type(error).__name__}: {str(error)[:200]})"
        ) from None
    if problem.status not in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE) or C.value is None:
        raise ValueError(f"cvxpy did not solve the dual: status {problem.status}")
    iterations = int(problem.solver_stats.num_iters or 0)
    return Q @ C.value, iterations


def _isotonic_decreasing(targets: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Weighted least-squares fit of a non-increasing sequence (pool adjacent violators)."""
    values: list[float] = []
    masses: list[float] = []
    counts: list[int] = []
    for t, w in zip(targets, weights, strict=True):
        values.append(float(t))
        masses.append(float(w))
        counts.append(1)
        while len(values) > 1 and values[-2] < values[-1]:
            v, m, c = values.pop(), masses.pop(), counts.pop()
            total = masses[-1] + m
            values[-1] = (values[-1] * masses[-1] + v * m) / total
            masses[-1] = total
            counts[-1] += c
    return np.repeat(values, counts)


def prox_top_k_squares(sigma: np.ndarray, k: int, t: float) -> np.ndarray:
    """Prox of ``t/2 * (sum of the k largest squares)`` at a non-increasing vector ``sigma >= 0``.

    The prox keeps the order of ``sigma``, so on the ordered cone it is the weighted isotonic fit
    of targets ``sigma_i / (1 + t)`` (weight ``1 + t``, ``i <= k``) and ``sigma_i`` (weight 1).
    """
    idx = np.arange(sigma.size)
    top = idx < k
    targets = np.where(top, sigma / (1.0 + t), sigma)
    weights = np.where(top, 1.0 + t, 1.0)
    return _isotonic_decreasing(targets, weights)


def _solve_douglas_rachford(
    X: np.ndarray, Y: np.ndarray, gamma: float, d_min: int, tol: float, max_iter: int, step: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """Douglas-Rachford on ``min_C f(C) + g(C)``, ``f = 1/2||M - C||_(k)^2``,
    ``g`` = indicator of ``||C||_2 <= gamma``.

    ``x = prox_{t f}(z)``, ``y = prox_{t g}(2x - z)``, ``z <- z + y - x``. Both proxes act on
    singular values: ``prox_{t f}(z) = M - prox_{t h}(M - z)`` with ``h`` the top-k squares, and
    ``prox_{t g}`` clips singular values at ``gamma``. Returns the feasible iterate ``Q y`` and,
    per iteration, ``D(Q y)``, ``(||x||_2 - gamma)_+`` and ``||x - y||_F``.
    """
    Q, M = _reduced_problem(X, Y)
    Y_sq = float(np.sum(Y**2))
    if M.size == 0:
        return np.zeros_like(Y), np.array([0.5 * Y_sq]), np.array([0.0]), np.array([0.0]), 0

    def prox_f(z: np.ndarray) -> np.ndarray:
        U, s, Vt = np.linalg.svd(M - z, full_matrices=False)
        return M - (U * prox_top_k_squares(s, d_min, step)) @ Vt

    def prox_g(z: np.ndarray) -> np.ndarray:
        U, s, Vt = np.linalg.svd(z, full_matrices=False)
        return (U * np.minimum(s, gamma)) @ Vt

    z = np.zeros_like(M)
    values, infeasibility, residuals = [], [], []
    y = prox_g(z)
    for _ in range(max_iter):
        x = prox_f(z)
        y = prox_g(2 * x - z)
        z = z + y - x
        values.append(-0.5 * top_k_squared_norm(M - y, d_min) + 0.5 * Y_sq)
        infeasibility.append(max(float(np.linalg.norm(x, 2)) - gamma, 0.0))
        residual = float(np.linalg.norm(x - y))
        residuals.append(residual)
        if residual <= tol * max(1.0, float(np.linalg.norm(M))):
            break
    return Q @ y, np.array(values), np.array(infeasibility), np.array(residuals), len(values)


def solve_dual(
    X: np.ndarray,
    Y: np.ndarray,
    gamma: float,
    d_min: int,
    method: Method = "closed_form",
    *,
    tol: float = 1e-10,
    max_iter: int = 20000,
    step: float = 1.0,
) -> DualSolution:
    """Maximise the dual (eq. 3-4) by ``method``.

    ``"closed_form"``: ``L* = U diag(min(s, gamma)) V^T``; ``"cvxpy"``: the SDP for the top-k
    squared singular values, solved by Clarabel; ``"douglas_rachford"``: operator splitting with
    the per-iteration dual value (of the feasible iterate) and ``||x - y||_F`` kept.
    """
    X, Y = _as_data(X, Y)
    gamma = _check_gamma(gamma)
    d_min = _check_d_min(d_min)
    tol, step = _check_solver_options(method, tol, max_iter, step)
    scale = _problem_scale(X, Y)
    gamma_scaled = min(gamma / scale, 1.0 + 1e-12)
    Y_scaled = Y / scale
    start = time.perf_counter()
    history_value = history_infeasibility = history_residual = np.zeros(0)
    iterations = 0
    if method == "closed_form":
        Lambda = closed_form_dual(X, Y_scaled, gamma_scaled)
    elif method == "cvxpy":
        Lambda, iterations = _solve_cvxpy(X, Y_scaled, gamma_scaled, d_min, tol=max(tol, 1e-9))
    else:
        Lambda, history_value, history_infeasibility, history_residual, iterations = (
            _solve_douglas_rachford(X, Y_scaled, gamma_scaled, d_min, tol, max_iter, step)
        )
        history_value = history_value * scale**2
        history_infeasibility = history_infeasibility * scale
        history_residual = history_residual * scale
    Lambda = Lambda * scale
    seconds = time.perf_counter() - start
    solution = DualSolution(
        Lambda=Lambda,
        value=dual_objective(Lambda, X, Y, d_min),
        method=method,
        iterations=iterations,
        seconds=seconds,
        infeasibility=dual_infeasibility(Lambda, X, gamma),
        history_value=history_value,
        history_infeasibility=history_infeasibility,
        history_residual=history_residual,
    )
    _certify(solution, X, Y, gamma, d_min, max_iter)
    return solution


def _check_solver_options(
    method: object, tol: float, max_iter: object, step: float
) -> tuple[float, float]:
    """``method`` one of METHODS, ``tol`` in (0, 0.1], ``max_iter`` an integer in [1, 10^7],
    ``step`` in (0, 1e6]; returns ``tol`` and ``step`` as floats, or a ValueError naming the
    field."""
    if not isinstance(method, str) or method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    tol = _check_positive("tol", tol, 0.1)
    if not isinstance(max_iter, int | np.integer) or isinstance(max_iter, bool) or max_iter < 1:
        raise ValueError(f"max_iter must be an integer >= 1, got {max_iter!r}")
    if max_iter > 10**7:
        raise ValueError(f"max_iter must be at most 10^7 (hours of SVDs), got {max_iter}")
    return tol, _check_positive("step", step, 1e6)


def _problem_scale(X: np.ndarray, Y: np.ndarray) -> float:
    """``c = ||Ytil||_2`` (or ``max |Y|`` when that is 0 or not finite).

    With it, (Y / c, gamma / c) has the solution Lambda / c and the value D / c^2, so every
    solver sees numbers of order 1. A gamma above ``||Ytil||_2`` leaves the constraint inactive
    (Lambda = Ytil either way): the caller clips ``gamma / c`` at 1.
    """
    Ytil = projected_targets(X, Y)
    scale = float(np.linalg.norm(Ytil, 2)) if Ytil.size else 0.0
    if scale == 0.0 or not np.isfinite(scale):
        scale = max(float(np.max(np.abs(Y))), 1e-300)
    return scale


def _certify(
    solution: DualSolution, X: np.ndarray, Y: np.ndarray, gamma: float, d_min: int, max_iter: int
) -> None:
    """``ValueError`` unless the solution is finite, feasible and within `CERTIFY_RTOL` of the
    closed-form optimum ``D*`` (exact for every ``d_min``): no uncertified value is returned."""
    s = np.linalg.svd(projected_targets(X, Y), compute_uv=False)
    optimum = closed_form_dual_value(s, float(np.sum(Y**2)), gamma, d_min)
    slack = CERTIFY_RTOL * max(1.0, abs(optimum))
    if not (np.isfinite(solution.value) and np.all(np.isfinite(solution.Lambda))):
        raise ValueError(
            f"{solution.method} returned a non-finite dual value; rescale the data (|Y| of "
            "order 1 is best)"
        )
    if solution.infeasibility > CERTIFY_RTOL * max(1.0, gamma):
        raise ValueError(
            f"{solution.method} ended infeasible: ||Lambda||_2 exceeds gamma by "
            f"{solution.infeasibility:.3g}"
        )
    if abs(solution.value - optimum) > slack:
        advice = (
            f"raise max_iter (now {max_iter}) or change step"
            if solution.method == "douglas_rachford"
            else "the data may be too ill-conditioned for this method; use closed_form"
        )
        raise ValueError(
            f"{solution.method} stopped at the dual value {solution.value:.10g}, "
            f"{abs(solution.value - optimum):.3g} from the optimum {optimum:.10g}: {advice}"
        )


# --------------------------------------------------------------------------------------------
# Primal recovery
# --------------------------------------------------------------------------------------------
def recover_weights(
    X: np.ndarray, Y: np.ndarray, Lambda: np.ndarray, widths: list[int]
) -> list[np.ndarray]:
    """The seed's construction of the primal optimum from the dual optimum ``Lambda``.

    Seed layout: ``U S V^T = svd_{d_min}(Ytil_s - L_s)``, ``W_H = [U S^{1/H}, 0]``,
    ``W_i = diag(S^{1/H}, 0)`` for ``1 < i < H``, ``W_1 = [S^{1/H} V^T; 0] X_s^+``.
    Here ``Ytil - Lambda = A S B^T`` (n, dH), so ``U = B``, ``V = A`` and
    ``W_1 = [S^{1/H} A^T (X^+)^T; 0]``. ``widths = [d0, d1, ..., dH]``; returns ``H`` arrays,
    ``W_i`` of shape ``(d_i, d_{i-1})``.
    """
    X, Y = _as_data(X, Y)
    if not all(isinstance(w, int | np.integer) and not isinstance(w, bool) for w in widths):
        raise ValueError(f"widths must be integers, got {widths!r}")
    widths = [int(w) for w in widths]
    if len(widths) < 3:
        raise ValueError(f"widths must list d0, ..., dH with H >= 2 (>= 3 entries), got {widths}")
    if any(w < 1 for w in widths):
        raise ValueError(f"every width must be >= 1, got {widths}")
    if widths[0] != X.shape[1] or widths[-1] != Y.shape[1]:
        raise ValueError(
            f"widths[0] must be d0 = {X.shape[1]} and widths[-1] must be "
            f"dH = {Y.shape[1]}, got {widths}"
        )
    H = len(widths) - 1
    d_min = min([*widths, X.shape[0]])
    Lambda = np.asarray(Lambda, dtype=np.float64).reshape(Y.shape)
    A, S, Bt = np.linalg.svd(projected_targets(X, Y) - Lambda, full_matrices=False)
    r = min(d_min, S.size)
    A, S, B = A[:, :r], S[:r], Bt[:r].T
    root = S ** (1.0 / H)
    weights = [np.zeros((widths[i + 1], widths[i])) for i in range(H)]
    weights[0][:r] = (root[:, None] * A.T) @ np.linalg.pinv(X).T
    for i in range(1, H - 1):
        weights[i][np.arange(r), np.arange(r)] = root
    weights[-1][:, :r] = B * root
    if not all(np.all(np.isfinite(w)) for w in weights):
        raise ValueError("the recovered weights are not finite; rescale X and Y")
    return weights
