"""The linear-network dual (solvers/linear_dual.py) against independent computations."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import minimize

from solvers import linear_dual as ld


def instance(seed: int, n: int = 12, d0: int = 5, dH: int = 4) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d0)), rng.standard_normal((n, dH))


def gammas_of_interest(X: np.ndarray, Y: np.ndarray) -> list[float]:
    s = np.linalg.svd(ld.projected_targets(X, Y), compute_uv=False)
    s_min = s[s > 1e-10].min()
    return [0.0, s_min / 2, s_min, 2 * s[0]]


def test_projected_targets_is_the_least_squares_fit() -> None:
    X, Y = instance(0, n=15, d0=4)
    B, *_ = np.linalg.lstsq(X, Y, rcond=None)
    np.testing.assert_allclose(ld.projected_targets(X, Y), X @ B, atol=1e-12)


def test_primal_objective_by_hand() -> None:
    """Eq. (2) for H = 2 written out with Frobenius norms (the S_2 norm)."""
    rng = np.random.default_rng(1)
    X, Y = rng.standard_normal((7, 3)), rng.standard_normal((7, 2))
    W1, W2 = rng.standard_normal((4, 3)), rng.standard_normal((2, 4))
    gamma = 0.7
    expected = 0.5 * np.sum((Y - X @ W1.T @ W2.T) ** 2) + gamma / 2 * (
        np.sum((X @ W1.T) ** 2) + np.sum(W2**2)
    )
    assert ld.primal_objective([W1, W2], X, Y, gamma) == pytest.approx(expected, rel=1e-13)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("d_min", [1, 2, 4])
def test_three_solvers_agree(seed: int, d_min: int) -> None:
    X, Y = instance(seed)
    for gamma in gammas_of_interest(X, Y) + [0.37]:
        values = {m: ld.solve_dual(X, Y, gamma, d_min, method=m) for m in ld.METHODS}
        reference = values["closed_form"].value
        for method, solution in values.items():
            assert solution.value == pytest.approx(reference, rel=1e-6), (method, gamma)
            assert solution.infeasibility <= 1e-6 * max(1.0, gamma), (method, gamma)
            assert solution.Lambda.shape == Y.shape


def test_closed_form_value_matches_formula() -> None:
    X, Y = instance(5, n=20, d0=6, dH=5)
    s = np.linalg.svd(ld.projected_targets(X, Y), compute_uv=False)
    for gamma in gammas_of_interest(X, Y):
        for d_min in (1, 3, 5):
            expected = ld.closed_form_dual_value(s, float(np.sum(Y**2)), gamma, d_min)
            value = ld.solve_dual(X, Y, gamma, d_min).value
            assert value == pytest.approx(expected, rel=1e-12)


def test_no_feasible_point_beats_the_closed_form() -> None:
    """Random feasible duals (scaled into the ball, projected on col(X)) never exceed D*."""
    X, Y = instance(7, n=10, d0=3, dH=4)
    rng = np.random.default_rng(0)
    Q = ld.column_space_basis(X)
    for gamma in gammas_of_interest(X, Y)[1:]:
        best = ld.solve_dual(X, Y, gamma, 2).value
        for _ in range(200):
            L = Q @ (Q.T @ rng.standard_normal(Y.shape))
            L *= gamma * rng.uniform(0, 1) / np.linalg.norm(L, 2)
            assert ld.dual_infeasibility(L, X, gamma) <= 1e-12
            assert ld.dual_objective(L, X, Y, 2) <= best + 1e-9


@pytest.mark.slow
def test_prox_of_top_k_squares_by_numerical_minimisation() -> None:
    rng = np.random.default_rng(3)
    for _ in range(20):
        sigma = np.sort(rng.uniform(0, 3, 6))[::-1]
        k, t = int(rng.integers(1, 6)), float(rng.uniform(0.1, 5))

        def objective(d: np.ndarray, sigma=sigma, k=k, t=t) -> float:
            top = np.sort(np.abs(d))[::-1][:k]
            return t / 2 * np.sum(top**2) + 0.5 * np.sum((d - sigma) ** 2)

        prox = ld.prox_top_k_squares(sigma, k, t)
        numeric = minimize(
            objective,
            sigma,
            method="Nelder-Mead",
            options={"xatol": 1e-10, "fatol": 1e-14, "maxiter": 40000},
        ).x
        assert objective(prox) <= objective(numeric) + 1e-9


@pytest.mark.parametrize("H", [2, 3, 5])
@pytest.mark.parametrize("seed", range(3))
def test_recovered_weights_close_the_gap(H: int, seed: int) -> None:
    """P(W_rec) = D(L*) to 1e-8 relative at gamma in {0, s_min/2, s_min, 2 s_1}."""
    X, Y = instance(seed, n=14, d0=6, dH=5)
    widths = [6, *([3] * (H - 1)), 5]
    d_min = min([*widths, X.shape[0]])
    for gamma in gammas_of_interest(X, Y):
        solution = ld.solve_dual(X, Y, gamma, d_min)
        weights = ld.recover_weights(X, Y, solution.Lambda, widths)
        assert [W.shape for W in weights] == [(widths[i + 1], widths[i]) for i in range(H)]
        primal = ld.primal_objective(weights, X, Y, gamma)
        assert abs(primal - solution.value) <= 1e-8 * abs(solution.value), gamma


def test_weak_duality_on_random_weights() -> None:
    """Any weights give P(W) >= D(L) for any feasible L."""
    X, Y = instance(11)
    rng = np.random.default_rng(2)
    widths = [5, 3, 3, 4]
    for gamma in (0.0, 0.5, 2.0):
        best_dual = ld.solve_dual(X, Y, gamma, 3).value
        for _ in range(50):
            weights = [rng.standard_normal((widths[i + 1], widths[i])) * 0.5 for i in range(3)]
            assert ld.primal_objective(weights, X, Y, gamma) >= best_dual - 1e-9


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(2, 10),
    d0=st.integers(1, 6),
    dH=st.integers(1, 5),
    d_min=st.integers(1, 6),
    gamma=st.floats(0, 5),
    seed=st.integers(0, 10_000),
)
def test_property_closed_form_and_douglas_rachford(n, d0, dH, d_min, gamma, seed) -> None:
    rng = np.random.default_rng(seed)
    X, Y = rng.standard_normal((n, d0)), rng.standard_normal((n, dH))
    closed = ld.solve_dual(X, Y, gamma, d_min)
    dr = ld.solve_dual(X, Y, gamma, d_min, method="douglas_rachford")
    assert dr.value == pytest.approx(closed.value, rel=1e-6, abs=1e-9)
    assert closed.infeasibility <= 1e-9 * max(1.0, gamma)
    assert dr.infeasibility <= 1e-9 * max(1.0, gamma)
    assert len(dr.history_value) == dr.iterations


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"gamma": -1.0}, "gamma"),
        ({"gamma": float("nan")}, "gamma"),
        ({"d_min": 0}, "d_min"),
        ({"method": "newton"}, "method"),
    ],
)
def test_bad_input_names_the_field(kwargs, field) -> None:
    X, Y = instance(0)
    args = {"gamma": 1.0, "d_min": 2, "method": "closed_form"} | kwargs
    with pytest.raises(ValueError, match=field):
        ld.solve_dual(X, Y, args["gamma"], args["d_min"], method=args["method"])


def test_non_finite_data_is_rejected() -> None:
    X, Y = instance(0)
    X[0, 0] = np.inf
    with pytest.raises(ValueError, match="X must be finite"):
        ld.solve_dual(X, Y, 1.0, 2)


def test_recover_weights_validates_widths() -> None:
    X, Y = instance(0)
    L = ld.solve_dual(X, Y, 0.1, 2).Lambda
    with pytest.raises(ValueError, match="H >= 2"):
        ld.recover_weights(X, Y, L, [5, 4])
    with pytest.raises(ValueError, match="width"):
        ld.recover_weights(X, Y, L, [5, 0, 4])
