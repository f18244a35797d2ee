"""Connectivity: are the minima that training finds one valley?

Pairs of networks are trained from different seeds on the same data (seed pair ``k`` uses the
seeds ``2k`` and ``2k + 1``). For each pair: the losses along the line
``theta(t) = (1 - t) theta_A + t theta_B`` and its barrier
``B = max_t [L(t) - ((1 - t) L(0) + t L(1))]``, before and after aligning ``theta_B`` to
``theta_A`` by a permutation of its hidden units (and branches); for the pair shown, also the
train and test accuracy along both lines, a quadratic Bezier curve trained between the two
minima, and the plane through ``theta_A``, ``theta_B`` and the curve's bend.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np

from landscape.engine.device import Device, resolve_device
from landscape.engine.progress import Progress, silent
from landscape.engine.validation import check_choice, check_integer, check_number
from landscape.server import cluster
from landscape.studies.connectivity import data as datasets
from landscape.studies.connectivity.measure import PairMeasure, PairTask, measure_pair
from landscape.studies.connectivity.pairs import (
    ALIGNMENTS,
    ARCHITECTURES,
    Alignment,
    ArchitectureName,
)

DatasetName = Literal["digits", "mnist", "regression"]
DATASETS: tuple[DatasetName, ...] = get_args(DatasetName)
MAX_WIDTH = 1024
MAX_BRANCHES = 32


@dataclass(frozen=True)
class Config:
    """Every knob of the page; the defaults train two small MLPs on digits in a few seconds."""

    dataset: DatasetName = "digits"
    architecture: ArchitectureName = "mlp"
    width: int = 64  # m: hidden units per layer (per branch)
    depth: int = 2  # hidden layers (per branch)
    branches: int = 4  # I, for the multi-branch network
    seed_pair: int = 0  # the pair shown: seeds (2k, 2k + 1)
    pairs: int = 3  # seed pairs measured for the bands
    alignment: Alignment = "weights"  # the alignment shown
    curve: bool = True
    epochs: int = 10
    lr: float = 1e-3
    batch_size: int = 64
    points: int = 25  # t grid along the paths
    curve_steps: int = 400
    plane_resolution: int = 21
    seed: int = 0  # data split and curve sampling
    device: Device = "auto"

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first field outside its allowed range."""
        check_choice("dataset", self.dataset, DATASETS)
        check_choice("architecture", self.architecture, ARCHITECTURES)
        check_choice("alignment", self.alignment, ALIGNMENTS)
        check_integer("width", self.width, 2, MAX_WIDTH)
        check_integer("depth", self.depth, 1, 4)
        check_integer("branches", self.branches, 1, MAX_BRANCHES)
        check_integer("pairs", self.pairs, 1, 10)
        check_integer("seed_pair", self.seed_pair, 0, self.pairs - 1)
        check_integer("epochs", self.epochs, 1, 200)
        check_number("lr", self.lr, 1e-5, 1.0)
        check_integer("batch_size", self.batch_size, 1, 5000)
        check_integer("points", self.points, 3, 201)
        check_integer("curve_steps", self.curve_steps, 1, 5000)
        check_integer("plane_resolution", self.plane_resolution, 5, 61)
        check_integer("seed", self.seed, 0, 2**32 - 1)


@dataclass
class Result:
    """Barriers of every seed pair; paths, accuracies, curve and plane of the pair shown."""

    ts: np.ndarray  # (T,) from 0 to 1
    barrier_none: np.ndarray  # (P,) train-loss barrier of each seed pair, unaligned
    barrier_weights: np.ndarray  # (P,) after weight matching
    barrier_activations: np.ndarray  # (P,) after activation matching
    test_barrier_none: np.ndarray  # (P,) the same on the test loss
    test_barrier_weights: np.ndarray  # (P,)
    test_barrier_activations: np.ndarray  # (P,)
    endpoint_train_loss: np.ndarray  # (P, 2) L(theta_A), L(theta_B)
    line_train_loss: np.ndarray  # (T,) the pair shown, unaligned
    line_test_loss: np.ndarray  # (T,)
    line_train_accuracy: np.ndarray  # (T,) empty (0,) for regression
    line_test_accuracy: np.ndarray  # (T,) or (0,)
    aligned_train_loss: np.ndarray  # (T,) after the alignment shown
    aligned_test_loss: np.ndarray  # (T,)
    aligned_train_accuracy: np.ndarray  # (T,) or (0,)
    aligned_test_accuracy: np.ndarray  # (T,) or (0,)
    output_change: float  # max |f_B(X) - f_{B aligned}(X)|: zero to rounding
    curve_train_loss: np.ndarray  # (T,) along the trained Bezier curve, or (0,)
    curve_test_loss: np.ndarray  # (T,) or (0,)
    curve_objective: np.ndarray  # (curve_steps,) the sampled training objective, or (0,)
    plane_xs: np.ndarray  # (R,) coordinates along e1 (from theta_A to theta_B)
    plane_ys: np.ndarray  # (R,) along e2 (towards the bend)
    plane_loss: np.ndarray  # (R, R) train loss on the plane, or (0, 0)
    plane_anchors: np.ndarray  # (3, 2) theta_A, theta_B (aligned), the bend
    curve_xy: np.ndarray  # (T, 2) the curve in the plane's coordinates
    training_loss: np.ndarray  # (P, 2, epochs + 1) both networks of every pair
    pair_line_train_loss: np.ndarray  # (P, T) every seed pair's line, unaligned
    pair_line_test_loss: np.ndarray  # (P, T)
    pair_aligned_train_loss: np.ndarray  # (P, T) every pair's line after the alignment shown
    pair_aligned_test_loss: np.ndarray  # (P, T)
    classification: bool
    diverged: bool
    message: str


def run(config: Config, progress: Progress | None = None) -> Result:
    """Train ``pairs`` seed pairs, measure their barriers, and the paths of the pair shown."""
    config.validate()
    report = progress or silent
    device = resolve_device(config.device)
    split = datasets.load(config.dataset, config.seed)
    tasks = [
        PairTask.of(config, split, k, device, k == config.seed_pair) for k in range(config.pairs)
    ]
    measures = cluster.parallel_map(
        measure_pair, tasks, lambda k, _: report(k / len(tasks), f"seed pair {k + 1}")
    )
    report(1.0, "done")
    return _result(config, split.classification, measures)


def _result(config: Config, classification: bool, measures: list[PairMeasure]) -> Result:
    shown = measures[config.seed_pair]
    assert shown.paths is not None
    barriers = {how: np.array([m.barriers[how] for m in measures]) for how in ALIGNMENTS}
    tests = {how: np.array([m.test_barriers[how] for m in measures]) for how in ALIGNMENTS}
    diverged = any(not np.all(np.isfinite(m.training_loss)) for m in measures)
    p = shown.paths
    return Result(
        ts=p.ts,
        barrier_none=barriers["none"],
        barrier_weights=barriers["weights"],
        barrier_activations=barriers["activations"],
        test_barrier_none=tests["none"],
        test_barrier_weights=tests["weights"],
        test_barrier_activations=tests["activations"],
        endpoint_train_loss=np.array([m.endpoints for m in measures]),
        line_train_loss=p.line["train_loss"],
        line_test_loss=p.line["test_loss"],
        line_train_accuracy=p.line["train_accuracy"],
        line_test_accuracy=p.line["test_accuracy"],
        aligned_train_loss=p.aligned["train_loss"],
        aligned_test_loss=p.aligned["test_loss"],
        aligned_train_accuracy=p.aligned["train_accuracy"],
        aligned_test_accuracy=p.aligned["test_accuracy"],
        output_change=p.output_change,
        curve_train_loss=p.curve["train_loss"],
        curve_test_loss=p.curve["test_loss"],
        curve_objective=p.curve_objective,
        plane_xs=p.plane_xs,
        plane_ys=p.plane_ys,
        plane_loss=p.plane_loss,
        plane_anchors=p.plane_anchors,
        curve_xy=p.curve_xy,
        training_loss=np.stack([m.training_loss for m in measures]),
        **_pair_lines(measures, config.alignment),
        classification=classification,
        diverged=diverged,
        message="a training diverged (NaN or inf loss)" if diverged else "",
    )


def _pair_lines(measures: list[PairMeasure], alignment: str) -> dict[str, np.ndarray]:
    """Every seed pair's losses along the line and the aligned line, (P, T) each."""
    return {
        f"pair_{name}_{part}_loss": np.stack([m.lines[how][f"{part}_loss"] for m in measures])
        for name, how in (("line", "none"), ("aligned", alignment))
        for part in ("train", "test")
    }


#: What a run file may hold for each Result field (landscape.files.results.check_result).
RESULT_SHAPES: dict[str, str] = {
    "ts": "f![points]",
    **{f"{kind}_{how}": "f![pairs]" for kind in ("barrier", "test_barrier") for how in ALIGNMENTS},
    "endpoint_train_loss": "f![pairs,2]",
    **{
        f"{path}_{part}_loss": "f![points]"
        for path in ("line", "aligned")
        for part in ("train", "test")
    },
    **{
        f"{path}_{part}_accuracy": "f![points]|f![0]"
        for path in ("line", "aligned")
        for part in ("train", "test")
    },
    "output_change": "f!",
    "curve_train_loss": "f![points]|f![0]",
    "curve_test_loss": "f![points]|f![0]",
    "curve_objective": "f![curve_steps]|f![0]",
    "plane_xs": "f![plane_resolution]|f![0]",
    "plane_ys": "f![plane_resolution]|f![0]",
    "plane_loss": "f![0,0]|f![plane_resolution,plane_resolution]",
    "plane_anchors": "f![3,2]",
    "curve_xy": "f![0,2]|f![points,2]",
    "training_loss": "f[pairs,2,epochs+1]",
    **{
        f"pair_{path}_{part}_loss": "f![pairs,points]"
        for path in ("line", "aligned")
        for part in ("train", "test")
    },
    "classification": "b",
    "diverged": "b",
    "message": "s",
}

#: The lecture's values: the default, each alignment, the width ladder, branches, no curve.
PRESETS: dict[str, Config] = {
    "default": Config(),
    "no_alignment": Config(alignment="none"),
    "activation_matching": Config(alignment="activations"),
    **{f"width_{m}": Config(width=m) for m in (8, 16, 32, 128, 256)},
    "branches": Config(architecture="branches"),
}
