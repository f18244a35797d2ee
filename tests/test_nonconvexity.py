"""Non-convexity measures: 0 on convex functions, positive on known non-convex ones, and the fast
convex-envelope defect against a brute-force enumeration of chords."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from landscape.engine.nonconvexity import (
    hessian_ratio,
    line_convexity_defect,
    max_convexity_defect,
    non_psd_fraction,
    slice_hessians,
)

GRID = np.linspace(-1.0, 1.0, 21)


def evaluate(fn, alphas=GRID, betas=GRID) -> np.ndarray:
    A, B = np.meshgrid(alphas, betas, indexing="ij")
    return fn(A, B)


def brute_force_defect(z: np.ndarray) -> float:
    """max over a < k < b of z_k - chord_ab(k): every triple of points, no hull."""
    best = 0.0
    for a, k, b in itertools.combinations(range(len(z)), 3):
        lam = (k - a) / (b - a)
        best = max(best, z[k] - ((1 - lam) * z[a] + lam * z[b]))
    return best


def test_slice_hessian_exact_on_a_quadratic() -> None:
    H = np.array([[3.0, -1.0], [-1.0, 0.5]])
    Z = evaluate(lambda a, b: 0.5 * (H[0, 0] * a * a + 2 * H[0, 1] * a * b + H[1, 1] * b * b))
    hessians = slice_hessians(Z, GRID, GRID)
    assert hessians.shape == (19, 19, 2, 2)
    np.testing.assert_allclose(hessians, np.broadcast_to(H, hessians.shape), atol=1e-9)


@pytest.mark.parametrize(
    "fn",
    [
        lambda a, b: a**2 + 0.3 * b**2 + 0.5 * a * b,  # strictly convex quadratic
        lambda a, b: (a - b) ** 2 + 0.0 * b,  # PSD but singular
        lambda a, b: 0.7 * a - 0.2 * b + 1.0,  # affine
    ],
)
def test_measures_vanish_on_convex_quadratics(fn) -> None:
    Z = evaluate(fn)
    assert non_psd_fraction(Z, GRID, GRID) == 0.0
    assert max_convexity_defect(Z) == pytest.approx(0.0, abs=1e-12)


def test_measures_positive_on_a_saddle_and_on_a_double_well() -> None:
    saddle = evaluate(lambda a, b: a**2 - b**2)
    assert non_psd_fraction(saddle, GRID, GRID) == 1.0
    # along b: -b^2 on [-1, 1], chord at 0 is -1, value 0, range of Z is 2 -> defect 1/2
    assert max_convexity_defect(saddle) == pytest.approx(0.5, rel=1e-12)
    # double well (a^2 - 1/4)^2 + b^2: Hessian 12 a^2 - 1 < 0 iff |a| < 1/sqrt(12)
    well = evaluate(lambda a, b: (a**2 - 0.25) ** 2 + b**2)
    inner = GRID[1:-1]
    expected = np.mean(12 * inner**2 - 1 < 0)  # no grid point lies near the threshold
    assert non_psd_fraction(well, GRID, GRID) == pytest.approx(expected)
    assert 0.0 < non_psd_fraction(well, GRID, GRID) < 1.0
    # along a at b = 0: the bump at a = 0 has height 1/16 over the chord between the two wells
    assert max_convexity_defect(well) == pytest.approx((1 / 16) / float(np.ptp(well)), rel=1e-9)


@settings(max_examples=60, deadline=None)
@given(values=st.lists(st.floats(-5, 5, allow_nan=False), min_size=3, max_size=12))
def test_envelope_defect_equals_brute_force(values: list[float]) -> None:
    z = np.array(values)
    assert line_convexity_defect(z).max() == pytest.approx(brute_force_defect(z), abs=1e-9)


def test_defect_sees_diagonals() -> None:
    # convex along every row and column, concave along the diagonal a = b
    Z = evaluate(lambda a, b: a**2 + b**2 - 3 * a * b)
    lines_only = max(
        max(line_convexity_defect(r).max() for r in Z),
        max(line_convexity_defect(c).max() for c in Z.T),
    )
    assert lines_only == 0.0
    assert max_convexity_defect(Z) > 0.1


def test_hessian_ratio() -> None:
    assert hessian_ratio(0.0, 5.0) == 0.0
    assert hessian_ratio(0.3, 5.0) == 0.0
    assert hessian_ratio(-1.0, 4.0) == 0.25
    assert hessian_ratio(-2.0, -1.0) == float("inf")
    with pytest.raises(ValueError, match="lambda_min must be <= lambda_max"):
        hessian_ratio(2.0, 1.0)


def test_bad_grids_raise() -> None:
    Z = np.zeros((5, 5))
    with pytest.raises(ValueError, match="alphas must be increasing and uniformly spaced"):
        slice_hessians(Z, np.array([0, 1, 3, 4, 5.0]), np.arange(5.0))
    with pytest.raises(ValueError, match="betas must be a 1-D grid of 5"):
        slice_hessians(Z, np.arange(5.0), np.arange(4.0))
    with pytest.raises(ValueError, match="rtol must be in"):
        non_psd_fraction(Z, np.arange(5.0), np.arange(5.0), rtol=2.0)
    with pytest.raises(ValueError, match="at least 3 x 3"):
        max_convexity_defect(np.zeros((2, 5)))


def test_hessian_ratio_of_a_convex_quadratic_and_of_a_product() -> None:
    """Measure (iii) via the curvature module: 0 for least squares, 1 for (w2 w1 x - y)^2 at 0."""
    import torch

    from landscape.engine.curvature import extreme_eigenvalues
    from landscape.engine.problem import Problem

    torch.manual_seed(0)
    X, y = torch.randn(30, 4, dtype=torch.float64), torch.randn(30, 1, dtype=torch.float64)
    linear = torch.nn.Linear(4, 1).double()
    squared = torch.nn.functional.mse_loss
    low, high = extreme_eigenvalues(Problem(linear, squared, X, y), iterations=5)
    # H = (2/n) [X 1]^T [X 1]: positive definite, so the measure is 0
    A = torch.cat([X, torch.ones(30, 1, dtype=torch.float64)], 1)
    exact = torch.linalg.eigvalsh(2 * A.T @ A / 30)
    assert low == pytest.approx(float(exact[0]), rel=1e-8)
    assert high == pytest.approx(float(exact[-1]), rel=1e-8)
    assert hessian_ratio(low, high) == 0.0
    product = torch.nn.Sequential(
        torch.nn.Linear(1, 1, bias=False), torch.nn.Linear(1, 1, bias=False)
    )
    product = product.double()
    for layer in product:
        torch.nn.init.zeros_(layer.weight)
    ones = torch.ones(1, 1, dtype=torch.float64)
    # L = (w2 w1 - 1)^2: at 0 the Hessian is [[0, -2], [-2, 0]], eigenvalues -2 and 2
    low, high = extreme_eigenvalues(Problem(product, squared, ones, ones), iterations=2)
    assert (low, high) == pytest.approx((-2.0, 2.0))
    assert hessian_ratio(low, high) == pytest.approx(1.0)
