"""Two-layer ReLU networks: training against the exact convex optimum (Pilanci & Ergen 2020)."""

from __future__ import annotations

import numpy as np
import pytest

from landscape.studies.shallow_relu import two_layer as tl
from solvers.convex_relu import nonconvex_objective, solve_convex_relu

FAST = {"steps": 1500, "restarts": 3, "width_count": 4, "grid": 11}


@pytest.fixture(scope="module")
def regression() -> tl.Result:
    return tl.run(tl.Config(**FAST))


def test_no_trained_network_beats_the_convex_optimum(regression: tl.Result) -> None:
    assert regression.solver_converged
    finite = regression.final_objectives[np.isfinite(regression.final_objectives)]
    assert finite.size == regression.final_objectives.size  # nothing diverged at the defaults
    assert np.all(finite >= regression.convex_objective * (1 - 1e-6))
    assert regression.convex_network_objective == pytest.approx(
        regression.convex_objective, rel=1e-6
    )
    assert regression.convex_lower_bound <= regression.convex_objective


def test_wide_enough_training_gets_close_and_narrow_does_not(regression: tl.Result) -> None:
    critical = regression.critical_width
    assert critical >= 2
    wide = regression.final_objectives[regression.widths >= critical]
    assert np.min(wide) <= 1.05 * regression.convex_objective
    narrow = regression.final_objectives[regression.widths == 1]
    assert np.min(narrow) > 1.5 * regression.convex_objective  # one neuron cannot fit sin(2x)


def test_convex_optimum_agrees_with_the_reference_solver() -> None:
    config = tl.Config(**FAST)
    points, y = config.data()
    X = np.c_[points, np.ones(len(points))]
    reference = solve_convex_relu(X, y, config.beta, method="cvxpy")
    result = tl.run(config)
    assert result.convex_objective == pytest.approx(reference.objective, rel=1e-5)


def test_batched_training_matches_the_objective_of_its_weights() -> None:
    config = tl.Config(**FAST)
    points, y = config.data()
    X = np.c_[points, np.ones(len(points))]
    widths = [1, 3, 5]
    trained = tl.train_networks(X, y, widths, 0.05, "squared", "adam", 0.01, 200, seed=1)
    for index, width in enumerate(widths):
        U, a = trained.first_layers[index], trained.second_layers[index]
        assert np.all(U[width:] == 0) and np.all(a[width:] == 0)  # masked neurons never move
        assert trained.histories[index, -1] == pytest.approx(
            nonconvex_objective(U, a, X, y, 0.05, "squared"), rel=1e-10
        )
    assert trained.histories[0, -1] < trained.histories[0, 0]


def test_divergence_is_flagged() -> None:
    config = tl.Config(**FAST)
    points, y = config.data()
    X = np.c_[points, np.ones(len(points))]
    trained = tl.train_networks(X, 100 * y, [4], 0.05, "squared", "sgd", 10.0, 200, seed=0)
    assert trained.diverged[0]
    assert np.isnan(trained.histories[0, -1])


@pytest.mark.parametrize("dataset", ["moons", "circles"])
def test_two_dimensional_classification(dataset: str) -> None:
    result = tl.run(tl.Config(dataset=dataset, n=12, loss="logistic", beta=0.05, **FAST))
    assert result.n_patterns == 12 * 12 - 12 + 1
    assert np.nanmin(result.final_objectives) >= result.convex_objective * (1 - 1e-6)
    assert result.convex_output.shape == (11, 11)
    assert set(np.unique(result.targets)) == {-1.0, 1.0}


def test_width_sweep_spans_one_to_factor_times_critical() -> None:
    widths = tl.width_sweep(7, 3.0, 6)
    assert widths[0] == 1 and widths[-1] == 21 and 7 in widths
    assert np.all(np.diff(widths) > 0)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"loss": "hinge"}, "loss must be 'squared' for regression_1d"),
        ({"dataset": "moons", "n": 61}, r"n \(2-D data"),
        ({"beta": 0.0}, "beta must be in"),
        ({"solver": "sgd"}, "solver must be one of"),
        ({"dataset": "blobs"}, "dataset must be one of"),
    ],
)
def test_bad_configuration(fields: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        tl.Config(**fields).validate()


def test_optimality_gap_and_certificate_are_relative_to_the_optimum() -> None:
    from landscape.files import presets

    result = presets.lookup(tl.__name__, tl.Config())
    assert result is not None
    gap = tl.optimality_gap(result)
    assert gap == (result.best_objective - result.convex_objective) / result.convex_objective
    assert gap >= -1e-6  # no trained network beats the global optimum
    assert 0 <= tl.certified_to(result) < 1e-3
