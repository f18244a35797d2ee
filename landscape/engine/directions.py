"""Directions in parameter space for loss surfaces (Li, Xu, Taylor, Studer, Goldstein 2018).

A parameter point or a direction is a dict ``name -> tensor`` shaped like
``dict(model.named_parameters())``. Buffers (BatchNorm running statistics) are never perturbed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np
import torch
from torch import nn

Params = dict[str, torch.Tensor]  # a point or direction that a function returns (owned, mutable)
ParamMapping = Mapping[str, torch.Tensor]  # any read-only name -> tensor mapping it accepts

Normalization = Literal["filter", "layer", "none"]
NORMALIZATIONS: tuple[Normalization, ...] = get_args(Normalization)
OneDim = Literal["zero", "keep"]
ONE_DIM_CHOICES: tuple[OneDim, ...] = get_args(OneDim)


def parameters_of(model: nn.Module) -> Params:
    """A detached copy of the model's parameters, ``name -> tensor``."""
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def flatten(params: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """All entries of ``params`` in one vector (dict order), shape (P,)."""
    return torch.cat([t.reshape(-1) for t in params.values()])


def combine(
    center: Mapping[str, torch.Tensor], *terms: tuple[float, Mapping[str, torch.Tensor]]
) -> Params:
    """``center + sum_k c_k d_k`` entry by entry, for terms ``(c_k, d_k)``."""
    out = {name: t.clone() for name, t in center.items()}
    for coefficient, direction in terms:
        for name in out:
            out[name].add_(direction[name], alpha=float(coefficient))
    return out


def cosine(d1: Mapping[str, torch.Tensor], d2: Mapping[str, torch.Tensor]) -> float:
    """``<d1, d2> / (||d1|| ||d2||)`` over all entries; 0.0 when either direction is zero."""
    a, b = flatten(d1).double(), flatten(d2).double()
    denominator = float(a.norm() * b.norm())
    return float(a @ b) / denominator if denominator > 0 else 0.0


def random_directions(
    model: nn.Module,
    seed: int,
    normalization: str = "filter",
    one_dim: str = "zero",
    reference: Mapping[str, torch.Tensor] | None = None,
) -> Params:
    """A Gaussian direction ``d ~ N(0, I)`` shaped like the parameters, then normalised.

    ``normalization``: ``"filter"`` rescales each filter (slice ``d[i]`` along the first axis: a row
    of a ``Linear`` weight, an output channel of a convolution) to the norm of the matching filter
    of the weights, ``d_i <- d_i ||theta_i|| / ||d_i||`` (Li et al., eq. 1); ``"layer"`` does the
    same per tensor; ``"none"`` keeps the raw Gaussian.
    ``one_dim``: 1-D tensors (biases, BatchNorm scales) are set to zero (``"zero"``, as Li et al.
    do) or kept and normalised as one filter (``"keep"``).
    ``reference`` replaces the model's own parameters as the weights to normalise against.
    The draw uses a CPU generator seeded by ``seed`` (identical on every device); the result lives
    on the parameters' device.
    """
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}")
    if one_dim not in ONE_DIM_CHOICES:
        raise ValueError(f"one_dim must be one of {ONE_DIM_CHOICES}, got {one_dim!r}")
    weights = parameters_of(model) if reference is None else dict(reference)
    generator = torch.Generator().manual_seed(int(seed))
    direction: Params = {}
    for name, w in weights.items():
        d = torch.randn(w.shape, generator=generator, dtype=torch.float64)
        w64 = w.detach().to("cpu", torch.float64)
        if w.dim() <= 1 and one_dim == "zero":
            d.zero_()
        elif normalization == "layer" or (normalization == "filter" and w.dim() <= 1):
            d.mul_(_safe_ratio(w64.norm(), d.norm()))
        elif normalization == "filter":
            rows_w = w64.reshape(w.shape[0], -1).norm(dim=1)
            rows_d = d.reshape(w.shape[0], -1).norm(dim=1)
            scale = _safe_ratio(rows_w, rows_d)
            d.mul_(scale.reshape(-1, *([1] * (w.dim() - 1))))
        direction[name] = d.to(w.device, w.dtype)
    return direction


def _safe_ratio(numerator: torch.Tensor, denominator: torch.Tensor) -> torch.Tensor:
    return torch.where(denominator > 0, numerator / denominator.clamp_min(1e-300), 0.0)


@dataclass
class Plane:
    """A 2-D slice ``theta(a, b) = center + a d1 + b d2`` and where named models sit in it.

    ``coordinates`` has shape (k, 2): row ``i`` is the ``(a, b)`` of the ``i``-th model.
    """

    center: Params
    d1: Params
    d2: Params
    coordinates: np.ndarray


def three_model_plane(models: Sequence[nn.Module | Mapping[str, torch.Tensor]]) -> Plane:
    """The plane through three trained models used by Zhang, Shao and Salakhutdinov (2019).

    ``center = (w0 + w1 + w2) / 3``, ``d1 = (w0 - w1) ||w2|| / ||w0 - w1||``,
    ``d2 = (w0 - w2) ||w2|| / ||w0 - w2||`` (norms over the whole parameter vector). Each model
    lies in the plane: with ``s1 = ||w0 - w1|| / ||w2||``, ``s2 = ||w0 - w2|| / ||w2||`` the
    coordinates are ``w0: (s1/3, s2/3)``, ``w1: (-2 s1/3, s2/3)``, ``w2: (s1/3, -2 s2/3)``.
    """
    if len(models) != 3:
        raise ValueError(f"models must hold exactly 3 models, got {len(models)}")
    w0, w1, w2 = (
        parameters_of(m) if isinstance(m, nn.Module) else {k: v.detach() for k, v in m.items()}
        for m in models
    )
    if not (w0.keys() == w1.keys() == w2.keys()) or any(
        w0[k].shape != w1[k].shape or w0[k].shape != w2[k].shape for k in w0
    ):
        raise ValueError("models must have the same parameter names and shapes")
    center = {k: (w0[k] + w1[k] + w2[k]) / 3 for k in w0}
    diff1 = {k: w0[k] - w1[k] for k in w0}
    diff2 = {k: w0[k] - w2[k] for k in w0}
    norm2 = float(flatten(w2).double().norm())
    n1, n2 = float(flatten(diff1).double().norm()), float(flatten(diff2).double().norm())
    if min(n1, n2, norm2) == 0:
        raise ValueError("models must be pairwise distinct and w2 must be non-zero")
    s1, s2 = n1 / norm2, n2 / norm2
    d1 = {k: v / s1 for k, v in diff1.items()}
    d2 = {k: v / s2 for k, v in diff2.items()}
    coordinates = np.array([[s1 / 3, s2 / 3], [-2 * s1 / 3, s2 / 3], [s1 / 3, -2 * s2 / 3]])
    return Plane(center=center, d1=d1, d2=d2, coordinates=coordinates)


@dataclass
class PCADirections:
    """The top two principal directions of a training trajectory around its last point.

    ``explained_variance_ratio`` (2,): share of the variance of the centred differences along
    ``d1`` and ``d2``; ``coordinates`` (T, 2): each checkpoint's ``(a, b)`` in the plane
    ``theta_T + a d1 + b d2`` (projection onto the orthonormal pair).
    """

    d1: Params
    d2: Params
    explained_variance_ratio: np.ndarray
    coordinates: np.ndarray


def pca_directions(trajectory: Sequence[Mapping[str, torch.Tensor]]) -> PCADirections:
    """PCA of ``M = [theta_t - theta_T]_t`` (rows centred), as in Li et al. section 7.

    ``d1, d2`` are the top two right singular vectors of the centred ``M`` (unit norm, orthogonal);
    ``explained_variance_ratio = s_i^2 / sum_j s_j^2``. The final checkpoint is the plane's centre.
    """
    if len(trajectory) < 3:
        raise ValueError(f"trajectory must hold at least 3 checkpoints, got {len(trajectory)}")
    names = list(trajectory[-1].keys())
    final = trajectory[-1]
    rows = torch.stack(
        [torch.cat([(p[k] - final[k]).reshape(-1) for k in names]) for p in trajectory]
    ).to("cpu", torch.float64)
    centred = rows - rows.mean(0, keepdim=True)
    _, s, vt = torch.linalg.svd(centred, full_matrices=False)
    total = float((s**2).sum())
    if total == 0 or s.numel() < 2:
        raise ValueError("trajectory must move in at least two directions")
    basis = vt[:2]
    # Sign convention: the first checkpoint has non-negative coordinates.
    signs = torch.where(rows[0] @ basis.T < 0, -1.0, 1.0)
    basis = basis * signs[:, None]
    coordinates = (rows @ basis.T).numpy()
    ratio = (s[:2] ** 2 / total).numpy()
    d1, d2 = (_unflatten(basis[i], final) for i in range(2))
    return PCADirections(d1=d1, d2=d2, explained_variance_ratio=ratio, coordinates=coordinates)


def _unflatten(vector: torch.Tensor, like: Mapping[str, torch.Tensor]) -> Params:
    out: Params = {}
    offset = 0
    for name, t in like.items():
        out[name] = vector[offset : offset + t.numel()].reshape(t.shape).to(t.device, t.dtype)
        offset += t.numel()
    return out
