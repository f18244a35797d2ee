"""Curvature in one call: what is proven about the Hessian, its spectral density, its trace.

The operator (``kind``: "hessian" ``H``, "ggn" the generalised Gauss-Newton ``G``, "fisher" the
empirical Fisher) is never formed: each product ``A v`` is one double backward pass
(`landscape.engine.operators`). Evidence follows `landscape.engine.curvature`: a unit vector
with ``v^T A v < 0`` (in float64) proves negative curvature; a Lanczos run that finds none
proves nothing and comes with Kuczynski and Wozniakowski's bound; only the exact eigenvalues of
a small model (``P <= exact_limit``) say "convex here".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from landscape.api.isolation import isolated
from landscape.api.problems import Data, DeviceChoice, Loss, Point, point_of, problem
from landscape.api.records import (
    arguments_of,
    describe_array,
    describe_model,
    describe_parameters,
    metadata,
    progress_bar,
    read_only,
)
from landscape.api.surfaces import random_pair, symmetric_grid
from landscape.engine import curvature as engine
from landscape.engine.operators import curvature_operator
from landscape.engine.problem import Problem
from landscape.engine.trace import hutch_plus_plus, hutchinson

if TYPE_CHECKING:
    import plotly.graph_objects as go

EXACT_LIMIT = 2000  # the Lab's: the dense operator up to this many parameters


@dataclass(frozen=True, eq=False)
class CurvatureEvidence:
    """What is proven about the curvature at one point (``state``).

    ``"negative"``: ``vector`` (P,) is a unit direction with ``rayleigh = v^T A v < 0``
    (float64): the loss is not convex here. ``"none_found"``: Lanczos found none in
    ``iterations`` steps; with probability ``>= 1 - delta`` ``lambda_min >= bound``.
    ``"convex"`` (exact route only): the exact ``lambda_min >= -tolerance``. ``lambda_min``,
    ``lambda_max``: extreme Ritz values (exact eigenvalues when ``exact``); ``residual``:
    ``||A v - rho v||`` of the smallest Ritz vector; ``tolerance``: the margin below zero a
    claim needs (rounding); ``eigenvalues`` (P,) ascending on the exact route, (0,) otherwise;
    ``vector`` (0,) unless negative; ``products``: operator products spent; ``metadata``: how
    to compute it again (``path``: the route taken).
    """

    state: str
    exact: bool
    lambda_min: float
    lambda_max: float
    rayleigh: float
    residual: float
    bound: float
    delta: float
    tolerance: float
    iterations: int
    products: int
    eigenvalues: np.ndarray
    vector: np.ndarray
    metadata: dict[str, Any]

    def text(self) -> str:
        """The Lab's sentence on this evidence (numbers from this result only)."""
        from landscape.api import figures

        return figures.evidence_text(self)

    def figure(self) -> go.Figure:
        """The Lab's curvature map at this one point, titled with `text`."""
        from landscape.api import figures

        return figures.evidence(self)


@dataclass(frozen=True, eq=False)
class CurvatureMap:
    """`curvature` at every point of a random plane's grid; arrays (A, B).

    ``state``: -1 negative curvature found, 0 none found, 1 convex here (exact);
    ``ratio = |lambda_min| / |lambda_max|`` (Li et al. section 6); ``rayleigh``, ``bound``,
    ``residual``, ``iterations``, ``lambda_min``, ``lambda_max`` as in `CurvatureEvidence`;
    ``alphas`` (A,), ``betas`` (B,); ``metadata``: how to compute it again.
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
    metadata: dict[str, Any]

    def figure(self) -> go.Figure:
        """The Lab's map of ``|lambda_min / lambda_max|`` with each point's evidence."""
        from landscape.api import figures

        return figures.curvature_map(self)


@dataclass(frozen=True, eq=False)
class SpectralDensity:
    """The operator's eigenvalue density by stochastic Lanczos quadrature.

    ``phi(t) = (1/P) sum_i delta(t - lambda_i)`` estimated from ``probes`` Lanczos runs of
    ``m`` steps: ``nodes`` and ``weights`` (probes, m) per run, each row's weights summing to 1;
    ``grid`` (G,) and ``density`` (G,) the Gaussian-broadened average (width ``sigma``);
    ``negative_mass`` the share of the spectrum below ``-threshold`` with its standard
    ``negative_mass_error``; ``exact_eigenvalues`` (P,) when ``P <= exact_limit``, else (0,);
    ``products``: operator products spent; ``metadata``: how to compute it again.
    """

    grid: np.ndarray
    density: np.ndarray
    nodes: np.ndarray
    weights: np.ndarray
    negative_mass: float
    negative_mass_error: float
    threshold: float
    sigma: float
    products: int
    exact_eigenvalues: np.ndarray
    metadata: dict[str, Any]

    def moment(self, k: int) -> tuple[float, float]:
        """``(mean, standard error)`` over probes of ``sum_j w_j theta_j^k``, an unbiased
        estimate of ``(1/P) tr A^k`` for ``k <= 2m - 1``."""
        per_probe = (self.weights * self.nodes**k).sum(axis=1)
        error = per_probe.std(ddof=1) / np.sqrt(len(per_probe)) if len(per_probe) > 1 else 0.0
        return float(per_probe.mean()), float(error)

    def figure(self) -> go.Figure:
        """The Lab's density figure (log axis), with the exact eigenvalues' histogram if any."""
        from landscape.api import figures

        return figures.spectrum(self)


@dataclass(frozen=True, eq=False)
class HessianTrace:
    """``estimate`` of ``tr A`` with its standard ``error`` after ``products`` products.

    ``running_products`` (S,), ``running_estimate`` (S,), ``running_error`` (S,): the estimate
    after each random probe (Hutchinson: every product; Hutch++: its deflated probes, after
    the ``2k`` products of its sketch). The last entry is ``estimate``. ``method``:
    "hutchinson" or "hutch++"; ``metadata``: how to compute it again.
    """

    estimate: float
    error: float
    products: int
    method: str
    running_products: np.ndarray
    running_estimate: np.ndarray
    running_error: np.ndarray
    metadata: dict[str, Any]

    def figure(self) -> go.Figure:
        """The Lab's line figure of the running estimate with its standard-error band."""
        from landscape.api import figures

        return figures.trace(self)


def _call_metadata(
    call: str, parameters: dict[str, Any], built: Problem, **extra: Any
) -> dict[str, Any]:
    """The metadata of one curvature call: its arguments, the model, the data and the point."""
    inputs = {
        "model": describe_model(parameters["model"]),
        "X": describe_array(built.X),
        "y": describe_array(built.y),
    }
    if parameters.get("point") is not None:
        inputs["point"] = describe_parameters(point_of(parameters["point"], built.model, "point"))
    return metadata(call, arguments_of(parameters), inputs, device=str(built.device), **extra)


def _point(built: Problem, point: Point | None) -> dict[str, torch.Tensor] | None:
    return None if point is None else point_of(point, built.model, "point")


@isolated
def curvature(
    model: nn.Module,
    loss: Loss,
    X: Data,
    y: Data,
    *,
    point: Point | None = None,
    kind: str = "hessian",
    max_iterations: int = engine.DEFAULT_BUDGET,
    tolerance: float = engine.DEFAULT_TOLERANCE,
    exact_limit: int = EXACT_LIMIT,
    delta: float = engine.DEFAULT_DELTA,
    seed: int = 0,
    batch_rows: int | None = None,
    device: DeviceChoice = None,
) -> CurvatureEvidence:
    """Negative curvature found, none found (with a bound), or convex here (exact).

    At ``point`` (default: the model's parameters). ``P <= exact_limit`` parameters: the dense
    operator in float64 and its eigenvalues (``P`` products). Otherwise Lanczos, at most
    ``max_iterations`` steps, stopped once both extreme Ritz pairs have residual
    ``<= tolerance max|theta|``; both extreme Ritz vectors are then checked in float64.
    """
    parameters = dict(locals())
    built = problem(model, loss, X, y, device=device, batch_rows=batch_rows)
    e = engine.curvature_evidence(
        built,
        _point(built, point),
        max_iterations=max_iterations,
        tolerance=tolerance,
        seed=seed,
        exact_limit=exact_limit,
        delta=delta,
        kind=kind,
    )
    route = "exact (dense operator, LAPACK)" if e.exact else "Lanczos with a float64 check"
    return CurvatureEvidence(
        state=e.state,
        exact=e.exact,
        lambda_min=e.lambda_min,
        lambda_max=e.lambda_max,
        rayleigh=e.rayleigh,
        residual=e.residual_min,
        bound=e.bound,
        delta=e.delta,
        tolerance=e.tolerance,
        iterations=e.iterations,
        products=e.products,
        eigenvalues=read_only(np.zeros(0) if e.eigenvalues is None else e.eigenvalues),
        vector=read_only(np.zeros(0) if e.vector is None else e.vector.cpu().numpy()),
        metadata=_call_metadata("curvature", parameters, built, path=route),
    )


@isolated
def curvature_map(
    model: nn.Module,
    loss: Loss,
    X: Data,
    y: Data,
    *,
    resolution: int = 5,
    span: float = 1.0,
    seed: int = 0,
    normalization: str = "filter",
    one_dim: str = "zero",
    kind: str = "hessian",
    max_iterations: int = engine.DEFAULT_BUDGET,
    exact_limit: int = 0,
    batch_rows: int | None = None,
    device: DeviceChoice = None,
    progress: bool = False,
) -> CurvatureMap:
    """`curvature` at every point of `random_plane`'s grid (same ``seed``, ``span``,
    ``normalization``, ``one_dim``): ``resolution`` x ``resolution`` points, each a Lanczos run
    of at most ``max_iterations`` steps (or the exact route up to ``exact_limit`` parameters)."""
    parameters = dict(locals())
    built = problem(model, loss, X, y, device=device, batch_rows=batch_rows)
    grid = symmetric_grid(resolution, span)
    d1, d2 = random_pair(built, seed, normalization, one_dim)
    with progress_bar(progress, "curvature map") as report:
        m = engine.curvature_map(
            built,
            d1,
            d2,
            grid,
            grid,
            iterations=max_iterations,
            seed=seed,
            exact_limit=exact_limit,
            kind=kind,
            progress=report,
        )
    return CurvatureMap(
        alphas=read_only(m.alphas),
        betas=read_only(m.betas),
        lambda_min=read_only(m.lambda_min),
        lambda_max=read_only(m.lambda_max),
        ratio=read_only(m.ratio),
        state=_frozen_ints(m.state),
        rayleigh=read_only(m.rayleigh),
        bound=read_only(m.bound),
        residual=read_only(m.residual),
        iterations=_frozen_ints(m.iterations),
        metadata=_call_metadata(
            "curvature_map",
            parameters,
            built,
            directions={"kind": "random", "seeds": [2 * int(seed), 2 * int(seed) + 1]},
            grid={"alphas": [-float(span), float(span), int(resolution)]},
        ),
    )


def _frozen_ints(values: np.ndarray) -> np.ndarray:
    array = np.array(values, dtype=np.int64)
    array.flags.writeable = False
    return array


@isolated
def spectral_density(
    model: nn.Module,
    loss: Loss,
    X: Data,
    y: Data,
    *,
    point: Point | None = None,
    kind: str = "hessian",
    iterations: int = 30,
    probes: int = 8,
    sigma: float | None = None,
    exact_limit: int = 0,
    seed: int = 0,
    batch_rows: int | None = None,
    device: DeviceChoice = None,
) -> SpectralDensity:
    """The eigenvalue density of the operator by stochastic Lanczos quadrature (Ghorbani,
    Krishnan & Xiao 2019; PyHessian's ``density``): ``probes`` runs of ``iterations`` steps,
    ``probes * iterations`` products. ``sigma`` defaults to 1% of the nodes' spread. With
    ``P <= exact_limit`` the exact eigenvalues come too (``P`` more products)."""
    parameters = dict(locals())
    built = problem(model, loss, X, y, device=device, batch_rows=batch_rows)
    at = _point(built, point)
    s = engine.density(
        built, at, iterations=iterations, probes=probes, seed=seed, sigma=sigma, kind=kind
    )
    exact = np.zeros(0)
    if sum(p.numel() for p in built.model.parameters()) <= exact_limit:
        with curvature_operator(built, at, kind=kind, dtype=torch.float64) as op:
            exact = torch.linalg.eigvalsh(op.matrix().cpu()).numpy()
    return SpectralDensity(
        grid=read_only(s.grid),
        density=read_only(s.density),
        nodes=read_only(s.nodes),
        weights=read_only(s.weights),
        negative_mass=s.negative_mass,
        negative_mass_error=s.negative_mass_error,
        threshold=s.threshold,
        sigma=s.sigma,
        products=s.products,
        exact_eigenvalues=read_only(exact),
        metadata=_call_metadata("spectral_density", parameters, built),
    )


@isolated
def hessian_trace(
    model: nn.Module,
    loss: Loss,
    X: Data,
    y: Data,
    *,
    point: Point | None = None,
    kind: str = "hessian",
    method: str = "hutch++",
    products: int = 30,
    seed: int = 0,
    batch_rows: int | None = None,
    device: DeviceChoice = None,
) -> HessianTrace:
    """``tr A`` from ``products`` operator products: Hutchinson (``E[g^T A g]``, Rademacher
    ``g``) or Hutch++ (Meyer, Musco, Musco & Woodruff 2021: a third of the products sketch the
    top of the spectrum, whose trace is taken exactly, the rest probe the deflated operator)."""
    parameters = dict(locals())
    if method not in engine.TRACE_METHODS:
        raise ValueError(f"method must be one of {engine.TRACE_METHODS}, got {method!r}")
    built = problem(model, loss, X, y, device=device, batch_rows=batch_rows)
    dimension = sum(p.numel() for p in built.model.parameters())
    quadratic_forms: list[float] = []
    with curvature_operator(built, _point(built, point), kind=kind) as op:

        def recorded(v: torch.Tensor) -> torch.Tensor:
            image = op.matvec(v)
            quadratic_forms.append(float(v @ image))
            return image

        estimator = hutchinson if method == "hutchinson" else hutch_plus_plus
        result = estimator(recorded, dimension, products, seed, op.device)
    running = _running(method, quadratic_forms, int(products), dimension)
    return HessianTrace(
        estimate=result.estimate,
        error=result.error,
        products=result.products,
        method=method,
        running_products=read_only(running[0]),
        running_estimate=read_only(running[1]),
        running_error=read_only(running[2]),
        metadata=_call_metadata("hessian_trace", parameters, built),
    )


def _running(
    method: str, forms: list[float], products: int, dimension: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Products used, running estimate and its standard error after each random probe.

    Hutchinson: the running mean of the ``g^T A g``. Hutch++ (``k = min(products // 3, P)``):
    ``tr(Q^T A Q)``, the sum of the second ``k`` forms, plus the running mean of the rest.
    """
    k = 0 if method == "hutchinson" else min(products // 3, dimension)
    top = float(np.sum(forms[k : 2 * k]))
    probes = np.asarray(forms[2 * k :], dtype=np.float64)
    count = np.arange(1, len(probes) + 1)
    mean = np.cumsum(probes) / count
    second = np.cumsum(probes**2) / count
    variance = np.maximum(second - mean**2, 0.0) * count / np.maximum(count - 1, 1)
    error = np.where(count > 1, np.sqrt(variance / count), 0.0)
    return 2 * k + count, top + mean, error
