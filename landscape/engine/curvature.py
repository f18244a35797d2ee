"""Curvature of the loss: eigenvalues with honest evidence, spectra, traces, the 2x2 slice Hessian.

The operators (``kind``: the Hessian ``H``, the generalised Gauss-Newton ``G``, the empirical
Fisher ``F``; `landscape.engine.operators`) are never formed: ``H v`` is one double backward pass
(Pearlmutter's trick, ``H v = d/d theta <grad L(theta), v>``). Vectors are flat over all
parameters, in the order of ``model.named_parameters()``. The model is evaluated in eval mode and
left unchanged. ``batch_size`` sums the products over mini-batches of the data.

What a Lanczos run proves (`curvature_evidence`): a unit vector ``v`` with ``v^T H v < 0``
(beyond rounding) proves that the point is not convex, whatever else Lanczos missed; a run that
finds none proves nothing, and comes with Kuczynski and Wozniakowski's probabilistic bound on
what it may have missed. Only the exact eigenvalues (a model small enough for the dense Hessian)
can say "convex here".
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from landscape.engine.directions import Params, combine, flatten, parameters_of
from landscape.engine.lanczos import (
    Lanczos,
    Matvec,
    kuczynski_wozniakowski,
    lanczos,
    lanczos_run,
    lower_bound_on_lambda_min,
)
from landscape.engine.operators import KINDS, Operator, curvature_operator
from landscape.engine.problem import Problem
from landscape.engine.progress import Progress
from landscape.engine.spectrum import SpectralDensity, spectral_density
from landscape.engine.trace import TraceEstimate, hutch_plus_plus, hutchinson

__all__ = [
    "KINDS",
    "STATES",
    "CurvatureMap",
    "Eigenpairs",
    "Evidence",
    "Lanczos",
    "Operator",
    "SpectralDensity",
    "TraceEstimate",
    "curvature_evidence",
    "curvature_map",
    "curvature_operator",
    "density",
    "extreme_eigenvalues",
    "hessian_operator",
    "hutchinson_trace",
    "hvp",
    "kuczynski_wozniakowski",
    "lanczos",
    "slice_hessian",
    "slice_hessian_fd",
    "top_eigenpairs",
    "trace",
]

Point = Mapping[str, torch.Tensor] | None

# The Lab's and the map's defaults: up to 100 Lanczos steps, stopped once both extreme Ritz
# pairs have residual <= 1e-4 max |theta|, so that an eigenvalue about 1e-3 of the largest in
# magnitude is resolved in sign (tests/test_lab_curvature.py finds one such of a tanh MLP, where
# a fixed 10 steps would report a positive lambda_min).
DEFAULT_BUDGET = 100
DEFAULT_TOLERANCE = 1e-4
DEFAULT_DELTA = 0.01
# A Rayleigh quotient computed in float64 is wrong by at most ~1e-13 max|lambda| for the
# networks here; claims need rho < -ROUNDING * max|theta|, a margin far above that.
ROUNDING = 1e-9
# A Ritz value below -PROOF_TRIGGER max|theta| in float32 is well beyond float32 rounding of the
# products (~1e-6 relative): worth checking in float64.
PROOF_TRIGGER = 1e-5
STATES = ("negative", "none_found", "convex")
STATE_CODES = {"negative": -1, "none_found": 0, "convex": 1}


@contextmanager
def hessian_operator(
    problem: Problem,
    point: Point = None,
) -> Iterator[tuple[Matvec, torch.Tensor]]:
    """Yield ``(v -> H v, grad)`` at ``point`` (default: the model's parameters).

    ``v`` and ``H v`` are flat float64 vectors of length P on the model's device; ``grad`` is
    the flat gradient. See `curvature_operator` for the GGN, the Fisher and batches.
    """
    with curvature_operator(problem, point) as op:
        yield op.matvec, op.gradient


def _unflatten(vector: torch.Tensor, like: Mapping[str, torch.Tensor]) -> Params:
    out: Params = {}
    offset = 0
    for name, t in like.items():
        out[name] = vector[offset : offset + t.numel()].reshape(t.shape).to(t.device, t.dtype)
        offset += t.numel()
    return out


def hvp(
    problem: Problem,
    v: Mapping[str, torch.Tensor],
    point: Point = None,
    *,
    kind: str = "hessian",
    batch_size: int | None = None,
) -> Params:
    """The product ``A v`` (``kind``: Hessian, GGN or Fisher) at ``point``, shaped like ``v``."""
    with curvature_operator(problem, point, kind=kind, batch_size=batch_size) as op:
        product = op.matvec(flatten(v).to(torch.float64))
    return _unflatten(product, v)


def _dimension(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def extreme_eigenvalues(
    problem: Problem,
    point: Point = None,
    *,
    iterations: int = 20,
    seed: int = 0,
    kind: str = "hessian",
    batch_size: int | None = None,
) -> tuple[float, float]:
    """``(theta_min, theta_max)``: the extreme Ritz values after ``iterations`` Lanczos steps.

    They lie inside ``[lambda_min, lambda_max]``: a positive ``theta_min`` does not prove
    convexity (use `curvature_evidence`).
    """
    dimension = _dimension(problem.model)
    with curvature_operator(problem, point, kind=kind, batch_size=batch_size) as op:
        ritz = lanczos(op.matvec, dimension, min(int(iterations), dimension), seed, op.device)
    return float(ritz[0]), float(ritz[-1])


@dataclass
class Evidence:
    """What is known about the curvature at one point (``state`` one of `STATES`).

    * ``"negative"``: ``vector`` (P,) float64, unit, has ``rayleigh = v^T A v < -tolerance``
      (computed in float64): the operator is not PSD here. With ``exact`` it is the eigenvector
      of the exact ``lambda_min``.
    * ``"none_found"``: Lanczos found no such vector in ``iterations`` steps; with probability
      ``>= 1 - delta`` over its random start ``lambda_min >= bound`` (Kuczynski-Wozniakowski with
      relative error ``epsilon``; ``bound = -inf`` when the steps promise nothing).
    * ``"convex"`` (only with ``exact``): the exact ``lambda_min >= -tolerance``.

    ``lambda_min``, ``lambda_max``: extreme Ritz values (exact eigenvalues with ``exact``);
    ``residual_min``, ``residual_max``: ``||A y - rho y||`` of the extreme Ritz vectors in float64,
    so an eigenvalue lies within each of ``rayleigh`` / ``rayleigh_max``; ``products`` spent;
    ``eigenvalues`` every exact eigenvalue (exact route only).
    """

    state: str
    exact: bool
    lambda_min: float
    lambda_max: float
    rayleigh: float
    rayleigh_max: float
    residual_min: float
    residual_max: float
    iterations: int
    products: int
    bound: float
    epsilon: float
    delta: float
    tolerance: float
    vector: torch.Tensor | None
    eigenvalues: np.ndarray | None = None  # (P,) ascending, on the exact route only

    @property
    def code(self) -> int:
        """-1 negative curvature found, 0 none found, 1 convex here (exact)."""
        return STATE_CODES[self.state]


def curvature_evidence(
    problem: Problem,
    point: Point = None,
    *,
    max_iterations: int = DEFAULT_BUDGET,
    tolerance: float | None = DEFAULT_TOLERANCE,
    seed: int = 0,
    exact_limit: int = 0,
    delta: float = DEFAULT_DELTA,
    kind: str = "hessian",
    batch_size: int | None = None,
    stop_at_proof: bool = False,
) -> Evidence:
    """Negative curvature found, none found, or (P <= ``exact_limit``) convex here or not.

    Exact route (P <= ``exact_limit``): the dense operator in float64 from P products, its
    eigenvalues by LAPACK; ``tolerance = 100 P eps max |lambda|`` covers the rounding of both.
    Lanczos route: `lanczos_run` in the model's precision until both extreme Ritz pairs have
    residual ``<= tolerance * max|theta|`` or ``max_iterations`` steps; then both extreme Ritz
    vectors are applied once more in float64 (a float64 copy of the model), giving their
    Rayleigh quotients and true residuals; "negative" needs ``rho < -ROUNDING max|theta|``.
    ``tolerance=None`` runs the whole budget (the Ritz values of `extreme_eigenvalues`).
    ``stop_at_proof`` ends the run as soon as ``theta_min < -PROOF_TRIGGER max|theta|`` (the
    float64 check still decides): cheaper on a map, but ``lambda_min`` is then only an upper
    bound on the exact one (Ritz values lie inside the spectrum).
    """
    if not 0 < delta < 1:
        raise ValueError(f"delta must be in (0, 1), got {delta}")
    if int(exact_limit) != exact_limit or exact_limit < 0:
        raise ValueError(f"exact_limit must be an integer >= 0, got {exact_limit}")
    dimension = _dimension(problem.model)
    if dimension <= exact_limit:
        return _exact_evidence(problem, point, kind, batch_size, delta)
    budget = min(int(max_iterations), dimension)
    with curvature_operator(problem, point, kind=kind, batch_size=batch_size) as op:
        run = lanczos_run(
            op.matvec,
            dimension,
            budget,
            seed,
            op.device,
            tolerance=tolerance,
            stop_when_negative=PROOF_TRIGGER if stop_at_proof else None,
        )
        products = op.products
    ends, rho, residual, checked = _float64_check(problem, point, kind, batch_size, run)
    return _lanczos_evidence(run, ends, rho, residual, products + checked, dimension, delta)


def _float64_check(
    problem: Problem, point: Point, kind: str, batch_size: int | None, run: Lanczos
) -> tuple[list[torch.Tensor], list[float], list[float], int]:
    """Both extreme Ritz vectors ``v`` applied once more in float64: the vectors, their Rayleigh
    quotients ``rho = v^T A v``, residuals ``||A v - rho v||`` and the products spent."""
    ends = [run.ritz_vector(0), run.ritz_vector(run.iterations - 1)]
    with curvature_operator(
        problem, point, kind=kind, batch_size=batch_size, dtype=torch.float64
    ) as op:
        images = [op.matvec(v) for v in ends]
        products = op.products
    rho = [float(v @ Av) for v, Av in zip(ends, images, strict=True)]
    residual = [float((Av - r * v).norm()) for v, Av, r in zip(ends, images, rho, strict=True)]
    return ends, rho, residual, products


def _lanczos_evidence(
    run: Lanczos,
    ends: list[torch.Tensor],
    rho: list[float],
    residual: list[float],
    products: int,
    dimension: int,
    delta: float,
) -> Evidence:
    """The Lanczos route's verdict: "negative" when ``rho_min < -ROUNDING max|theta, rho|``,
    else "none found" with the Kuczynski-Wozniakowski bound (exact when the run exhausted P)."""
    theta_min, theta_max = float(run.ritz_values[0]), float(run.ritz_values[-1])
    margin = ROUNDING * max(abs(theta_min), abs(theta_max), abs(rho[0]), abs(rho[1]))
    bound, epsilon = lower_bound_on_lambda_min(
        theta_min, theta_max, dimension, max(run.iterations, 2), delta
    )
    if run.exhausted and run.iterations == dimension:
        bound, epsilon = theta_min - residual[0], 0.0
    negative = rho[0] < -margin
    return Evidence(
        state="negative" if negative else "none_found",
        exact=False,
        lambda_min=theta_min,
        lambda_max=theta_max,
        rayleigh=rho[0],
        rayleigh_max=rho[1],
        residual_min=residual[0],
        residual_max=residual[1],
        iterations=run.iterations,
        products=products,
        bound=bound,
        epsilon=epsilon,
        delta=delta,
        tolerance=margin,
        vector=ends[0] if negative else None,
    )


def _exact_evidence(
    problem: Problem,
    point: Point,
    kind: str,
    batch_size: int | None,
    delta: float,
) -> Evidence:
    with curvature_operator(
        problem, point, kind=kind, batch_size=batch_size, dtype=torch.float64
    ) as op:
        A = op.matrix()
        products = op.products
    eigenvalues, vectors = torch.linalg.eigh(A.cpu())
    low, high = float(eigenvalues[0]), float(eigenvalues[-1])
    dimension = A.shape[0]
    margin = 100 * dimension * float(np.finfo(np.float64).eps) * max(abs(low), abs(high))
    negative = low < -margin
    return Evidence(
        state="negative" if negative else "convex",
        exact=True,
        lambda_min=low,
        lambda_max=high,
        rayleigh=low,
        rayleigh_max=high,
        residual_min=0.0,
        residual_max=0.0,
        iterations=0,
        products=products,
        bound=low,
        epsilon=0.0,
        delta=delta,
        tolerance=margin,
        vector=vectors[:, 0].to(A.device) if negative else None,
        eigenvalues=eigenvalues.numpy(),
    )


@dataclass
class Eigenpairs:
    """The ``k`` largest Ritz pairs: ``values`` (k,) descending, ``vectors`` unit directions shaped
    like the parameters, ``residuals`` (k,) ``||A v - theta v||`` (an eigenvalue lies within each),
    ``iterations`` and ``products`` spent."""

    values: np.ndarray
    vectors: list[Params]
    residuals: np.ndarray
    iterations: int
    products: int


def top_eigenpairs(
    problem: Problem,
    point: Point = None,
    *,
    k: int = 2,
    max_iterations: int = DEFAULT_BUDGET,
    tolerance: float = DEFAULT_TOLERANCE,
    seed: int = 0,
    kind: str = "hessian",
    batch_size: int | None = None,
) -> Eigenpairs:
    """The ``k`` algebraically largest eigenpairs (the sharpest directions) by Lanczos, stopped
    when their residuals are ``<= tolerance * max|theta|`` or after ``max_iterations`` steps."""
    dimension = _dimension(problem.model)
    if int(k) != k or not 1 <= k <= dimension:
        raise ValueError(f"k must be an integer in [1, {dimension}], got {k}")
    like = parameters_of(problem.model)
    budget = min(max(int(max_iterations), int(k)), dimension)
    with curvature_operator(problem, point, kind=kind, batch_size=batch_size) as op:
        run = lanczos_run(
            op.matvec,
            dimension,
            budget,
            seed,
            op.device,
            tolerance=tolerance,
            wanted="largest",
            k=int(k),
        )
        vectors = [run.ritz_vector(run.iterations - 1 - j) for j in range(int(k))]
        images = [op.matvec(v) for v in vectors]
        products = op.products
    values = np.array([float(v @ Av) for v, Av in zip(vectors, images, strict=True)])
    residuals = np.array(
        [float((Av - t * v).norm()) for v, Av, t in zip(vectors, images, values, strict=True)]
    )
    return Eigenpairs(
        values=values,
        vectors=[_unflatten(v, like) for v in vectors],
        residuals=residuals,
        iterations=run.iterations,
        products=products,
    )


def density(
    problem: Problem,
    point: Point = None,
    *,
    iterations: int = 30,
    probes: int = 8,
    seed: int = 0,
    sigma: float | None = None,
    kind: str = "hessian",
    batch_size: int | None = None,
) -> SpectralDensity:
    """The eigenvalue density of the operator at ``point`` by stochastic Lanczos quadrature
    (`landscape.engine.spectrum.spectral_density`)."""
    dimension = _dimension(problem.model)
    with curvature_operator(problem, point, kind=kind, batch_size=batch_size) as op:
        return spectral_density(
            op.matvec,
            dimension,
            min(int(iterations), dimension),
            probes,
            seed,
            op.device,
            sigma,
        )


TRACE_METHODS = ("hutchinson", "hutch++")


def trace(
    problem: Problem,
    point: Point = None,
    *,
    method: str = "hutch++",
    products: int = 30,
    seed: int = 0,
    kind: str = "hessian",
    batch_size: int | None = None,
) -> TraceEstimate:
    """``tr A`` by Hutchinson or Hutch++ with ``products`` operator products
    (`landscape.engine.trace`)."""
    if method not in TRACE_METHODS:
        raise ValueError(f"method must be one of {TRACE_METHODS}, got {method!r}")
    estimator = hutchinson if method == "hutchinson" else hutch_plus_plus
    with curvature_operator(problem, point, kind=kind, batch_size=batch_size) as op:
        return estimator(op.matvec, _dimension(problem.model), products, seed, op.device)


def hutchinson_trace(
    problem: Problem,
    point: Point = None,
    *,
    samples: int = 100,
    seed: int = 0,
) -> tuple[float, float]:
    """Hutchinson's estimate of ``tr H = E[v^T H v]``, ``v`` Rademacher; returns (mean, std err)."""
    if int(samples) != samples or samples < 2:
        raise ValueError(f"samples must be an integer >= 2, got {samples}")
    result = trace(problem, point, method="hutchinson", products=samples, seed=seed)
    return result.estimate, result.error


def slice_hessian(
    problem: Problem,
    d1: Mapping[str, torch.Tensor],
    d2: Mapping[str, torch.Tensor],
    point: Point = None,
) -> np.ndarray:
    """The 2x2 Hessian of ``(a, b) -> L(point + a d1 + b d2)`` at (0, 0): ``[d_i^T H d_j]``."""
    D = torch.stack([flatten(d1), flatten(d2)]).to(problem.device, torch.float64)
    with hessian_operator(problem, point) as (matvec, _):
        HD = torch.stack([matvec(D[0]), matvec(D[1])])
    H2 = (D @ HD.T).cpu().numpy()
    return (H2 + H2.T) / 2


def slice_hessian_fd(Z: np.ndarray, alphas: np.ndarray, betas: np.ndarray) -> np.ndarray:
    """2x2 Hessians of a surface by central differences at every interior grid point.

    Returns (A-2, B-2, 2, 2): ``Z_aa = (Z[i+1,j] - 2 Z[i,j] + Z[i-1,j]) / h_a^2``,
    ``Z_ab = (Z[i+1,j+1] - Z[i+1,j-1] - Z[i-1,j+1] + Z[i-1,j-1]) / (4 h_a h_b)``; uniform grids.
    """
    alphas, betas = np.asarray(alphas, float), np.asarray(betas, float)
    if Z.shape != (len(alphas), len(betas)) or min(Z.shape) < 3:
        raise ValueError(f"Z must have shape (len(alphas), len(betas)) >= (3, 3), got {Z.shape}")
    ha, hb = np.diff(alphas), np.diff(betas)
    if not (np.allclose(ha, ha[0]) and np.allclose(hb, hb[0])) or ha[0] <= 0 or hb[0] <= 0:
        raise ValueError("alphas and betas must be increasing and evenly spaced")
    ha, hb = ha[0], hb[0]
    zaa = (Z[2:, 1:-1] - 2 * Z[1:-1, 1:-1] + Z[:-2, 1:-1]) / ha**2
    zbb = (Z[1:-1, 2:] - 2 * Z[1:-1, 1:-1] + Z[1:-1, :-2]) / hb**2
    zab = (Z[2:, 2:] - Z[2:, :-2] - Z[:-2, 2:] + Z[:-2, :-2]) / (4 * ha * hb)
    return np.stack([np.stack([zaa, zab], -1), np.stack([zab, zbb], -1)], -2)


@dataclass
class CurvatureMap:
    """The curvature evidence on a grid of the plane ``center + a d1 + b d2``.

    All arrays (A, B). ``state``: -1 negative curvature found (``rayleigh`` < 0 is the proof),
    0 none found (``bound``: lambda_min >= bound with probability ``1 - delta``), 1 convex here
    (exact eigenvalues only). ``lambda_min``, ``lambda_max``: extreme Ritz values (exact
    eigenvalues where the exact route ran); ``ratio = |lambda_min / lambda_max|`` (Li et al.
    section 6); ``iterations``: Lanczos steps taken (0 on the exact route).
    """

    alphas: np.ndarray
    betas: np.ndarray
    lambda_min: np.ndarray
    lambda_max: np.ndarray
    ratio: np.ndarray
    state: np.ndarray
    rayleigh: np.ndarray
    bound: np.ndarray
    residual: np.ndarray
    iterations: np.ndarray


def curvature_map(
    problem: Problem,
    d1: Mapping[str, torch.Tensor],
    d2: Mapping[str, torch.Tensor],
    alphas: Sequence[float] | np.ndarray,
    betas: Sequence[float] | np.ndarray,
    *,
    center: Point = None,
    iterations: int = DEFAULT_BUDGET,
    seed: int = 0,
    progress: Progress | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
    exact_limit: int = 0,
    delta: float = DEFAULT_DELTA,
    kind: str = "hessian",
    batch_size: int | None = None,
    stop_at_proof: bool = False,
) -> CurvatureMap:
    """`curvature_evidence` at every grid point (``iterations`` is the Lanczos budget)."""
    alphas, betas = np.asarray(alphas, float), np.asarray(betas, float)
    center = parameters_of(problem.model) if center is None else center
    shape = (len(alphas), len(betas))
    fields = {
        name: np.empty(shape)
        for name in ("lambda_min", "lambda_max", "state", "rayleigh", "bound", "residual")
    }
    steps = np.zeros(shape, dtype=np.int64)
    total = fields["state"].size
    for i, a in enumerate(alphas):
        for j, b in enumerate(betas):
            point = combine(center, (a, d1), (b, d2))
            e = curvature_evidence(
                problem,
                point,
                max_iterations=iterations,
                tolerance=tolerance,
                seed=seed,
                exact_limit=exact_limit,
                delta=delta,
                kind=kind,
                batch_size=batch_size,
                stop_at_proof=stop_at_proof,
            )
            for name, value in _map_fields(e).items():
                fields[name][i, j] = value
            steps[i, j] = e.iterations
            if progress is not None:
                progress((i * len(betas) + j + 1) / total, "Curvature map")
    return _curvature_map_of(alphas, betas, fields, steps)


def _map_fields(e: Evidence) -> dict[str, float]:
    """The numbers a curvature map keeps of one point's evidence (not its vector)."""
    return {
        "lambda_min": e.lambda_min,
        "lambda_max": e.lambda_max,
        "state": e.code,
        "rayleigh": e.rayleigh,
        "bound": e.bound,
        "residual": e.residual_min,
    }


def _curvature_map_of(
    alphas: np.ndarray, betas: np.ndarray, fields: dict[str, np.ndarray], steps: np.ndarray
) -> CurvatureMap:
    """The map from its grids of fields, with ``ratio = |lambda_min| / |lambda_max|``."""
    lo, hi = fields["lambda_min"], fields["lambda_max"]
    ratio = np.abs(lo) / np.maximum(np.abs(hi), np.finfo(float).tiny)
    return CurvatureMap(
        alphas=alphas,
        betas=betas,
        lambda_min=lo,
        lambda_max=hi,
        ratio=ratio,
        state=fields["state"].astype(np.int64),
        rayleigh=fields["rayleigh"],
        bound=fields["bound"],
        residual=fields["residual"],
        iterations=steps,
    )
