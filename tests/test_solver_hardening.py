"""Solvers return a certified answer (finite, checked against the closed form or their own dual
bound) or raise ValueError naming what to change: never a panic, an AssertionError, an
infinite objective or a silently wrong value."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from solvers import convex_relu, linear_dual, patterns


def linear_data(scale: float = 1.0, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((12, 4))
    Y = scale * (X @ rng.standard_normal((4, 3)) + 0.3 * rng.standard_normal((12, 3)))
    return X, Y


def closed_form_value(X, Y, gamma, d_min):
    s = np.linalg.svd(linear_dual.projected_targets(X, Y), compute_uv=False)
    return linear_dual.closed_form_dual_value(s, float(np.sum(Y**2)), gamma, d_min)


@pytest.mark.parametrize("method", linear_dual.METHODS)
def test_a_huge_gamma_is_the_unconstrained_optimum_not_a_panic(method) -> None:
    X, Y = linear_data()
    solution = linear_dual.solve_dual(X, Y, 1e308, 2, method=method)
    assert solution.value == pytest.approx(0.5 * np.sum(Y**2), rel=1e-6)  # Lambda = Ytil
    assert np.all(np.isfinite(solution.Lambda))


@pytest.mark.parametrize("method", linear_dual.METHODS)
@pytest.mark.parametrize("scale", [1e-150, 1e-8, 1e8, 1e90])
def test_badly_scaled_targets_are_solved_by_scaling(method, scale) -> None:
    X, Y = linear_data(scale)
    s = np.linalg.svd(linear_dual.projected_targets(X, Y), compute_uv=False)
    gamma = 0.5 * s[-1]
    solution = linear_dual.solve_dual(X, Y, gamma, 2, method=method)
    optimum = closed_form_value(X, Y, gamma, 2)
    assert solution.value == pytest.approx(optimum, rel=1e-5, abs=1e-300)


@pytest.mark.parametrize("method", linear_dual.METHODS)
def test_targets_whose_squares_overflow_are_refused(method) -> None:
    X, Y = linear_data(1e200)
    with pytest.raises(ValueError, match="at most 1e\\+100 in magnitude"):
        linear_dual.solve_dual(X, Y, 1.0, 2, method=method)
    with pytest.raises(ValueError, match="rescale"):
        linear_dual.recover_weights(X, Y, np.zeros_like(Y), [4, 3, 3])


@pytest.mark.parametrize("step", [0, 0.0, -1.0, math.nan, math.inf, "1", None, 1e300])
def test_douglas_rachford_step_is_validated(step) -> None:
    X, Y = linear_data()
    with pytest.raises(ValueError, match="step must be"):
        linear_dual.solve_dual(X, Y, 1.0, 2, method="douglas_rachford", step=step)


def test_douglas_rachford_that_stops_early_raises_instead_of_a_wrong_value() -> None:
    X, Y = linear_data()
    s = np.linalg.svd(linear_dual.projected_targets(X, Y), compute_uv=False)
    with pytest.raises(ValueError, match="from the optimum"):
        linear_dual.solve_dual(
            X, Y, 0.3 * s[0], 2, method="douglas_rachford", max_iter=3, step=1e-3
        )
    good = linear_dual.solve_dual(X, Y, 0.3 * s[0], 2, method="douglas_rachford")
    assert good.value == pytest.approx(closed_form_value(X, Y, 0.3 * s[0], 2), rel=1e-6)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    gamma=st.one_of(
        st.floats(allow_nan=True, allow_infinity=True),
        st.sampled_from([0.0, 1e-300, 1e308, -0.0, 5e-324]),
        st.integers(-(10**30), 10**30),
        st.sampled_from(["1", None, True, [1.0]]),
    ),
    scale=st.sampled_from([1e-200, 1e-20, 1.0, 1e20, 1e99, 1e101, 1e200]),
    d_min=st.sampled_from([1, 2, 3, 50, 0, -1, 2.0, 10**30]),
    method=st.sampled_from(linear_dual.METHODS),
)
def test_solve_dual_is_certified_or_refused(gamma, scale, d_min, method) -> None:
    X, Y = linear_data(scale)
    try:
        solution = linear_dual.solve_dual(X, Y, gamma, d_min, method=method)
    except ValueError as error:
        assert len(str(error)) > 10
        return
    optimum = closed_form_value(X, Y, float(gamma), d_min)
    assert np.isfinite(solution.value) and np.all(np.isfinite(solution.Lambda))
    assert abs(solution.value - optimum) <= 1e-6 * max(1.0, abs(optimum))
    assert solution.infeasibility <= 1e-6 * max(1.0, float(gamma))


def relu_data(scale: float = 1.0):
    rng = np.random.default_rng(1)
    X = rng.standard_normal((8, 2))
    return X, scale * np.maximum(X @ np.array([1.0, -0.5]), 0.0)


@pytest.mark.parametrize("beta", [1e-300, 0.0, -1.0, math.nan, math.inf, 1e300, "x"])
def test_convex_relu_beta_out_of_range_is_refused(beta) -> None:
    X, y = relu_data()
    with pytest.raises(ValueError, match="beta must be"):
        convex_relu.solve_convex_relu(X, y, beta)


def test_convex_relu_targets_that_overflow_are_refused() -> None:
    X, y = relu_data(1e200)
    with pytest.raises(ValueError, match="rescale"):
        convex_relu.solve_convex_relu(X, y, 0.1)


@pytest.mark.parametrize("count", [3 * 10**6, 10**12, 0, -5, 2.5, "many"])
def test_sampled_pattern_counts_are_bounded(count) -> None:
    X, y = relu_data()
    with pytest.raises(ValueError, match="patterns"):
        convex_relu.solve_convex_relu(X, y, 0.1, patterns=count)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_a_missing_device_is_a_value_error_not_an_assertion() -> None:
    X, y = relu_data()
    with pytest.raises(ValueError, match="not available on this machine"):
        convex_relu.solve_convex_relu(X, y, 0.1, method="interior_point", device="cuda")
    with pytest.raises(ValueError, match="device must be"):
        convex_relu.solve_convex_relu(X, y, 0.1, method="interior_point", device="tpu9")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    beta=st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([1e-10, 1e10])),
    scale=st.sampled_from([1e-100, 1e-10, 1.0, 1e10, 1e100]),
    method=st.sampled_from(convex_relu.METHODS),
)
def test_solve_convex_relu_is_finite_and_bounded_or_refused(beta, scale, method) -> None:
    X, y = relu_data(scale)
    try:
        solution = convex_relu.solve_convex_relu(X, y, beta, method=method)
    except ValueError as error:
        assert len(str(error)) > 10
        return
    assert np.isfinite(solution.objective) and np.isfinite(solution.network_objective)
    if solution.converged:
        assert np.isfinite(solution.lower_bound)
        assert solution.lower_bound <= solution.objective * (1 + 1e-5) + 1e-12


def test_sample_patterns_refuses_terabytes() -> None:
    X, _ = relu_data()
    with pytest.raises(ValueError, match="at most"):
        patterns.sample_patterns(X, 10**12)
