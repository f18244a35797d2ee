"""The convex program of two-layer ReLU networks: two solvers, certificates, the non-convex side."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from solvers.barrier import ConeBarrier, fit_terms
from solvers.convex_relu import (
    convex_objective,
    critical_width,
    dual_bound,
    network_output,
    nonconvex_objective,
    recover_network,
    solve_convex_relu,
)
from solvers.patterns import sample_patterns


@pytest.fixture(autouse=True)
def _one_thread():
    """Small torch problems run far faster on one thread on a shared 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def planar(n: int, seed: int, loss: str) -> tuple[np.ndarray, np.ndarray]:
    """2-D points with a bias column (rank 3) and targets (labels in {-1, +1} off squared)."""
    rng = np.random.default_rng(seed)
    points = rng.standard_normal((n, 2))
    target = np.sin(2.0 * points[:, 0]) + 0.3 * points[:, 1]
    y = target if loss == "squared" else np.where(target > 0, 1.0, -1.0)
    return np.c_[points, np.ones(n)], y


LOSSES = ["squared", "hinge", "logistic"]


@pytest.fixture(scope="module")
def exact_solutions() -> dict[str, tuple]:
    solutions = {}
    for loss in LOSSES:
        X, y = planar(12, 0, loss)
        solutions[loss] = (
            X,
            y,
            solve_convex_relu(X, y, 0.1, loss=loss, patterns="all"),
            solve_convex_relu(X, y, 0.1, loss=loss, patterns="all", method="interior_point"),
        )
    return solutions


@pytest.mark.slow
@pytest.mark.parametrize("loss", LOSSES)
def test_recovered_network_attains_the_convex_optimum(exact_solutions, loss: str) -> None:
    X, y, reference, _ = exact_solutions[loss]
    assert reference.exact and reference.converged
    assert reference.n_patterns == 12 * 12 - 12 + 1
    assert reference.network_objective == pytest.approx(reference.objective, rel=1e-6)
    # the recomputation from (v, w) and the network itself agree with independent code paths
    assert convex_objective(
        reference.v, reference.w, reference.patterns, X, y, 0.1, loss
    ) == pytest.approx(reference.objective, rel=1e-12)
    assert reference.max_violation < 1e-7


@pytest.mark.parametrize("loss", LOSSES)
def test_dual_certificate_brackets_the_optimum(exact_solutions, loss: str) -> None:
    _, _, reference, interior = exact_solutions[loss]
    # each lower bound is valid for the other solver's feasible objective ...
    assert reference.lower_bound <= interior.objective * (1 + 1e-12)
    assert interior.lower_bound <= reference.objective * (1 + 1e-9)
    # ... and cvxpy's certificate is tight
    assert reference.objective - reference.lower_bound <= 1e-6 * reference.objective


@pytest.mark.parametrize("loss", LOSSES)
def test_interior_point_matches_cvxpy(exact_solutions, loss: str) -> None:
    _, _, reference, interior = exact_solutions[loss]
    assert interior.objective == pytest.approx(reference.objective, rel=1e-4)
    assert interior.network_objective == pytest.approx(interior.objective, rel=1e-9)
    assert interior.max_violation == 0.0  # an interior-point iterate is strictly feasible
    if loss != "hinge":  # the primal barrier stalls near 1e-6 for the hinge loss
        assert interior.converged
        assert interior.objective - interior.lower_bound <= 1e-6 * interior.objective


@pytest.mark.slow
def test_interior_point_on_sampled_patterns_matches_cvxpy() -> None:
    rng = np.random.default_rng(5)
    X = rng.standard_normal((60, 5))
    y = np.maximum(X @ rng.standard_normal((5, 3)), 0.0) @ np.array([1.0, -1.0, 0.5])
    reference = solve_convex_relu(X, y, 0.5, patterns=40, seed=2)
    interior = solve_convex_relu(X, y, 0.5, patterns=40, seed=2, method="interior_point")
    assert not reference.exact and np.array_equal(reference.patterns, interior.patterns)
    assert interior.converged
    assert interior.objective == pytest.approx(reference.objective, rel=1e-5)


@pytest.mark.parametrize("pooled", [False, True])
def test_newton_direction_equals_autograd_newton_step(pooled: bool) -> None:
    """Also with rows pooled into outputs (the CNN program: patches averaged into samples)."""
    X, y = planar(9, 1, "hinge")
    patterns, gates = sample_patterns(X, 6, seed=0)
    pool = np.kron(np.eye(3), np.full((1, 3), 1.0 / 3.0)) if pooled else None
    for loss in LOSSES:
        target = y if loss != "squared" else planar(9, 1, "squared")[1]
        target = target[::3] if pooled else target
        problem = ConeBarrier(X, target, patterns, 0.3, loss, "cpu", pool)
        gate = torch.as_tensor(gates / np.linalg.norm(gates, axis=1, keepdims=True))
        U = torch.cat([gate, 0.5 * gate]).reshape(-1)
        for tau in (2.0, 1e4):
            dU, decrement = problem.newton(tau, U.reshape(problem.K, -1))

            def merit(z: torch.Tensor, problem=problem, tau=tau) -> torch.Tensor:
                return problem.merit(tau, z.reshape(problem.K, -1))

            gradient = torch.autograd.functional.jacobian(merit, U)
            hessian = torch.autograd.functional.hessian(merit, U)
            step = -torch.linalg.solve(hessian, gradient)
            assert torch.allclose(dU.reshape(-1), step, rtol=1e-7, atol=1e-10)
            assert decrement == pytest.approx(float(-gradient @ step), rel=1e-7)


def test_smoothed_hinge_is_the_minimum_over_the_slack() -> None:
    f = torch.tensor([-3.0, -0.5, 0.0, 0.99, 1.0, 1.01, 2.0, 50.0], dtype=torch.float64)
    y = torch.tensor([1.0, -1.0, 1.0, 1.0, 1.0, -1.0, 1.0, -1.0], dtype=torch.float64)
    for tau in (0.5, 10.0, 1e4):
        value, grad, hess = fit_terms(f, y, "hinge", tau)
        brute = 0.0
        for c in (1.0 - y * f).tolist():  # minimise tau xi - log xi - log(xi - c) on a fine grid
            xi = max(0.0, c) + np.geomspace(1e-9, 1e3, 400001) / tau
            brute += float(np.min(tau * xi - np.log(xi) - np.log(xi - c)))
        assert float(value) == pytest.approx(brute, rel=1e-7)
        fv = f.clone().requires_grad_()
        first = torch.autograd.grad(fit_terms(fv, y, "hinge", tau)[0], fv, create_graph=True)[0]
        second = torch.stack(
            [torch.autograd.grad(first[i], fv, retain_graph=True)[0][i] for i in range(len(f))]
        )
        assert torch.allclose(grad, first.detach(), rtol=1e-10)
        assert torch.allclose(hess, second.detach(), rtol=1e-8)


def test_sampled_patterns_give_an_upper_bound() -> None:
    X, y = planar(12, 3, "squared")
    exact = solve_convex_relu(X, y, 0.2)
    for gates in (3, 10, 30):
        sampled = solve_convex_relu(X, y, 0.2, patterns=gates, seed=1)
        assert not sampled.exact
        assert sampled.objective >= exact.objective * (1 - 1e-7)
        assert sampled.network_objective >= exact.objective * (1 - 1e-7)


def _train(X: np.ndarray, y: np.ndarray, beta: float, width: int, seed: int) -> float:
    """L-BFGS on the weight-decay objective of a width-``width`` network from a random start."""
    generator = torch.Generator().manual_seed(seed)
    Xt, yt = torch.as_tensor(X), torch.as_tensor(y)
    U = torch.randn(width, X.shape[1], generator=generator, dtype=torch.float64).requires_grad_()
    a = torch.randn(width, generator=generator, dtype=torch.float64).requires_grad_()
    optimiser = torch.optim.LBFGS(
        [U, a],
        max_iter=400,
        tolerance_grad=1e-12,
        tolerance_change=1e-14,
        line_search_fn="strong_wolfe",
    )

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        value = 0.5 * torch.sum((torch.relu(Xt @ U.T) @ a - yt) ** 2) + 0.5 * beta * (
            torch.sum(U**2) + torch.sum(a**2)
        )
        value.backward()
        return value

    optimiser.step(closure)
    return nonconvex_objective(U.detach().numpy(), a.detach().numpy(), X, y, beta, "squared")


@pytest.mark.slow
def test_no_trained_network_beats_the_exact_optimum() -> None:
    rng = np.random.default_rng(0)
    x = np.sort(rng.uniform(-2, 2, 7))
    X, y = np.c_[x, np.ones_like(x)], np.sin(2 * x)
    optimum = solve_convex_relu(X, y, 0.05).objective
    trained = [_train(X, y, 0.05, width, seed) for width in (2, 6, 12) for seed in range(4)]
    assert min(trained) >= optimum * (1 - 1e-7)  # the convex value is a true lower bound ...
    assert min(trained) <= optimum * (1 + 1e-3)  # ... that training attains (1-D, wide enough)


def test_nonconvex_objective_by_hand() -> None:
    X = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    U = np.array([[1.0, -1.0], [0.0, 2.0]])
    a = np.array([2.0, -1.0])
    y = np.array([1.0, 0.0, 0.0])
    # relu(X U^T) = [[1, 0], [0, 2], [0, 2]] -> f = [2, -2, -2]
    assert np.allclose(network_output(U, a, X), [2.0, -2.0, -2.0])
    expected = 0.5 * (1 + 4 + 4) + 0.5 * 0.3 * (1 + 1 + 4 + 4 + 1)
    assert nonconvex_objective(U, a, X, y, 0.3, "squared") == pytest.approx(expected)
    labels = np.array([1.0, -1.0, 1.0])
    assert nonconvex_objective(U, a, X, labels, 0.3, "hinge") == pytest.approx(
        0 + 0 + 3 + 0.15 * 11
    )
    assert nonconvex_objective(U, a, X, labels, 0.3, "logistic") == pytest.approx(
        np.log1p(np.exp(-2)) + np.log1p(np.exp(-2)) + np.log1p(np.exp(2)) + 0.15 * 11
    )


def test_recovery_is_balanced_and_reproduces_the_output() -> None:
    rng = np.random.default_rng(1)
    v, w = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    w[2] = 0.0
    U, a = recover_network(v, w)
    assert U.shape == (7, 3)
    assert np.allclose(np.linalg.norm(U, axis=1), np.abs(a))  # ||u_j|| = |a_j|
    assert np.allclose(np.abs(a)[:, None] * U, np.r_[v, np.delete(w, 2, axis=0)])


def test_critical_width_merges_parallel_neurons() -> None:
    U = np.array([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0], [0.0, 1.0], [1e-9, 1e-9]])
    a = np.array([1.0, 0.5, 1.0, -1.0, 1.0])
    assert critical_width(U, a) == 3  # two parallel positive neurons merge; the tiny one is noise


def test_dual_bound_is_a_lower_bound_at_any_multipliers() -> None:
    X, y = planar(10, 2, "squared")
    solution = solve_convex_relu(X, y, 0.2)
    rng = np.random.default_rng(0)
    P = solution.n_patterns
    for _ in range(5):
        q = rng.standard_normal(10)
        mu = -np.abs(rng.standard_normal((2, P, 10)))
        assert (
            dual_bound(q, mu[0], mu[1], solution.patterns, X, y, 0.2, "squared")
            <= solution.objective + 1e-9
        )


def test_zero_targets_give_the_zero_network() -> None:
    X, _ = planar(8, 0, "squared")
    solution = solve_convex_relu(X, np.zeros(8), 0.1)
    assert solution.objective == 0.0 and solution.width == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"beta": 0.0}, r"beta must be a finite number in \[1e-10, 1e\+10\], got 0.0"),
        ({"beta": -1.0}, r"beta must be a finite number in \[1e-10, 1e\+10\], got -1.0"),
        ({"loss": "hinge"}, r"labels in \{-1, \+1\} for the hinge loss"),
        ({"loss": "logistic"}, r"labels in \{-1, \+1\} for the logistic loss"),
        ({"loss": "cubic"}, "loss must be one of"),
        ({"method": "adam"}, "method must be one of"),
        ({"patterns": "some"}, "patterns must be 'all' or an integer"),
        ({"patterns": 0}, "number of sampled gates"),
        ({"max_patterns": 10}, "would enumerate up to 58 activation patterns"),
    ],
)
def test_bad_input_is_refused(kwargs: dict, message: str) -> None:
    X, y = planar(8, 0, "squared")
    arguments = {"X": X, "y": y, "beta": 0.1, **kwargs}
    with pytest.raises(ValueError, match=message):
        solve_convex_relu(**arguments)


def test_shape_errors_name_the_field() -> None:
    with pytest.raises(ValueError, match=r"y must have shape \(n,\) = \(3,\)"):
        solve_convex_relu(np.ones((3, 2)), np.ones(4), 0.1)
    with pytest.raises(ValueError, match="first_layer must be"):
        nonconvex_objective(np.ones((2, 3)), np.ones(2), np.ones((3, 2)), np.ones(3), 0.1)


@pytest.mark.gpu
def test_interior_point_on_cuda_matches_cpu() -> None:
    X, y = planar(12, 0, "squared")
    cpu = solve_convex_relu(X, y, 0.1, method="interior_point")
    gpu = solve_convex_relu(X, y, 0.1, method="interior_point", device="cuda")
    assert gpu.objective == pytest.approx(cpu.objective, rel=1e-8)
