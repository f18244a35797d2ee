"""Small models, data and one call of every public front-door function, shared by the tests of
`landscape`'s public API (tests/test_public_api*.py)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.func import functional_call

import landscape

N_SAMPLES, N_FEATURES, N_HIDDEN, N_CLASSES = 40, 4, 6, 3


def data(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``X`` (40, 4) float64 and integer labels ``y`` (40,) in {0, 1, 2} (NumPy, as sklearn)."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((N_SAMPLES, N_FEATURES))
    y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(np.int64) + (X[:, 2] > 1).astype(np.int64)
    return X, y


def mlp(seed: int = 0) -> nn.Sequential:
    """A tanh MLP 4 -> 6 -> 3 (51 parameters: small enough for the dense Hessian)."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(N_FEATURES, N_HIDDEN), nn.Tanh(), nn.Linear(N_HIDDEN, N_CLASSES))


def loss_at(
    model: nn.Module, params: dict[str, torch.Tensor], X: np.ndarray, y: np.ndarray
) -> float:
    """The cross-entropy at ``params``, by one forward of ``model`` in float64 (the reference)."""
    double = {k: v.detach().double() for k, v in params.items()}
    copy64 = copy.deepcopy(model).double()
    outputs = functional_call(copy64, double, (torch.as_tensor(X, dtype=torch.float64),))
    return float(nn.functional.cross_entropy(outputs, torch.as_tensor(y)))


def dense_hessian(model: nn.Module, X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The (P, P) Hessian of the mean cross-entropy at the model's parameters, float64, by
    ``torch.autograd.functional.hessian`` of a function of the flat parameter vector."""
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for _, p in model.named_parameters()]
    sizes = [p.numel() for _, p in model.named_parameters()]
    flat = torch.cat([p.detach().double().reshape(-1) for p in model.parameters()])
    X64, y64 = torch.as_tensor(X, dtype=torch.float64), torch.as_tensor(y)
    double = copy.deepcopy(model).double()

    def L(theta: torch.Tensor) -> torch.Tensor:
        parts = theta.split(sizes)
        params = {n: t.reshape(s) for n, t, s in zip(names, parts, shapes, strict=True)}
        return nn.functional.cross_entropy(functional_call(double, params, (X64,)), y64)

    H = torch.autograd.functional.hessian(L, flat).numpy()
    return (H + H.T) / 2


def trajectory(model: nn.Module, seed: int = 1) -> list[dict[str, torch.Tensor]]:
    """Five checkpoints ``theta + a_k u + b_k v`` on a plane through the model's parameters
    (``u``, ``v`` orthonormal), the last one ``theta`` itself."""
    theta = {k: v.detach().clone() for k, v in model.named_parameters()}
    generator = torch.Generator().manual_seed(seed)
    flat = torch.cat([t.reshape(-1) for t in theta.values()])
    basis, _ = torch.linalg.qr(
        torch.randn(flat.numel(), 2, generator=generator, dtype=torch.float64)
    )
    coefficients = [(0.9, 0.5), (0.6, -0.4), (0.3, 0.3), (0.1, -0.1), (0.0, 0.0)]
    checkpoints = []
    for a, b in coefficients:
        moved = flat.double() + a * basis[:, 0] + b * basis[:, 1]
        parts = moved.split([t.numel() for t in theta.values()])
        checkpoints.append(
            {
                k: p.reshape(t.shape).to(t.dtype)
                for (k, t), p in zip(theta.items(), parts, strict=True)
            }
        )
    return checkpoints


def end_model() -> nn.Sequential:
    """A second model of the same architecture (another seed), the end of an interpolation."""
    return mlp(seed=7)


def moved(model: nn.Module, step: float = 0.1) -> nn.Module:
    """A copy of ``model`` with every parameter shifted by ``step`` (the same architecture,
    buffers included: the end of an interpolation for any model)."""
    other = copy.deepcopy(model)
    with torch.no_grad():
        for p in other.parameters():
            p.add_(step)
    return other


Call = Callable[[nn.Module, np.ndarray, np.ndarray], Any]

#: One small call of each public function that takes a model; name -> call(model, X, y).
CALLS: dict[str, Call] = {
    "random_plane": lambda m, X, y: landscape.random_plane(m, "cross_entropy", X, y, resolution=5),
    "random_line": lambda m, X, y: landscape.random_line(m, "cross_entropy", X, y, points=7),
    "interpolation": lambda m, X, y: landscape.interpolation(
        m, "cross_entropy", X, y, moved(m), points=5
    ),
    "pca_plane": lambda m, X, y: landscape.pca_plane(
        m, "cross_entropy", X, y, trajectory(m), resolution=5
    ),
    "curvature": lambda m, X, y: landscape.curvature(m, "cross_entropy", X, y),
    "curvature_lanczos": lambda m, X, y: landscape.curvature(
        m, "cross_entropy", X, y, exact_limit=0, max_iterations=20
    ),
    "curvature_map": lambda m, X, y: landscape.curvature_map(
        m, "cross_entropy", X, y, resolution=2, max_iterations=10
    ),
    "spectral_density": lambda m, X, y: landscape.spectral_density(
        m, "cross_entropy", X, y, iterations=10, probes=3, exact_limit=100
    ),
    "hessian_trace": lambda m, X, y: landscape.hessian_trace(m, "cross_entropy", X, y, products=12),
    "empirical_ntk": lambda m, X, y: landscape.empirical_ntk(m, X[:8], y=y[:8]),
}

#: The positional inputs each call's metadata needs besides ``model``, ``X`` and ``y``.
EXTRA_INPUTS: dict[str, Callable[[nn.Module], dict[str, Any]]] = {
    "interpolation": lambda m: {"end": moved(m)},
    "pca_plane": lambda m: {"trajectory": trajectory(m)},
}
