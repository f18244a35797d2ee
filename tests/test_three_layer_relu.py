"""The convex program of parallel three-layer ReLU networks with path regularisation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from solvers.patterns import enumerate_patterns
from solvers.reference_programs import blockwise_three_layer
from solvers.three_layer_relu import (
    balanced,
    decay_norm,
    outer_patterns,
    parallel_output,
    path_norm,
    product_norm,
    solve_three_layer,
    three_layer_objective,
)

BETA = 0.1


def planar(n: int, seed: int, loss: str = "squared") -> tuple[np.ndarray, np.ndarray]:
    """2-D points with a bias column (rank 3) and targets (labels in {-1, +1} off squared)."""
    rng = np.random.default_rng(seed)
    points = rng.standard_normal((n, 2))
    target = np.sin(2.0 * points[:, 0]) + 0.3 * points[:, 1]
    y = target if loss == "squared" else np.where(target > 0, 1.0, -1.0)
    return np.c_[points, np.ones(n)], y


@pytest.fixture(scope="module")
def exact() -> tuple[np.ndarray, np.ndarray, object]:
    X, y = planar(5, 0)
    return X, y, solve_three_layer(X, y, BETA, patterns="all")


@pytest.mark.slow
def test_block_by_block_formulation_agrees(exact) -> None:
    X, y, solution = exact
    reference = blockwise_three_layer(X, y, BETA, "SCS")
    assert solution.objective == pytest.approx(reference, rel=1e-6)


def test_recovered_network_attains_the_optimum(exact) -> None:
    X, y, solution = exact
    assert solution.status == "optimal"
    assert solution.max_violation < 1e-8
    assert solution.network_objective == pytest.approx(solution.objective, rel=1e-7)


def train(
    X: np.ndarray,
    y: np.ndarray,
    beta: float,
    seed: int,
    K: int = 6,
    m: int = 6,
    form: str = "path",
) -> float:
    """Adam on ``ell + beta R`` of a (K sub-networks, m neurons) network, scored by path norm.

    ``form="path"``: ``R`` = the path norm (a); ``"decay"``: ``R`` = weight decay of the first two
    layers (c), the third layer fixed at random signs (module docstring of the solver).
    """
    g = torch.Generator().manual_seed(seed)
    Xt, yt = torch.tensor(X), torch.tensor(y)
    W1 = (0.7 * torch.randn(K, m, X.shape[1], generator=g, dtype=torch.float64)).requires_grad_()
    w2 = (0.5 * torch.randn(K, m, generator=g, dtype=torch.float64)).requires_grad_()
    w3 = 0.5 * torch.randn(K, generator=g, dtype=torch.float64)
    if form == "decay":
        w3 = torch.sign(w3)
    else:
        w3.requires_grad_()
    optimiser = torch.optim.Adam([W1, w2] + ([w3] if w3.requires_grad else []), lr=0.01)
    for _ in range(1500):
        optimiser.zero_grad()
        hidden = torch.relu(torch.einsum("nd,kmd->knm", Xt, W1))
        f = (torch.relu((hidden * w2[:, None, :]).sum(-1)) * w3[:, None]).sum(0)
        if form == "decay":
            penalty = 0.5 * (W1.square().sum() + w2.square().sum())
        else:
            penalty = (w3.abs()[:, None] * w2.abs() * W1.norm(dim=-1)).sum()
        (0.5 * ((f - yt) ** 2).sum() + beta * penalty).backward()
        optimiser.step()
    first, second, third = list(W1.detach().numpy()), list(w2.detach().numpy()), w3.detach()
    if form == "decay":  # the trained objective itself, with its own regulariser
        f_np = parallel_output(first, second, third.numpy(), X)
        return 0.5 * float(np.sum((f_np - y) ** 2)) + beta * decay_norm(first, second)
    return three_layer_objective(first, second, third.numpy(), X, y, beta)


@pytest.mark.slow
@pytest.mark.parametrize("form", ["path", "decay"])
def test_no_trained_network_beats_the_optimum(exact, form: str) -> None:
    X, y, solution = exact
    torch.set_num_threads(1)
    trained = [train(X, y, BETA, seed, form=form) for seed in range(8)]
    assert min(trained) >= solution.objective * (1 - 1e-7)
    # and training gets close: the optimum is not a loose bound
    assert min(trained) <= solution.objective * 1.05


def test_recovered_network_attains_the_optimum_in_every_form(exact) -> None:
    """Balanced, the recovered network scores the optimum under (a), (b) and (c) alike."""
    X, y, solution = exact
    first, second, third = balanced(
        solution.first_layers, solution.second_layers, solution.third_layer
    )
    fit = 0.5 * float(np.sum((parallel_output(first, second, third, X) - y) ** 2))
    for regulariser in (
        path_norm(first, second, third),
        product_norm(first, second, third),
        decay_norm(first, second),
    ):
        assert fit + BETA * regulariser == pytest.approx(solution.objective, rel=1e-7)
    assert np.all(np.abs(third) == 1.0)
    assert solution.inner_width == max(w.shape[0] for w in solution.second_layers) >= 1


@pytest.mark.parametrize("seed", range(5))
def test_the_three_regularisers_share_their_least_value(seed: int) -> None:
    """``R <= R_product``, ``R <= R_decay`` (with |w3| moved into w2) for any network, with
    equality at `balanced`, which computes the same function."""
    rng = np.random.default_rng(seed)
    K, m, d = 3, 4, 3
    first = [rng.standard_normal((m, d)) * rng.uniform(0.1, 3.0, (m, 1)) for _ in range(K)]
    second = [rng.standard_normal(m) for _ in range(K)]
    third = rng.standard_normal(K)
    X = rng.standard_normal((10, d))
    R = path_norm(first, second, third)
    assert R <= product_norm(first, second, third) * (1 + 1e-12)
    moved = [abs(w3) * w2 for w2, w3 in zip(second, third, strict=True)]
    assert R <= decay_norm(first, moved) * (1 + 1e-12)
    B1, B2, B3 = balanced(first, second, third)
    np.testing.assert_allclose(
        parallel_output(B1, B2, B3, X), parallel_output(first, second, third, X), atol=1e-12
    )
    for value in (path_norm(B1, B2, B3), product_norm(B1, B2, B3), decay_norm(B1, B2)):
        assert value == pytest.approx(R, rel=1e-12)
    # the inequality is strict off balance: the test can fail
    assert product_norm(first, second, third) > R * (1 + 1e-6)


def test_sampled_patterns_give_an_upper_bound(exact) -> None:
    X, y, solution = exact
    sampled = solve_three_layer(X, y, BETA, patterns=5, seed=1)
    assert not sampled.exact
    assert sampled.objective >= solution.objective * (1 - 1e-7)
    assert sampled.network_objective == pytest.approx(sampled.objective, rel=1e-6)


def test_hinge_loss_recovery() -> None:
    X, y = planar(5, 3, "hinge")
    solution = solve_three_layer(X, y, BETA, loss="hinge")
    assert solution.network_objective == pytest.approx(solution.objective, rel=1e-6)


def test_path_norm_and_output_by_hand() -> None:
    W1 = [np.array([[3.0, 4.0], [1.0, 0.0]])]
    w2 = [np.array([2.0, -1.0])]
    w3 = np.array([-0.5])
    assert path_norm(W1, w2, w3) == pytest.approx(0.5 * (2 * 5 + 1 * 1))
    X = np.array([[1.0, 1.0], [-1.0, 0.0]])
    # row 1: relu([7, 1]) . [2, -1] = 13 -> -6.5; row 2: relu([-3, -1]) = 0 -> 0
    np.testing.assert_allclose(parallel_output(W1, w2, w3, X), [-6.5, 0.0])


def test_outer_patterns_are_every_subset() -> None:
    X, _ = planar(4, 0)
    patterns = outer_patterns(X, "all")
    assert patterns.shape == (15, 4)
    assert len({tuple(p) for p in patterns}) == 15


def test_bad_input_is_refused() -> None:
    X, y = planar(9, 0)
    with pytest.raises(ValueError, match="n must be <= 8"):
        solve_three_layer(X, y, BETA)
    with pytest.raises(ValueError, match="beta"):
        solve_three_layer(X[:4], y[:4], -1.0)
    with pytest.raises(ValueError, match="patterns"):
        solve_three_layer(X[:4], y[:4], BETA, patterns="some")


@pytest.mark.slow
@pytest.mark.parametrize("loss", ["squared", "hinge"])
def test_interior_point_matches_cvxpy(loss: str) -> None:
    """The torch barrier method (`solvers.three_layer_barrier`) against Clarabel."""
    X, y = planar(5, 0 if loss == "squared" else 3, loss)
    reference = solve_three_layer(X, y, BETA, loss=loss)
    interior = solve_three_layer(X, y, BETA, loss=loss, method="interior_point")
    assert interior.method == "interior_point"
    assert interior.max_violation == 0.0  # iterates stay strictly inside every cone
    assert interior.network_objective == pytest.approx(interior.objective, rel=1e-7)
    # its certificate bounds Clarabel's feasible point, Clarabel's point bounds it
    assert interior.lower_bound <= reference.objective * (1 + 1e-9)
    assert interior.objective >= reference.objective * (1 - 1e-7)
    if loss == "squared":
        assert interior.status == "optimal"
        assert interior.objective - interior.lower_bound <= 1e-6 * interior.objective
        assert interior.objective == pytest.approx(reference.objective, rel=1e-6)
    else:  # the primal barrier stalls near 1e-6 on the hinge (as in two layers)
        assert interior.objective == pytest.approx(reference.objective, rel=1e-5)


def test_interior_point_newton_step_is_exact() -> None:
    """The two nested Woodbury solves give the Newton step of the barrier (autograd)."""
    from solvers.three_layer_barrier import ThreeLayerBarrier

    X, y = planar(4, 1)
    inner, interior = enumerate_patterns(X)
    problem = ThreeLayerBarrier(X, y, 0.3, "squared", inner, outer_patterns(X, "all")[:3], "cpu")
    U, groups = problem.start(interior, 1.0)
    assert groups.all()  # a bias column: every outer pattern has a strictly feasible point
    for tau in (2.0, 1e3):
        dU, decrement = problem.newton(tau, U)
        flat = U.reshape(-1)

        def merit(z: torch.Tensor, tau=tau) -> torch.Tensor:
            return problem.merit(tau, z.reshape(U.shape))

        gradient = torch.autograd.functional.jacobian(merit, flat)
        step = -torch.linalg.solve(torch.autograd.functional.hessian(merit, flat), gradient)
        assert torch.allclose(dU.reshape(-1), step, rtol=1e-7, atol=1e-12)
        assert decrement == pytest.approx(float(-gradient @ step), rel=1e-7)
