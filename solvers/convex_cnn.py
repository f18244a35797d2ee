"""Exact convex program of a two-layer convolutional ReLU network with average pooling.

After Ergen & Pilanci ("Implicit Convex Regularizers of CNN Architectures", ICLR 2021). A sample
is a set of ``K`` patches ``x_{j,1..K}`` in R^h (``patches`` (n, K, h); ``image_patches`` cuts
them from images, with an optional constant feature for a filter bias). A network of ``m``
filters ``U`` (m, h) computes a convolution, a ReLU, an average over the ``K`` positions and a
linear layer ``a`` (m,):

    f_j = sum_t a_t (1/K) sum_k relu(x_{j,k}^T u_t)
    ell(f, y) + beta/2 (||U||_F^2 + ||a||^2)                                          (non-convex)

Every filter's gate ``g`` gives one pattern over all ``n K`` patches, ``D_i = 1[x_{j,k}^T g > 0]``
(the patterns of the stacked patch matrix ``S`` (nK, h)), and with ``M_i = (1/K) sum_k D_{i,k}
X_k`` (n, h), ``X_k`` the k-th patches of every sample,

    min  ell( sum_i M_i (v_i - w_i), y ) + beta sum_i (||v_i||_2 + ||w_i||_2)            (convex)
    s.t. (2 D_i - I) S v_i >= 0,  (2 D_i - I) S w_i >= 0.

A filter's pooled output is ``M_i u`` on the cone of its pattern and the layer is positively
homogeneous, so the weight decay of ``(u, a)`` is at least ``beta |a| ||u||`` (AM-GM), as for the
two-layer program; each non-zero ``v_i`` gives the filter ``u = v_i / sqrt(||v_i||)``,
``a = sqrt(||v_i||)`` (``w_i`` likewise with ``a < 0``). With every pattern of ``S`` the two optima
are equal. Exact enumeration needs rank S <= 3 (e.g. 1-D signals, filters of width 2 plus a
bias); otherwise patterns are sampled and the optimum is an upper bound.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from solvers.convex_relu import (
    Loss,
    _check_device,
    _check_options,
    _check_problem,
    _solve_scaled,
    cvxpy_fit,
    loss_value,
    recover_network,
)
from solvers.patterns import DEFAULT_MAX_PATTERNS, enumerate_patterns, sample_patterns


@dataclass
class ConvexCNNSolution:
    """Optimum of the convex program and the CNN recovered from it."""

    objective: float  # convex objective
    network_objective: float  # weight-decay objective of the recovered CNN
    filters: np.ndarray  # (m, h) U
    second_layer: np.ndarray  # (m,) a
    n_patterns: int
    exact: bool
    max_violation: float
    loss: str
    beta: float
    status: str
    seconds: float
    method: str = "cvxpy"
    lower_bound: float = float("nan")  # interior point: dual bound <= convex optimum
    iterations: int = 0  # interior point: Newton steps

    @property
    def width(self) -> int:
        """Number of filters of the recovered CNN."""
        return int(self.filters.shape[0])


def image_patches(images: np.ndarray, size: int, stride: int = 1, bias: bool = True) -> np.ndarray:
    """Square ``size x size`` patches of ``images`` (n, H, W) at ``stride``: (n, K, size^2 [+1]).

    Patches are read row by row (``K = ((H - size) // stride + 1) * ((W - size) // stride + 1)``);
    ``bias`` appends a constant 1 to each. 1-D signals (n, L) are treated as images of height 1
    with patches of width ``size``.
    """
    images = np.asarray(images, dtype=np.float64)
    if isinstance(stride, bool) or int(stride) != stride or stride < 1:
        raise ValueError(f"stride must be an integer >= 1, got {stride}")
    if images.ndim == 2:
        L = images.shape[1]
        if not 1 <= size <= L:
            raise ValueError(f"size must be in [1, {L}], got {size}")
        starts = range(0, L - size + 1, stride)
        patches = np.stack([images[:, s : s + size] for s in starts], axis=1)
    elif images.ndim == 3:
        H, W = images.shape[1:]
        if not 1 <= size <= min(H, W):
            raise ValueError(f"size must be in [1, {min(H, W)}], got {size}")
        patches = np.stack(
            [
                images[:, r : r + size, c : c + size].reshape(images.shape[0], -1)
                for r in range(0, H - size + 1, stride)
                for c in range(0, W - size + 1, stride)
            ],
            axis=1,
        )
    else:
        raise ValueError(f"images must be (n, L) or (n, H, W), got shape {images.shape}")
    if bias:
        patches = np.concatenate([patches, np.ones((*patches.shape[:2], 1))], axis=2)
    return patches


def _check_patches(patches: np.ndarray) -> np.ndarray:
    patches = np.asarray(patches, dtype=np.float64)
    if patches.ndim != 3 or min(patches.shape) < 1:
        raise ValueError(f"patches must be a non-empty (n, K, h) array, got shape {patches.shape}")
    return patches


def cnn_output(filters: np.ndarray, second_layer: np.ndarray, patches: np.ndarray) -> np.ndarray:
    """``f_j = sum_t a_t mean_k relu(x_{j,k}^T u_t)``: ``U`` (m, h), ``a`` (m,) -> (n,)."""
    patches = _check_patches(patches)
    U = np.asarray(filters, dtype=np.float64).reshape(-1, patches.shape[2])
    pooled = np.maximum(np.einsum("nkh,mh->nkm", patches, U), 0.0).mean(axis=1)
    return pooled @ np.ravel(second_layer)


def cnn_objective(
    filters: np.ndarray,
    second_layer: np.ndarray,
    patches: np.ndarray,
    y: np.ndarray,
    beta: float,
    loss: Loss = "squared",
) -> float:
    """``ell(f, y) + beta/2 (||U||_F^2 + ||a||^2)`` of the CNN (see the module docstring)."""
    patches = _check_patches(patches)
    _, y, beta = _check_problem(patches[:, 0, :], y, beta, loss)
    fit = loss_value(cnn_output(filters, second_layer, patches), y, loss)
    return fit + 0.5 * beta * (
        float(np.sum(np.square(filters))) + float(np.sum(np.square(second_layer)))
    )


def solve_convex_cnn(
    patches: np.ndarray,
    y: np.ndarray,
    beta: float,
    loss: Loss = "squared",
    patterns: str | int = "all",
    seed: int = 0,
    *,
    max_patterns: int = DEFAULT_MAX_PATTERNS,
    tol: float | None = None,
    method: str = "cvxpy",
    max_iter: int = 500,
    device: str = "cpu",
) -> ConvexCNNSolution:
    """Solve the convex program of the CNN and recover its filters.

    ``patches`` (n, K, h), ``y`` (n,), ``beta > 0``. ``patterns='all'`` enumerates the patterns of
    the stacked patches (rank <= 3): the optimum is then the CNN's global optimum; an integer
    samples that many Gaussian gates (``seed``): an upper bound. ``method="cvxpy"`` (Clarabel,
    ``tol`` default 1e-9) or ``"interior_point"``: the two-layer program's torch barrier method
    (`solvers.convex_relu`) with the patches as its rows, pooled into the samples (``tol``
    default 1e-8 on the relative gap to its dual bound, at most ``max_iter`` Newton steps).
    """
    patches = _check_patches(patches)
    n, K, h = patches.shape
    _, y, beta = _check_problem(patches[:, 0, :], y, beta, loss)
    _check_options(method, tol, max_iter)
    S = patches.reshape(n * K, h)
    gates, interior = _patterns_of(S, patterns, seed, max_patterns)
    pool = np.kron(np.eye(n), np.full((1, K), 1.0 / K))  # (n, nK)
    start = time.perf_counter()
    if method == "interior_point":
        v, w, bound, iterations, status = _interior_point(
            S, y, gates, interior, pool, beta, loss, tol or 1e-8, int(max_iter), device
        )
    else:
        v, w, status = _solve_cnn_cvxpy(
            S, y, gates.T.astype(np.float64), pool, beta, loss, tol or 1e-9
        )
        bound, iterations = float("nan"), 0
    seconds = time.perf_counter() - start
    filters, second_layer = recover_network(v, w)
    return ConvexCNNSolution(
        objective=_pooled_objective(S, y, gates, pool, v, w, beta, loss),
        network_objective=cnn_objective(filters, second_layer, patches, y, beta, loss),
        filters=filters,
        second_layer=second_layer,
        n_patterns=int(gates.shape[0]),
        exact=patterns == "all",
        max_violation=_max_violation(S, gates, v, w),
        loss=loss,
        beta=beta,
        status=status,
        seconds=seconds,
        method=method,
        lower_bound=float(bound),
        iterations=int(iterations),
    )


def _patterns_of(
    S: np.ndarray, patterns: str | int, seed: int, max_patterns: int
) -> tuple[np.ndarray, np.ndarray]:
    """The gates (P, nK) of the stacked patches ``S`` (nK, h) and their interior points:
    every pattern (``'all'``) or ``patterns`` sampled Gaussian gates."""
    if isinstance(patterns, str):
        if patterns != "all":
            raise ValueError(f"patterns must be 'all' or an integer >= 1, got {patterns!r}")
        return enumerate_patterns(S, max_patterns)
    if isinstance(patterns, (int, np.integer)) and not isinstance(patterns, bool):
        return sample_patterns(S, int(patterns), seed)
    raise ValueError(f"patterns must be 'all' or an integer >= 1, got {patterns!r}")


def _interior_point(
    S: np.ndarray,
    y: np.ndarray,
    gates: np.ndarray,
    interior: np.ndarray,
    pool: np.ndarray,
    beta: float,
    loss: Loss,
    tol: float,
    max_iter: int,
    device: str,
) -> tuple[np.ndarray, np.ndarray, float, int, str]:
    """``(v, w, dual bound, Newton steps, status)`` by the two-layer torch barrier method with
    the patches as its rows, pooled into the samples; the zero network when it is optimal."""
    if gates.shape[0] == 0 or loss_value(np.zeros_like(y), y, loss) == 0.0:
        v = w = np.zeros((gates.shape[0], S.shape[1]))  # as the two-layer solver does
        return v, w, loss_value(np.zeros_like(y), y, loss), 0, "optimal"
    v, w, bound, iterations, converged = _solve_scaled(
        S,
        y,
        gates,
        interior,
        beta,
        loss,
        "interior_point",
        tol,
        max_iter,
        _check_device(device),
        pool,
    )
    return v, w, bound, iterations, "optimal" if converged else "not converged"


def _pooled_objective(
    S: np.ndarray,
    y: np.ndarray,
    gates: np.ndarray,
    pool: np.ndarray,
    v: np.ndarray,
    w: np.ndarray,
    beta: float,
    loss: Loss,
) -> float:
    """``L(sum_k pool D_k S (v_k - w_k), y) + beta sum_k (||v_k|| + ||w_k||)``."""
    fn = (pool @ (gates.T * (S @ (v - w).T))).sum(axis=1)
    norms = np.linalg.norm(v, axis=1).sum() + np.linalg.norm(w, axis=1).sum()
    return float(loss_value(fn, y, loss) + beta * float(norms))


def _max_violation(S: np.ndarray, gates: np.ndarray, v: np.ndarray, w: np.ndarray) -> float:
    """The largest violation of the cone constraints ``(2 D_k - I) S u_k >= 0``, u = v, w."""
    walls = 2.0 * gates.T.astype(np.float64) - 1.0
    return max(float(np.max(np.maximum(-walls * (S @ b.T), 0.0))) for b in (v, w))


def _solve_cnn_cvxpy(
    S: np.ndarray,
    y: np.ndarray,
    G: np.ndarray,
    pool: np.ndarray,
    beta: float,
    loss: str,
    tol: float,
) -> tuple[np.ndarray, np.ndarray, str]:
    """``(v, w, status)`` of the program by cvxpy + Clarabel: ``S`` (nK, h) patches as rows,
    ``G`` (nK, P) their patterns, ``pool`` (n, nK) the average over each sample's patches."""
    import cvxpy as cp

    P, h = G.shape[1], S.shape[1]
    V, W = cp.Variable((P, h)), cp.Variable((P, h))
    SV, SW = S @ V.T, S @ W.T
    f = cp.sum(pool @ cp.multiply(G, SV - SW), axis=1)
    walls = 2.0 * G - 1.0
    constraints = [cp.multiply(walls, SV) >= 0, cp.multiply(walls, SW) >= 0]
    fit = cvxpy_fit(f, y, loss)
    penalty = cp.sum(cp.norm(V, 2, axis=1)) + cp.sum(cp.norm(W, 2, axis=1))
    problem = cp.Problem(cp.Minimize(fit + beta * penalty), constraints)
    settings = {"tol_gap_abs": tol, "tol_gap_rel": tol, "tol_feas": tol, "max_iter": 500}
    problem.solve(solver=cp.CLARABEL, **settings)
    if V.value is None:
        raise RuntimeError(f"cvxpy/Clarabel did not solve the CNN program: {problem.status}")
    return np.asarray(V.value), np.asarray(W.value), str(problem.status)
