"""Convexify's library: loss landscapes, curvature and kernels of your own PyTorch models.

One call answers each common question and returns a frozen result holding the numbers (NumPy),
the ``metadata`` that computes them again, and ``figure()``, the dashboard's own Plotly figure::

    import landscape
    surface = landscape.random_plane(model, "cross_entropy", X, y, resolution=21)
    surface.loss.shape, surface.metadata["directions"], surface.figure()

Surfaces: `random_plane`, `pca_plane`, `random_line`, `interpolation`. Curvature:
`curvature` (what is proven: negative curvature found, none found with a bound, convex here),
`curvature_map`, `spectral_density`, `hessian_trace`. Kernels: `infinite_width_kernel`,
`empirical_ntk`. The engine's pieces: `Problem`, `problem`, `random_directions`,
`pca_directions`, `three_model_plane`. The convex programs: `solve_convex_relu` (the exact
two-layer ReLU network), `solve_dual` and `recover_weights` (deep linear networks),
`solve_three_layer`, `solve_convex_cnn`. A call never changes process-wide state (allocator,
thread count, global random generator, the model's parameters or training flag).

Names load on first use, so ``import landscape`` imports neither cvxpy nor a study.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from landscape.api.curvature import (
        CurvatureEvidence,
        CurvatureMap,
        HessianTrace,
        SpectralDensity,
        curvature,
        curvature_map,
        hessian_trace,
        spectral_density,
    )
    from landscape.api.kernels import Kernel, empirical_ntk, infinite_width_kernel
    from landscape.api.problems import problem
    from landscape.api.surfaces import (
        Line,
        Surface,
        interpolation,
        pca_plane,
        random_line,
        random_plane,
    )
    from landscape.engine.directions import pca_directions, random_directions, three_model_plane
    from landscape.engine.problem import Problem
    from solvers.convex_cnn import ConvexCNNSolution, solve_convex_cnn
    from solvers.convex_relu import ConvexReLUSolution, solve_convex_relu
    from solvers.linear_dual import DualSolution, recover_weights, solve_dual
    from solvers.three_layer_relu import ThreeLayerSolution, solve_three_layer

#: Public name -> the module that defines it.
_HOMES: dict[str, str] = {
    **dict.fromkeys(("Problem",), "landscape.engine.problem"),
    **dict.fromkeys(("problem",), "landscape.api.problems"),
    **dict.fromkeys(
        ("random_directions", "pca_directions", "three_model_plane"),
        "landscape.engine.directions",
    ),
    **dict.fromkeys(
        ("Surface", "Line", "random_plane", "pca_plane", "random_line", "interpolation"),
        "landscape.api.surfaces",
    ),
    **dict.fromkeys(
        (
            "CurvatureEvidence",
            "CurvatureMap",
            "SpectralDensity",
            "HessianTrace",
            "curvature",
            "curvature_map",
            "spectral_density",
            "hessian_trace",
        ),
        "landscape.api.curvature",
    ),
    **dict.fromkeys(("Kernel", "infinite_width_kernel", "empirical_ntk"), "landscape.api.kernels"),
    **dict.fromkeys(("ConvexReLUSolution", "solve_convex_relu"), "solvers.convex_relu"),
    **dict.fromkeys(("DualSolution", "solve_dual", "recover_weights"), "solvers.linear_dual"),
    **dict.fromkeys(("ThreeLayerSolution", "solve_three_layer"), "solvers.three_layer_relu"),
    **dict.fromkeys(("ConvexCNNSolution", "solve_convex_cnn"), "solvers.convex_cnn"),
}

__all__ = [
    "ConvexCNNSolution",
    "ConvexReLUSolution",
    "CurvatureEvidence",
    "CurvatureMap",
    "DualSolution",
    "HessianTrace",
    "Kernel",
    "Line",
    "Problem",
    "SpectralDensity",
    "Surface",
    "ThreeLayerSolution",
    "curvature",
    "curvature_map",
    "empirical_ntk",
    "hessian_trace",
    "infinite_width_kernel",
    "interpolation",
    "pca_directions",
    "pca_plane",
    "problem",
    "random_directions",
    "random_line",
    "random_plane",
    "recover_weights",
    "solve_convex_cnn",
    "solve_convex_relu",
    "solve_dual",
    "solve_three_layer",
    "spectral_density",
    "three_model_plane",
]


def __getattr__(name: str) -> Any:
    """Load a public name from its module on first use (PEP 562)."""
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'landscape' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
