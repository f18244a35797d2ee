"""The Lab's configuration: every knob, its allowed range, and the cost model that bounds a run.

A run costs about ``samples x parameters x (6 epochs + 2 resolution^2 + 4 lanczos C^2)``
multiply-adds: a forward and backward pass per epoch, a forward pass per surface point, and a
Hessian-vector product (two passes) per Lanczos step at each of the ``C^2`` curvature points.
`Config.validate` refuses a configuration above `COST_LIMIT`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, get_args

from landscape.engine.device import Device
from landscape.engine.directions import NORMALIZATIONS, ONE_DIM_CHOICES, Normalization, OneDim
from landscape.engine.nets import ACTIVATIONS, Activation
from landscape.engine.validation import (
    COST_LIMIT,
    check_choice,
    check_cost,
    check_integer,
    check_number,
)
from landscape.files import uploads

#: The entry module: presets, run files and the run queue name the study by it.
STUDY = "landscape.studies.lab.lab"

Model = Literal["multibranch", "mlp", "upload"]
MODELS: tuple[Model, ...] = get_args(Model)
Dataset = Literal["digits", "iris", "moons", "upload"]
DATASETS: tuple[Dataset, ...] = get_args(Dataset)
Directions = Literal["random", "pca", "three_models", "sharpest"]
DIRECTIONS: tuple[Directions, ...] = get_args(Directions)
MAX_LANCZOS = 200
DIGITS_SAMPLES, DIGITS_FEATURES, DIGITS_CLASSES = 1797, 64, 10  # the cost model's data

_DIGEST = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class Config:
    """Every knob of the Lab; the defaults render in a few seconds on a 2-core CPU."""

    model: Model = "multibranch"
    branches: int = 16
    width: int = 8
    depth: int = 1
    hidden: int = 32  # MLP: two hidden layers of this width (three Linear layers)
    activation: Activation = "relu"
    dataset: Dataset = "digits"
    model_upload: str = ""  # SHA-256 of an uploaded ONNX file (landscape.files.uploads.store)
    data_upload: str = ""  # SHA-256 of an uploaded CSV or NPZ file
    data_name: str = ""  # the uploaded data file's name (its suffix gives the format)
    epochs: int = 60
    lr: float = 0.01
    directions: Directions = "random"
    normalization: Normalization = "filter"
    one_dim: OneDim = "zero"
    span: float = 1.0
    resolution: int = 31
    sample_size: int = 0  # 0: all samples; else 1-D slices show mean +/- std over sub-samples
    curvature_resolution: int = 5  # 0 switches the curvature map off
    lanczos_iterations: int = 60  # the Lanczos budget per map point (stops early on residuals)
    seed: int = 0
    device: Device = "auto"

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first field outside its allowed range."""
        self._validate_choices()
        self._validate_ranges()
        check_cost(
            "training and the surface (samples x parameters x (epochs + resolution^2))",
            self.cost(),
            COST_LIMIT,
            "multiply-adds",
            "lower epochs, resolution, the curvature grid or the model's size",
        )
        self._validate_combinations()

    def _validate_choices(self) -> None:
        check_choice("model", self.model, MODELS)
        check_choice("dataset", self.dataset, DATASETS)
        check_choice("directions", self.directions, DIRECTIONS)
        check_choice("normalization", self.normalization, NORMALIZATIONS)
        check_choice("one_dim", self.one_dim, ONE_DIM_CHOICES)
        check_choice("activation", self.activation, tuple(ACTIVATIONS))

    def _validate_ranges(self) -> None:
        check_integer("branches", self.branches, 1, 256)
        check_integer("width", self.width, 1, 512)
        check_integer("depth", self.depth, 1, 4)
        check_integer("hidden", self.hidden, 1, 1024)
        check_integer("epochs", self.epochs, 0, 5000)
        check_number("lr", self.lr, 1e-6, 1.0)
        check_number("span", self.span, 0.01, 10.0)
        check_integer("resolution", self.resolution, 5, 101)
        check_integer("sample_size", self.sample_size, 0, uploads.MAX_ROWS)
        if self.curvature_resolution != 0:
            check_integer("curvature_resolution", self.curvature_resolution, 2, 15)
        check_integer("lanczos_iterations", self.lanczos_iterations, 2, MAX_LANCZOS)
        check_integer("seed", self.seed, 0, 2**31 - 1)

    def _validate_combinations(self) -> None:
        if self.model == "upload" and not _DIGEST.match(self.model_upload):
            raise ValueError("model_upload must name an uploaded ONNX file: upload one")
        if self.dataset == "upload" and not (
            _DIGEST.match(self.data_upload) and self.data_name.lower().endswith((".csv", ".npz"))
        ):
            raise ValueError("data_upload must name an uploaded .csv or .npz file: upload one")
        if self.directions == "pca" and self.epochs < 3:
            raise ValueError(f"epochs must be >= 3 for PCA directions, got {self.epochs}")
        if self.directions == "three_models" and self.model == "upload":
            raise ValueError("directions='three_models' needs a built-in model (three seeds)")

    def parameter_count(self) -> int:
        """The built-in model's weights on the digits (64 inputs, 10 classes), biases aside:
        ``branches (64 w + (depth - 1) w^2 + 10 w)`` or ``64 h + h^2 + 10 h`` for the MLP."""
        d, k = DIGITS_FEATURES, DIGITS_CLASSES
        if self.model == "multibranch":
            w = self.width
            return self.branches * (d * w + (self.depth - 1) * w**2 + k * w)
        return d * self.hidden + self.hidden**2 + k * self.hidden

    def cost(self) -> float:
        """Multiply-adds of a run (the module's docstring): samples x parameters x
        ``(6 epochs + 2 resolution^2 + 4 lanczos_iterations curvature_resolution^2)``."""
        samples = self.sample_size or DIGITS_SAMPLES
        passes = (
            6.0 * self.epochs
            + 2.0 * self.resolution**2
            + 4.0 * self.lanczos_iterations * self.curvature_resolution**2
        )
        return samples * self.parameter_count() * passes
