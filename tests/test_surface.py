"""Loss surfaces: every engine path equals an independent per-point loop written here."""

from __future__ import annotations

import copy
import io

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from landscape.engine.directions import parameters_of, random_directions
from landscape.engine.nets import MultiBranchNet, mlp
from landscape.engine.problem import Problem
from landscape.engine.surface import (
    batched_loss,
    has_fast_path,
    interpolate,
    surface_1d,
    surface_2d,
    surface_2d_band,
    surface_points,
)

GRID_A = np.linspace(-1.0, 1.0, 7)
GRID_B = np.linspace(-0.8, 1.2, 6)
SMALL = np.array([-0.7, 0.0, 0.9])


def reference_surface(model, loss_fn, X, y, d1, d2, alphas, betas, center=None) -> np.ndarray:
    """Independent baseline: a deep copy per point, weights assigned, forward, loss."""
    center = parameters_of(model) if center is None else center
    Z = np.empty((len(alphas), len(betas)))
    for i, a in enumerate(alphas):
        for j, b in enumerate(betas):
            clone = copy.deepcopy(model).eval()
            with torch.no_grad():
                for name, p in clone.named_parameters():
                    p.copy_(center[name] + a * d1[name] + b * d2[name])
                Z[i, j] = float(loss_fn(clone(X), y))
    return Z


def classification_data(n: int = 37, d: int = 5, k: int = 3, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g, dtype=torch.float64), torch.randint(
        0, k, (n,), generator=g
    )


def conv_net(batch_norm: bool) -> nn.Module:
    layers: list[nn.Module] = [nn.Conv2d(1, 4, 3)]
    if batch_norm:
        layers.append(nn.BatchNorm2d(4))
    layers += [nn.ReLU(), nn.Flatten(), nn.Linear(4 * 4 * 4, 3)]
    return nn.Sequential(*layers)


def trained_batch_norm(model: nn.Module, X: torch.Tensor) -> nn.Module:
    """Give BatchNorm running statistics away from (0, 1) by a few forward passes."""
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(X * 2 + 1)
    return model


def models_and_data():
    torch.manual_seed(0)
    X, y = classification_data()
    images = torch.randn(23, 1, 6, 6, dtype=torch.float64)
    labels = torch.randint(0, 3, (23,))
    bn = trained_batch_norm(conv_net(batch_norm=True).double(), images)
    return {
        "multibranch_relu": (MultiBranchNet(5, 3, 4, 6).double(), X, y),
        "multibranch_tanh": (MultiBranchNet(5, 3, 3, 4, activation="tanh").double(), X, y),
        "multibranch_depth2": (MultiBranchNet(5, 3, 3, 4, depth=2).double(), X, y),
        "mlp": (mlp(5, 3, [8, 8]).double(), X, y),
        "conv": (conv_net(batch_norm=False).double(), images, labels),
        "conv_batchnorm_eval": (bn, images, labels),
    }


CASES = list(models_and_data())


@pytest.mark.parametrize("case", CASES)
def test_surface_equals_the_per_point_loop(case: str) -> None:
    model, X, y = models_and_data()[case]
    d1 = random_directions(model, 1)
    d2 = random_directions(model, 2, one_dim="keep")
    expected = reference_surface(model, F.cross_entropy, X, y, d1, d2, GRID_A, GRID_B)
    Z = surface_2d(Problem(model, F.cross_entropy, X, y), d1, d2, GRID_A, GRID_B)
    assert Z.shape == (len(GRID_A), len(GRID_B))
    np.testing.assert_allclose(Z, expected, rtol=0, atol=1e-5)
    np.testing.assert_allclose(Z, expected, rtol=1e-10, atol=1e-10)  # float64 reaches rounding


def test_the_fast_path_is_taken_for_one_hidden_layer_only() -> None:
    assert has_fast_path(MultiBranchNet(2, 1, 2, 2))
    assert not has_fast_path(MultiBranchNet(2, 1, 2, 2, depth=2))
    assert not has_fast_path(mlp(2, 1, [3]))


@pytest.mark.parametrize("method", ["fast", "vmap", "loop"])
def test_every_method_agrees_in_float32(method: str) -> None:
    torch.manual_seed(1)
    model = MultiBranchNet(5, 3, 8, 6)
    X, y = classification_data(n=300)
    X = X.float()
    d1, d2 = random_directions(model, 1), random_directions(model, 2)
    expected = reference_surface(
        model.double(),
        F.cross_entropy,
        X.double(),
        y,
        {k: v.double() for k, v in d1.items()},
        {k: v.double() for k, v in d2.items()},
        GRID_A,
        GRID_B,
    )
    model.float()
    Z = surface_2d(Problem(model, F.cross_entropy, X, y), d1, d2, GRID_A, GRID_B, method=method)
    np.testing.assert_allclose(Z, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("case", ["multibranch_relu", "mlp"])
def test_chunking_does_not_change_the_result(case: str) -> None:
    model, X, y = models_and_data()[case]
    X = X.repeat(16, 1)  # 592 samples: several sample blocks in the smallest budget
    y = y.repeat(16)
    d1, d2 = random_directions(model, 3), random_directions(model, 4)
    grid = np.linspace(-2, 2, 13)
    small = surface_2d(
        Problem(model, F.cross_entropy, X, y, memory_budget=2**20), d1, d2, grid, grid
    )
    large = surface_2d(
        Problem(model, F.cross_entropy, X, y, memory_budget=2**30), d1, d2, grid, grid
    )
    np.testing.assert_allclose(small, large, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", ["multibranch_relu", "conv_batchnorm_eval"])
def test_the_centre_is_the_models_loss(case: str) -> None:
    model, X, y = models_and_data()[case]
    d1, d2 = random_directions(model, 1), random_directions(model, 2)
    Z = surface_2d(Problem(model, F.cross_entropy, X, y), d1, d2, [0.0], [0.0])
    model.eval()
    with torch.no_grad():
        assert Z[0, 0] == pytest.approx(float(F.cross_entropy(model(X), y)), abs=1e-12)


@pytest.mark.parametrize("method", ["auto", "vmap", "loop"])
def test_the_model_is_unchanged(method: str) -> None:
    model, X, y = models_and_data()["conv_batchnorm_eval"]
    model.train()
    before = copy.deepcopy(model.state_dict())
    d1, d2 = random_directions(model, 1), random_directions(model, 2)
    surface_2d(Problem(model, F.cross_entropy, X, y), d1, d2, GRID_A, GRID_B, method=method)
    assert model.training and all(m.training for m in model.modules())
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


@pytest.mark.filterwarnings("ignore:There is a performance drop")
def test_other_losses_and_regression() -> None:
    model, X, y = models_and_data()["multibranch_relu"]
    d1, d2 = random_directions(model, 1), random_directions(model, 2)
    hinge = reference_surface(model, F.multi_margin_loss, X, y, d1, d2, SMALL, SMALL)
    np.testing.assert_allclose(
        surface_2d(Problem(model, F.multi_margin_loss, X, y), d1, d2, SMALL, SMALL),
        hinge,
        atol=1e-10,
    )
    targets = torch.randn(X.shape[0], 3, dtype=torch.float64)
    for loss in (F.mse_loss, nn.MSELoss(), nn.SmoothL1Loss()):
        expected = reference_surface(model, loss, X, targets, d1, d2, SMALL, SMALL)
        Z = surface_2d(Problem(model, loss, X, targets), d1, d2, SMALL, SMALL)
        np.testing.assert_allclose(Z, expected, atol=1e-10)


def test_cross_entropy_with_ignored_labels() -> None:
    outputs = torch.randn(4, 9, 3, dtype=torch.float64)
    y = torch.tensor([0, 2, 1, -100, 1, 0, 2, 2, -100])
    loss = nn.CrossEntropyLoss()
    expected = torch.stack([loss(o, y) for o in outputs])
    torch.testing.assert_close(batched_loss(loss, outputs, y), expected)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_torchscript_models_use_the_loop() -> None:
    model, X, y = models_and_data()["mlp"]
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(model), buffer)
    scripted = torch.jit.load(io.BytesIO(buffer.getvalue()))
    d1, d2 = random_directions(model, 1), random_directions(model, 2)
    expected = reference_surface(model, F.cross_entropy, X, y, d1, d2, SMALL, SMALL)
    Z = surface_2d(Problem(scripted, F.cross_entropy, X, y), d1, d2, SMALL, SMALL)
    np.testing.assert_allclose(Z, expected, atol=1e-12)
    with pytest.raises(ValueError, match="vmap"):
        surface_2d(Problem(scripted, F.cross_entropy, X, y), d1, d2, SMALL, SMALL, method="vmap")


def test_surface_1d_and_interpolation_end_at_the_checkpoints() -> None:
    model, X, y = models_and_data()["multibranch_relu"]
    other = copy.deepcopy(model)
    with torch.no_grad():
        for p in other.parameters():
            p.add_(torch.randn_like(p))
    start, end = parameters_of(model), parameters_of(other)
    ts = np.linspace(0, 1, 5)
    z = interpolate(Problem(model, F.cross_entropy, X, y), start, end, ts)
    with torch.no_grad():
        assert z[0] == pytest.approx(float(F.cross_entropy(model(X), y)), abs=1e-12)
        assert z[-1] == pytest.approx(float(F.cross_entropy(other(X), y)), abs=1e-12)
    d = random_directions(model, 5)
    line = surface_1d(Problem(model, F.cross_entropy, X, y), d, GRID_A)
    zero = {k: torch.zeros_like(v) for k, v in d.items()}
    expected = reference_surface(model, F.cross_entropy, X, y, d, zero, GRID_A, [0.0])[:, 0]
    np.testing.assert_allclose(line, expected, atol=1e-12)


def test_subsampled_band_is_unbiased() -> None:
    """A sub-sampled mean loss is an unbiased estimate of the full loss: Monte Carlo check."""
    model, X, y = models_and_data()["multibranch_relu"]
    d1, d2 = random_directions(model, 1), random_directions(model, 2)
    grid = np.linspace(-1, 1, 3)
    full = surface_2d(Problem(model, F.cross_entropy, X, y), d1, d2, grid, grid)
    repeats = 40
    mean, std = surface_2d_band(
        Problem(model, F.cross_entropy, X, y),
        d1,
        d2,
        grid,
        grid,
        sample_size=12,
        repeats=repeats,
        seed=3,
    )
    assert np.all(std > 0)
    assert np.all(np.abs(mean - full) < 5 * std / np.sqrt(repeats))
    whole, spread = surface_2d_band(
        Problem(model, F.cross_entropy, X, y), d1, d2, grid, grid, sample_size=X.shape[0], repeats=2
    )
    np.testing.assert_allclose(whole, full, atol=1e-12)
    np.testing.assert_allclose(spread, 0.0, atol=1e-12)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"alphas": []}, "alphas"),
        ({"betas": [0.0, np.nan]}, "betas"),
        ({"method": "fast"}, "fast"),
        ({"method": "turbo"}, "method"),
    ],
)
def test_bad_arguments_raise(kwargs: dict, field: str) -> None:
    model, X, y = models_and_data()["mlp"]
    d = random_directions(model, 1)
    arguments = {"alphas": GRID_A, "betas": GRID_B, **kwargs}
    with pytest.raises(ValueError, match=field):
        surface_2d(Problem(model, F.cross_entropy, X, y), d, d, **arguments)


def test_a_bad_problem_raises() -> None:
    model, X, y = models_and_data()["mlp"]
    with pytest.raises(ValueError, match="memory_budget"):
        Problem(model, F.cross_entropy, X, y, memory_budget=10)
    with pytest.raises(ValueError, match="same number"):
        Problem(model, F.cross_entropy, X, y[:-1])
    with pytest.raises(ValueError, match="at least one parameter"):
        Problem(nn.ReLU(), F.cross_entropy, X, y)
    problem = Problem(model, F.cross_entropy, X, y)
    for size in (0, 2.5, X.shape[0] + 1):
        with pytest.raises(ValueError, match="sample_size"):
            problem.sample(size, seed=0)


def test_the_problem_holds_the_data_on_the_models_device_and_dtype() -> None:
    model = mlp(5, 3, [8]).float()
    X, y = classification_data()
    problem = Problem(model, F.cross_entropy, X.numpy(), y)
    assert problem.X.dtype == torch.float32 and problem.y.dtype == y.dtype
    assert (problem.device, problem.dtype, problem.n_samples) == (
        torch.device("cpu"),
        torch.float32,
        37,
    )
    torch.testing.assert_close(problem.X, X.float())
    part = problem.sample(10, seed=4)
    keep = torch.randperm(37, generator=torch.Generator().manual_seed(4))[:10]
    torch.testing.assert_close(part.X, problem.X[keep])
    torch.testing.assert_close(part.y, y[keep])


def test_directions_must_match_the_parameters() -> None:
    model, X, y = models_and_data()["mlp"]
    d = random_directions(model, 1)
    with pytest.raises(ValueError, match="d2"):
        surface_2d(
            Problem(model, F.cross_entropy, X, y), d, {"0.weight": d["0.weight"]}, [0.0], [0.0]
        )


@pytest.mark.gpu
def test_cuda_surface_equals_cpu() -> None:
    model, X, y = models_and_data()["multibranch_relu"]
    d1, d2 = random_directions(model, 1), random_directions(model, 2)
    cpu = surface_2d(Problem(model, F.cross_entropy, X, y), d1, d2, GRID_A, GRID_B)
    gpu_model = copy.deepcopy(model).cuda()
    gpu = surface_2d(Problem(gpu_model, F.cross_entropy, X, y), d1, d2, GRID_A, GRID_B)
    np.testing.assert_allclose(gpu, cpu, atol=1e-10)


@pytest.mark.parametrize("case", ["multibranch_relu", "conv_batchnorm_eval"])
def test_scattered_points_equal_the_loop(case: str) -> None:
    model, X, y = models_and_data()[case]
    d1, d2 = random_directions(model, 1), random_directions(model, 2)
    coords = np.array([[0.3, -0.2], [-1.0, 0.7], [0.0, 0.0]])
    z = surface_points(Problem(model, F.cross_entropy, X, y), d1, d2, coords)
    expected = [
        reference_surface(model, F.cross_entropy, X, y, d1, d2, [a], [b])[0, 0] for a, b in coords
    ]
    np.testing.assert_allclose(z, expected, atol=1e-12)


def test_zero_directions_give_the_centre_everywhere() -> None:
    model, X, y = models_and_data()["mlp"]
    zero = {k: torch.zeros_like(v) for k, v in parameters_of(model).items()}
    Z = surface_2d(Problem(model, F.cross_entropy, X, y), zero, zero, SMALL, SMALL)
    with torch.no_grad():
        np.testing.assert_allclose(Z, float(F.cross_entropy(model(X), y)), atol=1e-12)


def test_fast_path_blocks_over_betas_and_samples(monkeypatch) -> None:
    """A tiny cache block forces many beta chunks and one-sample blocks (with padding)."""
    import landscape.engine.surface as engine

    model, X, y = models_and_data()["multibranch_relu"]
    d1, d2 = random_directions(model, 1), random_directions(model, 2, one_dim="keep")
    grid = np.linspace(-1, 1, 13)
    expected = surface_2d(Problem(model, F.cross_entropy, X, y), d1, d2, grid, grid, method="vmap")
    monkeypatch.setattr(engine, "CPU_BLOCK_BYTES", 5 * 8 * 24)  # 5 betas x 1 sample x 24 units
    Z = surface_2d(Problem(model, F.cross_entropy, X, y), d1, d2, grid, grid, method="fast")
    np.testing.assert_allclose(Z, expected, rtol=1e-12, atol=1e-12)
    monkeypatch.setattr(engine, "CPU_BLOCK_BYTES", 13 * 5 * 8 * 24)  # 13 betas x 5 samples
    Z = surface_2d(Problem(model, F.cross_entropy, X, y), d1, d2, grid, grid, method="fast")
    np.testing.assert_allclose(Z, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("activation", ["relu", "tanh", "softplus", "gelu", "linear"])
def test_fast_path_for_every_activation(activation: str) -> None:
    torch.manual_seed(2)
    model = MultiBranchNet(5, 3, 3, 4, activation=activation).double()
    X, y = classification_data()
    d1, d2 = random_directions(model, 1), random_directions(model, 2, one_dim="keep")
    expected = reference_surface(model, F.cross_entropy, X, y, d1, d2, SMALL, SMALL)
    Z = surface_2d(Problem(model, F.cross_entropy, X, y), d1, d2, SMALL, SMALL, method="fast")
    np.testing.assert_allclose(Z, expected, rtol=1e-10, atol=1e-10)
