"""The duality gap of a one-hidden-layer multi-branch ReLU network against the branch count I.

Branch ``i`` is one ReLU unit without bias (a constant feature is appended to ``X`` instead), so
the network of seed eq. (16) is ``f(x) = (1/I) sum_i a_i relu(u_i^T x)``; with weight decay
averaged over the branches (the seed's ``(1/I) sum_i h_i``) the primal is

    P_I = min_{U, a}  1/2 ||f(X) - y||^2 + beta/(2I) (||U||_F^2 + ||a||^2).

Rescaling ``a_i / I -> a_i`` and balancing each unit turns this into the two-layer problem of
``solvers.convex_relu`` with ``m = I`` neurons, so the dual optimum ``D`` is the optimum of the
exact convex program (every activation pattern), independent of ``I`` (MATH.md section 4).
``P_I`` is estimated by the best of several training restarts: an *upper bound* on ``P_I``.
The measured gap ``P_I - D`` is ``>= 0`` up to the solver's certified tolerance and reaches 0 once
``I >= m*``, the critical width.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from typing import Literal, get_args

import numpy as np
import torch

from landscape.engine import datasets
from landscape.engine.device import Device, resolve_device
from landscape.engine.nets import MultiBranchNet
from landscape.engine.progress import Progress, silent
from landscape.engine.validation import (
    COST_LIMIT,
    check_cost,
    check_integer,
    check_integers,
    check_number,
)
from landscape.server import cluster, study_parts
from solvers.convex_relu import nonconvex_objective, solve_convex_relu

GapDataset = Literal["moons", "circles", "spirals"]
GAP_DATASETS: tuple[GapDataset, ...] = get_args(GapDataset)
MERGE_COSINE = 1.0 - 1e-6  # neurons this parallel (same output sign) are merged into one
PRUNE_RTOL = 1e-4  # neurons carrying less than this share of the path norm are dropped
NEAR_ZERO_RTOL = 1e-5  # a gap below this fraction of |D| counts as zero (training precision)


@dataclass(frozen=True)
class Config:
    """The gap curve: I branches of one ReLU unit, for each I in ``branch_counts``, on a small
    2-D data set."""

    branch_counts: tuple[int, ...] = (1, 2, 4, 8)
    dataset: GapDataset = "moons"
    n: int = 16
    noise: float = 0.15
    beta: float = 1.0
    restarts: int = 32
    steps: int = 1000
    lr: float = 0.05
    seed: int = 0
    device: Device = "cpu"

    def validate(self) -> None:
        """ValueError naming the field, its value and the allowed range."""
        check_integers("branch_counts", self.branch_counts, 1, 256, 12)
        if self.dataset not in GAP_DATASETS:
            raise ValueError(f"dataset must be one of {GAP_DATASETS}, got {self.dataset!r}")
        check_integer("n", self.n, 4, 60)
        check_number("noise", self.noise, 0.0, 1.0)
        check_number("beta", self.beta, 1e-3, 100.0)
        check_integer("restarts", self.restarts, 1, 512)
        check_integer("steps", self.steps, 1, 100_000)
        check_number("lr", self.lr, 1e-5, 1.0)
        check_integer("seed", self.seed, 0, 2**31 - 1)
        check_cost(
            "training (branch counts x restarts x steps x n)",
            24.0 * sum(self.branch_counts) * self.restarts * self.steps * self.n * 4,
            COST_LIMIT,
            "multiply-adds",
            "lower steps, restarts or the branch counts",
        )
        resolve_device(self.device)


@dataclass
class Result:
    """The primal estimates for K values of I against the convex (dual) optimum."""

    branch_counts: np.ndarray  # (K,)
    primal: np.ndarray  # (K,) best restart's objective: an upper bound on P_I
    primal_restarts: np.ndarray  # (K, R) every restart's objective (inf where it diverged)
    gap: np.ndarray  # (K,) primal - dual
    dual: float  # convex optimum (upper end of the solver's certified bracket)
    dual_lower_bound: float  # certified lower bound on the convex optimum
    tolerance: float  # dual - dual_lower_bound: the solver's certified bracket
    critical_width: int  # m-hat: neurons of the merged optimal network, m* <= m-hat
    critical_width_objective: float  # objective of that m-hat-neuron network
    reference_constant: float  # C = max_I I gap_I: the smallest C with C / I above every gap
    n_patterns: int
    run_seconds: float  # wall-clock time of this run
    diverged: bool
    message: str


#: What a run file may hold for each Result field (landscape.files.results.check_result):
#: kind f/i/b/s, ! finite, dimensions named alike agree; a Config field's name is its value.
RESULT_SHAPES: dict[str, str] = {
    "branch_counts": "i[branch_counts]",
    "primal": "f[branch_counts]",
    "primal_restarts": "f[branch_counts,restarts]",
    "gap": "f[branch_counts]",
    "dual": "f",
    "dual_lower_bound": "f",
    "tolerance": "f",
    "critical_width": "i",
    "critical_width_objective": "f",
    "reference_constant": "f",
    "n_patterns": "i",
    "run_seconds": "f",
    "diverged": "b",
    "message": "s",
}


def gap_data(dataset: str, n: int, noise: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """2-D points plus a constant feature (the bias): ``X`` (n, 3), labels ``y`` in {-1, +1}."""
    X, labels = datasets.two_dimensional(dataset, n, noise, seed)
    return np.hstack([X, np.ones((n, 1))]), 2.0 * labels - 1.0


def branch_weights(net: MultiBranchNet) -> tuple[torch.Tensor, torch.Tensor]:
    """``U`` (I, d) and ``a`` (I,) of a one-unit-per-branch ``MultiBranchNet`` (biases ignored)."""
    if net.depth != 1 or net.width != 1 or net.out_features != 1:
        raise ValueError("net must have depth 1, width 1 and one output")
    U = torch.cat([layer.weight for layer in net.layers(0)])
    a = torch.cat([layer.weight[0] for layer in net.layers(2)])
    return U, a


def branch_outputs(U: torch.Tensor, a: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
    """``f(x) = (1/I) sum_i a_i relu(u_i^T x)`` for a batch of networks.

    ``U`` (..., I, d), ``a`` (..., I), ``X`` (n, d) -> (..., n).
    """
    return (torch.relu(X @ U.transpose(-1, -2)) * a.unsqueeze(-2)).sum(-1) / U.shape[-2]


def branch_objective(
    U: torch.Tensor, a: torch.Tensor, X: torch.Tensor, y: torch.Tensor, beta: float
) -> torch.Tensor:
    """``1/2 ||f(X) - y||^2 + beta/(2I) (||U||^2 + ||a||^2)`` per network, shape (...)."""
    fit = 0.5 * (branch_outputs(U, a, X) - y).square().sum(-1)
    return fit + 0.5 * beta / U.shape[-2] * (U.square().sum((-1, -2)) + a.square().sum(-1))


def as_two_layer(U: np.ndarray, a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The balanced two-layer network with the same output: ``alpha = a / I``, then each unit
    rescaled to ``||u_j|| = |alpha_j|`` (which keeps ``alpha_j relu(u_j^T x)``).

    Its weight decay ``beta/2 (||U'||^2 + ||alpha'||^2) = beta sum_j ||u_j|| |alpha_j|`` is at most
    the branch network's ``beta/(2I)(||U||^2 + ||a||^2)``: AM-GM.
    """
    alpha = np.asarray(a, dtype=np.float64) / len(a)
    U = np.asarray(U, dtype=np.float64)
    norms = np.linalg.norm(U, axis=1)
    scale = np.sqrt(np.abs(alpha) / np.where(norms > 0, norms, 1.0))
    return U * scale[:, None], np.sign(alpha) * np.sqrt(np.abs(alpha) * norms)


def merge_neurons(U: np.ndarray, a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fewest neurons computing (almost) the same network with the same path norm.

    Neurons carrying less than ``PRUNE_RTOL`` of the largest ``||u_j|| |a_j|`` are dropped; neurons
    with the same sign of ``a`` and ``cos(u_j, u_k) >= MERGE_COSINE`` are merged, since
    ``a_1 relu(u^T x) + a_2 relu(c u^T x) = (a_1 + c a_2) relu(u^T x)`` for ``c > 0``.
    Returns balanced ``U`` (m, d), ``a`` (m,).
    """
    U = np.asarray(U, dtype=np.float64)
    a = np.asarray(a, dtype=np.float64)
    weight = np.linalg.norm(U, axis=1) * np.abs(a)  # path norm of each neuron
    keep = weight > PRUNE_RTOL * weight.max() if weight.size and weight.max() > 0 else weight > 0
    directions = U[keep] / np.linalg.norm(U[keep], axis=1, keepdims=True)
    signs, weight = np.sign(a[keep]), weight[keep]
    groups: list[list[int]] = []
    for k in np.argsort(-weight):
        for group in groups:
            j = group[0]
            if signs[j] == signs[k] and directions[j] @ directions[k] >= MERGE_COSINE:
                group.append(int(k))
                break
        else:
            groups.append([int(k)])
    total = np.array([weight[g].sum() for g in groups])
    merged_u = np.array([directions[g[0]] for g in groups]).reshape(-1, U.shape[1])
    merged_a = np.array([signs[g[0]] for g in groups])
    root = np.sqrt(total)
    return merged_u * root[:, None], merged_a * root


@study_parts.kept_function("branch_gap.convex_optimum")
def convex_optimum(
    dataset: str, n: int, noise: float, beta: float, seed: int
) -> tuple[float, float, int, float, int]:
    """The exact convex program with every pattern (Clarabel): its optimum, certified lower
    bound, the merged critical width m-hat, that network's objective, and the pattern count."""
    X, y = gap_data(dataset, n, noise, seed)
    solution = solve_convex_relu(X, y, beta, loss="squared", patterns="all", method="cvxpy")
    U, a = merge_neurons(solution.first_layer, solution.second_layer)
    merged_objective = nonconvex_objective(U, a, X, y, beta, "squared")
    return (solution.objective, solution.lower_bound, len(a), merged_objective, solution.n_patterns)


def train_restarts(
    X: torch.Tensor,
    y: torch.Tensor,
    branches: int,
    beta: float,
    restarts: int,
    steps: int,
    lr: float,
    seed: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Adam with a cosine step size on ``restarts`` independent networks at once.

    Each restart starts like ``MultiBranchNet``'s layers (``nn.Linear``'s default):
    ``u_i ~ U(-1/sqrt(d), 1/sqrt(d))^d``, ``a_i ~ U(-1, 1)`` (fan-in 1). The objectives are
    separable across restarts, so one optimiser on their sum trains each independently.
    Returns ``U`` (R, I, d) and ``a`` (R, I).
    """
    generator = torch.Generator().manual_seed(int(seed))
    d = X.shape[1]
    U = torch.rand(restarts, branches, d, generator=generator, dtype=X.dtype)
    U = (U * 2 - 1) / math.sqrt(d)
    a = torch.rand(restarts, branches, generator=generator, dtype=X.dtype) * 2 - 1
    U, a = U.to(X.device).requires_grad_(), a.to(X.device).requires_grad_()
    optimizer = torch.optim.Adam([U, a], lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    for _ in range(steps):
        optimizer.zero_grad(set_to_none=True)
        branch_objective(U, a, X, y, beta).sum().backward()
        optimizer.step()
        schedule.step()
    return U.detach(), a.detach()


def run(config: Config, progress: Progress | None = None) -> Result:
    """Estimate ``P_I`` for every I by the best of ``config.restarts`` runs; compare with ``D``.

    Each I is cached on its own, so a new list of I only trains the values not seen before;
    inside ``engine.cluster.compute_on(address)`` the values of I run as Ray tasks.
    """
    config.validate()
    report = progress or silent
    start = time.perf_counter()
    report(0.0, "Exact convex program over every activation pattern")
    dual, lower, m_hat, m_hat_objective, n_patterns = convex_optimum(
        config.dataset, config.n, config.noise, config.beta, config.seed
    )
    tasks = len(config.branch_counts)
    rows = cluster.parallel_map(  # one task per I on a Ray cluster (engine.cluster.compute_on)
        primal_restarts,
        [replace(config, branch_counts=(i,)) for i in config.branch_counts],
        progress=lambda k, one: report(
            0.1 + 0.9 * k / tasks,
            f"Training {config.restarts} restarts with I = {one.branch_counts[0]} branches",
        ),
    )
    restarts = np.stack(rows)
    primal = restarts.min(axis=1)
    gap = primal - dual
    failed = [i for i, p in zip(config.branch_counts, primal, strict=True) if not np.isfinite(p)]
    finite = np.isfinite(gap)
    counts = np.array(config.branch_counts)
    return Result(
        branch_counts=counts,
        primal=primal,
        primal_restarts=restarts,
        gap=gap,
        dual=dual,
        dual_lower_bound=lower,
        tolerance=dual - lower,
        critical_width=m_hat,
        critical_width_objective=m_hat_objective,
        reference_constant=float(np.max(counts[finite] * np.maximum(gap[finite], 0.0), initial=0)),
        n_patterns=n_patterns,
        run_seconds=time.perf_counter() - start,
        diverged=bool(failed),
        message=f"every restart diverged for I in {failed}; lower the step size" if failed else "",
    )


@study_parts.kept_function("branch_gap.primal_restarts")
def primal_restarts(config: Config) -> np.ndarray:
    """The two-layer objective of every restart for the one I in ``config.branch_counts``:
    shape (R,), ``inf`` where a restart diverged. Cached per configuration."""
    (branches,) = config.branch_counts
    X_np, y_np = gap_data(config.dataset, config.n, config.noise, config.seed)
    device = resolve_device(config.device)
    X = torch.as_tensor(X_np, dtype=torch.float64, device=device)
    y = torch.as_tensor(y_np, dtype=torch.float64, device=device)
    U, a = train_restarts(
        X, y, branches, config.beta, config.restarts, config.steps, config.lr, config.seed
    )
    U_np, a_np = U.cpu().numpy(), a.cpu().numpy()
    values = np.full(config.restarts, np.inf)
    for r in range(config.restarts):
        if np.isfinite(U_np[r]).all() and np.isfinite(a_np[r]).all():
            two_layer = as_two_layer(U_np[r], a_np[r])
            values[r] = nonconvex_objective(*two_layer, X_np, y_np, config.beta)
    return values


PRESETS: dict[str, Config] = {"default": Config()}
