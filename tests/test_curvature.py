"""Curvature: everything checked against the full Hessian of a tiny network."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

from landscape.engine.curvature import (
    curvature_map,
    extreme_eigenvalues,
    hutchinson_trace,
    hvp,
    lanczos,
    slice_hessian,
    slice_hessian_fd,
)
from landscape.engine.directions import combine, flatten, parameters_of, random_directions
from landscape.engine.nets import MultiBranchNet, mlp
from landscape.engine.problem import Problem
from landscape.engine.surface import surface_2d


def tiny(activation: str = "tanh"):
    torch.manual_seed(0)
    model = mlp(3, 2, [4], activation).double()
    g = torch.Generator().manual_seed(1)
    X = torch.randn(20, 3, generator=g, dtype=torch.float64)
    y = torch.randint(0, 2, (20,), generator=g)
    return model, X, y


def full_hessian(model, X, y, point=None) -> np.ndarray:
    """Independent reference: torch.autograd.functional.hessian of the flat-parameter loss."""
    point = parameters_of(model) if point is None else point
    names = list(point)
    shapes = [point[n].shape for n in names]
    sizes = [point[n].numel() for n in names]

    def loss(flat: torch.Tensor) -> torch.Tensor:
        pieces = torch.split(flat, sizes)
        params = {n: p.reshape(s) for n, p, s in zip(names, pieces, shapes, strict=True)}
        return F.cross_entropy(functional_call(model, params, (X,)), y)

    return torch.autograd.functional.hessian(loss, flatten(point)).numpy()


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_hvp_equals_the_full_hessian_times_v(activation: str) -> None:
    model, X, y = tiny(activation)
    H = full_hessian(model, X, y)
    v = random_directions(model, 3, normalization="none", one_dim="keep")
    Hv = flatten(hvp(Problem(model, F.cross_entropy, X, y), v)).numpy()
    np.testing.assert_allclose(Hv, H @ flatten(v).numpy(), rtol=1e-9, atol=1e-12)


def test_lanczos_extremes_match_the_eigenvalues_of_the_full_hessian() -> None:
    model, X, y = tiny("tanh")
    H = full_hessian(model, X, y)
    eigenvalues = np.linalg.eigvalsh(H)
    dimension = H.shape[0]
    lo, hi = extreme_eigenvalues(Problem(model, F.cross_entropy, X, y), iterations=dimension)
    assert hi == pytest.approx(eigenvalues[-1], rel=1e-8)
    assert lo == pytest.approx(eigenvalues[0], rel=1e-6, abs=1e-10)
    assert lo < 0 < hi  # a non-convex point: the Hessian is indefinite
    # Fewer iterations: Ritz values lie inside the spectrum and lambda_max is already close.
    lo12, hi12 = extreme_eigenvalues(Problem(model, F.cross_entropy, X, y), iterations=12)
    assert eigenvalues[0] - 1e-12 <= lo12 and hi12 <= eigenvalues[-1] + 1e-12
    assert hi12 == pytest.approx(eigenvalues[-1], rel=1e-3)


def test_lanczos_on_a_known_spectrum() -> None:
    spectrum = torch.linspace(-2.0, 5.0, 40, dtype=torch.float64)
    Q, _ = torch.linalg.qr(torch.randn(40, 40, dtype=torch.float64))
    A = Q @ torch.diag(spectrum) @ Q.T
    ritz = lanczos(lambda v: A @ v, 40, 40, seed=0, device="cpu")
    np.testing.assert_allclose(ritz, spectrum.numpy(), atol=1e-10)
    with pytest.raises(ValueError, match="iterations"):
        lanczos(lambda v: A @ v, 40, 41, seed=0, device="cpu")


def test_hutchinson_trace_is_within_its_error_bar() -> None:
    model, X, y = tiny("tanh")
    exact = float(np.trace(full_hessian(model, X, y)))
    estimate, error = hutchinson_trace(Problem(model, F.cross_entropy, X, y), samples=400, seed=2)
    assert error > 0
    assert abs(estimate - exact) < 4 * error


def test_slice_hessian_exact_and_by_finite_differences() -> None:
    model, X, y = tiny("tanh")
    d1 = random_directions(model, 1, one_dim="keep")
    d2 = random_directions(model, 2, one_dim="keep")
    H = full_hessian(model, X, y)
    D = np.stack([flatten(d1).numpy(), flatten(d2).numpy()])
    H2 = slice_hessian(Problem(model, F.cross_entropy, X, y), d1, d2)
    np.testing.assert_allclose(H2, D @ H @ D.T, rtol=1e-9, atol=1e-12)
    h = 1e-3
    grid = np.array([-h, 0.0, h])
    Z = surface_2d(Problem(model, F.cross_entropy, X, y), d1, d2, grid, grid)
    fd = slice_hessian_fd(Z, grid, grid)
    assert fd.shape == (1, 1, 2, 2)
    np.testing.assert_allclose(fd[0, 0], H2, rtol=1e-4, atol=1e-6)


def test_slice_hessian_fd_of_a_quadratic_is_exact() -> None:
    a, b = np.linspace(-1, 1, 5), np.linspace(0, 2, 4)
    A, B = np.meshgrid(a, b, indexing="ij")
    Z = 3 * A**2 - 2 * A * B + 0.5 * B**2 + A
    fd = slice_hessian_fd(Z, a, b)
    np.testing.assert_allclose(fd, np.broadcast_to([[6.0, -2.0], [-2.0, 1.0]], (3, 2, 2, 2)))
    with pytest.raises(ValueError, match="evenly"):
        slice_hessian_fd(Z, np.array([0, 1, 3, 4, 5.0]), b)


def test_curvature_map_matches_the_full_hessian_at_each_point() -> None:
    model, X, y = tiny("tanh")
    d1, d2 = random_directions(model, 1), random_directions(model, 2)
    grid = np.array([-0.5, 0.5])
    dimension = sum(p.numel() for p in model.parameters())
    cmap = curvature_map(
        Problem(model, F.cross_entropy, X, y), d1, d2, grid, grid, iterations=dimension
    )
    center = parameters_of(model)
    for i, a in enumerate(grid):
        for j, b in enumerate(grid):
            eig = np.linalg.eigvalsh(full_hessian(model, X, y, combine(center, (a, d1), (b, d2))))
            assert cmap.lambda_max[i, j] == pytest.approx(eig[-1], rel=1e-7)
            assert cmap.lambda_min[i, j] == pytest.approx(eig[0], rel=1e-5, abs=1e-9)
            assert cmap.ratio[i, j] == pytest.approx(abs(eig[0] / eig[-1]), rel=1e-5, abs=1e-9)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_torchscript_hvp_and_the_model_is_restored() -> None:
    model, X, y = tiny("tanh")
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(model), buffer)
    scripted = torch.jit.load(io.BytesIO(buffer.getvalue()))
    before = parameters_of(scripted)
    v = random_directions(model, 4, normalization="none", one_dim="keep")
    point = combine(parameters_of(model), (0.3, v))
    expected = full_hessian(model, X, y, point) @ flatten(v).numpy()
    got = flatten(hvp(Problem(scripted, F.cross_entropy, X, y), v, point)).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12)
    after = parameters_of(scripted)
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_multibranch_hvp_matches_a_finite_difference_of_gradients() -> None:
    """A second, cheaper reference on a bigger model: (g(theta + h v) - g(theta - h v)) / 2h."""
    torch.manual_seed(0)
    model = MultiBranchNet(6, 3, branches=4, width=5, activation="softplus").double()
    X = torch.randn(30, 6, dtype=torch.float64)
    y = torch.randint(0, 3, (30,))
    v = random_directions(model, 1, one_dim="keep")
    center = parameters_of(model)
    h = 1e-5

    def gradient(point) -> np.ndarray:
        leaves = {k: t.clone().requires_grad_(True) for k, t in point.items()}
        loss = F.cross_entropy(functional_call(model, leaves, (X,)), y)
        return flatten(
            dict(zip(leaves, torch.autograd.grad(loss, list(leaves.values())), strict=True))
        ).numpy()

    fd = (gradient(combine(center, (h, v))) - gradient(combine(center, (-h, v)))) / (2 * h)
    Hv = flatten(hvp(Problem(model, F.cross_entropy, X, y), v)).numpy()
    np.testing.assert_allclose(Hv, fd, rtol=1e-5, atol=1e-7)
