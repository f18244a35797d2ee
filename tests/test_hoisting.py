"""Hoisting the weight layers a model applies to its data (``landscape.engine.hoisting``).

The model with its hoisted calls substituted is checked against the whole model evaluated at the
combined weights ``theta + a d1 + b d2``, and surfaces through it against the per-point loop of
``test_surface``.
"""

from __future__ import annotations

import subprocess
import sys
import threading

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from test_surface import GRID_A, GRID_B, classification_data, reference_surface
from torch import nn
from torch.func import functional_call, vmap

from landscape.engine.directions import parameters_of, random_directions
from landscape.engine.hoisting import hoist_first_layers, substituted_calls
from landscape.engine.nets import MultiBranchNet, mlp
from landscape.engine.problem import Problem
from landscape.engine.surface import path_taken, surface_2d

POINTS = [(0.0, 0.0), (0.7, -0.3), (-1.2, 0.5)]


class InputSkip(nn.Module):
    """A residual connection from the input: the rest still reads the data."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(5, 5), nn.Linear(5, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.relu(self.fc1(x)) + x)


class TwoTowers(nn.Module):
    """Two layers on the data, one of them on features computed from it."""

    def __init__(self) -> None:
        super().__init__()
        self.raw, self.squared, self.head = (
            nn.Linear(5, 4),
            nn.Linear(10, 4, bias=False),
            nn.Linear(8, 3),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = torch.cat([x, x * x], dim=1)
        h = torch.cat([torch.relu(self.raw(x)), torch.tanh(self.squared(features))], dim=1)
        return self.head(h)


class SharedLayer(nn.Module):
    """The hoisted layer is called a second time, on hidden units."""

    def __init__(self) -> None:
        super().__init__()
        self.fc, self.head = nn.Linear(5, 5), nn.Linear(5, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.fc(torch.relu(self.fc(x)))))


class TiedWeights(nn.Module):
    """A later layer holds the first layer's weight."""

    def __init__(self) -> None:
        super().__init__()
        self.first, self.second, self.head = nn.Linear(5, 5), nn.Linear(5, 5), nn.Linear(5, 3)
        self.second.weight = self.first.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.second(torch.relu(self.first(x)))))


class GatedByParameters(nn.Module):
    """The second layer's input depends on the parameters only through a comparison and a
    ``detach``: no gradient flows, but it moves with the weights, so it must not be hoisted."""

    def __init__(self) -> None:
        super().__init__()
        self.gate, self.fc, self.head = nn.Linear(5, 5), nn.Linear(5, 5), nn.Linear(5, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mask = (self.gate(x) > 0).to(x.dtype)
        scale = self.gate.weight.detach().abs().mean()
        return self.head(torch.relu(self.fc(x * mask * scale)))


class FunctionalOnly(nn.Module):
    """Weights used through functions, no ``Linear``/``Conv`` module: nothing to hoist."""

    def __init__(self) -> None:
        super().__init__()
        self.hidden = nn.Parameter(torch.randn(5, 6))
        self.out = nn.Parameter(torch.randn(6, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x @ self.hidden) @ self.out


def image_mlp() -> nn.Module:
    """Flatten (a parameter-free prefix) before the first layer."""
    return nn.Sequential(nn.Flatten(), nn.Linear(36, 6), nn.ReLU(), nn.Linear(6, 3))


def conv_batch_norm() -> nn.Module:
    model = nn.Sequential(
        nn.Conv2d(1, 3, 3, padding=1, padding_mode="reflect"),
        nn.BatchNorm2d(3),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(3 * 6 * 6, 3),
    )
    model.train()
    with torch.no_grad():
        model(torch.randn(8, 1, 6, 6) * 2 + 1)  # running statistics away from (0, 1)
    return model


HOISTED = {
    "mlp": (lambda: mlp(5, 3, [8, 8]), "vectors", ("0",)),
    "image_mlp": (image_mlp, "images", ("1",)),
    "conv_batch_norm": (conv_batch_norm, "images", ("0",)),
    "input_skip": (InputSkip, "vectors", ("fc1",)),
    "two_towers": (TwoTowers, "vectors", ("raw", "squared")),
    "shared_layer": (SharedLayer, "vectors", ("fc",)),
    "tied_weights": (TiedWeights, "vectors", ("first",)),
    "gated_by_parameters": (GatedByParameters, "vectors", ("gate",)),
}
NOT_HOISTED = {
    "multibranch_functional_forward": lambda: MultiBranchNet(5, 3, 2, 4, depth=2),
    "functional_only": FunctionalOnly,
}


def case(name: str) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    build, inputs, _ = HOISTED[name]
    model = build().double().eval()
    if inputs == "vectors":
        X, y = classification_data()
    else:
        X, y = torch.randn(23, 1, 6, 6, dtype=torch.float64), torch.randint(0, 3, (23,))
    return model, X, y


@pytest.mark.parametrize("name", list(HOISTED))
def test_substituted_calls_recompose_the_model(name: str) -> None:
    model, X, _ = case(name)
    center = parameters_of(model)
    d1, d2 = random_directions(model, 1), random_directions(model, 2, one_dim="keep")
    with torch.no_grad():
        hoisted = hoist_first_layers(model, X, center, d1, d2)
    assert hoisted is not None
    assert hoisted.layers == HOISTED[name][2]
    coords = torch.tensor(POINTS, dtype=torch.float64)
    params = {
        n: torch.stack([center[n] + a * d1[n] + b * d2[n] for a, b in POINTS]) for n in center
    }
    with substituted_calls(model, hoisted) as use, torch.no_grad():

        def forward(point: dict, *outputs: torch.Tensor) -> torch.Tensor:
            use(outputs)
            return functional_call(model, point, (X,))

        split = vmap(forward)(params, *hoisted.outputs_at(coords))
    assert "forward" not in vars(model.get_submodule(HOISTED[name][2][0]))  # restored
    for k, (a, b) in enumerate(POINTS):
        weights = {n: center[n] + a * d1[n] + b * d2[n] for n in center}
        with torch.no_grad():
            whole = functional_call(model, weights, (X,))
        torch.testing.assert_close(split[k], whole, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", list(NOT_HOISTED))
def test_models_the_split_cannot_serve_are_left_whole(name: str) -> None:
    torch.manual_seed(0)
    model = NOT_HOISTED[name]().double().eval()
    X, y = classification_data()
    d1, d2 = random_directions(model, 1), random_directions(model, 2)
    with torch.no_grad():
        assert hoist_first_layers(model, X, parameters_of(model), d1, d2) is None
    # ... and the engine's general path still gives the loop's surface.
    expected = reference_surface(model, F.cross_entropy, X, y, d1, d2, GRID_A, GRID_B)
    Z = surface_2d(Problem(model, F.cross_entropy, X, y), d1, d2, GRID_A, GRID_B, method="vmap")
    np.testing.assert_allclose(Z, expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name", list(HOISTED))
def test_surfaces_through_the_split_equal_the_loop(name: str) -> None:
    model, X, y = case(name)
    d1, d2 = random_directions(model, 3), random_directions(model, 4, one_dim="keep")
    expected = reference_surface(model, F.cross_entropy, X, y, d1, d2, GRID_A, GRID_B)
    Z = surface_2d(Problem(model, F.cross_entropy, X, y), d1, d2, GRID_A, GRID_B, method="vmap")
    np.testing.assert_allclose(Z, expected, rtol=1e-10, atol=1e-10)


def test_a_split_whose_hoisted_layer_does_not_move() -> None:
    """Directions that leave the first layer alone: ``Z1 = Z2 = 0``, the rest carries the
    whole surface; and directions that move only the first layer: nothing else is batched."""
    model, X, y = case("mlp")
    d1, d2 = random_directions(model, 1), random_directions(model, 2)
    for keep in (lambda n: not n.startswith("0."), lambda n: n.startswith("0.")):
        e1 = {n: t if keep(n) else torch.zeros_like(t) for n, t in d1.items()}
        e2 = {n: t if keep(n) else torch.zeros_like(t) for n, t in d2.items()}
        expected = reference_surface(model, F.cross_entropy, X, y, e1, e2, GRID_A, GRID_B)
        Z = surface_2d(Problem(model, F.cross_entropy, X, y), e1, e2, GRID_A, GRID_B, method="vmap")
        np.testing.assert_allclose(Z, expected, rtol=1e-10, atol=1e-10)


def test_outputs_too_large_to_store_are_not_hoisted() -> None:
    model, X, _ = case("mlp")
    center, d1, d2 = parameters_of(model), random_directions(model, 1), random_directions(model, 2)
    stored = 3 * X.shape[0] * 8 * X.element_size()  # three (n, 8) outputs of the first layer
    with torch.no_grad():
        assert hoist_first_layers(model, X, center, d1, d2, max_bytes=stored) is not None
        assert hoist_first_layers(model, X, center, d1, d2, max_bytes=stored - 1) is None


def test_hoisting_leaves_other_threads_alone() -> None:
    """Another session's model keeps running while this one is analysed (``torch.fx``'s tracer,
    which patches ``nn.Module.__call__`` process-wide, breaks exactly this)."""
    other, x = nn.Sequential(nn.Linear(4, 4), nn.ReLU()), torch.randn(2, 4)
    expected = other(x).detach()
    failures: list[str] = []
    stop = threading.Event()

    def keep_running() -> None:
        while not stop.is_set():
            try:
                with torch.no_grad():
                    torch.testing.assert_close(other(x), expected)
            except Exception as error:  # noqa: BLE001 - any failure is what the test looks for
                failures.append(repr(error))

    model = mlp(5, 3, [8] * 40).double().eval()  # deep: a long analysis, many chances to meet
    X, _ = classification_data()
    center, d1, d2 = parameters_of(model), random_directions(model, 1), random_directions(model, 2)
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # switch threads often
    worker = threading.Thread(target=keep_running)
    worker.start()
    try:
        with torch.no_grad():
            for _ in range(20):
                assert hoist_first_layers(model, X, center, d1, d2) is not None
    finally:
        stop.set()
        worker.join()
        sys.setswitchinterval(interval)
    assert failures == []


@pytest.mark.slow
def test_finding_the_layers_does_not_import_the_compiler() -> None:
    """A dispatch mode's first use would import ``torch._dynamo`` (1-2 s, ~50 MiB) unless told
    that nothing under it is compiled: the first surface of a session stays quick."""
    script = (
        "import sys, torch\n"
        "from landscape.engine.directions import parameters_of, random_directions\n"
        "from landscape.engine.hoisting import hoist_first_layers\n"
        "from landscape.engine.nets import mlp\n"
        "model, X = mlp(3, 2, [4]).eval(), torch.randn(5, 3)\n"
        "d1, d2 = random_directions(model, 1), random_directions(model, 2)\n"
        "with torch.no_grad():\n"
        "    assert hoist_first_layers(model, X, parameters_of(model), d1, d2) is not None\n"
        "print('torch._dynamo' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    )
    assert result.stdout.strip() == "False"


def test_the_path_taken_names_the_hoisted_layers() -> None:
    X, y = classification_data()
    cases = {
        "fast": MultiBranchNet(5, 3, 2, 4).double(),
        "vmap, nothing hoisted": MultiBranchNet(5, 3, 2, 4, depth=2).double(),
        "vmap, hoisted: 0 (Linear)": mlp(5, 3, [8, 8]).double(),
        "vmap, hoisted: raw (Linear), squared (Linear)": TwoTowers().double(),
    }
    for expected, model in cases.items():
        assert path_taken(Problem(model, F.cross_entropy, X, y)) == expected
