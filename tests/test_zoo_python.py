"""The Python door: every architecture of the zoo through the engine, against the per-point
loop over ``torch.func.functional_call`` (`zoo.reference_surface`), float32 to 1e-5 relative.

Where ``vmap`` has no batching rule (the LSTM and GRU), the engine falls back by itself to one
``functional_call`` per point and says so; an error of the model itself still reaches the caller.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from zoo import BY_NAME, ZOO, Species, reference_surface

from landscape.engine.curvature import hvp
from landscape.engine.directions import random_directions
from landscape.engine.problem import Problem, cross_entropy_over_positions
from landscape.engine.surface import (
    interpolate,
    path_taken,
    surface_1d,
    surface_2d,
    surface_points,
)

ALPHAS = np.linspace(-0.8, 0.8, 4)
BETAS = np.linspace(-0.6, 1.0, 5)
RTOL = 1e-5


def plane(species: Species) -> tuple[nn.Module, torch.Tensor, torch.Tensor, dict, dict]:
    model = species.model()
    X, y = species.dataset()
    return model, X, y, random_directions(model, 1), random_directions(model, 2, one_dim="keep")


@pytest.mark.parametrize("species", ZOO, ids=lambda s: s.name)
def test_surface_equals_the_per_point_loop(species: Species) -> None:
    model, X, y, d1, d2 = plane(species)
    problem = Problem(model, species.loss, X, y)
    Z = surface_2d(problem, d1, d2, ALPHAS, BETAS)
    expected = reference_surface(model, species.loss, X, y, d1, d2, ALPHAS, BETAS)
    np.testing.assert_allclose(Z, expected, rtol=RTOL)
    path = path_taken(problem)
    if species.recurrent:
        assert path.startswith("loop (vmap has no batching rule for aten::"), path
    else:
        assert path.startswith("vmap"), path


@pytest.mark.parametrize("species", ZOO, ids=lambda s: s.name)
def test_batches_and_scattered_points_equal_the_loop(species: Species) -> None:
    """``Problem(batch_rows=)`` (integer inputs and (n, T) targets sliced too) and
    ``surface_points`` give the loop's numbers."""
    model, X, y, d1, d2 = plane(species)
    expected = reference_surface(model, species.loss, X, y, d1, d2, ALPHAS, BETAS)
    batched = Problem(model, species.loss, X, y, batch_rows=20)
    np.testing.assert_allclose(surface_2d(batched, d1, d2, ALPHAS, BETAS), expected, rtol=RTOL)
    coords = [(ALPHAS[0], BETAS[4]), (ALPHAS[2], BETAS[1])]
    z = surface_points(Problem(model, species.loss, X, y), d1, d2, coords)
    np.testing.assert_allclose(z, [expected[0, 4], expected[2, 1]], rtol=RTOL)


@pytest.mark.parametrize("name", ["lstm", "gru"])
def test_recurrent_lines_and_interpolation_equal_the_loop(name: str) -> None:
    species = BY_NAME[name]
    model, X, y, d1, _ = plane(species)
    zero = {k: torch.zeros_like(t) for k, t in d1.items()}
    expected = reference_surface(model, species.loss, X, y, d1, zero, ALPHAS, [0.0])[:, 0]
    problem = Problem(model, species.loss, X, y)
    np.testing.assert_allclose(surface_1d(problem, d1, ALPHAS), expected, rtol=RTOL)
    start = {k: p.detach() for k, p in model.named_parameters()}
    end = {k: start[k] + d1[k] for k in start}
    np.testing.assert_allclose(interpolate(problem, start, end, ALPHAS), expected, rtol=RTOL)


@pytest.mark.parametrize("name", ["lstm", "gru", "causal_lm", "vit"])
def test_hessian_vector_product_matches_finite_differences(name: str) -> None:
    """``v^T H v`` through autograd (recurrent nets: no vmap needed; attention: by its formula,
    the CPU's fused kernel has no double backward) against the second difference
    ``(L(t + e v) - 2 L(t) + L(t - e v)) / e^2`` in float64."""
    kind = "hessian"
    species = BY_NAME[name]
    model = species.model().double()
    X, y = species.dataset()
    X = X.double() if X.is_floating_point() else X
    y = y.double() if y.is_floating_point() else y
    v = random_directions(model, 3)
    Hv = hvp(Problem(model, species.loss, X, y), v, kind=kind)
    quadratic = float(sum((Hv[k] * v[k]).sum() for k in v))
    eps = 1e-3
    line = surface_1d(Problem(model, species.loss, X, y), v, [-eps, 0.0, eps])
    second = (line[0] - 2 * line[1] + line[2]) / eps**2
    assert quadratic == pytest.approx(second, rel=1e-4, abs=1e-6)


class _Doubling(torch.autograd.Function):
    """A custom autograd function without ``setup_context``: vmap refuses it."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return 2 * x

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return 2 * grad


class CustomFunctionNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.first, self.second = nn.Linear(5, 7), nn.Linear(7, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.second(torch.tanh(_Doubling.apply(self.first(x))))


class ValueBranchNet(CustomFunctionNet):
    """Control flow on a tensor's value, which vmap cannot batch."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.first(x)
        h = torch.tanh(h) if h.mean() > 0 else torch.sigmoid(h)
        return self.second(h)


@pytest.mark.parametrize(
    ("model_class", "reason"),
    [
        (CustomFunctionNet, "vmap cannot run the model: In order to use an autograd.Function"),
        (ValueBranchNet, "vmap cannot run the model: It looks like you're attempting to use"),
    ],
)
def test_other_vmap_refusals_fall_back_and_are_named(model_class: type, reason: str) -> None:
    torch.manual_seed(0)
    model = model_class().eval()
    X, y = torch.randn(30, 5), torch.randint(3, (30,))
    d1, d2 = random_directions(model, 1), random_directions(model, 2)
    problem = Problem(model, cross_entropy_over_positions, X, y)
    Z = surface_2d(problem, d1, d2, ALPHAS, BETAS)
    expected = reference_surface(model, cross_entropy_over_positions, X, y, d1, d2, ALPHAS, BETAS)
    np.testing.assert_allclose(Z, expected, rtol=RTOL)
    assert path_taken(problem).startswith(f"loop ({reason}"), path_taken(problem)


class BrokenNet(CustomFunctionNet):
    """A model whose own forward fails (a shape error): no fallback may hide it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.second(self.first(x).T)


def test_an_error_of_the_model_itself_is_not_swallowed() -> None:
    torch.manual_seed(0)
    model = BrokenNet().eval()
    X, y = torch.randn(30, 5), torch.randint(3, (30,))
    d1, d2 = random_directions(model, 1), random_directions(model, 2)
    with pytest.raises(RuntimeError, match="shapes cannot be multiplied"):
        surface_2d(Problem(model, cross_entropy_over_positions, X, y), d1, d2, ALPHAS, BETAS)


def test_cross_entropy_over_positions_is_the_mean_over_every_token() -> None:
    g = torch.Generator().manual_seed(0)
    logits, targets = torch.randn(4, 6, 11, generator=g), torch.randint(11, (4, 6), generator=g)
    by_hand = -torch.log_softmax(logits, -1).gather(-1, targets[..., None]).mean()
    assert float(cross_entropy_over_positions(logits, targets)) == pytest.approx(
        float(by_hand), rel=1e-6
    )
