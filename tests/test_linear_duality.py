"""Study 1 end to end: the deep linear network in torch, gradient descent, and the study's run."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from landscape.server import study_parts
from landscape.studies.linear_duality import linear_duality as study
from landscape.studies.linear_duality.linear_net import (
    DeepLinearNet,
    primal_objective,
    primal_slice,
    train_primal,
)
from solvers import linear_dual as ld


def test_torch_objective_matches_numpy() -> None:
    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((9, 4)), rng.standard_normal((9, 3))
    net = DeepLinearNet([4, 5, 2, 3], init_scale=1.0, seed=1)
    weights = [W.detach().numpy() for W in net.weights]
    value = primal_objective(list(net.weights), torch.as_tensor(X), torch.as_tensor(Y), 0.8)
    assert float(value.detach()) == pytest.approx(
        ld.primal_objective(weights, X, Y, 0.8), rel=1e-12
    )
    np.testing.assert_allclose(
        net(torch.as_tensor(X)).detach().numpy(), ld.network_output(weights, X), atol=1e-12
    )


def test_slice_matches_pointwise_evaluation() -> None:
    rng = np.random.default_rng(1)
    X, Y = rng.standard_normal((8, 3)), rng.standard_normal((8, 2))
    widths = [3, 4, 2]
    W = [rng.standard_normal((widths[i + 1], widths[i])) for i in range(2)]
    D1 = [rng.standard_normal(w.shape) for w in W]
    D2 = [rng.standard_normal(w.shape) for w in W]
    alphas, betas = np.linspace(-1, 1, 4), np.linspace(-0.5, 2, 3)
    Z = primal_slice(W, (D1, D2), X, Y, 0.3, alphas, betas)
    for i, a in enumerate(alphas):
        for j, b in enumerate(betas):
            point = [w + a * u + b * v for w, u, v in zip(W, D1, D2, strict=True)]
            assert Z[i, j] == pytest.approx(ld.primal_objective(point, X, Y, 0.3), rel=1e-12)


@pytest.mark.slow
def test_gradient_descent_from_small_init_reaches_the_dual_optimum() -> None:
    """Full-batch GD on the non-convex primal (H = 2) ends within 1e-3 relative of D*."""
    rng = np.random.default_rng(4)
    n = 30
    X = rng.standard_normal((n, 4)) / np.sqrt(n)
    Y = X @ rng.standard_normal((4, 3)) + 0.1 * rng.standard_normal((n, 3)) / np.sqrt(n)
    s = np.linalg.svd(ld.projected_targets(X, Y), compute_uv=False)
    gamma = s.min() / 2
    widths = [4, 3, 3]
    dual = ld.solve_dual(X, Y, gamma, 3).value
    curve = train_primal(
        DeepLinearNet(widths, init_scale=0.05, seed=0), X, Y, gamma, steps=3000, lr=0.1
    )
    assert not curve.diverged
    assert abs(curve.objective[-1] - dual) <= 1e-3 * dual
    assert ld.primal_objective(curve.weights, X, Y, gamma) >= dual - 1e-12  # weak duality


def test_divergence_is_reported_not_plotted() -> None:
    X, Y = study.Config().data()
    widths = [X.shape[1], 4, 4, Y.shape[1]]
    net = DeepLinearNet(widths, init_scale=1.0, seed=0)
    curve = train_primal(net, X * 30, Y * 30, 0.1, steps=200, lr=0.5)
    assert curve.diverged
    assert np.isnan(curve.objective[-1])


def test_run_measures_a_zero_gap_everywhere() -> None:
    config = study.Config(
        steps=50, restarts=1, init_scales=(0.3,), slice_resolution=7, sweep_points=9
    )
    result = study.run(config)
    assert result.gammas[0] == 0.0 and result.sigma_min in result.gammas
    assert result.gammas.max() >= 1.5 * result.sigma_max
    assert np.all(np.abs(result.sweep_gap) <= 1e-8 * np.abs(result.sweep_dual))
    assert abs(result.gap) <= 1e-8 * abs(result.dual)
    # the recovered output keeps the top d_min singular values of Ytil, shrunk by gamma
    expected = np.maximum(result.singular_targets[: result.d_min] - result.gamma, 0)
    np.testing.assert_allclose(result.singular_output[: result.d_min], expected, atol=1e-10)
    assert result.gd_objective.shape == (1, 51)
    # P >= D* along gradient descent (weak duality), up to rounding
    assert np.nanmin(result.gd_objective) >= result.dual - 1e-9
    # the slice is centred on the recovered optimum
    centre = config.slice_resolution // 2
    assert result.slice_values[centre, centre] == pytest.approx(result.primal, rel=1e-10)
    assert result.slice_values.min() >= result.primal - 1e-9


def test_run_with_each_solver_and_linnerud() -> None:
    base = study.Config(
        dataset="linnerud",
        steps=20,
        restarts=1,
        init_scales=(0.3,),
        slice_resolution=5,
        sweep_points=5,
    )
    duals = [study.run(dataclasses.replace(base, method=m)).dual for m in ld.METHODS]
    np.testing.assert_allclose(duals, duals[0], rtol=1e-6)


def test_run_is_reproducible() -> None:
    config = study.Config(steps=30, restarts=1, slice_resolution=5, sweep_points=5)
    first, second = study.run(config), study.run(config)
    np.testing.assert_array_equal(first.gd_objective, second.gd_objective)
    np.testing.assert_array_equal(first.slice_values, second.slice_values)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("gamma_ratio", -0.1, "gamma_ratio"),
        ("depth", 1, "depth H"),
        ("hidden_width", 0, "hidden_width"),
        ("rank", 9, "rank"),
        ("dataset", "mnist", "dataset"),
        ("init_scales", (), "init_scales"),
        ("noise", float("nan"), "noise"),
    ],
)
def test_bad_config_names_the_field(field: str, value, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(study.Config(), **{field: value}).validate()


@pytest.mark.slow
def test_batched_descent_equals_one_run_at_a_time() -> None:
    """All starts in one batched objective take exactly the steps each would take alone."""
    from landscape.studies.linear_duality.linear_net import train_primal_batch

    config = study.Config()
    X, Y = config.data()
    widths = [config.d0, 4, 4, config.dH]
    starts = [(0.01, 0), (0.3, 1), (1.0, 2)]
    for optimizer in ("gd", "adam"):
        batch = train_primal_batch(widths, starts, X, Y, 0.2, 40, 0.05, optimizer=optimizer)
        for (scale, seed), curve in zip(starts, batch, strict=True):
            alone = train_primal(
                DeepLinearNet(widths, init_scale=scale, seed=seed), X, Y, 0.2, 40, 0.05, optimizer
            )
            np.testing.assert_allclose(curve.objective, alone.objective, rtol=1e-12)
            assert curve.diverged == alone.diverged


def test_batched_descent_freezes_a_diverging_run_only() -> None:
    from landscape.studies.linear_duality.linear_net import train_primal_batch

    X, Y = study.Config().data()
    widths = [X.shape[1], 4, 4, Y.shape[1]]
    big, small = train_primal_batch(widths, [(1.0, 0), (0.3, 1)], X * 30, Y, 0.1, 100, 0.5)
    fine = train_primal_batch(widths, [(0.3, 1)], X, Y, 0.1, 100, 0.05)[0]
    assert big.diverged and np.isnan(big.objective[-1])
    assert not fine.diverged and np.all(np.isfinite(fine.objective))


def test_moving_gamma_reuses_the_sweep_and_matches_a_fresh_run() -> None:
    """The gamma-free part is computed once; a run at a new gamma equals a run from scratch."""
    config = study.Config(steps=20, restarts=1, slice_resolution=5, sweep_points=9)
    first = study.problem(config)
    moved = dataclasses.replace(config, gamma_ratio=1.7)
    assert study.problem(moved) is first
    cached = study.run(moved)
    study_parts.forget(study.PROBLEMS)
    fresh = study.run(moved)
    for field in ("gammas", "sweep_gap", "gd_objective", "slice_values", "singular_residual"):
        np.testing.assert_array_equal(getattr(cached, field), getattr(fresh, field))
    assert cached.gamma == pytest.approx(1.7 * cached.sigma_min)
    assert cached.gamma in cached.gammas  # the selected gamma joins the sweep


@pytest.mark.parametrize("depth", [2, 3, 4])
def test_written_out_gradient_matches_autograd(depth: int) -> None:
    """`primal_value_and_gradient` (Gram identities, no autograd, no n-sized matrix) gives the
    objective of `primal_objective` and the gradient autograd finds through it."""
    from landscape.studies.linear_duality.linear_net import primal_value_and_gradient

    rng = np.random.default_rng(depth)
    X, Y = rng.normal(size=(30, 5)), rng.normal(size=(30, 3))
    widths = [5, *([4] * (depth - 1)), 3]
    weights = [rng.normal(size=(2, o, i)) for i, o in zip(widths[:-1], widths[1:], strict=True)]
    value, gradients = primal_value_and_gradient(
        weights, X.T @ X, X.T @ Y, float(np.sum(Y**2)), 0.7
    )
    leaves = [torch.tensor(W, requires_grad=True) for W in weights]
    reference = primal_objective(leaves, torch.tensor(X), torch.tensor(Y), 0.7)
    reference.sum().backward()
    np.testing.assert_allclose(value, reference.detach().numpy(), rtol=1e-10)
    for mine, leaf in zip(gradients, leaves, strict=True):
        np.testing.assert_allclose(mine, leaf.grad.numpy(), rtol=1e-8, atol=1e-10)


def test_moving_gamma_solves_the_sweep_once_and_the_dual_only_at_gamma(monkeypatch) -> None:
    """A new gamma reuses the gamma-free part (counted): no second `_solve_problem`, and the
    dual is solved only at the selected gamma (closed form and Douglas-Rachford), not across
    the sweep's grid; the answer equals a run from scratch."""
    from solvers import linear_dual

    config = study.Config(steps=30, restarts=1, slice_resolution=5, sweep_points=9, seed=11)
    study_parts.forget(study.PROBLEMS)
    problems, duals = [], []
    solve_problem, solve_dual = study._solve_problem, linear_dual.solve_dual
    monkeypatch.setattr(study, "_solve_problem", lambda *a: problems.append(1) or solve_problem(*a))
    monkeypatch.setattr(
        linear_dual, "solve_dual", lambda *a, **k: duals.append(a[2]) or solve_dual(*a, **k)
    )
    study.run(config)
    assert len(problems) == 1 and len(duals) == len(study.problem(config).sweep.gammas) + 2
    duals.clear()
    moved = dataclasses.replace(config, gamma_ratio=1.37)
    cached = study.run(moved)
    assert len(problems) == 1, "moving gamma re-solved the gamma-free part"
    assert len(duals) == 2 and all(g == pytest.approx(cached.gamma) for g in duals)
    study_parts.forget(study.PROBLEMS)
    fresh = study.run(moved)
    assert len(problems) == 2
    for field in dataclasses.fields(fresh):
        a, b = getattr(cached, field.name), getattr(fresh, field.name)
        if not field.name.endswith("_seconds"):
            np.testing.assert_array_equal(a, b, err_msg=field.name)
