"""The exact convex program of a two-layer ReLU network (Pilanci & Ergen, ICML 2020; seed sec. 2.2).

Shapes: ``X`` (n, d) samples in rows (append a column of ones for a bias), ``y`` (n,). A network of
width ``m`` has ``first_layer`` ``U`` (m, d) (PyTorch layout, rows ``u_j``) and ``second_layer``
``a`` (m,), and computes ``f = relu(X U^T) a``. Its weight-decay objective is

    ell(relu(X U^T) a, y) + beta/2 (||U||_F^2 + ||a||^2)                                (non-convex)

and, over the non-zero activation patterns ``D_i = diag(1[X g_i > 0])``, ``i = 1..P``,

    min_{v_i, w_i}  ell(sum_i D_i X (v_i - w_i), y) + beta sum_i (||v_i||_2 + ||w_i||_2)  (convex)
    s.t.            (2 D_i - I) X v_i >= 0,   (2 D_i - I) X w_i >= 0.

With every pattern the two optima are equal; each non-zero ``v_i`` gives the neuron
``u = v_i / sqrt(||v_i||)``, ``a = sqrt(||v_i||)``, each non-zero ``w_i`` the neuron
``u = w_i / sqrt(||w_i||)``, ``a = -sqrt(||w_i||)``. With sampled patterns the convex optimum is an
upper bound on the non-convex one. Losses ``ell``: squared ``1/2 ||f - y||^2``, hinge
``sum_j max(0, 1 - y_j f_j)``, logistic ``sum_j log(1 + exp(-y_j f_j))`` (labels in {-1, +1}).

Both methods also return a dual lower bound on the convex optimum, from the Lagrange dual

    max_{q, mu <= 0}  -ell^*(q)   s.t.  ||X^T (D_i q + (2 D_i - I) mu_i)||_2 <= beta,
                                        ||X^T (-D_i q + (2 D_i - I) mu'_i)||_2 <= beta,

evaluated at the method's multipliers, scaled into the feasible set.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Literal, get_args

import numpy as np
import torch

from solvers.barrier import ConeBarrier, path_following
from solvers.patterns import DEFAULT_MAX_PATTERNS, enumerate_patterns, sample_patterns

Loss = Literal["squared", "hinge", "logistic"]
LOSSES: tuple[Loss, ...] = get_args(Loss)
#: Largest |entry| of X or y accepted (the objective squares them; float64 overflows at 1e308).
MAX_ENTRY = 1e100
#: beta accepted: below 1e-10 the penalty no longer bounds the weights in float64 (the objective
#: and its bound become infinite), above 1e10 the zero network is optimal to machine precision.
BETA_RANGE = (1e-10, 1e10)
Method = Literal["cvxpy", "interior_point"]
METHODS: tuple[Method, ...] = get_args(Method)

_NEURON_RTOL = 1e-10  # blocks below this fraction of the largest block norm carry no neuron


@dataclass
class ConvexReLUSolution:
    """Solution of the convex program and the two-layer network recovered from it."""

    objective: float  # convex objective at (v, w)
    first_layer: np.ndarray  # (m, d) rows u_j
    second_layer: np.ndarray  # (m,) a_j
    n_patterns: int  # P, distinct non-zero patterns used
    exact: bool  # True: every pattern used, objective = global optimum of the network
    patterns: np.ndarray  # (P, n) bool, row i is diag(D_i)
    v: np.ndarray  # (P, d)
    w: np.ndarray  # (P, d)
    network_objective: float  # non-convex objective of (first_layer, second_layer)
    lower_bound: float  # dual bound: lower_bound <= convex optimum
    max_violation: float  # max_i,j of relu(-(2 D_i - I) X v_i), same for w_i
    loss: str
    beta: float
    method: str
    iterations: int
    converged: bool
    seconds: float

    @property
    def width(self) -> int:
        """Number of neurons of the recovered network (one per non-negligible block)."""
        return int(self.first_layer.shape[0])

    @property
    def critical_width(self) -> int:
        """Estimate of the critical width ``m*``: see ``critical_width``."""
        return critical_width(self.first_layer, self.second_layer)


# --------------------------------------------------------------------------------------------
# Validation, losses, objectives
# --------------------------------------------------------------------------------------------
def _check_problem(
    X: np.ndarray, y: np.ndarray, beta: float, loss: str
) -> tuple[np.ndarray, np.ndarray, float]:
    """Float64 ``X`` (n, d), ``y`` (n,) and ``beta`` checked against the loss."""
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if X.ndim != 2 or X.shape[0] < 1 or X.shape[1] < 1:
        raise ValueError(f"X must be a non-empty 2-D array (n, d), got shape {X.shape}")
    if y.shape != (X.shape[0],):
        raise ValueError(f"y must have shape (n,) = ({X.shape[0]},), got {y.shape}")
    if not (np.all(np.isfinite(X)) and np.all(np.isfinite(y))):
        raise ValueError("X and y must be finite (no NaN or inf)")
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
    if loss != "squared" and not np.all(np.isin(y, (-1.0, 1.0))):
        bad = np.unique(y[~np.isin(y, (-1.0, 1.0))])[:5]
        raise ValueError(f"y must hold labels in {{-1, +1}} for the {loss} loss, got values {bad}")
    for name, array in (("X", X), ("y", y)):
        largest = float(np.max(np.abs(array)))
        if largest > MAX_ENTRY:
            raise ValueError(
                f"{name}'s entries must be at most {MAX_ENTRY:g} in magnitude, got {largest:.3g}"
                ": the objective squares them; rescale the data"
            )
    try:
        value = float(beta) if isinstance(beta, int | float | np.number) else float("nan")
    except (TypeError, ValueError, OverflowError):
        value = float("nan")
    if (
        isinstance(beta, bool)
        or not np.isfinite(value)
        or not BETA_RANGE[0] <= value <= BETA_RANGE[1]
    ):
        raise ValueError(
            f"beta must be a finite number in [{BETA_RANGE[0]:g}, {BETA_RANGE[1]:g}], got {beta!r}"
            " (a smaller beta leaves the program numerically unbounded)"
        )
    return X, y, value


def loss_value(f: np.ndarray, y: np.ndarray, loss: str) -> float:
    """``ell(f, y)``: squared ``1/2 ||f - y||^2``, hinge ``sum max(0, 1 - y f)``, logistic
    ``sum log(1 + exp(-y f))``; ``f``, ``y`` (n,)."""
    f = np.asarray(f, dtype=np.float64)
    if loss == "squared":
        return float(0.5 * np.sum((f - y) ** 2))
    if loss == "hinge":
        return float(np.sum(np.maximum(0.0, 1.0 - y * f)))
    if loss == "logistic":
        return float(np.sum(np.logaddexp(0.0, -y * f)))
    raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")


def network_output(first_layer: np.ndarray, second_layer: np.ndarray, X: np.ndarray) -> np.ndarray:
    """``f = relu(X U^T) a``: ``U`` (m, d), ``a`` (m,), ``X`` (n, d) -> (n,)."""
    U = np.asarray(first_layer, dtype=np.float64).reshape(-1, np.shape(X)[1])
    return np.maximum(np.asarray(X, dtype=np.float64) @ U.T, 0.0) @ np.ravel(second_layer)


def nonconvex_objective(
    first_layer: np.ndarray,
    second_layer: np.ndarray,
    X: np.ndarray,
    y: np.ndarray,
    beta: float,
    loss: Loss = "squared",
) -> float:
    """``ell(relu(X U^T) a, y) + beta/2 (||U||_F^2 + ||a||^2)`` for ``U`` (m, d), ``a`` (m,)."""
    X, y, beta = _check_problem(X, y, beta, loss)
    U = np.asarray(first_layer, dtype=np.float64)
    a = np.asarray(second_layer, dtype=np.float64)
    if U.ndim != 2 or U.shape[1] != X.shape[1] or a.shape != (U.shape[0],):
        raise ValueError(
            f"first_layer must be (m, {X.shape[1]}) and second_layer (m,), got "
            f"{U.shape} and {a.shape}"
        )
    fit = loss_value(network_output(U, a, X), y, loss)
    return fit + 0.5 * beta * (float(np.sum(U**2)) + float(np.sum(a**2)))


def convex_objective(
    v: np.ndarray,
    w: np.ndarray,
    patterns: np.ndarray,
    X: np.ndarray,
    y: np.ndarray,
    beta: float,
    loss: Loss = "squared",
    pool: np.ndarray | None = None,
) -> float:
    """``ell(sum_i D_i X (v_i - w_i), y) + beta sum_i (||v_i|| + ||w_i||)``; ``v``, ``w`` (P, d).

    ``pool`` (n, m) pools the m rows of ``X`` into the n outputs, ``f = pool @ sum_i D_i X (v_i -
    w_i)`` (the CNN program: patches into samples; ``X``, ``y`` are then not re-checked).
    """
    if pool is None:
        X, y, beta = _check_problem(X, y, beta, loss)
    rows = np.sum(patterns.T * (X @ (np.asarray(v) - np.asarray(w)).T), axis=1)
    f = rows if pool is None else pool @ rows
    penalty = np.sum(np.linalg.norm(v, axis=1)) + np.sum(np.linalg.norm(w, axis=1))
    return loss_value(f, y, loss) + beta * float(penalty)


def cvxpy_fit(f: Any, y: np.ndarray, loss: str) -> Any:
    """``ell(f, y)`` as a cvxpy expression of the affine expression ``f`` (n,)."""
    import cvxpy as cp

    if loss == "squared":
        return 0.5 * cp.sum_squares(f - y)
    if loss == "hinge":
        return cp.sum(cp.pos(1 - cp.multiply(y, f)))
    return cp.sum(cp.logistic(-cp.multiply(y, f)))


def recover_network(v: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Neurons ``(u, a) = (v / sqrt||v||, sqrt||v||)`` and ``(w / sqrt||w||, -sqrt||w||)``.

    Blocks with norm below ``1e-10`` times the largest are dropped (they change no objective
    beyond ~1e-8 relative). Returns ``U`` (m, d) and ``a`` (m,).
    """
    blocks = np.concatenate([v, w])
    signs = np.concatenate([np.ones(len(v)), -np.ones(len(w))])
    norms = np.linalg.norm(blocks, axis=1)
    keep = norms > _NEURON_RTOL * norms.max(initial=0.0)
    root = np.sqrt(norms[keep])
    return blocks[keep] / root[:, None], signs[keep] * root


def critical_width(
    first_layer: np.ndarray, second_layer: np.ndarray, rtol: float = 1e-4, angle_tol: float = 1e-3
) -> int:
    """Number of distinct neurons that matter: an estimate of the critical width ``m*``.

    Neurons ``|a| u`` (the blocks ``v``, ``w``) with the same sign of ``a`` and directions within
    ``angle_tol`` radians are merged (their sum has the same output and no larger penalty); merged
    neurons carrying less than ``rtol`` of the total ``sum ||v||`` are not counted.
    """
    U = np.asarray(first_layer, dtype=np.float64)
    a = np.asarray(second_layer, dtype=np.float64)
    blocks = np.abs(a)[:, None] * U
    mass = np.linalg.norm(blocks, axis=1)
    total = float(mass.sum())
    if total == 0.0:
        return 0
    directions = blocks / np.where(mass > 0, mass, 1.0)[:, None]
    groups: list[list[float]] = []  # [sign, mass, *direction]
    for sign, weight, direction in sorted(
        zip(np.sign(a), mass, directions, strict=True), key=lambda item: -item[1]
    ):
        for group in groups:
            if group[0] == sign and np.dot(group[2], direction) >= np.cos(angle_tol):
                group[1] += weight
                break
        else:
            groups.append([sign, weight, direction])
    return sum(1 for group in groups if group[1] >= rtol * total)


def _max_violation(v: np.ndarray, w: np.ndarray, patterns: np.ndarray, X: np.ndarray) -> float:
    signs = 2.0 * patterns.T - 1.0  # (n, P)
    violations = [np.max(np.maximum(-signs * (X @ b.T), 0.0), initial=0.0) for b in (v, w)]
    return float(max(violations))


def _neg_conjugate(q: np.ndarray, y: np.ndarray, loss: str) -> float:
    """``-ell^*(q)`` for ``q`` in the domain of ``ell^*`` (clipped there for hinge/logistic)."""
    if loss == "squared":
        return float(-0.5 * q @ q - q @ y)
    p = np.clip(-q * y, 0.0, 1.0)  # q_j = -p_j y_j, p_j in [0, 1]
    if loss == "hinge":
        return float(np.sum(p))
    entropy = -(p * np.log(np.where(p > 0, p, 1.0)) + (1 - p) * np.log(np.where(p < 1, 1 - p, 1.0)))
    return float(np.sum(entropy))


def dual_bound(
    q: np.ndarray,
    mu_v: np.ndarray,
    mu_w: np.ndarray,
    patterns: np.ndarray,
    X: np.ndarray,
    y: np.ndarray,
    beta: float,
    loss: str,
    pool: np.ndarray | None = None,
) -> float:
    """A lower bound on the convex optimum from multipliers ``q`` (n,), ``mu_v``, ``mu_w`` (P, n).

    With ``pool`` (n, m) the rows of ``X`` (m, d) are pooled into the n outputs (the CNN
    program, ``F_i = pool D_i X``): the loss multiplier enters the blocks as ``pool^T q``.

    ``q`` is the loss multiplier (``grad ell`` at the optimum), ``mu <= 0`` those of the cone
    constraints. ``(t q, t mu)`` is dual feasible for
    ``t = min(1, beta / max_i ||X^T(+-D_i q + (2D_i - I) mu_i)||)``, and ``-ell^*(t q)``
    (maximised over ``t`` for the squared loss) is the bound.
    """
    q = dual_domain(q, y, loss)
    signs = 2.0 * patterns - 1.0  # (P, m)
    gated = patterns * (q if pool is None else pool.T @ q)[None, :]
    mu_v, mu_w = np.minimum(mu_v, 0.0), np.minimum(mu_w, 0.0)
    block = np.concatenate([(gated + signs * mu_v) @ X, (-gated + signs * mu_w) @ X])
    return scaled_dual_value(q, np.linalg.norm(block, axis=1), y, beta, loss)


def dual_domain(q: np.ndarray, y: np.ndarray, loss: str) -> np.ndarray:
    """``q`` moved into the domain of ``ell^*`` (hinge, logistic: ``q_j = -p_j y_j``,
    ``p_j in [0, 1]``); unchanged for the squared loss."""
    return q if loss == "squared" else -y * np.clip(-q * y, 0.0, 1.0)


def scaled_dual_value(
    q: np.ndarray, block_norms: np.ndarray, y: np.ndarray, beta: float, loss: str
) -> float:
    """``-ell^*(t q)`` at the largest ``t`` that makes the multipliers dual feasible.

    Any group-l1 program ``min ell(F u) + beta sum_b ||u_b||`` under linear cones has, for
    multipliers whose block residuals ``c_b`` (``F_b^T q`` plus the cones' terms) have the
    norms ``block_norms``, the feasible scaling ``t = min(1, beta / max_b ||c_b||)``; for the
    squared loss ``t`` is further chosen in ``[0, t]`` to maximise the (concave) bound.
    """
    largest = float(np.max(block_norms, initial=0.0))
    t = 1.0 if largest <= beta else beta / largest
    if loss == "squared" and q @ q > 0:
        t = float(np.clip(-(q @ y) / (q @ q), 0.0, t))
    return _neg_conjugate(t * q, y, loss)


# --------------------------------------------------------------------------------------------
# Solvers
# --------------------------------------------------------------------------------------------
def _check_device(device: str | torch.device) -> torch.device:
    """``device`` as a torch device present on this machine, or ``ValueError`` saying which are."""
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(f"device must be 'cpu', 'cuda' or 'mps', got {device!r}") from None
    present = {"cpu": True, "cuda": torch.cuda.is_available(), "mps": _mps_available()}
    if not present.get(resolved.type, False):
        here = [name for name, ok in present.items() if ok]
        raise ValueError(f"device {device!r} is not available on this machine; available: {here}")
    return resolved


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def _solve_cvxpy(
    X: np.ndarray, y: np.ndarray, patterns: np.ndarray, beta: float, loss: str, tol: float
) -> tuple[np.ndarray, np.ndarray, float, int, bool]:
    """Reference solve with cvxpy + Clarabel; returns ``v``, ``w``, the dual bound, iterations."""
    import cvxpy as cp

    P, d = patterns.shape[0], X.shape[1]
    gates = patterns.T.astype(np.float64)  # (n, P)
    signs = 2.0 * gates - 1.0
    V, W = cp.Variable((P, d)), cp.Variable((P, d))
    r = cp.Variable(X.shape[0])
    XV, XW = X @ V.T, X @ W.T
    link = r == cp.sum(cp.multiply(gates, XV - XW), axis=1)
    cone_v, cone_w = cp.multiply(signs, XV) >= 0, cp.multiply(signs, XW) >= 0
    penalty = cp.sum(cp.norm(V, 2, axis=1)) + cp.sum(cp.norm(W, 2, axis=1))
    problem = cp.Problem(
        cp.Minimize(cvxpy_fit(r, y, loss) + beta * penalty), [link, cone_v, cone_w]
    )
    settings = {"tol_gap_abs": tol, "tol_gap_rel": tol, "tol_feas": tol, "max_iter": 500}
    try:
        try:
            problem.solve(solver=cp.CLARABEL, **settings)
        except cp.error.SolverError:  # Clarabel's equilibration can stall on exponential cones
            problem.solve(solver=cp.CLARABEL, equilibrate_enable=False, **settings)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as error:  # noqa: BLE001 - Clarabel's Rust panic is a BaseException
        raise ValueError(
            f"cvxpy/Clarabel failed on this data ({type(error).__name__}: {str(error)[:200]}); "
            "rescale X and y or change beta"
        ) from None
    if V.value is None or W.value is None:
        raise ValueError(f"cvxpy/Clarabel did not solve the convex program: {problem.status}")
    # cvxpy's Lagrangian adds nu^T (r - F u) and subtracts lambda^T G u with lambda >= 0.
    q = -np.asarray(link.dual_value, dtype=np.float64)
    mu_v = -np.asarray(cone_v.dual_value, dtype=np.float64).T
    mu_w = -np.asarray(cone_w.dual_value, dtype=np.float64).T
    bound = dual_bound(q, mu_v, mu_w, patterns, X, y, beta, loss)
    stats = problem.solver_stats
    iterations = int(stats.num_iters) if stats.num_iters is not None else 0
    return V.value, W.value, bound, iterations, problem.status == cp.OPTIMAL


def _solve_interior_point(
    X: np.ndarray,
    y: np.ndarray,
    patterns: np.ndarray,
    gates: np.ndarray,
    beta: float,
    loss: Loss,
    tol: float,
    max_iter: int,
    device: str | torch.device,
    pool: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, float, int, bool]:
    """Barrier method in torch (float64): damped Newton on ``phi_tau``, ``tau`` times 10 per round.

    Starts from ``v_i = w_i = c g_i`` (interior gates, zero output). After each centring, stops
    when the objective is within ``tol`` (relative) of the dual bound at the barrier multipliers;
    gives up (``converged=False``, best bound kept) when one centring needs over 50 steps, three
    rounds in a row need none, the line search finds no descent or the Newton system is
    numerically singular.
    """
    problem = ConeBarrier(X, y, patterns, beta, loss, device, pool)
    P = patterns.shape[0]
    gate = torch.as_tensor(
        gates / np.linalg.norm(gates, axis=1, keepdims=True),
        dtype=torch.float64,
        device=problem.device,
    )
    fit0 = loss_value(np.zeros_like(y), y, loss)
    U = fit0 / (4.0 * problem.K * problem.beta) * torch.cat([gate, gate])
    tau = (float(problem.live.sum()) * problem.K + 2 * problem.K) / fit0

    def certify(tau: float, U: torch.Tensor, dU: torch.Tensor) -> tuple[float, float]:
        q, mu = problem.multipliers(tau, U, dU)
        bound = dual_bound(
            q, mu[:P], mu[P:], patterns, X / problem.scale, y, problem.beta, loss, pool
        )
        Un = (U / problem.scale).cpu().numpy()
        return bound, convex_objective(Un[:P], Un[P:], patterns, X, y, beta, loss, pool)

    U, bound, steps, converged = path_following(problem, U, tau, certify, tol, max_iter)
    Un = (U / problem.scale).cpu().numpy()
    return Un[:P], Un[P:], bound, steps, converged


def _check_options(method: str, tol: float | None, max_iter: int) -> None:
    if not isinstance(method, str) or method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if tol is not None and (
        isinstance(tol, bool) or not isinstance(tol, int | float) or not 1e-14 <= tol < 1
    ):
        raise ValueError(f"tol must be in [1e-14, 1), got {tol!r}")
    if (
        not isinstance(max_iter, int | np.integer)
        or isinstance(max_iter, bool)
        or not 1 <= max_iter <= 100_000
    ):
        raise ValueError(f"max_iter must be an integer in [1, 100000], got {max_iter!r}")


def _gates(
    X: np.ndarray, patterns: str | int, seed: int, max_patterns: int
) -> tuple[np.ndarray, np.ndarray]:
    """``(gates, interior)``: every activation pattern (``"all"``) or ``patterns`` sampled ones."""
    if isinstance(patterns, str):
        if patterns != "all":
            raise ValueError(f"patterns must be 'all' or an integer >= 1, got {patterns!r}")
        return enumerate_patterns(X, max_patterns)
    if isinstance(patterns, (int, np.integer)) and not isinstance(patterns, bool):
        return sample_patterns(X, int(patterns), seed)
    raise ValueError(f"patterns must be 'all' or an integer >= 1, got {patterns!r}")


def _solve_scaled(
    X: np.ndarray,
    y: np.ndarray,
    gates: np.ndarray,
    interior: np.ndarray,
    beta: float,
    loss: Loss,
    method: str,
    tol: float | None,
    max_iter: int,
    device: str | torch.device,
    pool: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, float, int, bool]:
    """``(v, w, lower bound, iterations, converged)`` of the program, solved on scaled data.

    With ``a = max|X|`` and ``c = max|y|`` (squared loss; 1 for labels), the program on
    ``(X / a, y / c, beta / (a c))`` has the solution ``u = (a / c) v`` and the value
    ``objective / c^2``, so the solvers see numbers of order 1 whatever the data's units. Data
    already of order 1 is left as it is (the same numbers as without scaling).
    """
    a = float(np.max(np.abs(X)))
    c = float(np.max(np.abs(y))) if loss == "squared" else 1.0
    if 1e-3 <= a <= 1e3 and (c == 0.0 or 1e-3 <= c <= 1e3):
        a = c = 1.0
    Xs, ys, betas = X / a, y / c, beta / (a * c)
    if method == "cvxpy":
        v, w, bound, iterations, converged = _solve_cvxpy(Xs, ys, gates, betas, loss, tol or 1e-8)
    else:
        v, w, bound, iterations, converged = _solve_interior_point(
            Xs, ys, gates, interior, betas, loss, tol or 1e-6, max_iter, device, pool
        )
    return v * (c / a), w * (c / a), bound * c**2, iterations, converged


def solve_convex_relu(
    X: np.ndarray,
    y: np.ndarray,
    beta: float,
    loss: Loss = "squared",
    patterns: str | int = "all",
    seed: int = 0,
    method: str = "cvxpy",
    *,
    max_patterns: int = DEFAULT_MAX_PATTERNS,
    tol: float | None = None,
    max_iter: int = 500,
    device: str | torch.device = "cpu",
) -> ConvexReLUSolution:
    """Solve the convex program of a two-layer ReLU network and recover the network.

    ``X`` (n, d), ``y`` (n,), ``beta > 0``. ``patterns="all"`` enumerates every activation pattern
    (rank X <= 3; the result is then the global optimum of the non-convex problem); an integer
    samples that many Gaussian gates, deduplicated (``seed``), and the result is an upper bound.
    ``method="cvxpy"`` (Clarabel, ``tol`` default 1e-8) or ``"interior_point"`` (a barrier method
    in torch on ``device``, ``tol`` default 1e-6 on the relative gap to its dual bound, at most
    ``max_iter`` Newton steps).
    """
    X, y, beta = _check_problem(X, y, beta, loss)
    _check_options(method, tol, max_iter)
    device = _check_device(device) if method == "interior_point" else device
    gates, interior = _gates(X, patterns, seed, max_patterns)
    start = time.perf_counter()
    zero_fit = loss_value(np.zeros_like(y), y, loss)
    if gates.shape[0] == 0 or zero_fit == 0.0:  # the zero network is optimal
        v = w = np.zeros((gates.shape[0], X.shape[1]))
        bound, iterations, converged = zero_fit, 0, True
    else:
        v, w, bound, iterations, converged = _solve_scaled(
            X, y, gates, interior, beta, loss, method, tol, int(max_iter), device
        )
    seconds = time.perf_counter() - start
    objective = convex_objective(v, w, gates, X, y, beta, loss)
    _check_finite(method, objective, v, w, bound, bool(converged))
    first_layer, second_layer = recover_network(v, w)
    return ConvexReLUSolution(
        objective=objective,
        first_layer=first_layer,
        second_layer=second_layer,
        n_patterns=int(gates.shape[0]),
        exact=patterns == "all",
        patterns=gates,
        v=v,
        w=w,
        network_objective=nonconvex_objective(first_layer, second_layer, X, y, beta, loss),
        lower_bound=float(bound),
        max_violation=_max_violation(v, w, gates, X),
        loss=loss,
        beta=beta,
        method=method,
        iterations=iterations,
        converged=bool(converged),
        seconds=seconds,
    )


def _check_finite(
    method: str, objective: float, v: np.ndarray, w: np.ndarray, bound: float, converged: bool
) -> None:
    """A ValueError when the solver returned non-finite weights or objective, or claimed
    convergence without a finite lower bound."""
    if not (np.isfinite(objective) and np.all(np.isfinite(v)) and np.all(np.isfinite(w))):
        raise ValueError(
            f"{method} returned a non-finite solution (objective {objective}); rescale X and y "
            "or raise beta"
        )
    if not np.isfinite(bound) and converged:
        raise ValueError(f"{method} reported convergence without a finite lower bound")
