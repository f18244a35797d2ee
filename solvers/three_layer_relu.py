"""Exact convex program of a parallel three-layer ReLU network with path regularisation.

After Ergen & Pilanci ("Global Optimality Beyond Two Layers", ICML 2021): a network of ``K``
parallel three-layer sub-networks,

    f(X) = sum_k w3_k relu( relu(X W1_k^T) w2_k )           W1_k (m1, d), w2_k (m1,), w3_k scalar

(``X`` (n, d), samples in rows; append a column of ones for a first-layer bias), trained on

    ell(f(X), y) + beta R(theta),   R = sum_k |w3_k| sum_j |w2_kj| ||W1_kj||_2         (non-convex)

``R`` is the l1 path norm: the sum over the paths input-row -> hidden-1 unit j -> hidden-2
unit k -> output of the product of the weights along the path, with the first layer's rows
taken in the l2 norm. Which program of the paper this is (Ergen & Pilanci, ICML 2021, Theorem 1;
the paper's text was read through its abstract and a survey's statement of the theorem):

* The paper trains ``K`` three-layer sub-networks with weight decay and shows the problem equal
  to a group-l1 program whose groups are single first-layer neurons, ``v_{ijl}`` in R^d, with
  the features ``D2_l D1_ij X`` (``j`` = neuron, ``i`` = inner pattern, ``l`` = outer pattern).
  A group-l1 penalty over single neurons is the convex image of any regulariser whose least
  value over the network's rescalings (``W1_kj -> a W1_kj``, ``w2_kj -> w2_kj / a``;
  ``w2_k -> b w2_k``, ``w3_k -> w3_k / b``; ``f`` unchanged) is ``R``. Three such forms:

      (a) R         = sum_k |w3_k| sum_j |w2_kj| ||W1_kj||_2            (path norm, here)
      (b) R_product = sum_k |w3_k| ||W1_k||_F ||w2_k||_2                (norms per layer)
      (c) R_decay   = 1/2 sum_k (||W1_k||_F^2 + ||w2_k||_2^2),  |w3_k| = 1  (weight decay)

  ``R <= R_product`` (Cauchy-Schwarz) and ``R <= R_decay`` (AM-GM) for every network, with
  equality at the balanced network ``balanced(...)`` (``|w3_k| = 1``, ``||W1_kj|| = |w2_kj|``),
  which computes the same ``f``. So the three trainings have the same optimum, for every
  ``K`` and inner width ``m1``; `tests/test_three_layer_relu.py` checks the inequalities, the
  balancing, and trains (a) and (c) against the program's optimum.
* The paper's program fixes ``m1`` and gives each of a sub-network's ``m1`` neurons its own
  pattern. Here a sub-network may use any number of neurons: neurons of one sub-network that
  share an inner pattern and a sign add up (the norm of a sum is at most the sum of the norms,
  the cone is convex), so this program is the paper's for every ``m1`` at least the number of
  neurons of the largest recovered sub-network (``ThreeLayerSolution.inner_width``), and a
  lower bound on it for smaller ``m1``.
* Not this program: the l2 path norm of "Path Regularization" (Ergen & Pilanci, ICLR 2022),
  ``sum_k |w3_k| sqrt(sum_j w2_kj^2 ||W1_kj||^2)``, whose convex image has a Frobenius group per
  sub-network (all its neurons' patterns at once) and whose optimum falls with ``m1`` (splitting
  a neuron into ``m`` copies divides its term by ``sqrt(m)``).

Over the non-zero inner activation patterns ``D1_i = diag(1[X g_i > 0])`` (i = 1..P1) and the
outer patterns ``D2_l`` (l = 1..P2, patterns of the second hidden layer's pre-activation),

    min   ell( sum_{l, s} s D2_l h_{l,s}, y ) + beta sum_{l, s, i, t} ||v_{l,s,i,t}||_2   (convex)
    with  h_{l,s} = sum_{i, t} t D1_i X v_{l,s,i,t}        (s, t in {+1, -1})
    s.t.  (2 D1_i - I) X v_{l,s,i,t} >= 0,   (2 D2_l - I) h_{l,s} >= 0.

Any network gives a feasible point of no larger objective (neurons of one sub-network sharing a
pattern and a sign add up, sub-networks sharing an outer pattern and a sign add up, and the norm
of a sum is at most the sum of the norms); any feasible point is a network with the same
objective: each non-zero ``(l, s)`` is a sub-network with ``w3 = s``, first-layer rows
``v_{l,s,i,t}`` and ``w2 = t``. So with every pattern the two optima are equal. ``patterns='all'``
enumerates the inner patterns exactly (rank X <= 3) and takes every non-zero subset of the samples
as an outer pattern (2^n - 1, a superset of those a network can realise: the cone constraints
keep only realisable ones); an integer samples gates for the inner layer and random two-layer
networks for the outer one, and the optimum is then an upper bound on the global one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from solvers.convex_relu import (
    LOSSES,
    Loss,
    _check_device,
    _check_options,
    _check_problem,
    cvxpy_fit,
    loss_value,
)
from solvers.patterns import DEFAULT_MAX_PATTERNS, enumerate_patterns, sample_patterns
from solvers.three_layer_barrier import solve_three_layer_barrier

MAX_EXACT_SAMPLES = 8  # 2^n - 1 outer patterns: 255 at n = 8
MAX_BLOCKS = 40_000  # 4 P1 P2 blocks of d variables: the largest program this module builds
_BLOCK_RTOL = 1e-9  # blocks below this fraction of the largest carry no neuron


@dataclass
class ThreeLayerSolution:
    """Optimum of the convex program and the parallel three-layer network recovered from it."""

    objective: float  # convex objective at the solution
    network_objective: float  # ell + beta * path norm of the recovered network
    first_layers: list[np.ndarray]  # K arrays (m1_k, d): W1_k
    second_layers: list[np.ndarray]  # K arrays (m1_k,): w2_k (entries +-1)
    third_layer: np.ndarray  # (K,): w3_k (entries +-1)
    n_inner_patterns: int  # P1
    n_outer_patterns: int  # P2
    exact: bool  # every pattern used: objective = global optimum of the network
    max_violation: float  # largest violation of a cone constraint
    loss: str
    beta: float
    status: str
    seconds: float
    method: str = "cvxpy"
    lower_bound: float = float("nan")  # interior point: dual bound <= convex optimum
    iterations: int = 0  # interior point: Newton steps

    @property
    def subnetworks(self) -> int:
        """Number of sub-networks ``K`` of the recovered network."""
        return int(self.third_layer.shape[0])

    @property
    def inner_width(self) -> int:
        """Neurons of the largest recovered sub-network: the program is the paper's for every
        ``m1`` at least this (module docstring)."""
        return max((int(w.shape[0]) for w in self.second_layers), default=0)

    @property
    def neurons(self) -> int:
        """Total number of first-hidden-layer neurons over all sub-networks."""
        return int(sum(w.shape[0] for w in self.second_layers))


def parallel_output(
    first_layers: list[np.ndarray],
    second_layers: list[np.ndarray],
    third_layer: np.ndarray,
    X: np.ndarray,
) -> np.ndarray:
    """``f = sum_k w3_k relu(relu(X W1_k^T) w2_k)``; ``X`` (n, d) -> (n,)."""
    X = np.asarray(X, dtype=np.float64)
    f = np.zeros(X.shape[0])
    for W1, w2, w3 in zip(first_layers, second_layers, np.ravel(third_layer), strict=True):
        hidden = np.maximum(X @ np.asarray(W1, dtype=np.float64).reshape(-1, X.shape[1]).T, 0.0)
        f += w3 * np.maximum(hidden @ np.ravel(w2), 0.0)
    return f


def path_norm(
    first_layers: list[np.ndarray], second_layers: list[np.ndarray], third_layer: np.ndarray
) -> float:
    """``R = sum_k |w3_k| sum_j |w2_kj| ||W1_kj||_2``."""
    total = 0.0
    for W1, w2, w3 in zip(first_layers, second_layers, np.ravel(third_layer), strict=True):
        rows = np.linalg.norm(np.atleast_2d(np.asarray(W1, dtype=np.float64)), axis=1)
        total += abs(float(w3)) * float(np.abs(np.ravel(w2)) @ rows)
    return total


def product_norm(
    first_layers: list[np.ndarray], second_layers: list[np.ndarray], third_layer: np.ndarray
) -> float:
    """``R_product = sum_k |w3_k| ||W1_k||_F ||w2_k||_2`` (form (b) of the module docstring)."""
    return float(
        sum(
            abs(float(w3)) * np.linalg.norm(W1) * np.linalg.norm(w2)
            for W1, w2, w3 in zip(first_layers, second_layers, np.ravel(third_layer), strict=True)
        )
    )


def decay_norm(first_layers: list[np.ndarray], second_layers: list[np.ndarray]) -> float:
    """``R_decay = 1/2 sum_k (||W1_k||_F^2 + ||w2_k||^2)`` (form (c); the third layer is +-1)."""
    return 0.5 * float(
        sum(
            np.sum(np.square(W1)) + np.sum(np.square(w2))
            for W1, w2 in zip(first_layers, second_layers, strict=True)
        )
    )


def balanced(
    first_layers: list[np.ndarray], second_layers: list[np.ndarray], third_layer: np.ndarray
) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray]:
    """The same function with ``|w3_k| = 1`` and ``||W1_kj|| = |w2_kj|`` for every neuron.

    ``w2_k -> |w3_k| w2_k``, ``w3_k -> sign(w3_k)`` (ReLU is positively homogeneous), then
    ``W1_kj -> W1_kj c_j``, ``w2_kj -> w2_kj / c_j`` with ``c_j = sqrt(|w2_kj| / ||W1_kj||)``.
    There ``path_norm = product_norm = decay_norm`` (neurons with a zero row or weight are set
    to zero, which changes neither ``f`` nor the path norm).
    """
    firsts, seconds = [], []
    for W1, w2, w3 in zip(first_layers, second_layers, np.ravel(third_layer), strict=True):
        W1 = np.atleast_2d(np.asarray(W1, dtype=np.float64))
        w2 = abs(float(w3)) * np.ravel(np.asarray(w2, dtype=np.float64))
        rows = np.linalg.norm(W1, axis=1)
        live = (rows > 0) & (w2 != 0)
        c = np.sqrt(np.abs(w2) / np.where(live, rows, 1.0))
        firsts.append(np.where(live[:, None], W1 * c[:, None], 0.0))
        seconds.append(np.where(live, w2 / np.where(live, c, 1.0), 0.0))
    signs = np.sign(np.ravel(np.asarray(third_layer, dtype=np.float64)))
    return firsts, seconds, np.where(signs == 0, 1.0, signs)


def three_layer_objective(
    first_layers: list[np.ndarray],
    second_layers: list[np.ndarray],
    third_layer: np.ndarray,
    X: np.ndarray,
    y: np.ndarray,
    beta: float,
    loss: Loss = "squared",
) -> float:
    """``ell(f(X), y) + beta R`` of a parallel three-layer network (see the module docstring)."""
    X, y, beta = _check_problem(X, y, beta, loss)
    if len(first_layers) != len(second_layers) or len(first_layers) != np.size(third_layer):
        raise ValueError(
            f"first_layers, second_layers and third_layer must have one entry per sub-network, "
            f"got {len(first_layers)}, {len(second_layers)} and {np.size(third_layer)}"
        )
    f = parallel_output(first_layers, second_layers, third_layer, X)
    return loss_value(f, y, loss) + beta * path_norm(first_layers, second_layers, third_layer)


def outer_patterns(X: np.ndarray, patterns: str | int, seed: int = 0, width: int = 8) -> np.ndarray:
    """Outer patterns (P2, n) bool: every non-empty subset (``'all'``) or sampled ones.

    Sampled: ``1[relu(X G^T) c > 0]`` for ``patterns`` random two-layer networks (``G`` (width, d)
    and ``c`` (width,) Gaussian), deduplicated, the empty pattern dropped.
    """
    n = X.shape[0]
    if patterns == "all":
        if n > MAX_EXACT_SAMPLES:
            raise ValueError(
                f"patterns='all' takes every subset of the n={n} samples as an outer pattern; "
                f"n must be <= {MAX_EXACT_SAMPLES}: use fewer samples or sampled patterns"
            )
        codes = np.arange(1, 2**n)
        return ((codes[:, None] >> np.arange(n)[None, :]) & 1).astype(bool)
    rng = np.random.default_rng(seed + 1)
    G = rng.standard_normal((int(patterns), width, X.shape[1]))
    c = rng.standard_normal((int(patterns), width))
    h = np.einsum("knw,kw->kn", np.maximum(np.einsum("nd,kwd->knw", X, G), 0.0), c)
    found = np.unique(h > 0, axis=0)
    return found[found.any(axis=1)]


def _patterns(
    X: np.ndarray, patterns: str | int, seed: int, max_patterns: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Inner patterns (P1, n), their interior gates (P1, d) and outer patterns (P2, n)."""
    if isinstance(patterns, str):
        if patterns != "all":
            raise ValueError(f"patterns must be 'all' or an integer >= 1, got {patterns!r}")
        inner, interior = enumerate_patterns(X, max_patterns)
    elif isinstance(patterns, (int, np.integer)) and not isinstance(patterns, bool) and patterns:
        if patterns < 1:
            raise ValueError(f"patterns must be 'all' or an integer >= 1, got {patterns}")
        inner, interior = sample_patterns(X, int(patterns), seed)
    else:
        raise ValueError(f"patterns must be 'all' or an integer >= 1, got {patterns!r}")
    return inner, interior, outer_patterns(X, patterns, seed)


def solve_three_layer(
    X: np.ndarray,
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
) -> ThreeLayerSolution:
    """Solve the convex program (cvxpy + Clarabel) and recover the parallel network.

    ``X`` (n, d), ``y`` (n,), ``beta > 0``. ``patterns='all'``: exact inner patterns (rank X <= 3)
    and every outer pattern (n <= 8): the optimum is the global optimum of the network.
    An integer ``p``: ``p`` sampled gates and ``p`` sampled outer patterns (``seed``): an upper
    bound. The program has ``4 P1 P2`` blocks of ``d`` variables; more than ``MAX_BLOCKS`` is
    refused with a ValueError. ``method="cvxpy"`` (Clarabel, ``tol`` default 1e-9) or
    ``"interior_point"`` (`solvers.three_layer_barrier`, torch on ``device``, ``tol`` default
    1e-6 on the relative gap to its dual bound, at most ``max_iter`` Newton steps).
    """
    X, y, beta = _check_problem(X, y, beta, loss)
    _check_options(method, tol, max_iter)
    inner, interior, outer = _patterns(X, patterns, seed, max_patterns)
    _check_blocks(inner.shape[0], outer.shape[0])
    start = time.perf_counter()
    layout = _BlockLayout.of(inner, outer)
    values, bound, iterations, status = _solve(
        X, y, beta, loss, (inner, interior, outer), layout, method, tol, max_iter, device
    )
    seconds = time.perf_counter() - start
    norms = np.linalg.norm(values, axis=1)
    XVn = X @ values.T  # (n, B) first-layer pre-activations per block
    Hn = (layout.gate_in * XVn) @ layout.summation  # (n, 2 P2) second-layer pre-activations
    first_layers, second_layers, third_layer = _recover(values, norms, layout)
    return ThreeLayerSolution(
        objective=_program_objective(Hn, y, norms, layout, beta, loss),
        network_objective=three_layer_objective(
            first_layers, second_layers, third_layer, X, y, beta, loss
        ),
        first_layers=first_layers,
        second_layers=second_layers,
        third_layer=third_layer,
        n_inner_patterns=int(inner.shape[0]),
        n_outer_patterns=int(outer.shape[0]),
        exact=patterns == "all",
        max_violation=_max_violation(XVn, Hn, layout),
        loss=loss,
        beta=beta,
        status=status,
        seconds=seconds,
        method=method,
        lower_bound=float(bound),
        iterations=int(iterations),
    )


def _solve(
    X: np.ndarray,
    y: np.ndarray,
    beta: float,
    loss: Loss,
    gates: tuple[np.ndarray, np.ndarray, np.ndarray],
    layout: _BlockLayout,
    method: str,
    tol: float | None,
    max_iter: int,
    device: str,
) -> tuple[np.ndarray, float, int, str]:
    """``(block values (B, d), dual bound, Newton steps, status)`` by cvxpy + Clarabel (no
    bound: NaN) or by the torch barrier method; ``gates`` = (inner, interior, outer)."""
    if method != "interior_point":
        values, status = _solve_program(X, y, beta, loss, layout, tol or 1e-9)
        return values, float("nan"), 0, status
    inner, interior, outer = gates
    values, bound, iterations, converged = solve_three_layer_barrier(
        X, y, beta, loss, inner, interior, outer, tol or 1e-6, int(max_iter), _check_device(device)
    )
    return values, bound, iterations, "optimal" if converged else "not converged"


def _check_blocks(P1: int, P2: int) -> None:
    """Refuse a program of more than ``MAX_BLOCKS`` blocks (``4 P1 P2``)."""
    blocks = 4 * P1 * P2
    if blocks > MAX_BLOCKS:
        raise ValueError(
            f"the program would have 4 P1 P2 = {blocks} blocks (P1={P1} inner, P2={P2} outer "
            f"patterns), more than {MAX_BLOCKS}: use fewer samples or fewer sampled patterns"
        )


def _program_objective(
    Hn: np.ndarray, y: np.ndarray, norms: np.ndarray, layout: _BlockLayout, beta: float, loss: Loss
) -> float:
    """``L(f, y) + beta sum_b ||values_b||``: f the program's output from the second layer's
    pre-activations ``Hn``, ``norms`` the blocks' norms."""
    fn = np.sum(layout.gate_out * layout.signs_out[None, :] * Hn, axis=1)
    return float(loss_value(fn, y, loss) + beta * float(norms.sum()))


def _max_violation(XVn: np.ndarray, Hn: np.ndarray, layout: _BlockLayout) -> float:
    """The largest violation of the inner and outer cone constraints
    ``(2 D - I) X v >= 0`` and ``(2 D' - I) h >= 0``, from the pre-activations."""
    return max(
        float(np.max(np.maximum(-(2.0 * layout.gate_in - 1.0) * XVn, 0.0), initial=0.0)),
        float(np.max(np.maximum(-(2.0 * layout.gate_out - 1.0) * Hn, 0.0), initial=0.0)),
    )


@dataclass
class _BlockLayout:
    """Where each of the ``B = 4 P1 P2`` blocks sits: block ``b = ((l * 2 + s) * P1 + i) * 2 + t``
    for outer pattern ``l``, outer sign ``s``, inner pattern ``i`` and inner sign ``t``."""

    t_sign: np.ndarray  # (B,) +1 / -1, the inner sign
    group: np.ndarray  # (B,) 2 l + s, the (outer pattern, sign) pair of the block
    s_sign: np.ndarray  # (B,) +1 / -1, the outer sign
    gate_in: np.ndarray  # (n, B) the block's inner pattern D_i
    summation: np.ndarray  # (B, 2 P2) h_{l,s} = sum of the t-signed blocks of the pair
    gate_out: np.ndarray  # (n, 2 P2) the outer pattern of each pair
    signs_out: np.ndarray  # (2 P2,) +1, -1, +1, ...

    @classmethod
    def of(cls, inner: np.ndarray, outer: np.ndarray) -> _BlockLayout:
        P1, P2 = inner.shape[0], outer.shape[0]
        blocks = 4 * P1 * P2
        index = np.arange(blocks)
        t_sign = np.where(index % 2 == 0, 1.0, -1.0)
        i_of = (index // 2) % P1
        group = index // (2 * P1)  # (l, s) = (group // 2, group % 2)
        s_sign = np.where(group % 2 == 0, 1.0, -1.0)
        summation = np.zeros((blocks, 2 * P2))
        summation[index, group] = t_sign
        return cls(
            t_sign=t_sign,
            group=group,
            s_sign=s_sign,
            gate_in=inner[i_of].T.astype(np.float64),
            summation=summation,
            gate_out=np.repeat(outer.T.astype(np.float64), 2, axis=1),
            signs_out=np.tile([1.0, -1.0], P2),
        )


def _solve_program(
    X: np.ndarray, y: np.ndarray, beta: float, loss: Loss, layout: _BlockLayout, tol: float
) -> tuple[np.ndarray, str]:
    """The blocks ``V`` (B, d) minimising ``fit(f) + beta sum_b ||v_b||_2`` subject to both
    layers' pattern constraints (cvxpy + Clarabel), and the solver's status."""
    import cvxpy as cp

    V = cp.Variable((layout.gate_in.shape[1], X.shape[1]))
    XV = X @ V.T  # (n, B)
    H = cp.multiply(layout.gate_in, XV) @ layout.summation  # (n, 2 P2): h_{l,s}
    f = cp.sum(cp.multiply(layout.gate_out * layout.signs_out[None, :], H), axis=1)
    constraints = [
        cp.multiply(2.0 * layout.gate_in - 1.0, XV) >= 0,
        cp.multiply(2.0 * layout.gate_out - 1.0, H) >= 0,
    ]
    fit = cvxpy_fit(f, y, loss)
    problem = cp.Problem(cp.Minimize(fit + beta * cp.sum(cp.norm(V, 2, axis=1))), constraints)
    settings = {"tol_gap_abs": tol, "tol_gap_rel": tol, "tol_feas": tol, "max_iter": 500}
    problem.solve(solver=cp.CLARABEL, **settings)
    if V.value is None:
        raise RuntimeError(
            f"cvxpy/Clarabel did not solve the three-layer program: {problem.status}"
        )
    return np.asarray(V.value, dtype=np.float64), str(problem.status)


def _recover(
    values: np.ndarray, norms: np.ndarray, layout: _BlockLayout
) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray]:
    """The parallel network of the non-zero blocks: per (outer pattern, sign) pair, its first
    layer (the blocks' vectors), its second layer (their inner signs) and its output sign."""
    keep = norms > _BLOCK_RTOL * norms.max(initial=0.0)
    P1 = len(layout.t_sign) // (2 * layout.summation.shape[1])
    first_layers, second_layers, third = [], [], []
    for g in np.unique(layout.group[keep]):
        members = keep & (layout.group == g)
        first_layers.append(values[members])
        second_layers.append(layout.t_sign[members])
        third.append(layout.s_sign[g * 2 * P1])
    return first_layers, second_layers, np.asarray(third, dtype=np.float64)


__all__ = [
    "LOSSES",
    "ThreeLayerSolution",
    "balanced",
    "decay_norm",
    "outer_patterns",
    "parallel_output",
    "path_norm",
    "product_norm",
    "solve_three_layer",
    "three_layer_objective",
]
