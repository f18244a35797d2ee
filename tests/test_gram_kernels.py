"""Quadrature with an accuracy target against scipy's adaptive integration, and the NNGP and
full NTK of the fully connected network against a Monte Carlo of the network."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import integrate

from landscape.engine import gram
from landscape.engine.datasets import unit_sphere
from landscape.studies.width import wide_nets


def expect_1d(f) -> float:
    """E f(z), z ~ N(0, 1), by scipy's adaptive quadrature (QUADPACK)."""
    density = lambda z: f(z) * np.exp(-z * z / 2) / np.sqrt(2 * np.pi)  # noqa: E731
    return integrate.quad(density, -np.inf, np.inf, epsabs=1e-14, epsrel=1e-13, limit=400)[0]


def expect_2d(f, rho: float) -> float:
    """E f(u) f(v), (u, v) ~ N(0, [[1, rho], [rho, 1]]), by nested adaptive quadrature."""
    if abs(rho) >= 1 - 1e-12:
        return expect_1d(lambda z: f(z) * f(np.sign(rho) * z))
    s = np.sqrt(1 - rho * rho)

    def inner(z1: float) -> float:
        g = lambda z2: f(rho * z1 + s * z2) * np.exp(-z2 * z2 / 2)  # noqa: E731
        return integrate.quad(g, -np.inf, np.inf, epsabs=1e-14, epsrel=1e-13, limit=400)[0]

    outer = lambda z1: f(z1) * inner(z1) * np.exp(-z1 * z1 / 2)  # noqa: E731
    value = integrate.quad(outer, -np.inf, np.inf, epsabs=1e-14, epsrel=1e-13, limit=400)[0]
    return value / (2 * np.pi)


def reference_gram(X: np.ndarray, depth: int, activation: str) -> np.ndarray:
    """K^(H) for H = 1 or 2 with every expectation by scipy (independent of gram.py's nodes)."""
    sigma, sigma_prime = gram.activation_functions(activation)
    c = 1.0 / expect_1d(lambda z: sigma(z) ** 2)
    n = len(X)
    rho = np.clip(X @ X.T, -1, 1)
    if depth == 2:
        nxt = np.eye(n)
        for i in range(n):
            for j in range(i + 1, n):
                nxt[i, j] = nxt[j, i] = c * expect_2d(sigma, rho[i, j])
        rho = nxt
    K = np.empty((n, n))
    for i in range(n):
        for j in range(i, n):
            K[i, j] = K[j, i] = c * rho[i, j] * expect_2d(sigma_prime, rho[i, j])
    return K


@pytest.mark.slow
@pytest.mark.parametrize("activation", ["tanh", "softplus"])
@pytest.mark.parametrize("depth", [1, 2])
def test_entries_match_scipy_adaptive_integration(activation: str, depth: int) -> None:
    X = unit_sphere(3, 4, seed=depth)
    K = gram.gram_matrix(X, depth, activation)
    reference = reference_gram(X, depth, activation)
    np.testing.assert_allclose(K, reference, rtol=1e-9, atol=0)


@pytest.mark.slow
def test_the_issue_example_is_accurate_and_the_old_fixed_degree_was_not() -> None:
    reference = reference_gram(np.eye(3), 1, "tanh")[0, 0]
    adaptive = gram.gram_matrix(np.eye(3), 1, activation="tanh")[0, 0]
    fixed = gram.gram_matrix(np.eye(3), 1, activation="tanh", degree=64)[0, 0]
    assert abs(adaptive / reference - 1) < 1e-9
    assert abs(fixed / reference - 1) > 1e-7  # 64 nodes: the 2.1e-7 of the issue


def test_quadrature_degree_grows_until_the_change_is_below_the_target() -> None:
    assert gram.quadrature_degree("tanh", 1.0, True) > gram.DEFAULT_DEGREE
    loose = gram.quadrature_degree("tanh", 1.0, True, tolerance=1e-6)
    assert loose < gram.quadrature_degree("tanh", 1.0, True, tolerance=1e-12)
    degree = gram.quadrature_degree("tanh", 1.0, True)
    previous = gram.DEGREES[gram.DEGREES.index(degree) - 1]
    probes = np.linspace(-1, 1, 9)
    change = gram.pair_expectation_quadrature("tanh", 1.0, probes, True, degree) - (
        gram.pair_expectation_quadrature("tanh", 1.0, probes, True, previous)
    )
    assert np.max(np.abs(change)) <= gram.DEFAULT_TOLERANCE
    with pytest.raises(ValueError, match="tolerance"):
        gram.gram_matrix(np.eye(3), 1, "tanh", tolerance=0.0)


def _monte_carlo_layers(X: np.ndarray, spec: wide_nets.WideNetSpec, seeds: int) -> np.ndarray:
    grams = [
        wide_nets.layer_grams(spec, wide_nets.init_weights(spec, X.shape[1], s), torch.as_tensor(X))
        for s in range(seeds)
    ]
    return torch.stack(grams).mean(0).numpy()


def relative(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


@pytest.mark.slow
@pytest.mark.parametrize("activation", ["relu", "tanh", "softplus"])
def test_nngp_and_ntk_match_the_network_at_width_three_thousand(activation: str) -> None:
    X = unit_sphere(6, 4, seed=0)
    depth = 3
    kernels = gram.network_kernels(X, depth, activation)
    np.testing.assert_allclose(kernels.last_layer, gram.gram_matrix(X, depth, activation))
    G = _monte_carlo_layers(X, wide_nets.WideNetSpec(depth, 3000, activation, "fc"), seeds=3)
    for h in range(depth + 1):
        assert relative(G[h], kernels.layers[h]) < 0.07, h
    assert relative(G.sum(0), kernels.ntk) < 0.04
    assert relative(G[-1], kernels.nngp) < 0.05
    # The check can fail: without backpropagation through the later layers the kernel misses.
    wrong = [gram.network_kernels(X, h, activation).last_layer for h in range(1, depth + 1)]
    wrong_ntk = sum(wrong) + kernels.nngp
    assert relative(G.sum(0), wrong_ntk) > 3 * relative(G.sum(0), kernels.ntk)


def test_network_kernels_reject_bad_input() -> None:
    with pytest.raises(ValueError, match="depth"):
        gram.network_kernels(np.eye(3), 0)
    with pytest.raises(ValueError, match="unit sphere"):
        gram.network_kernels(2 * np.eye(3), 1)
