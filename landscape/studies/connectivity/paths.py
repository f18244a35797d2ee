"""Paths between two minima: the line, the quadratic Bezier curve, and the plane through both.

Every point is ``theta = theta_A + u (theta_C - theta_A) + v (theta_B - theta_A)`` for plane
coordinates ``(u, v)``, so the losses along a path are the engine's `surface_points` at the
path's coordinates (evaluated in chunks under ``vmap``), with ``center = theta_A``:

- the line ``theta(t) = (1 - t) theta_A + t theta_B``: ``(u, v) = (0, t)``;
- the quadratic Bezier curve ``phi(t) = (1 - t)^2 theta_A + 2 t (1 - t) theta_C + t^2 theta_B``
  (Garipov et al., 2018): ``(u, v) = (2 t (1 - t), t^2)``.

The barrier of a path is its largest height above the chord between its end points,
``B = max_t [L(t) - ((1 - t) L(0) + t L(1))]`` (Frankle et al., 2020).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.func import functional_call

from landscape.engine.directions import Params, flatten
from landscape.engine.problem import Problem
from landscape.engine.surface import surface_2d, surface_points


def difference(a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor]) -> Params:
    """``a - b`` per parameter tensor."""
    return {k: a[k] - b[k] for k in a}


def line_coordinates(ts: np.ndarray) -> np.ndarray:
    """``(u, v) = (0, t)``: the line from ``theta_A`` to ``theta_B``, shape (T, 2)."""
    return np.stack([np.zeros_like(ts), ts], axis=1)


def bezier_coordinates(ts: np.ndarray) -> np.ndarray:
    """``(u, v) = (2 t (1 - t), t^2)``: the quadratic Bezier curve, shape (T, 2)."""
    return np.stack([2 * ts * (1 - ts), ts**2], axis=1)


def path_losses(
    problem: Problem,
    theta_a: Params,
    theta_b: Params,
    theta_c: Params,
    coords: np.ndarray,
) -> np.ndarray:
    """``L(theta_A + u (theta_C - theta_A) + v (theta_B - theta_A))`` at each row ``(u, v)``
    of ``coords`` (P, 2), shape (P,), float64."""
    return surface_points(
        problem,
        difference(theta_c, theta_a),
        difference(theta_b, theta_a),
        coords,
        center=theta_a,
    )


def barrier(ts: np.ndarray, losses: np.ndarray) -> float:
    """``max_t [L(t) - ((1 - t) L(0) + t L(1))]`` on a grid ``ts`` that runs from 0 to 1."""
    ts = np.asarray(ts, dtype=np.float64)
    if ts.ndim != 1 or ts.size < 2 or ts[0] != 0.0 or ts[-1] != 1.0 or np.any(np.diff(ts) <= 0):
        raise ValueError("ts must be an increasing grid from 0 to 1")
    chord = (1 - ts) * losses[0] + ts * losses[-1]
    return float(np.max(losses - chord))


def bezier_point(theta_a: Params, theta_c: Params, theta_b: Params, t: float) -> Params:
    """``phi(t) = (1 - t)^2 theta_A + 2 t (1 - t) theta_C + t^2 theta_B``."""
    return {
        k: (1 - t) ** 2 * theta_a[k] + 2 * t * (1 - t) * theta_c[k] + t**2 * theta_b[k]
        for k in theta_a
    }


@dataclass
class CurveTraining:
    """The trained bend ``theta_C`` and the sampled objective ``L(phi(t_k))`` at each step."""

    bend: Params
    objective: np.ndarray  # (steps,)


def train_bezier(
    model: nn.Module,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    X: torch.Tensor,
    y: torch.Tensor,
    theta_a: Params,
    theta_b: Params,
    *,
    steps: int,
    lr: float,
    batch_size: int,
    seed: int,
) -> CurveTraining:
    """Train the bend ``theta_C`` of the quadratic Bezier curve to minimise
    ``E_{t ~ U[0, 1]} L(phi(t))`` (Garipov et al.), a fresh ``t`` and mini-batch per Adam step,
    the end points fixed; ``theta_C`` starts at the midpoint ``(theta_A + theta_B) / 2``."""
    generator = torch.Generator().manual_seed(seed)
    bend = {k: ((theta_a[k] + theta_b[k]) / 2).clone().requires_grad_(True) for k in theta_a}
    buffers = dict(model.named_buffers())
    optimizer = torch.optim.Adam(list(bend.values()), lr=lr)
    history = np.empty(steps)
    for step in range(steps):
        t = float(torch.rand((), generator=generator))
        rows = torch.randint(X.shape[0], (min(batch_size, X.shape[0]),), generator=generator)
        point = bezier_point(theta_a, bend, theta_b, t)
        value = loss_fn(functional_call(model, {**point, **buffers}, (X[rows],)), y[rows])
        optimizer.zero_grad()
        value.backward()
        optimizer.step()
        history[step] = float(value.detach())
    return CurveTraining({k: v.detach() for k, v in bend.items()}, history)


@dataclass
class PlaneGrid:
    """The plane through ``theta_A``, ``theta_B``, ``theta_C`` in an orthonormal basis.

    ``e1 = (theta_B - theta_A) / ||theta_B - theta_A||``; ``e2``: ``theta_C - theta_A`` less
    its ``e1`` part, normalised (Gram-Schmidt). ``anchors`` (3, 2): the coordinates of A, B, C;
    ``loss`` (R, R) on the grid ``xs`` x ``ys`` (indexing ``loss[i, j]`` at ``(xs[i], ys[j])``).
    """

    xs: np.ndarray
    ys: np.ndarray
    loss: np.ndarray
    anchors: np.ndarray


def plane_basis(theta_a: Params, theta_b: Params, theta_c: Params) -> tuple[Params, Params]:
    """``(e1, e2)``, the Gram-Schmidt basis of `PlaneGrid`."""
    ab, ac = difference(theta_b, theta_a), difference(theta_c, theta_a)
    n_ab = float(flatten(ab).double().norm())
    if n_ab == 0:
        raise ValueError("theta_A and theta_B must differ")
    e1 = {k: v / n_ab for k, v in ab.items()}
    along = float(flatten(ac).double() @ flatten(e1).double())
    rest = {k: ac[k] - along * e1[k] for k in ac}
    n_rest = float(flatten(rest).double().norm())
    if n_rest <= 1e-12 * n_ab:
        raise ValueError("theta_C lies on the line through theta_A and theta_B")
    return e1, {k: v / n_rest for k, v in rest.items()}


def plane_coordinates(point: Params, theta_a: Params, e1: Params, e2: Params) -> np.ndarray:
    """``(<point - theta_A, e1>, <point - theta_A, e2>)``, shape (2,)."""
    offset = flatten(difference(point, theta_a)).double()
    return np.array([float(offset @ flatten(e1).double()), float(offset @ flatten(e2).double())])


def plane_grid(
    problem: Problem,
    theta_a: Params,
    theta_b: Params,
    theta_c: Params,
    resolution: int,
    margin: float,
) -> PlaneGrid:
    """The loss on a ``resolution`` x ``resolution`` grid of the plane through the three points,
    covering their coordinates with ``margin`` (a fraction of ``||theta_B - theta_A||``) around."""
    e1, e2 = plane_basis(theta_a, theta_b, theta_c)
    anchors = np.stack([plane_coordinates(p, theta_a, e1, e2) for p in (theta_a, theta_b, theta_c)])
    pad = margin * anchors[1, 0]
    xs = np.linspace(anchors[:, 0].min() - pad, anchors[:, 0].max() + pad, resolution)
    ys = np.linspace(min(anchors[:, 1].min(), 0.0) - pad, anchors[:, 1].max() + pad, resolution)
    loss = surface_2d(problem, e1, e2, xs, ys, center=theta_a)
    return PlaneGrid(xs, ys, loss, anchors)
