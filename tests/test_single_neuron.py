"""One ReLU neuron: L, its convex relaxation L_r, gradient descent on both (seed section 2.2)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from landscape.studies.shallow_relu import figures
from landscape.studies.shallow_relu import single_neuron as sn

SMALL = {"n": 60, "n_test": 20, "d": 4, "slice_resolution": 9, "seeds": 4}


def random_problem(seed: int, n: int = 30, D: int = 4) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, D)), rng.standard_normal(n)


@pytest.mark.parametrize("seed", range(3))
def test_gradients_equal_autograd(seed: int) -> None:
    X, y = random_problem(seed)
    w = np.random.default_rng(seed + 10).standard_normal(X.shape[1])
    Xt, yt = torch.as_tensor(X), torch.as_tensor(y)
    wt = torch.as_tensor(w).requires_grad_()
    torch.sum((torch.relu(Xt @ wt) - yt) ** 2).backward()
    assert np.allclose(sn.loss_gradient(w, X, y), wt.grad.numpy(), rtol=1e-12, atol=1e-12)
    wt.grad = None
    z = Xt @ wt
    (torch.sum(torch.relu(z) ** 2) - 2 * yt @ z + yt @ yt).backward()
    assert np.allclose(sn.relaxed_gradient(w, X, y), wt.grad.numpy(), rtol=1e-12, atol=1e-12)
    assert sn.loss(w, X, y) == pytest.approx(float(torch.sum((torch.relu(z.detach()) - yt) ** 2)))


def test_relaxed_gradient_vanishes_at_the_planted_weights() -> None:
    X, _, _, _, w_star = sn.planted_data(sn.Config(noise=0.0, **SMALL), 0)
    y = np.maximum(X @ w_star, 0.0)
    assert np.linalg.norm(sn.relaxed_gradient(w_star, X, y)) <= 1e-12 * np.linalg.norm(X.T @ y)
    assert sn.relaxed_loss(w_star, X, y) == pytest.approx(0.0, abs=1e-10)
    # and w* is the minimiser: every other point has a larger relaxed loss
    rng = np.random.default_rng(0)
    others = w_star + 0.3 * rng.standard_normal((200, w_star.size))
    assert np.all(sn.relaxed_loss(others, X, y) > 0)


@pytest.mark.slow
def test_relaxed_gradient_descent_recovers_the_planted_neuron() -> None:
    result = sn.run(sn.Config(noise=0.0, step=1.0, iterations=2000, **SMALL))
    assert np.all(result.relaxed_recovery[:, -1] < 1e-6)
    assert np.all(result.relaxed_train[:, -1] < 1e-12)
    assert np.all(result.relaxed_gradient_at_star < 1e-12)


def test_batched_descent_equals_a_plain_loop() -> None:
    config = sn.Config(noise=0.2, step=0.7, iterations=40, **SMALL)
    X, y, X_test, y_test, w_star = sn.planted_data(config, 2)
    w0 = sn.initial_weights(config, X, w_star, 2)
    step = config.step / (2 * np.linalg.norm(X, 2) ** 2)
    result = sn.run(config)
    for relaxed, recovery in ((False, result.vanilla_recovery), (True, result.relaxed_recovery)):
        w = w0.copy()
        gradient = sn.relaxed_gradient if relaxed else sn.loss_gradient
        for _ in range(config.iterations):
            w = w - step * gradient(w, X, y)
        assert recovery[2, -1] == pytest.approx(
            np.linalg.norm(w - w_star) / np.linalg.norm(w_star), rel=1e-10
        )
        test_error = np.mean((np.maximum(X_test @ w, 0) - y_test) ** 2)
        curve = result.relaxed_test if relaxed else result.vanilla_test
        assert curve[2, -1] == pytest.approx(test_error, rel=1e-10)


def test_a_dead_neuron_stays_dead_for_L_but_not_for_L_r() -> None:
    result = sn.run(sn.Config(init="dead", iterations=50, **SMALL))
    assert result.dead_at_start.all()
    assert np.all(np.ptp(result.vanilla_recovery, axis=1) == 0.0)  # grad L = 0 exactly
    assert np.all(result.relaxed_recovery[:, -1] < 0.8 * result.relaxed_recovery[:, 0])


@settings(max_examples=60, deadline=None)
@given(
    arrays(np.float64, (12, 3), elements=st.floats(-5, 5)),
    arrays(np.float64, 12, elements=st.floats(0, 5)),
    arrays(np.float64, 3, elements=st.floats(-5, 5)),
)
def test_relaxation_dominates_for_non_negative_labels(X, y, w) -> None:
    identity = sn.loss(w, X, y) + 2.0 * y @ np.maximum(-X @ w, 0.0)
    assert sn.relaxed_loss(w, X, y) == pytest.approx(identity, rel=1e-9, abs=1e-8)
    assert sn.relaxed_loss(w, X, y) >= sn.loss(w, X, y) - 1e-8


@settings(max_examples=60, deadline=None)
@given(
    arrays(np.float64, (10, 3), elements=st.floats(-3, 3)),
    arrays(np.float64, 10, elements=st.floats(-3, 3)),
    arrays(np.float64, (2, 3), elements=st.floats(-3, 3)),
    st.floats(0, 1),
)
def test_relaxed_loss_is_convex(X, y, ends, t) -> None:
    a, b = ends
    mixed = sn.relaxed_loss(t * a + (1 - t) * b, X, y)
    chord = t * sn.relaxed_loss(a, X, y) + (1 - t) * sn.relaxed_loss(b, X, y)
    assert mixed <= chord + 1e-9 * (1 + abs(chord))


def test_loss_is_not_convex() -> None:
    X, y = np.array([[1.0]]), np.array([1.0])  # L(w) = (relu(w) - 1)^2
    assert sn.loss(np.array([0.0]), X, y) > 0.5 * (
        sn.loss(np.array([-1.0]), X, y) + sn.loss(np.array([1.0]), X, y)
    )


def test_slice_measures_convexity_and_the_identity() -> None:
    result = sn.run(sn.Config(noise=0.0, **{**SMALL, "slice_resolution": 41}))
    assert result.slice_identity_error < 1e-12
    assert result.slice_min_curvature_relaxed >= -1e-12
    assert result.slice_min_curvature_loss < -1e-6
    assert np.allclose(result.slice_relaxed - result.slice_loss >= -1e-9, True)


def test_the_gap_panel_puts_rounding_below_its_lowest_contour() -> None:
    """``L_r - L >= 0`` exactly; where it is 0 the computed difference is rounding of either
    sign, which contours starting near 0 outlined as black specks."""
    result = sn.run(sn.Config(noise=0.0, **{**SMALL, "slice_resolution": 41}))
    gap = result.slice_relaxed - result.slice_loss
    assert gap.min() < 0 < gap.max()  # rounding below zero is there to hide
    panel = [t for t in figures.neuron_slices(result).data if t.type == "contour"][2]
    assert panel.autocontour is False
    assert panel.contours.start > -gap.min()
    assert panel.contours.end == pytest.approx(gap.max(), rel=1e-6)
    assert panel.contours.size == pytest.approx(gap.max() / 25, rel=1e-6)
    assert figures._levels_above_rounding(np.full((3, 3), -1e-17)) == {}  # Plotly's own levels


def test_min_second_difference_on_known_functions() -> None:
    a = np.linspace(-1, 1, 21)
    grid_a, grid_b = np.meshgrid(a, a, indexing="ij")
    assert sn.min_second_difference(grid_a**2 + grid_b**2) == pytest.approx(2 * (0.1**2))
    assert sn.min_second_difference(-np.abs(grid_a)) < 0


def test_divergence_is_reported_not_plotted() -> None:
    config = sn.Config(**SMALL)
    X, y, X_test, y_test, w_star = sn.planted_data(config, 0)
    as_t = lambda a: torch.as_tensor(np.asarray(a)[None], dtype=torch.float64)  # noqa: E731
    step = torch.tensor([1e4 / np.linalg.norm(X, 2) ** 2], dtype=torch.float64)
    train, test, recovery, diverged = sn.gradient_descent(
        as_t(X),
        as_t(y),
        as_t(X_test),
        as_t(y_test),
        as_t(w_star),
        as_t(np.ones(X.shape[1])),
        step,
        400,
        relaxed=True,
    )
    assert diverged[0]
    first_nan = int(np.argmax(np.isnan(train[0])))
    assert first_nan > 0 and np.all(np.isnan(train[0, first_nan:]))
    assert np.all(np.isfinite(train[0, :first_nan]))


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"init": "dead", "bias": False}, "init='dead' needs bias=True"),
        ({"n": 1}, r"n must be an integer in \[2, 20000\], got 1"),
        ({"step": 0.0}, "step must be in"),
        ({"init": "zeros"}, "init must be one of"),
        ({"condition": 0.5}, "condition must be in"),
    ],
)
def test_bad_configuration(fields: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        sn.Config(**fields).validate()
