"""Permutation symmetry, weight and activation matching, and the paths between two minima,
each checked against an independent computation (the function itself, a per-point loop)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from landscape.engine.directions import parameters_of
from landscape.engine.nets import MultiBranchNet, mlp
from landscape.engine.problem import Problem
from landscape.studies.connectivity import paths
from landscape.studies.connectivity import permutations as perm


def _net(seed: int, hidden: tuple[int, ...] = (12, 9)) -> nn.Sequential:
    torch.manual_seed(seed)
    return mlp(5, 3, list(hidden), "relu").double()


def _data(n: int = 40, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 5, generator=g, dtype=torch.float64), torch.randint(3, (n,), generator=g)


def test_a_permuted_network_computes_the_same_function() -> None:
    model, (X, _) = _net(0), _data()
    layers = perm.mlp_layers(model)
    permuted = perm.permute_layers(layers, perm.random_permutations(layers, seed=3))
    assert any(not torch.equal(a[0], b[0]) for a, b in zip(layers, permuted, strict=True))
    twin = _net(1)
    perm.load_layers(twin, permuted)
    torch.testing.assert_close(twin(X), model(X), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("hidden", [(7,), (12, 9), (6, 6, 6)])
def test_weight_matching_recovers_a_planted_permutation_exactly(hidden: tuple[int, ...]) -> None:
    layers = perm.mlp_layers(_net(0, hidden))
    planted = perm.random_permutations(layers, seed=11)
    shuffled = perm.permute_layers(layers, planted)
    found = perm.weight_matching(layers, shuffled, seed=0)
    realigned = perm.permute_layers(shuffled, found)
    for (Wa, ba), (Wb, bb) in zip(layers, realigned, strict=True):
        assert torch.equal(Wa, Wb) and torch.equal(ba, bb)


def test_activation_matching_recovers_a_planted_permutation_exactly() -> None:
    layers = perm.mlp_layers(_net(0))
    X, _ = _data(200)
    shuffled = perm.permute_layers(layers, perm.random_permutations(layers, seed=5))
    found = perm.activation_matching(layers, shuffled, X, nn.ReLU())
    realigned = perm.permute_layers(shuffled, found)
    for (Wa, _), (Wb, _) in zip(layers, realigned, strict=True):
        assert torch.equal(Wa, Wb)


def test_weight_matching_never_lowers_the_objective_of_the_identity() -> None:
    A, B = perm.mlp_layers(_net(0)), perm.mlp_layers(_net(1))
    identity = [np.arange(W.shape[0]) for W, _ in A[:-1]]
    found = perm.weight_matching(A, B)
    assert perm.matching_objective(A, B, found) >= perm.matching_objective(A, B, identity)


def test_weight_matching_is_optimal_for_one_hidden_layer_by_brute_force() -> None:
    A, B = perm.mlp_layers(_net(0, (5,))), perm.mlp_layers(_net(1, (5,)))
    import itertools

    best = max(
        perm.matching_objective(A, B, [np.array(p)]) for p in itertools.permutations(range(5))
    )
    found = perm.weight_matching(A, B)
    assert perm.matching_objective(A, B, found) == pytest.approx(best, rel=1e-12)


def test_branch_matching_recovers_reordered_and_permuted_branches() -> None:
    torch.manual_seed(0)
    net = MultiBranchNet(4, 2, branches=3, width=5, depth=2).double()
    A = [perm.mlp_layers(b) for b in net.branches]
    planted_order = np.array([2, 0, 1])
    B = [
        perm.permute_layers(A[int(i)], perm.random_permutations(A[int(i)], seed=int(i)))
        for i in planted_order
    ]
    order, perms = perm.match_branches(A, B)
    assert np.array_equal(planted_order[order], np.arange(3))
    for i, j in enumerate(order):
        for (Wa, _), (Wb, _) in zip(A[i], perm.permute_layers(B[int(j)], perms[i]), strict=True):
            assert torch.equal(Wa, Wb)


def _problem(model: nn.Module) -> Problem:
    X, y = _data()
    return Problem(model, F.cross_entropy, X, y)


def _loop(model: nn.Module, points: list[dict[str, torch.Tensor]]) -> np.ndarray:
    X, y = _data()
    with torch.no_grad():
        losses = [F.cross_entropy(functional_call(model, p, (X,)), y) for p in points]
    return np.array([float(v) for v in losses])


def test_line_and_curve_losses_equal_a_per_point_loop() -> None:
    a, b, c = (parameters_of(_net(s)) for s in (0, 1, 2))
    model = _net(0)
    ts = np.linspace(0, 1, 9)
    line = paths.path_losses(_problem(model), a, b, c, paths.line_coordinates(ts))
    curve = paths.path_losses(_problem(model), a, b, c, paths.bezier_coordinates(ts))
    on_line = [{k: (1 - t) * a[k] + t * b[k] for k in a} for t in ts]
    on_curve = [paths.bezier_point(a, c, b, float(t)) for t in ts]
    np.testing.assert_allclose(line, _loop(model, on_line), rtol=1e-10)
    np.testing.assert_allclose(curve, _loop(model, on_curve), rtol=1e-10)
    expected = np.max(line - ((1 - ts) * line[0] + ts * line[-1]))
    assert paths.barrier(ts, line) == pytest.approx(expected)


def test_the_barrier_of_a_network_with_itself_is_zero() -> None:
    model = _net(0)
    a = parameters_of(model)
    ts = np.linspace(0, 1, 11)
    losses = paths.path_losses(_problem(model), a, a, a, paths.line_coordinates(ts))
    assert paths.barrier(ts, losses) == pytest.approx(0.0, abs=1e-12)


def test_the_barrier_refuses_a_grid_that_misses_an_end() -> None:
    with pytest.raises(ValueError, match="from 0 to 1"):
        paths.barrier(np.linspace(0.1, 1, 5), np.zeros(5))


def test_a_trained_curve_keeps_its_end_points_and_lowers_its_loss() -> None:
    model = _net(0)
    a, b = parameters_of(_net(0)), parameters_of(_net(1))
    X, y = _data()
    trained = paths.train_bezier(
        model, F.cross_entropy, X, y, a, b, steps=60, lr=0.05, batch_size=40, seed=0
    )
    for k in a:
        torch.testing.assert_close(paths.bezier_point(a, trained.bend, b, 0.0)[k], a[k])
        torch.testing.assert_close(paths.bezier_point(a, trained.bend, b, 1.0)[k], b[k])
    ts = np.linspace(0, 1, 11)
    midpoint = {k: (a[k] + b[k]) / 2 for k in a}
    problem = _problem(model)
    before = paths.path_losses(problem, a, b, midpoint, paths.bezier_coordinates(ts))
    after = paths.path_losses(problem, a, b, trained.bend, paths.bezier_coordinates(ts))
    assert after[1:-1].mean() < before[1:-1].mean()


def test_the_plane_holds_the_three_points_and_its_grid_equals_a_per_point_loop() -> None:
    model = _net(0)
    a, b, c = (parameters_of(_net(s)) for s in (0, 1, 2))
    grid = paths.plane_grid(_problem(model), a, b, c, resolution=4, margin=0.1)
    e1, e2 = paths.plane_basis(a, b, c)
    for point, (x, y) in zip((a, b, c), grid.anchors, strict=True):
        for k in a:
            torch.testing.assert_close(a[k] + x * e1[k] + y * e2[k], point[k])
    assert grid.anchors[0] == pytest.approx([0, 0], abs=1e-12)
    assert grid.anchors[1, 1] == pytest.approx(0, abs=1e-9)
    points = [{k: a[k] + x * e1[k] + y * e2[k] for k in a} for x in grid.xs for y in grid.ys]
    np.testing.assert_allclose(grid.loss.ravel(), _loop(model, points), rtol=1e-10)
