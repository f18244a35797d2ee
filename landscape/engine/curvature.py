"""Curvature of the loss: Hessian-vector products, Lanczos, Hutchinson, the 2x2 slice Hessian.

``H = d^2 L / d theta^2`` is never formed: ``H v`` is one double backward pass (Pearlmutter's
trick, ``H v = d/d theta <grad L(theta), v>``). Vectors are flat over all parameters, in the
order of ``model.named_parameters()``. The model is evaluated in eval mode and left unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.func import functional_call

from landscape.engine.directions import Params, combine, flatten, parameters_of
from landscape.engine.problem import Problem
from landscape.engine.surface import Progress, eval_mode

Matvec = Callable[[torch.Tensor], torch.Tensor]


@contextmanager
def hessian_operator(
    problem: Problem, point: Mapping[str, torch.Tensor] | None = None
) -> Iterator[tuple[Matvec, torch.Tensor]]:
    """Yield ``(v -> H v, grad)`` of ``L = problem.loss_fn(f(point; X), y)`` at ``point``
    (default: the model's parameters).

    ``v`` and ``H v`` are flat float64 vectors of length P on the model's device; ``grad`` is
    the flat gradient. TorchScript models (which ``torch.func`` rejects) get ``point`` written
    into their parameters for the duration of the block and restored afterwards.
    """
    model = problem.model
    reference = parameters_of(model)
    point = reference if point is None else point
    names = list(reference)
    with eval_mode(model), _leaves(model, point, names) as (leaves, forward):
        loss = problem.loss_fn(forward(problem.X), problem.y)
        # allow_unused/materialize_grads: with a piecewise-linear loss (a hinge) some gradients,
        # such as the output bias's, do not depend on the parameters; their products are zero.
        grads = torch.autograd.grad(
            loss, leaves, create_graph=True, allow_unused=True, materialize_grads=True
        )
        flat_grad = torch.cat([g.reshape(-1) for g in grads])

        def matvec(v: torch.Tensor) -> torch.Tensor:
            products = torch.autograd.grad(
                flat_grad,
                leaves,
                grad_outputs=v.to(flat_grad.dtype),
                retain_graph=True,
                allow_unused=True,
                materialize_grads=True,
            )
            return torch.cat([p.reshape(-1) for p in products]).to(torch.float64)

        yield matvec, flat_grad.detach().to(torch.float64)


@contextmanager
def _leaves(
    model: nn.Module, point: Mapping[str, torch.Tensor], names: list[str]
) -> Iterator[tuple[list[torch.Tensor], Callable[[torch.Tensor], torch.Tensor]]]:
    if not isinstance(model, torch.jit.ScriptModule):
        leaves = [point[n].detach().clone().requires_grad_(True) for n in names]
        params = dict(zip(names, leaves, strict=True))
        yield leaves, lambda X: functional_call(model, params, (X,))
        return
    parameters = dict(model.named_parameters())
    saved = {n: p.detach().clone() for n, p in parameters.items()}
    flags = {n: p.requires_grad for n, p in parameters.items()}
    try:
        with torch.no_grad():
            for n in names:
                parameters[n].copy_(point[n])
                parameters[n].requires_grad_(True)
        yield [parameters[n] for n in names], model
    finally:
        with torch.no_grad():
            for n, p in parameters.items():
                p.copy_(saved[n])
                p.requires_grad_(flags[n])


def hvp(
    problem: Problem,
    v: Mapping[str, torch.Tensor],
    point: Mapping[str, torch.Tensor] | None = None,
) -> Params:
    """The Hessian-vector product ``H v`` at ``point``, as a dict shaped like the parameters."""
    with hessian_operator(problem, point) as (matvec, _):
        product = matvec(flatten(v).to(torch.float64))
    out: Params = {}
    offset = 0
    for name, t in v.items():
        out[name] = product[offset : offset + t.numel()].reshape(t.shape).to(t.dtype)
        offset += t.numel()
    return out


def lanczos(
    matvec: Matvec, dimension: int, iterations: int, seed: int, device: torch.device | str
) -> np.ndarray:
    """Ritz values of a symmetric operator after ``iterations`` Lanczos steps, ascending.

    Full re-orthogonalisation against the whole Krylov basis (float64), so the extreme Ritz
    values approach ``lambda_min`` and ``lambda_max`` from inside; with ``iterations ==
    dimension`` they are the exact eigenvalues up to rounding.
    """
    if int(iterations) != iterations or not 1 <= iterations <= dimension:
        raise ValueError(f"iterations must be an integer in [1, {dimension}], got {iterations}")
    generator = torch.Generator().manual_seed(int(seed))
    q = torch.randn(dimension, generator=generator, dtype=torch.float64).to(device)
    q /= q.norm()
    basis = [q]
    diagonal: list[float] = []
    off_diagonal: list[float] = []
    for _ in range(int(iterations)):
        w = matvec(q)
        alpha = float(q @ w)
        diagonal.append(alpha)
        Q = torch.stack(basis)
        for _ in range(2):  # classical Gram-Schmidt, twice, against every basis vector
            w = w - Q.T @ (Q @ w)
        beta = float(w.norm())
        if len(diagonal) == iterations or beta <= 1e-10 * max(1.0, abs(alpha)):
            break
        off_diagonal.append(beta)
        q = w / beta
        basis.append(q)
    T = np.diag(diagonal) + np.diag(off_diagonal, 1) + np.diag(off_diagonal, -1)
    return np.linalg.eigvalsh(T)


def extreme_eigenvalues(
    problem: Problem,
    point: Mapping[str, torch.Tensor] | None = None,
    *,
    iterations: int = 20,
    seed: int = 0,
) -> tuple[float, float]:
    """``(lambda_min, lambda_max)`` of the Hessian at ``point`` by Lanczos (Ritz values)."""
    dimension = sum(p.numel() for p in problem.model.parameters())
    with hessian_operator(problem, point) as (matvec, _):
        ritz = lanczos(matvec, dimension, min(int(iterations), dimension), seed, problem.device)
    return float(ritz[0]), float(ritz[-1])


def hutchinson_trace(
    problem: Problem,
    point: Mapping[str, torch.Tensor] | None = None,
    *,
    samples: int = 100,
    seed: int = 0,
) -> tuple[float, float]:
    """Hutchinson's estimate of ``tr H = E[v^T H v]``, ``v`` Rademacher; returns (mean, std err)."""
    if int(samples) != samples or samples < 2:
        raise ValueError(f"samples must be an integer >= 2, got {samples}")
    dimension = sum(p.numel() for p in problem.model.parameters())
    generator = torch.Generator().manual_seed(int(seed))
    values = np.empty(int(samples))
    with hessian_operator(problem, point) as (matvec, _):
        for k in range(int(samples)):
            signs = torch.randint(0, 2, (dimension,), generator=generator) * 2 - 1
            v = signs.to(problem.device, torch.float64)
            values[k] = float(v @ matvec(v))
    return float(values.mean()), float(values.std(ddof=1) / np.sqrt(samples))


def slice_hessian(
    problem: Problem,
    d1: Mapping[str, torch.Tensor],
    d2: Mapping[str, torch.Tensor],
    point: Mapping[str, torch.Tensor] | None = None,
) -> np.ndarray:
    """The 2x2 Hessian of ``(a, b) -> L(point + a d1 + b d2)`` at (0, 0): ``[d_i^T H d_j]``."""
    D = torch.stack([flatten(d1), flatten(d2)]).to(problem.device, torch.float64)
    with hessian_operator(problem, point) as (matvec, _):
        HD = torch.stack([matvec(D[0]), matvec(D[1])])
    H2 = (D @ HD.T).cpu().numpy()
    return (H2 + H2.T) / 2


def slice_hessian_fd(Z: np.ndarray, alphas: np.ndarray, betas: np.ndarray) -> np.ndarray:
    """2x2 Hessians of a surface by central differences at every interior grid point.

    Returns (A-2, B-2, 2, 2): ``Z_aa = (Z[i+1,j] - 2 Z[i,j] + Z[i-1,j]) / h_a^2``,
    ``Z_ab = (Z[i+1,j+1] - Z[i+1,j-1] - Z[i-1,j+1] + Z[i-1,j-1]) / (4 h_a h_b)``; uniform grids.
    """
    alphas, betas = np.asarray(alphas, float), np.asarray(betas, float)
    if Z.shape != (len(alphas), len(betas)) or min(Z.shape) < 3:
        raise ValueError(f"Z must have shape (len(alphas), len(betas)) >= (3, 3), got {Z.shape}")
    ha, hb = np.diff(alphas), np.diff(betas)
    if not (np.allclose(ha, ha[0]) and np.allclose(hb, hb[0])) or ha[0] <= 0 or hb[0] <= 0:
        raise ValueError("alphas and betas must be increasing and evenly spaced")
    ha, hb = ha[0], hb[0]
    zaa = (Z[2:, 1:-1] - 2 * Z[1:-1, 1:-1] + Z[:-2, 1:-1]) / ha**2
    zbb = (Z[1:-1, 2:] - 2 * Z[1:-1, 1:-1] + Z[1:-1, :-2]) / hb**2
    zab = (Z[2:, 2:] - Z[2:, :-2] - Z[:-2, 2:] + Z[:-2, :-2]) / (4 * ha * hb)
    return np.stack([np.stack([zaa, zab], -1), np.stack([zab, zbb], -1)], -2)


@dataclass
class CurvatureMap:
    """Extreme Hessian eigenvalues on a grid of the plane ``center + a d1 + b d2``.

    All arrays (A, B). ``ratio = |lambda_min / lambda_max|``: near 0 where the loss is locally
    convex (Li et al. section 6), large where negative curvature dominates.
    """

    alphas: np.ndarray
    betas: np.ndarray
    lambda_min: np.ndarray
    lambda_max: np.ndarray
    ratio: np.ndarray


def curvature_map(
    problem: Problem,
    d1: Mapping[str, torch.Tensor],
    d2: Mapping[str, torch.Tensor],
    alphas: Sequence[float] | np.ndarray,
    betas: Sequence[float] | np.ndarray,
    *,
    center: Mapping[str, torch.Tensor] | None = None,
    iterations: int = 20,
    seed: int = 0,
    progress: Progress | None = None,
) -> CurvatureMap:
    """``lambda_min``, ``lambda_max`` (Lanczos) and their ratio at every grid point
    ``center + alphas[i] d1 + betas[j] d2``, each (A, B)."""
    alphas, betas = np.asarray(alphas, float), np.asarray(betas, float)
    center = parameters_of(problem.model) if center is None else center
    lo = np.empty((len(alphas), len(betas)))
    hi = np.empty_like(lo)
    total = lo.size
    for i, a in enumerate(alphas):
        for j, b in enumerate(betas):
            point = combine(center, (a, d1), (b, d2))
            lo[i, j], hi[i, j] = extreme_eigenvalues(
                problem, point, iterations=iterations, seed=seed
            )
            if progress is not None:
                progress((i * len(betas) + j + 1) / total, "Curvature map")
    ratio = np.abs(lo) / np.maximum(np.abs(hi), np.finfo(float).tiny)
    return CurvatureMap(alphas, betas, lo, hi, ratio)
