"""Kernels on the samples in one call: infinite-width Gram/NTK matrices, a model's own NTK.

`infinite_width_kernel` gives the limits of a fully connected network at initialisation
(`landscape.engine.gram`: Du et al.'s ``K^(H)``, the NNGP and the full NTK; inputs on the unit
sphere). `empirical_ntk` gives the neural tangent kernel of a given model at its parameters,
``K[i, j] = sum_c <d f_c(x_i) / d theta, d f_c(x_j) / d theta>`` (summed over outputs ``c``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, get_args

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, jacrev, vmap

from landscape.api.isolation import isolated
from landscape.api.problems import Data, DeviceChoice, on_device
from landscape.api.records import describe_array, describe_model, metadata, read_only
from landscape.engine.gram import gram_matrix, lambda_min, network_kernels
from landscape.engine.surface import eval_mode
from landscape.engine.validation import check_choice

if TYPE_CHECKING:
    import plotly.graph_objects as go

KernelKind = Literal["ntk", "nngp", "gram"]
KERNEL_KINDS: tuple[KernelKind, ...] = get_args(KernelKind)


@dataclass(frozen=True, eq=False)
class Kernel:
    """A kernel matrix on n samples: ``matrix`` (n, n) float64, symmetric; ``eigenvalues``
    (n,) ascending and ``lambda_min`` their smallest (positive: the kernel regression and the
    gradient flow of Du et al.'s theorem converge); ``targets`` (n,) that order the samples in
    the figure (zeros when none were given); ``metadata`` how to compute it again."""

    matrix: np.ndarray
    eigenvalues: np.ndarray
    lambda_min: float
    targets: np.ndarray
    metadata: dict[str, Any]

    def figure(self) -> go.Figure:
        """The Width study's heat map of the kernel, samples sorted by ``targets``."""
        from landscape.api import figures

        return figures.kernel(self)


def _kernel(K: np.ndarray, targets: Data | None, n: int, meta: dict[str, Any]) -> Kernel:
    order = np.zeros(n) if targets is None else np.asarray(targets, dtype=np.float64).reshape(-1)
    if order.shape != (n,):
        raise ValueError(f"y must have shape (n,) = ({n},) to order the samples, got {order.shape}")
    values = np.linalg.eigvalsh(K)
    return Kernel(
        matrix=read_only(K),
        eigenvalues=read_only(values),
        lambda_min=lambda_min(K),
        targets=read_only(order),
        metadata=meta,
    )


def infinite_width_kernel(
    X: Data,
    *,
    depth: int = 2,
    activation: str = "relu",
    kind: str = "ntk",
    architecture: str = "fc",
    y: Data | None = None,
) -> Kernel:
    """A kernel of the infinitely wide network at initialisation, on rows of ``X`` (n, d) that
    lie on the unit sphere (``X / np.linalg.norm(X, axis=1, keepdims=True)``).

    ``kind``: ``"gram"`` Du et al.'s ``K^(H)`` (the last layer's Gram; ``architecture`` "fc" or
    "resnet"), ``"nngp"`` the outputs' covariance ``rho^(H)``, ``"ntk"`` the full neural tangent
    kernel ``sum_h rho^(h-1) prod_{h' >= h} rhodot^(h') + rho^(H)`` (fully connected).
    ``activation``: relu, erf (closed forms), softplus, tanh (Gauss-Hermite quadrature).
    """
    check_choice("kind", kind, KERNEL_KINDS)
    data = np.asarray(torch.as_tensor(X).detach().cpu().double().numpy())
    if kind == "gram":
        K = gram_matrix(data, depth, activation, architecture)
    else:
        check_choice("architecture (ntk, nngp)", architecture, ("fc",))
        kernels = network_kernels(data, depth, activation)
        K = kernels.ntk if kind == "ntk" else kernels.nngp
    arguments = {
        "depth": int(depth),
        "activation": activation,
        "kind": kind,
        "architecture": architecture,
    }
    inputs: dict[str, Any] = {"X": describe_array(data)}
    if y is not None:
        inputs["y"] = describe_array(torch.as_tensor(y))
    meta = metadata("infinite_width_kernel", arguments, inputs, path="engine.gram")
    return _kernel(K, y, data.shape[0], meta)


@isolated
def empirical_ntk(
    model: nn.Module,
    X: Data,
    *,
    y: Data | None = None,
    device: DeviceChoice = None,
) -> Kernel:
    """The model's neural tangent kernel at its parameters, in eval mode:
    ``K[i, j] = sum_c J_c(x_i) . J_c(x_j)``, ``J_c(x) = d f_c(x) / d theta`` (all parameters,
    outputs flattened), from one ``jacrev`` per sample under ``vmap``; memory ``n k P``."""
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    here = on_device(model, device)
    first = next(iter(here.parameters()))
    data = torch.as_tensor(X).to(first.device)
    data = data.to(first.dtype) if data.is_floating_point() else data
    params = {name: p.detach() for name, p in here.named_parameters()}

    def output(p: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        return functional_call(here, p, (x[None],)).reshape(-1)

    with eval_mode(here):
        jac = vmap(jacrev(output), in_dims=(None, 0))(params, data)
    flat = torch.cat([j.reshape(j.shape[0], j.shape[1], -1) for j in jac.values()], dim=2)
    K = torch.einsum("icp,jcp->ij", flat.double(), flat.double()).cpu().numpy()
    inputs: dict[str, Any] = {"model": describe_model(model), "X": describe_array(data)}
    meta = metadata("empirical_ntk", {}, inputs, device=str(first.device), path="torch.func")
    return _kernel((K + K.T) / 2, y, data.shape[0], meta)
