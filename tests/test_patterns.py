"""Activation patterns: exact enumeration against a brute-force LP over all 2^n sign vectors."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import linprog

from solvers.patterns import (
    cell_count_bound,
    distinct_hyperplanes,
    enumerate_patterns,
    sample_patterns,
)


def brute_force_patterns(X: np.ndarray) -> np.ndarray:
    """Every non-zero ``1[X g > 0]`` found by an LP feasibility test per sign vector (n <= 10)."""
    live = np.linalg.norm(X, axis=1) > 0
    found = []
    for bits in itertools.product((0, 1), repeat=int(live.sum())):
        if not any(bits):
            continue
        signs = 2.0 * np.array(bits) - 1.0
        result = linprog(
            np.zeros(X.shape[1]),
            A_ub=-(signs[:, None] * X[live]),
            b_ub=-np.ones(len(bits)),
            bounds=[(None, None)] * X.shape[1],
            method="highs",
        )
        if result.status == 0:
            pattern = np.zeros(X.shape[0], dtype=bool)
            pattern[live] = np.array(bits, dtype=bool)
            found.append(pattern)
    return np.unique(np.array(found), axis=0)


def with_bias(points: np.ndarray) -> np.ndarray:
    return np.c_[points, np.ones(len(points))]


RNG = np.random.default_rng(3)
CASES = {
    "generic 2-D with bias (rank 3)": with_bias(RNG.standard_normal((8, 2))),
    "duplicated point": with_bias(RNG.standard_normal((8, 2))[[0, 1, 2, 3, 4, 5, 6, 2]]),
    "three collinear points": with_bias(
        np.r_[[[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]], RNG.standard_normal((5, 2))]
    ),
    "grid (many concurrent lines)": with_bias(
        np.array([[0, 0], [1, 0], [0, 1], [1, 1], [2, 0], [0, 2], [2, 2], [1, 2.0]])
    ),
    "1-D with bias (rank 2)": with_bias(RNG.standard_normal((8, 1))),
    "rank 2 in R^3": with_bias(np.c_[np.arange(-3.0, 5.0), 2 * np.arange(-3.0, 5.0)]),
    "zero row": np.r_[with_bias(RNG.standard_normal((7, 2))), np.zeros((1, 3))],
    "rank 1": np.outer(np.array([1.0, -2.0, 0.5, 3.0, -1.0, 2.0]), [1.0, 2.0]),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CASES))
def test_enumeration_equals_brute_force(name: str) -> None:
    X = CASES[name]
    patterns, gates = enumerate_patterns(X)
    assert np.array_equal(patterns, brute_force_patterns(X))
    # every gate is strictly inside its cell: it reproduces the pattern with no zero product
    assert np.array_equal(X @ gates.T > 0, patterns.T)
    live = np.linalg.norm(X, axis=1) > 0
    assert np.all(np.abs(X[live] @ gates.T) > 0)


@pytest.mark.parametrize("n", [5, 9, 14])
def test_generic_count_is_covers_formula(n: int) -> None:
    X = with_bias(np.random.default_rng(n).standard_normal((n, 2)))
    patterns, _ = enumerate_patterns(X)
    # the all-negative cell (g = -e_bias) gives the dropped zero pattern
    assert patterns.shape[0] == cell_count_bound(n, 3) - 1 == n * n - n + 1


def test_sampled_patterns_are_a_subset_of_the_arrangement() -> None:
    X = with_bias(np.random.default_rng(0).standard_normal((12, 2)))
    exact, _ = enumerate_patterns(X)
    sampled, gates = sample_patterns(X, 500, seed=4)
    exact_set = {p.tobytes() for p in exact}
    assert all(p.tobytes() in exact_set for p in sampled)
    assert len({p.tobytes() for p in sampled}) == sampled.shape[0]  # deduplicated
    assert np.array_equal(X @ gates.T > 0, sampled.T)
    again, _ = sample_patterns(X, 500, seed=4)
    assert np.array_equal(sampled, again)


def test_many_samples_find_every_pattern_of_a_small_arrangement() -> None:
    X = with_bias(np.random.default_rng(1).standard_normal((5, 1)))
    exact, _ = enumerate_patterns(X)
    sampled, _ = sample_patterns(X, 20000, seed=0)
    assert np.array_equal(np.unique(sampled, axis=0), exact)


@settings(max_examples=25, deadline=None)
@given(st.integers(min_value=2, max_value=9), st.integers(min_value=0, max_value=10**6))
def test_enumeration_is_complete_against_sampling(n: int, seed: int) -> None:
    X = with_bias(np.random.default_rng(seed).standard_normal((n, 2)))
    exact, gates = enumerate_patterns(X)
    sampled, _ = sample_patterns(X, 3000, seed=seed)
    exact_set = {p.tobytes() for p in exact}
    assert all(p.tobytes() in exact_set for p in sampled)
    assert np.array_equal(X @ gates.T > 0, exact.T)


def test_distinct_hyperplanes_ignores_scaling_and_sign() -> None:
    X = np.array([[1.0, 2.0], [-2.0, -4.0], [3.0, 6.0], [1.0, 0.0], [0.0, 0.0]])
    assert distinct_hyperplanes(X) == 2


def test_rank_above_three_is_refused() -> None:
    X = np.random.default_rng(0).standard_normal((6, 4))
    with pytest.raises(ValueError, match="rank X <= 3, got rank 4"):
        enumerate_patterns(X)


def test_too_many_patterns_is_refused() -> None:
    X = with_bias(np.random.default_rng(0).standard_normal((40, 2)))
    with pytest.raises(ValueError, match=r"up to 1562 activation patterns.*max_patterns=100"):
        enumerate_patterns(X, max_patterns=100)


@pytest.mark.parametrize("gates", [0, -3, 2.5, True])
def test_bad_gate_count(gates: object) -> None:
    with pytest.raises(ValueError, match="number of sampled gates"):
        sample_patterns(np.ones((3, 2)), gates)  # type: ignore[arg-type]


def test_zero_data_has_no_pattern() -> None:
    patterns, gates = enumerate_patterns(np.zeros((4, 2)))
    assert patterns.shape == (0, 4) and gates.shape == (0, 2)
