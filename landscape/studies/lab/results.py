"""The Lab's Result: flat fields in six groups, one group per step of a run, each field with
the shape a run file may hold for it.

The Result is flat (one NumPy array or scalar per field: one NPZ array, one JSON entry, and run
files of every release load by field name). Its fields come in groups, one dataclass per step of
`run` (`Surface`, `Plane`, `Slices`, `Curvature`, `Training`, `Evidence`), so that a step returns
its group and a cache keeps one; `Result` collects the groups' fields by inheriting them (a
dataclass takes its bases' fields in reverse order of the bases, so Surface's come first). A run
that diverged has the training group only (`diverged` fills the others with empty values).

Each field carries its run-file shape in its metadata (`shaped`): kind ``f``/``i``/``b``/``s``,
``!`` finite, dimensions named alike agree, ``?`` any size, ``|`` alternatives (the grammar of
`landscape.files.results.check_result`). `RESULT_SHAPES` collects them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np


def shaped(spec: str, **default: Any) -> Any:
    """A dataclass field whose run-file shape is ``spec`` (and ``default`` or
    ``default_factory`` when given)."""
    return field(metadata={"shape": spec}, **default)


def _zeros(*shape: int) -> dict[str, Any]:
    """The default of a field that is empty until computed: float64 zeros of ``shape``."""
    return {"default_factory": lambda: np.zeros(shape)}


NAN = {"default": float("nan")}


@dataclass
class Surface:
    """The loss surface on the plane ``theta + a d1 + b d2`` (group of `Result`)."""

    alphas: np.ndarray = shaped("f![R?]")  # (R,)
    betas: np.ndarray = shaped("f![R?]")  # (R,)
    surface: np.ndarray = shaped("f[R?,R?]")  # (R, R): L(theta + alphas[i] d1 + betas[j] d2)
    surface_method: str = shaped("s")  # the engine path: fast, loop, or vmap and what it hoists
    surface_seconds: float = shaped("f")
    center_loss: float = shaped("f")


@dataclass
class Plane:
    """The plane's directions and the points marked on it (group of `Result`)."""

    direction_cosine: float = shaped("f")
    trajectory: np.ndarray = shaped("f[T?,2]")  # (T, 2) checkpoints on the PCA plane; (0, 2)
    trajectory_loss: np.ndarray = shaped("f[T?]")  # (T,) the loss at those projected points
    explained_variance: np.ndarray = shaped("f[E?]")  # (2,) PCA ratios; zeros otherwise
    model_points: np.ndarray = shaped("f[P?,2]")  # (3, 2) the three models; (0, 2) otherwise
    model_losses: np.ndarray = shaped("f[P?]")  # (3,) their losses; (0,) otherwise


@dataclass
class Slices:
    """1-D slices through the centre and the interpolation from the initial model (group)."""

    slice_ts: np.ndarray = shaped("f![L?]")  # (S,)
    slice_d1: np.ndarray = shaped("f[L?]")  # (S,) L(theta + t d1)
    slice_d2: np.ndarray = shaped("f[L?]")  # (S,) L(theta + t d2)
    slice_d1_std: np.ndarray = shaped("f[L?]")  # (S,) spread over sub-samples; zeros on all data
    slice_d2_std: np.ndarray = shaped("f[L?]")  # (S,)
    interpolation_ts: np.ndarray = shaped("f![Q?]")  # (M,)
    interpolation: np.ndarray = shaped("f[Q?]")  # (M,) L((1 - t) theta_init + t theta_trained)


@dataclass
class Curvature:
    """Hessian eigenvalues on a coarse grid, the slice Hessian and the trace (group)."""

    curvature_alphas: np.ndarray = shaped("f![C?]")  # (C,)
    curvature_betas: np.ndarray = shaped("f![C?]")  # (C,)
    lambda_min: np.ndarray = shaped("f[C?,C?]")  # (C, C)
    lambda_max: np.ndarray = shaped("f[C?,C?]")  # (C, C)
    curvature_ratio: np.ndarray = shaped("f[C?,C?]")  # (C, C) |lambda_min / lambda_max|
    slice_hessian: np.ndarray = shaped("f[2,2]")  # [d_i^T H d_j] by Hessian-vector products
    slice_hessian_fd: np.ndarray = shaped("f[2,2]")  # the same by differences of the surface
    slice_eigenvalues: np.ndarray = shaped("f[2]")  # of slice_hessian, ascending
    slice_fd_eigenvalues: np.ndarray = shaped("f[2]")  # of slice_hessian_fd, ascending
    hessian_trace: float = shaped("f")  # Hutchinson at the centre
    hessian_trace_error: float = shaped("f")


@dataclass
class Training:
    """The trained model and its data (group of `Result`)."""

    loss_history: np.ndarray = shaped("f[H?]")  # (E,) training loss per epoch
    train_accuracy: float = shaped("f")  # nan for regression
    n_parameters: int = shaped("i")
    n_samples: int = shaped("i")
    task: str = shaped("s")
    model_name: str = shaped("s")


# The map's fields may be empty: an empty default is float, a computed state -1, 0 or 1.
MAP_SHAPE = "f[C?,C?]|f[0,0]"


@dataclass
class Evidence:
    """What the curvature proves, the spectrum and the traces (group of `Result`).

    Every field has a default (empty arrays, NaN), so run files saved before this group existed
    load. States: -1 negative curvature found, 0 none found, 1 convex here.
    """

    curvature_state: np.ndarray = shaped(MAP_SHAPE, **_zeros(0, 0))  # (C, C)
    curvature_rayleigh: np.ndarray = shaped(MAP_SHAPE, **_zeros(0, 0))  # (C, C)
    curvature_bound: np.ndarray = shaped(MAP_SHAPE, **_zeros(0, 0))  # (C, C), p 0.99
    curvature_iterations: np.ndarray = shaped(MAP_SHAPE, **_zeros(0, 0))  # (C, C)
    centre_state: int = shaped("i", default=0)
    centre_exact: bool = shaped("b", default=False)  # from the dense Hessian's eigenvalues
    centre_lambda_min: float = shaped("f", **NAN)  # smallest Ritz value, or exact eigenvalue
    centre_lambda_max: float = shaped("f", **NAN)
    centre_rayleigh: float = shaped("f", **NAN)  # v^T H v of the smallest Ritz vector, float64
    centre_residual: float = shaped("f", **NAN)  # ||H v - rho v||: an eigenvalue lies that close
    centre_bound: float = shaped("f", **NAN)  # lambda_min >= bound with probability >= 0.99
    centre_iterations: int = shaped("i", default=0)
    sharpest: np.ndarray = shaped("f[K?]", **_zeros(0))  # (2,) top eigenvalues
    exact_eigenvalues: np.ndarray = shaped("f[PE?]", **_zeros(0))  # (P,) if small
    density_grid: np.ndarray = shaped("f![G?]", **_zeros(0))  # (G,)
    density: np.ndarray = shaped("f[G?]", **_zeros(0))  # (G,) SLQ at the centre
    negative_mass: float = shaped("f", **NAN)  # SLQ share of the spectrum below 0
    negative_mass_error: float = shaped("f", **NAN)  # its standard error over probes
    negative_threshold: float = shaped("f", **NAN)  # the mass counts eigenvalues below -this
    training_epochs: np.ndarray = shaped("f![TE?]", **_zeros(0))  # (T,)
    training_negative_mass: np.ndarray = shaped("f[TE?]", **_zeros(0))  # (T,)
    training_negative_mass_error: np.ndarray = shaped("f[TE?]", **_zeros(0))  # (T,)
    training_negative_threshold: np.ndarray = shaped("f[TE?]", **_zeros(0))  # (T,)
    hutchpp_trace: float = shaped("f", **NAN)  # Hutch++ with as many products as Hutchinson
    hutchpp_trace_error: float = shaped("f", **NAN)
    exact_trace: float = shaped("f", **NAN)  # of the dense Hessian, when P <= EXACT_LIMIT


Group = Surface | Plane | Slices | Curvature | Training | Evidence


@dataclass
class Result(Evidence, Training, Curvature, Slices, Plane, Surface):
    """Surface, slices, interpolation and curvature of one trained model (NumPy only).

    The fields are those of `Surface`, `Plane`, `Slices`, `Curvature`, `Training` and
    `Evidence`, in that order, then ``diverged`` and ``message``.
    """

    diverged: bool = shaped("b", default=False)
    message: str = shaped("s", default="")

    @classmethod
    def of(
        cls,
        surface: Surface,
        plane: Plane,
        slices: Slices,
        curvature: Curvature,
        training: Training,
        evidence: Evidence,
    ) -> Result:
        """The result of a run that went through: the union of its groups' fields."""
        groups = (surface, plane, slices, curvature, training, evidence)
        values = {name: v for group in groups for name, v in values_of(group).items()}
        return cls(**values, diverged=False, message="")

    @classmethod
    def diverged_after(cls, training: Training, message: str) -> Result:
        """The result of a run that met a non-finite loss: its training group and ``message``;
        every group before it empty (`EMPTY`: empty arrays, NaN, 0, "")."""
        empty = {
            f.name: EMPTY[str(f.type)]()
            for group in (Surface, Plane, Slices, Curvature)
            for f in dataclasses.fields(group)
        }
        return cls(**empty, **values_of(training), diverged=True, message=message)

    def group(self, kind: type[Any]) -> Any:
        """This result's fields of the group ``kind`` (e.g. `Slices`), as that group."""
        return kind(**{f.name: getattr(self, f.name) for f in dataclasses.fields(kind)})


#: The value of a field in a group that was not computed, by the field's type.
EMPTY: dict[str, Callable[[], Any]] = {
    "np.ndarray": lambda: np.zeros(0),
    "float": lambda: float("nan"),
    "int": int,
    "str": str,
}

#: What a run file may hold for each Result field (landscape.files.results.check_result);
#: a Config field's name is its value.
RESULT_SHAPES: dict[str, str] = {f.name: f.metadata["shape"] for f in dataclasses.fields(Result)}


def values_of(group: Group) -> dict[str, Any]:
    """The group's fields by name (not copied)."""
    return {f.name: getattr(group, f.name) for f in dataclasses.fields(group)}
