"""The convex program of two-layer CNNs (convolution, ReLU, average pooling, linear layer)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from solvers.convex_cnn import cnn_objective, cnn_output, image_patches, solve_convex_cnn
from solvers.reference_programs import blockwise_cnn

BETA = 0.05


def signals(n: int, seed: int, loss: str = "squared") -> tuple[np.ndarray, np.ndarray]:
    """1-D signals of length 4, patches of width 2 plus a bias (rank 3: exact patterns)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 4))
    target = np.sin(x[:, 0] + x[:, 2]) + 0.5 * x[:, 1] * x[:, 3]
    y = target if loss == "squared" else np.where(target > 0, 1.0, -1.0)
    return image_patches(x, 2), y


@pytest.fixture(scope="module")
def exact() -> tuple[np.ndarray, np.ndarray, object]:
    patches, y = signals(6, 0)
    return patches, y, solve_convex_cnn(patches, y, BETA)


@pytest.mark.slow
def test_per_pattern_formulation_agrees(exact) -> None:
    patches, y, solution = exact
    assert solution.objective == pytest.approx(blockwise_cnn(patches, y, BETA, "SCS"), rel=1e-6)


def test_recovered_cnn_attains_the_optimum(exact) -> None:
    patches, y, solution = exact
    assert solution.status == "optimal"
    assert solution.max_violation < 1e-8
    assert solution.network_objective == pytest.approx(solution.objective, rel=1e-7)


def train(patches: np.ndarray, y: np.ndarray, beta: float, seed: int, m: int = 16) -> float:
    """Adam on the weight-decay objective of a CNN with ``m`` filters."""
    g = torch.Generator().manual_seed(seed)
    P, yt = torch.tensor(patches), torch.tensor(y)
    U = (0.7 * torch.randn(m, patches.shape[2], generator=g, dtype=torch.float64)).requires_grad_()
    a = (0.5 * torch.randn(m, generator=g, dtype=torch.float64)).requires_grad_()
    optimiser = torch.optim.Adam([U, a], lr=0.01)
    for _ in range(1500):
        optimiser.zero_grad()
        f = torch.relu(torch.einsum("nkh,mh->nkm", P, U)).mean(1) @ a
        (0.5 * ((f - yt) ** 2).sum() + 0.5 * beta * (U.pow(2).sum() + a.pow(2).sum())).backward()
        optimiser.step()
    return cnn_objective(U.detach().numpy(), a.detach().numpy(), patches, y, beta)


@pytest.mark.slow
def test_no_trained_cnn_beats_the_optimum(exact) -> None:
    patches, y, solution = exact
    torch.set_num_threads(1)
    trained = [train(patches, y, BETA, seed) for seed in range(8)]
    assert min(trained) >= solution.objective * (1 - 1e-7)
    assert min(trained) <= solution.objective * 1.05


def test_sampled_patterns_give_an_upper_bound(exact) -> None:
    patches, y, solution = exact
    sampled = solve_convex_cnn(patches, y, BETA, patterns=10, seed=2)
    assert sampled.objective >= solution.objective * (1 - 1e-7)
    assert sampled.network_objective == pytest.approx(sampled.objective, rel=1e-6)


@pytest.mark.slow
def test_digits_with_hinge_loss_recover_filters() -> None:
    from sklearn.datasets import load_digits

    digits = load_digits()
    keep = np.isin(digits.target, (3, 8))
    images = digits.images[keep][:40] / 16.0
    y = np.where(digits.target[keep][:40] == 3, 1.0, -1.0)
    patches = image_patches(images, 3, stride=2)
    assert patches.shape == (40, 9, 10)
    solution = solve_convex_cnn(patches, y, 1.0, loss="hinge", patterns=30)
    assert solution.network_objective == pytest.approx(solution.objective, rel=1e-6)
    assert solution.objective < 40.0  # beats the zero network's hinge loss of n


def test_patches_and_output_by_hand() -> None:
    image = np.arange(16.0).reshape(1, 4, 4)
    patches = image_patches(image, 2, stride=2, bias=False)
    np.testing.assert_array_equal(patches[0, 0], [0, 1, 4, 5])
    np.testing.assert_array_equal(patches[0, 3], [10, 11, 14, 15])
    U = np.array([[1.0, 0, 0, 0], [-1.0, 0, 0, 0]])
    # filter 1 reads the top-left pixel of each patch: mean(0, 2, 8, 10) = 5; filter 2 is 0
    np.testing.assert_allclose(cnn_output(U, np.array([2.0, 3.0]), patches), [10.0])


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="size"):
        image_patches(np.zeros((2, 4)), 5)
    with pytest.raises(ValueError, match="patches"):
        solve_convex_cnn(np.zeros((3, 2)), np.zeros(3), BETA)
    patches, y = signals(4, 0)
    with pytest.raises(ValueError, match="beta"):
        solve_convex_cnn(patches, y, 0.0)


@pytest.mark.slow
@pytest.mark.parametrize("loss", ["squared", "logistic", "hinge"])
def test_interior_point_matches_cvxpy(loss: str) -> None:
    """The torch barrier method (the two-layer one, pooled over patches) against Clarabel."""
    patches, y = signals(8, 0, loss)
    reference = solve_convex_cnn(patches, y, BETA, loss=loss)
    interior = solve_convex_cnn(patches, y, BETA, loss=loss, method="interior_point")
    assert interior.method == "interior_point" and interior.n_patterns == reference.n_patterns
    assert interior.max_violation == 0.0  # iterates stay strictly inside every cone
    assert interior.network_objective == pytest.approx(interior.objective, rel=1e-8)
    # its certificate is a valid lower bound for Clarabel's feasible point too
    assert interior.lower_bound <= reference.objective * (1 + 1e-9)
    if loss == "hinge":  # the primal barrier stalls near 1e-6 on the hinge (as in two layers)
        assert interior.objective == pytest.approx(reference.objective, rel=1e-5)
    else:
        assert interior.status == "optimal"
        assert interior.objective == pytest.approx(reference.objective, rel=1e-6)
        assert interior.objective - interior.lower_bound <= 1e-8 * interior.objective


def test_bad_method_is_refused() -> None:
    patches, y = signals(4, 0)
    with pytest.raises(ValueError, match="method"):
        solve_convex_cnn(patches, y, BETA, method="newton")
    with pytest.raises(ValueError, match="device"):
        solve_convex_cnn(patches, y, BETA, method="interior_point", device="tpu")
