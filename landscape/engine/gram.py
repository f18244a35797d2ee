"""Du et al.'s infinite-width Gram matrices ``K^(H)`` (seed section 3.1, Definition 1; MATH.md 3).

Inputs ``X`` have shape (n, d), one sample per row (the seed writes ``x_i`` as columns), and every
row must lie on the unit sphere, ``||x_i||_2 = 1``, as the theorem assumes: `gram_matrix` raises a
``ValueError`` otherwise rather than normalising silently, because normalising changes the data
(use ``X / np.linalg.norm(X, axis=1, keepdims=True)``). Everything is float64.

Two facts keep the computation cheap. On the sphere every layer's diagonal is one number ``q_h``
shared by all samples (the recursion for ``K_ii`` only involves ``K_ii``), so each layer is a map
of the correlations ``rho_ij = K_ij / q_h``. ReLU and erf use closed forms of the Gaussian
expectations; softplus and tanh use 2-D Gauss-Hermite quadrature, evaluated directly at the
distinct correlations when there are few of them and otherwise on a uniform grid of ``rho`` in
[-1, 1] followed by a cubic spline (interpolation error below 1e-10, see the tests).

Quadrature has an accuracy target (`quadrature_degree`): the number of nodes grows through
`DEGREES` until the expectations at probe correlations change by less than ``tolerance``
(default 1e-11) from one degree to the next. tanh needs 192 nodes where 64 left 2e-7 relative
error in ``sigma'`` terms; softplus stops at 96. Entries match scipy's adaptive integration to
1e-12 (tests). `nngp_kernels` and `ntk` give the network's other infinite-width kernels.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Literal, get_args

import numpy as np
import scipy.linalg
from scipy.interpolate import CubicSpline
from scipy.special import erf, expit, roots_hermitenorm

from landscape.engine.validation import check_choice, check_integer

KernelActivation = Literal["relu", "erf", "softplus", "tanh"]
ACTIVATIONS: tuple[KernelActivation, ...] = get_args(KernelActivation)
CLOSED_FORM: tuple[str, ...] = ("relu", "erf")
Architecture = Literal["fc", "resnet"]
ARCHITECTURES: tuple[Architecture, ...] = get_args(Architecture)
METHODS: tuple[str, ...] = ("auto", "closed_form", "quadrature")
DEFAULT_DEGREE = 64  # the first of DEGREES (tanh is off by 2e-7 at 64, softplus by 1e-15)
DEGREES = (64, 96, 128, 192, 256, 384)  # Gauss-Hermite nodes per dimension tried in turn
DEFAULT_TOLERANCE = 1e-11  # largest change between two degrees that stops the search
MIN_DEGREE, MAX_DEGREE = 25, 400
MAX_DEPTH = 1000
SPHERE_TOLERANCE = 1e-6
_GRID_POINTS = 1025  # uniform rho grid for the spline path
_QUADRATURE_BLOCK = 2**22  # quadrature points evaluated at once (32 MiB of float64)

Array = np.ndarray


# --------------------------------------------------------------------------------------------
# Activations and their derivatives (NumPy; the torch versions live in wide_nets)
# --------------------------------------------------------------------------------------------
def _relu(x: Array) -> Array:
    return np.maximum(x, 0.0)


def _relu_prime(x: Array) -> Array:
    return (np.asarray(x) > 0).astype(np.float64)  # ReLU'(0) = 0 (MATH.md conventions)


def _erf_prime(x: Array) -> Array:
    return 2.0 / np.sqrt(np.pi) * np.exp(-x * x)


def _softplus(x: Array) -> Array:
    return np.logaddexp(0.0, x)


def _tanh_prime(x: Array) -> Array:
    return 1.0 - np.tanh(x) ** 2


_FUNCTIONS: dict[str, tuple[Callable[[Array], Array], Callable[[Array], Array]]] = {
    "relu": (_relu, _relu_prime),
    "erf": (erf, _erf_prime),
    "softplus": (_softplus, expit),
    "tanh": (np.tanh, _tanh_prime),
}


def activation_functions(
    activation: str,
) -> tuple[Callable[[Array], Array], Callable[[Array], Array]]:
    """``(sigma, sigma')`` as vectorised NumPy functions."""
    check_choice("activation", activation, ACTIVATIONS)
    return _FUNCTIONS[activation]


# --------------------------------------------------------------------------------------------
# Gaussian expectations
# --------------------------------------------------------------------------------------------
@cache
def _hermite(degree: int) -> tuple[Array, Array]:
    """Probabilists' Gauss-Hermite nodes and weights normalised to a N(0, 1) expectation."""
    nodes, weights = roots_hermitenorm(degree)
    return nodes, weights / np.sqrt(2.0 * np.pi)


def gaussian_mean(activation: str, q: float, degree: int | None = DEFAULT_DEGREE) -> float:
    """``E_{u ~ N(0, q)} sigma(u)``: ``sqrt(q / (2 pi))`` for ReLU, 0 for the odd erf and tanh."""
    check_choice("activation", activation, ACTIVATIONS)
    if activation == "relu":
        return float(np.sqrt(q / (2.0 * np.pi)))
    if activation in ("erf", "tanh"):
        return 0.0
    nodes, weights = _hermite(max(degree or 0, 200))
    return float(weights @ _softplus(np.sqrt(q) * nodes))


@cache
def c_sigma(activation: str) -> float:
    """``c_sigma = 1 / E_{z ~ N(0,1)} sigma(z)^2``: 2 for ReLU, ``pi / (2 arcsin(2/3))`` for erf."""
    check_choice("activation", activation, ACTIVATIONS)
    if activation == "relu":
        return 2.0
    if activation == "erf":
        return float(np.pi / (2.0 * np.arcsin(2.0 / 3.0)))
    sigma, _ = _FUNCTIONS[activation]
    nodes, weights = _hermite(200)
    return float(1.0 / (weights @ sigma(nodes) ** 2))


def pair_expectation_closed_form(
    activation: str, q: float, rho: Array, derivative: bool = False
) -> Array:
    """``E sigma(u) sigma(v)`` (or ``sigma'``), ``(u, v) ~ N(0, q [[1, rho], [rho, 1]])``.

    ReLU, with ``theta = arccos(rho)``: ``q (sqrt(1 - rho^2) + (pi - theta) rho) / (2 pi)`` and
    ``(pi - theta) / (2 pi)``. erf: ``(2/pi) arcsin(2 q rho / (1 + 2 q))`` and
    ``(4/pi) / sqrt((1 + 2 q)^2 - 4 q^2 rho^2)``. ``rho`` is any array, clipped to [-1, 1].
    """
    check_choice("activation (closed form)", activation, CLOSED_FORM)
    rho = np.clip(np.asarray(rho, dtype=np.float64), -1.0, 1.0)
    if activation == "relu":
        theta = np.arccos(rho)
        if derivative:
            return (np.pi - theta) / (2.0 * np.pi)
        return q * (np.sqrt(1.0 - rho * rho) + (np.pi - theta) * rho) / (2.0 * np.pi)
    if derivative:
        return 4.0 / np.pi / np.sqrt((1.0 + 2.0 * q) ** 2 - 4.0 * q * q * rho * rho)
    return 2.0 / np.pi * np.arcsin(2.0 * q * rho / (1.0 + 2.0 * q))


def pair_expectation_quadrature(
    activation: str, q: float, rho: Array, derivative: bool = False, degree: int = DEFAULT_DEGREE
) -> Array:
    """The same expectation by 2-D Gauss-Hermite quadrature, vectorised over ``rho``.

    ``u = sqrt(q) t_a``, ``v = sqrt(q) (rho t_a + sqrt(1 - rho^2) t_b)`` over the tensor grid of
    ``degree`` probabilists' nodes ``t`` with weights ``w_a w_b``; cost ``rho.size * degree^2``.
    """
    check_integer("degree", degree, MIN_DEGREE, MAX_DEGREE)
    function = activation_functions(activation)[1 if derivative else 0]
    rho = np.clip(np.asarray(rho, dtype=np.float64), -1.0, 1.0)
    nodes, weights = _hermite(degree)
    root_q = np.sqrt(q)
    first = (weights[:, None] * weights[None, :]) * function(root_q * nodes)[:, None]  # (D, D)
    flat = rho.reshape(-1)
    out = np.empty(flat.size)
    chunk = max(1, _QUADRATURE_BLOCK // degree**2)
    for start in range(0, flat.size, chunk):
        r = flat[start : start + chunk, None, None]
        v = root_q * (r * nodes[:, None] + np.sqrt(1.0 - r * r) * nodes[None, :])  # (P, D, D)
        out[start : start + chunk] = np.einsum("pab,ab->p", function(v), first)
    return out.reshape(rho.shape)


def quadrature_degree(
    activation: str, q: float, derivative: bool = False, tolerance: float = DEFAULT_TOLERANCE
) -> int:
    """The first degree ``d`` of `DEGREES` whose quadrature at nine probe correlations in
    [-1, 1] differs from the previous degree's by at most ``tolerance`` (absolute; the
    expectations are O(q)); the last degree if none does. Cached per arguments."""
    if not 0 < tolerance < 1:
        raise ValueError(f"tolerance must be in (0, 1), got {tolerance}")
    return _quadrature_degree(activation, float(q), bool(derivative), float(tolerance))


@lru_cache(maxsize=4096)
def _quadrature_degree(activation: str, q: float, derivative: bool, tolerance: float) -> int:
    probes = np.linspace(-1.0, 1.0, 9)
    previous = pair_expectation_quadrature(activation, q, probes, derivative, DEGREES[0])
    for degree in DEGREES[1:]:
        current = pair_expectation_quadrature(activation, q, probes, derivative, degree)
        if float(np.max(np.abs(current - previous))) <= tolerance:
            return degree
        previous = current
    return DEGREES[-1]


def pair_expectation(
    activation: str,
    q: float,
    rho: Array,
    derivative: bool = False,
    method: str = "auto",
    degree: int | None = DEFAULT_DEGREE,
    tolerance: float = DEFAULT_TOLERANCE,
) -> Array:
    """``E sigma(u) sigma(v)`` (or with ``sigma'``) at every entry of a symmetric (n, n) ``rho``.

    ``method="auto"`` uses the closed form for ReLU and erf and quadrature otherwise, with
    ``degree`` nodes, or with `quadrature_degree` for ``tolerance`` when ``degree`` is None.
    Quadrature runs directly on the distinct entries of the upper triangle when there are at most
    ``_GRID_POINTS`` of them, else on a uniform grid of ``rho`` followed by a cubic spline.
    """
    check_choice("method", method, METHODS)
    if method == "closed_form" or (method == "auto" and activation in CLOSED_FORM):
        return pair_expectation_closed_form(activation, q, rho, derivative)
    if degree is None:
        degree = quadrature_degree(activation, q, derivative, tolerance)
    n = rho.shape[0]
    upper = np.triu_indices(n)
    values = rho[upper]
    if values.size <= _GRID_POINTS:
        on_upper = pair_expectation_quadrature(activation, q, values, derivative, degree)
    else:
        on_upper = _uniform_spline(
            _spline_on_grid(activation, float(q), derivative, degree), values
        )
    return _symmetric(n, upper, on_upper)


@lru_cache(maxsize=64)
def _spline_on_grid(activation: str, q: float, derivative: bool, degree: int) -> Array:
    """Coefficients (4, G - 1) of the not-a-knot cubic spline through the quadrature on the grid;
    cached, so that the fully connected chain (q = 1 at every layer) evaluates it once."""
    grid = np.linspace(-1.0, 1.0, _GRID_POINTS)
    on_grid = pair_expectation_quadrature(activation, q, grid, derivative, degree)
    coefficients = CubicSpline(grid, on_grid).c  # powers 3, 2, 1, 0 of (x - grid[i])
    coefficients.setflags(write=False)
    return coefficients


def _uniform_spline(coefficients: Array, x: Array) -> Array:
    """The spline of `_spline_on_grid` at ``x``; the uniform grid locates each interval in O(1)."""
    grid = np.linspace(-1.0, 1.0, _GRID_POINTS)
    step = grid[1] - grid[0]
    x = np.clip(x, grid[0], grid[-1])
    index = np.minimum(((x - grid[0]) / step).astype(np.int64), len(grid) - 2)
    t = x - grid[index]
    out = coefficients[0][index]
    for power in (1, 2, 3):
        out = out * t + coefficients[power][index]
    return out


def _symmetric(n: int, upper: tuple[Array, Array], values: Array) -> Array:
    out = np.empty((n, n))
    out[upper] = values
    out[upper[1], upper[0]] = values
    return out


# --------------------------------------------------------------------------------------------
# The recursions
# --------------------------------------------------------------------------------------------
def check_sphere(X: Array) -> Array:
    """``X`` as a float64 (n, d) array whose rows have unit norm; ``ValueError`` otherwise."""
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[0] < 1 or X.shape[1] < 1:
        raise ValueError(f"X must be a non-empty 2-D array (n, d), got shape {X.shape}")
    if not np.all(np.isfinite(X)):
        raise ValueError("X must be finite (no NaN or inf)")
    norms = np.linalg.norm(X, axis=1)
    worst = float(np.max(np.abs(norms - 1.0)))
    if worst > SPHERE_TOLERANCE:
        raise ValueError(
            f"rows of X must lie on the unit sphere (||x_i||_2 = 1 within {SPHERE_TOLERANCE:g}), "
            f"got max | ||x_i|| - 1 | = {worst:.3g}; normalise with "
            "X / np.linalg.norm(X, axis=1, keepdims=True)"
        )
    return X


def gram_matrices(
    X: Array,
    depths: Sequence[int],
    activation: str = "relu",
    architecture: str = "fc",
    c_res: float = 0.5,
    *,
    method: str = "auto",
    degree: int | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
) -> list[Array]:
    """``K^(H)`` (n, n) for every ``H`` in ``depths``; the fully connected chain is shared.

    Fully connected (seed Definition 1), ``K^(0) = X X^T`` and ``A^(h)_ij`` the 2 x 2 block of
    ``K^(h-1)`` at ``(i, j)``:
        ``K^(h)_ij = c_sigma E_{(u,v) ~ N(0, A^(h)_ij)} sigma(u) sigma(v)``,   1 <= h <= H - 1,
        ``K^(H)_ij = c_sigma K^(H-1)_ij E_{(u,v) ~ N(0, A^(H)_ij)} sigma'(u) sigma'(v)``.
    The last expectation uses ``A^(H)`` (built from ``K^(H-1)``, the covariance of layer H's
    pre-activations); the seed prints ``A^(H-1)``, which a Monte Carlo of the network rejects.

    ResNet, ``x^(h) = x^(h-1) + c_res / (H sqrt(m)) sigma(W^(h) x^(h-1))`` for h >= 2 (MATH.md),
    derived from the network and checked against its Monte Carlo: ``K^(1)`` as above,
    ``b^(1)_i = sqrt(c_sigma) E_{u ~ N(0, K^(0)_ii)} sigma(u)`` and, for 2 <= h <= H - 1,
        ``K^(h)_ij = K^(h-1)_ij + E[(c_res/H)(b^(h-1)_i sigma(v) + b^(h-1)_j sigma(u))
                                    + (c_res/H)^2 sigma(u) sigma(v)]``,
        ``b^(h)_i = b^(h-1)_i + (c_res/H) E sigma(u)``,
        ``K^(H)_ij = (c_res/H)^2 K^(H-1)_ij E sigma'(u) sigma'(v)``,
    every expectation over ``(u, v) ~ N(0, A^(h)_ij)`` from ``K^(h-1)``. ``b_i`` is the limit of
    ``<x^(h)_i, 1> / sqrt(m)``; it pairs with ``v`` (sample j) because ``<x_i, sigma(W x_j)>``
    averages ``x_i``'s coordinates against ``sigma`` of sample j. On the sphere all ``b_i`` agree.
    """
    X = check_sphere(X)
    depths = [int(depth) for depth in depths]
    check_choice("architecture", architecture, ARCHITECTURES)
    check_choice("activation", activation, ACTIVATIONS)
    check_choice("method", method, METHODS)
    if method == "closed_form" and activation not in CLOSED_FORM:
        raise ValueError(
            f"method='closed_form' needs activation in {CLOSED_FORM}, got {activation!r}"
        )
    if degree is not None:
        check_integer("degree", degree, MIN_DEGREE, MAX_DEGREE)
    if not 0 < tolerance < 1:
        raise ValueError(f"tolerance must be in (0, 1), got {tolerance}")
    low = 1 if architecture == "fc" else 2
    for depth in depths:
        check_integer(f"depth ({architecture})", depth, low, MAX_DEPTH)
    if architecture == "resnet" and not 0.0 < c_res < 1.0:
        raise ValueError(f"c_res must be in (0, 1), got {c_res}")

    rho0 = np.clip(X @ X.T, -1.0, 1.0)
    np.fill_diagonal(rho0, 1.0)
    if architecture == "fc":
        return _fc_grams(rho0, depths, activation, method, degree, tolerance)
    return [
        _resnet_gram(rho0, depth, activation, c_res, method, degree, tolerance) for depth in depths
    ]


def _fc_grams(
    rho0: Array,
    depths: list[int],
    activation: str,
    method: str,
    degree: int | None,
    tolerance: float,
) -> list[Array]:
    c = c_sigma(activation)
    out: dict[int, Array] = {}
    rho = rho0  # K^(h-1); its diagonal is exactly 1 on the sphere
    for h in range(1, max(depths) + 1):
        if h in depths:
            derivative = pair_expectation(activation, 1.0, rho, True, method, degree, tolerance)
            out[h] = _symmetrise(c * rho * derivative)
        if h < max(depths):
            rho = c * pair_expectation(activation, 1.0, rho, False, method, degree, tolerance)
            np.fill_diagonal(rho, 1.0)  # c_sigma E sigma(z)^2 = 1 exactly
    return [out[depth] for depth in depths]


def _resnet_gram(
    rho0: Array,
    depth: int,
    activation: str,
    c_res: float,
    method: str,
    degree: int | None,
    tolerance: float,
) -> Array:
    c = c_sigma(activation)
    step = c_res / depth
    K = c * pair_expectation(activation, 1.0, rho0, False, method, degree, tolerance)
    q = 1.0  # the common diagonal of K^(1)
    np.fill_diagonal(K, q)
    b = np.sqrt(c) * gaussian_mean(activation, 1.0, degree)
    for _ in range(2, depth):
        both = pair_expectation(activation, q, K / q, False, method, degree, tolerance)
        mu = gaussian_mean(activation, q, degree)
        K = K + 2.0 * step * b * mu + step**2 * both
        q = float(np.mean(np.diag(K)))
        b = b + step * mu
    derivative = pair_expectation(activation, q, K / q, True, method, degree, tolerance)
    return _symmetrise(step**2 * K * derivative)


def gram_matrix(
    X: Array,
    depth: int,
    activation: str = "relu",
    architecture: str = "fc",
    c_res: float = 0.5,
    *,
    method: str = "auto",
    degree: int | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
) -> Array:
    """``K^(H)`` (n, n), float64, for ``H = depth``: see `gram_matrices` for the recursions.

    ``X`` (n, d) must have unit rows; ``architecture`` is ``"fc"`` (depth >= 1) or ``"resnet"``
    (depth >= 2, ``0 < c_res < 1``); ``activation`` one of relu, erf (closed forms), softplus,
    tanh (Gauss-Hermite quadrature: ``degree`` >= 25 nodes per dimension, or by default as many
    as `quadrature_degree` needs for ``tolerance``).
    """
    return gram_matrices(
        X,
        [depth],
        activation,
        architecture,
        c_res,
        method=method,
        degree=degree,
        tolerance=tolerance,
    )[0]


@dataclass
class NetworkKernels:
    """The infinite-width kernels of the fully connected network at initialisation.

    ``layers`` (H + 1, n, n): the limit of the Gram of the output gradients with respect to
    ``W^(1), ..., W^(H)`` and ``a`` (``wide_nets.layer_grams``); ``ntk`` their sum (the full
    neural tangent kernel, as neural-tangents computes it for this parametrisation);
    ``last_layer = layers[H - 1]`` is Du et al.'s ``K^(H)``; ``nngp = layers[H]``, the limit of
    ``<x^(H)_i, x^(H)_j>``, the covariance of the outputs ``u = a^T x^(H)`` at initialisation.
    """

    nngp: Array
    ntk: Array
    last_layer: Array
    layers: Array


def network_kernels(
    X: Array,
    depth: int,
    activation: str = "relu",
    *,
    method: str = "auto",
    degree: int | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
) -> NetworkKernels:
    """NNGP, full NTK and per-layer kernels of the fully connected network (MATH.md 3).

    With ``rho^(0) = X X^T``, ``rho^(h) = c_sigma E sigma(u) sigma(v)`` and ``rhodot^(h) =
    c_sigma E sigma'(u) sigma'(v)`` over ``(u, v) ~ N(0, [[1, rho^(h-1)], [rho^(h-1), 1]])``
    (unit diagonal on the sphere), the gradient with respect to ``W^(h)`` contributes
    ``rho^(h-1) * prod_{h'=h}^{H} rhodot^(h')`` (entrywise products: backpropagation through
    layers h..H) and the output weights ``a`` contribute ``rho^(H)``:
    ``NTK = sum_{h=1}^{H} rho^(h-1) prod_{h' >= h} rhodot^(h') + rho^(H)``, ``NNGP = rho^(H)``.
    The ``h = H`` term is `gram_matrix`'s ``K^(H)``. Fully connected only.
    """
    X = check_sphere(X)
    check_choice("activation", activation, ACTIVATIONS)
    check_choice("method", method, METHODS)
    check_integer("depth (fc)", depth, 1, MAX_DEPTH)
    if degree is not None:
        check_integer("degree", degree, MIN_DEGREE, MAX_DEGREE)
    c = c_sigma(activation)
    rho = np.clip(X @ X.T, -1.0, 1.0)
    np.fill_diagonal(rho, 1.0)
    rhos, dots = [rho], []
    for _ in range(int(depth)):
        dots.append(
            c * pair_expectation(activation, 1.0, rhos[-1], True, method, degree, tolerance)
        )
        nxt = c * pair_expectation(activation, 1.0, rhos[-1], False, method, degree, tolerance)
        np.fill_diagonal(nxt, 1.0)  # c_sigma E sigma(z)^2 = 1 exactly
        rhos.append(nxt)
    layers = []
    for h in range(1, int(depth) + 1):
        block = rhos[h - 1].copy()
        for later in dots[h - 1 :]:
            block = block * later
        layers.append(_symmetrise(block))
    layers.append(_symmetrise(rhos[-1]))
    stack = np.stack(layers)
    return NetworkKernels(
        nngp=stack[-1], ntk=stack.sum(axis=0), last_layer=stack[int(depth) - 1], layers=stack
    )


def lambda_min(K: Array) -> float:
    """The smallest eigenvalue of the symmetric matrix ``K`` (LAPACK's eigh on that one index)."""
    K = np.asarray(K, dtype=np.float64)
    if K.ndim != 2 or K.shape[0] != K.shape[1] or K.shape[0] < 1:
        raise ValueError(f"K must be a square (n, n) matrix, got shape {K.shape}")
    return float(scipy.linalg.eigh(K, eigvals_only=True, subset_by_index=[0, 0])[0])


def _symmetrise(K: Array) -> Array:
    return 0.5 * (K + K.T)
