"""The three-layer and CNN programs written block by block, as their papers state them.

One cvxpy variable and one set of cone constraints per block, no vectorisation: the
independent formulation that `tests/` check the vectorised solvers against (with SCS, another
solver than theirs) and that `benchmarks/deep_convex.py` times them against (with Clarabel).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from solvers.patterns import enumerate_patterns
from solvers.three_layer_relu import outer_patterns


def _solve(
    f: Any, penalty: Any, constraints: list, y: np.ndarray, beta: float, solver: str
) -> float:
    import cvxpy as cp

    problem = cp.Problem(cp.Minimize(0.5 * cp.sum_squares(f - y) + beta * penalty), constraints)
    if solver == "SCS":
        problem.solve(solver=cp.SCS, eps_abs=1e-10, eps_rel=1e-10, max_iters=200_000)
    else:
        problem.solve(solver=solver)
    return float(problem.value)


def blockwise_three_layer(X: np.ndarray, y: np.ndarray, beta: float, solver: str) -> float:
    """Optimum of the exact three-layer program (squared loss), one variable per
    (outer pattern, sign, inner pattern, sign) block, by cvxpy's ``solver``."""
    import cvxpy as cp

    warnings.filterwarnings("ignore", message=".*too many subexpressions", category=UserWarning)
    inner = enumerate_patterns(X)[0].astype(float)
    outer = outer_patterns(X, "all").astype(float)
    f, penalty, constraints = 0, 0, []
    for D2 in outer:
        for s in (1.0, -1.0):
            h = 0
            for D1 in inner:
                for t in (1.0, -1.0):
                    v = cp.Variable(X.shape[1])
                    constraints.append(cp.multiply(2 * D1 - 1, X @ v) >= 0)
                    h = h + t * cp.multiply(D1, X @ v)
                    penalty = penalty + cp.norm(v, 2)
            constraints.append(cp.multiply(2 * D2 - 1, h) >= 0)
            f = f + s * cp.multiply(D2, h)
    return _solve(f, penalty, constraints, y, beta, solver)


def blockwise_cnn(patches: np.ndarray, y: np.ndarray, beta: float, solver: str) -> float:
    """Optimum of the exact CNN program (squared loss), one variable per (pattern, sign) and
    one constraint per patch position, by cvxpy's ``solver``."""
    import cvxpy as cp

    warnings.filterwarnings("ignore", message=".*too many subexpressions", category=UserWarning)
    n, K, h = patches.shape
    gates = enumerate_patterns(patches.reshape(n * K, h))[0].reshape(-1, n, K).astype(float)
    f, penalty, constraints = 0, 0, []
    for D in gates:  # D (n, K): the pattern of one filter at every sample and position
        M = sum(D[:, k, None] * patches[:, k, :] for k in range(K)) / K  # (n, h)
        for sign in (1.0, -1.0):
            v = cp.Variable(h)
            for k in range(K):
                constraints.append(cp.multiply(2 * D[:, k] - 1, patches[:, k, :] @ v) >= 0)
            f = f + sign * (M @ v)
            penalty = penalty + cp.norm(v, 2)
    return _solve(f, penalty, constraints, y, beta, solver)
