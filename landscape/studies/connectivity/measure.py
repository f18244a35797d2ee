"""One seed pair: train both networks, align, measure the barriers, and (for the pair shown)
the paths, the curve and the plane. `measure_pair` is a module-level function of one picklable
`PairTask`, so that a sweep runs it in-process or as Ray tasks (`landscape.server.cluster`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from landscape.engine.directions import Params, parameters_of
from landscape.engine.problem import Problem
from landscape.studies.connectivity import paths
from landscape.studies.connectivity.data import Split
from landscape.studies.connectivity.pairs import (
    ALIGNMENTS,
    Alignment,
    NetSpec,
    Training,
    align,
    largest_output_change,
    loss_function,
    train,
)

CURVE_LR = 0.01
PLANE_MARGIN = 0.25


def accuracy(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The share of rows whose largest logit is the label (a mean over samples, like a loss)."""
    return (output.argmax(-1) == target).to(output.dtype).mean()


@dataclass(frozen=True)
class PairTask:
    """Everything one seed pair needs (picklable): the nets, their training, the data."""

    spec: NetSpec
    training: Training
    split: Split
    seeds: tuple[int, int]
    points: int
    shown: bool  # compute the paths, the curve and the plane too
    alignment: Alignment
    curve: bool
    curve_steps: int
    plane_resolution: int
    curve_seed: int
    device: str

    @classmethod
    def of(cls, config: Any, split: Split, k: int, device: torch.device, shown: bool) -> PairTask:
        """Seed pair ``k`` of a study ``Config`` (seeds ``2k``, ``2k + 1``)."""
        spec = NetSpec(
            config.architecture, split.features, split.outputs, config.width, config.depth,
            config.branches,
        )  # fmt: skip
        return cls(
            spec, Training(config.epochs, config.lr, config.batch_size), split, (2 * k, 2 * k + 1),
            config.points, shown, config.alignment, config.curve, config.curve_steps,
            config.plane_resolution, config.seed, str(device),
        )  # fmt: skip


@dataclass
class Paths:
    """The pair shown: losses (and accuracies) along the line before and after alignment, the
    curve, and the plane (see `connectivity.Result` for the shapes)."""

    ts: np.ndarray
    line: dict[str, np.ndarray]
    aligned: dict[str, np.ndarray]
    curve: dict[str, np.ndarray]
    curve_objective: np.ndarray
    output_change: float
    plane_xs: np.ndarray
    plane_ys: np.ndarray
    plane_loss: np.ndarray
    plane_anchors: np.ndarray
    curve_xy: np.ndarray


@dataclass
class PairMeasure:
    """Barriers (train and test loss) by alignment, end-point losses, training curves, and the
    losses along each line (``lines[how]``: ``train_loss`` and ``test_loss``, (T,) each)."""

    barriers: dict[str, float]
    test_barriers: dict[str, float]
    endpoints: np.ndarray  # (2,) train loss of A and B
    test_endpoints: np.ndarray  # (2,) their test loss
    training_loss: np.ndarray  # (2, epochs + 1)
    lines: dict[str, dict[str, np.ndarray]]
    paths: Paths | None


class _Evaluator:
    """The train and test problems of a pair on one device, and losses along paths."""

    def __init__(self, task: PairTask, model: torch.nn.Module) -> None:
        self.loss_fn = loss_function(task.split.classification)
        self.classification = task.split.classification
        self.model = model
        self.sets = data_tensors(task)

    def problem(self, part: str, metric: str = "loss") -> Problem:
        X, y = self.sets[part]
        return Problem(self.model, self.loss_fn if metric == "loss" else accuracy, X, y)

    def along(self, a: Params, b: Params, c: Params, coords: np.ndarray) -> dict[str, np.ndarray]:
        """``train_loss``, ``test_loss`` and (classification) ``*_accuracy`` at ``coords``."""
        metrics = ("loss", "accuracy") if self.classification else ("loss",)
        out = {
            f"{part}_{metric}": paths.path_losses(self.problem(part, metric), a, b, c, coords)
            for part in ("train", "test")
            for metric in metrics
        }
        for part in ("train", "test"):
            out.setdefault(f"{part}_accuracy", np.zeros(0))
        return out


def data_tensors(task: PairTask) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """``{"train": (X, y), "test": (X, y)}`` on the task's device."""
    device, s = torch.device(task.device), task.split

    def on(array: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(array, device=device)

    return {"train": (on(s.X_train), on(s.y_train)), "test": (on(s.X_test), on(s.y_test))}


def measure_pair(task: PairTask) -> PairMeasure:
    """Train the pair, align ``B`` to ``A`` each way, and measure the barriers."""
    device = torch.device(task.device)
    nets, histories = [], []
    X, y = data_tensors(task)["train"]
    for seed in task.seeds:
        net = task.spec.build(seed).to(device)
        histories.append(
            train(net, X, y, loss_function(task.split.classification), task.training, seed)
        )
        nets.append(net.eval())
    a_net, b_net = nets
    ev = _Evaluator(task, a_net)
    ts = np.linspace(0.0, 1.0, task.points)
    line = paths.line_coordinates(ts)
    a = parameters_of(a_net)
    aligned: dict[str, torch.nn.Module] = {how: align(a_net, b_net, how, X) for how in ALIGNMENTS}
    along = {how: ev.along(a, parameters_of(net), a, line) for how, net in aligned.items()}
    measure = PairMeasure(
        barriers={how: paths.barrier(ts, v["train_loss"]) for how, v in along.items()},
        test_barriers={how: paths.barrier(ts, v["test_loss"]) for how, v in along.items()},
        endpoints=along["none"]["train_loss"][[0, -1]],
        test_endpoints=along["none"]["test_loss"][[0, -1]],
        training_loss=np.stack(histories),
        lines={how: {k: v[k] for k in ("train_loss", "test_loss")} for how, v in along.items()},
        paths=None,
    )
    if task.shown:
        shown = aligned[task.alignment]
        change = largest_output_change(b_net, shown, X)
        measure.paths = _paths(task, ev, a, parameters_of(shown), ts, along, change)
    return measure


def _paths(
    task: PairTask,
    ev: _Evaluator,
    a: Params,
    b: Params,
    ts: np.ndarray,
    along: dict[str, dict[str, np.ndarray]],
    change: float,
) -> Paths:
    """The paths of the pair shown: the curve between ``a`` and the aligned ``b`` and the plane
    through the three points (empty arrays without the curve)."""
    shown = Paths(
        ts=ts, line=along["none"], aligned=along[task.alignment],
        curve={k: np.zeros(0) for k in along["none"]}, curve_objective=np.zeros(0),
        output_change=change, plane_xs=np.zeros(0), plane_ys=np.zeros(0),
        plane_loss=np.zeros((0, 0)), plane_anchors=np.zeros((3, 2)), curve_xy=np.zeros((0, 2)),
    )  # fmt: skip
    if not task.curve:
        return shown
    X, y = ev.sets["train"]
    trained = paths.train_bezier(
        ev.model, ev.loss_fn, X, y, a, b, steps=task.curve_steps, lr=CURVE_LR,
        batch_size=task.training.batch_size, seed=task.curve_seed,
    )  # fmt: skip
    bend = trained.bend
    shown.curve = ev.along(a, b, bend, paths.bezier_coordinates(ts))
    shown.curve_objective = trained.objective
    grid = paths.plane_grid(ev.problem("train"), a, b, bend, task.plane_resolution, PLANE_MARGIN)
    e1, e2 = paths.plane_basis(a, b, bend)
    shown.plane_xs, shown.plane_ys, shown.plane_loss = grid.xs, grid.ys, grid.loss
    shown.plane_anchors = grid.anchors
    shown.curve_xy = np.stack(
        [paths.plane_coordinates(paths.bezier_point(a, bend, b, float(t)), a, e1, e2) for t in ts]
    )
    return shown
