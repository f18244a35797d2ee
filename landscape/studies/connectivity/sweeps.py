"""Barriers against width ``m`` (the Width study's axis) and against the number of branches
``I`` (the Branches study's axis), before and after each alignment, over several seed pairs.

Each (value, seed pair) is one `measure.measure_pair` task, so a sweep runs in-process or as
Ray tasks. The page states, from the data, where the barrier after alignment falls to the level
of its spread: the first value ``v`` at which ``mean_v(B_aligned) <= spread_v``, where
``spread_v`` is the standard deviation over seed pairs of the unaligned end points' losses
(how far apart two minima of the same training already sit).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from landscape.engine.device import Device, resolve_device
from landscape.engine.progress import Progress, silent
from landscape.engine.validation import check_choice, check_integer, check_number
from landscape.server import cluster
from landscape.studies.connectivity import connectivity, data
from landscape.studies.connectivity.measure import PairTask, measure_pair
from landscape.studies.connectivity.pairs import ALIGNMENTS


def check_values(field: str, values: tuple[int, ...], low: int, high: int) -> None:
    """``ValueError`` unless ``values`` holds 2 to 12 increasing integers in [low, high]."""
    if not 2 <= len(values) <= 12:
        raise ValueError(f"{field} must list 2 to 12 values, got {len(values)}")
    for v in values:
        check_integer(field, v, low, high)
    if list(values) != sorted(set(values)):
        raise ValueError(f"{field} must be increasing without repeats, got {values}")


@dataclass(frozen=True)
class SweepFields:
    """The fields both sweeps share (the training and data of the page)."""

    dataset: connectivity.DatasetName = "digits"
    depth: int = 2
    pairs: int = 3
    epochs: int = 10
    lr: float = 1e-3
    batch_size: int = 64
    points: int = 17
    seed: int = 0
    device: Device = "auto"

    def page_config(self, **fields: Any) -> connectivity.Config:
        """The page's `connectivity.Config` with these shared fields, no curve, and ``fields``."""
        shared = {f.name: getattr(self, f.name) for f in dataclasses.fields(SweepFields)}
        return connectivity.Config(**shared, curve=False, **fields)

    def validate_fields(self) -> None:
        """``ValueError`` naming the first shared field outside its allowed range."""
        check_choice("dataset", self.dataset, connectivity.DATASETS)
        check_integer("depth", self.depth, 1, 4)
        check_integer("pairs", self.pairs, 2, 10)
        check_integer("epochs", self.epochs, 1, 200)
        check_number("lr", self.lr, 1e-5, 1.0)
        check_integer("batch_size", self.batch_size, 1, 5000)
        check_integer("points", self.points, 3, 201)
        check_integer("seed", self.seed, 0, 2**32 - 1)


@dataclass
class SweepResult:
    """Barriers per value and seed pair: ``values`` (V,), ``barrier_*`` (V, P) on the train
    loss, ``test_barrier_*`` (V, P), ``endpoint_loss`` and ``test_endpoint_loss`` (V, P, 2);
    ``settles_at`` (``test_settles_at``) the first value where weight matching's mean train
    (test) barrier is within the spread of the end points' train (test) losses (NaN: none)."""

    values: np.ndarray
    barrier_none: np.ndarray
    barrier_weights: np.ndarray
    barrier_activations: np.ndarray
    test_barrier_none: np.ndarray
    test_barrier_weights: np.ndarray
    test_barrier_activations: np.ndarray
    endpoint_loss: np.ndarray
    test_endpoint_loss: np.ndarray
    settles_at: float
    test_settles_at: float
    diverged: bool
    message: str


def sweep(base: Any, field: str, values: tuple[int, ...], progress: Progress | None) -> SweepResult:
    """Measure every (value of ``field``, seed pair) of ``base`` (a `connectivity.Config`)."""
    report = progress or silent
    device = resolve_device(base.device)
    split = data.load(base.dataset, base.seed)
    tasks = [
        PairTask.of(replace(base, **{field: v}), split, k, device, shown=False)
        for v in values
        for k in range(base.pairs)
    ]
    measures = cluster.parallel_map(
        measure_pair, tasks, lambda k, _: report(k / len(tasks), f"pair {k + 1} of {len(tasks)}")
    )
    report(1.0, "done")
    shape = (len(values), base.pairs)

    def table(kind: str, how: str) -> np.ndarray:
        return np.array([getattr(m, kind)[how] for m in measures]).reshape(shape)

    endpoints = np.array([m.endpoints for m in measures]).reshape(*shape, 2)
    test_endpoints = np.array([m.test_endpoints for m in measures]).reshape(*shape, 2)
    axis = np.array(values, dtype=np.float64)
    diverged = not all(np.all(np.isfinite(m.training_loss)) for m in measures)
    weights = table("barriers", "weights")
    return SweepResult(
        values=np.array(values, dtype=np.int64),
        **{f"barrier_{how}": table("barriers", how) for how in ALIGNMENTS},
        **{f"test_barrier_{how}": table("test_barriers", how) for how in ALIGNMENTS},
        endpoint_loss=endpoints,
        test_endpoint_loss=test_endpoints,
        settles_at=settles_at(axis, weights, endpoints),
        test_settles_at=settles_at(axis, table("test_barriers", "weights"), test_endpoints),
        diverged=diverged,
        message="a training diverged (NaN or inf loss)" if diverged else "",
    )


def result_shapes(values: str) -> dict[str, str]:
    """`SweepResult`'s run-file schema for a sweep over the tuple field ``values``."""
    table = f"f![{values},pairs]"
    return {
        "values": f"i[{values}]",
        **{f"{kind}_{how}": table for kind in ("barrier", "test_barrier") for how in ALIGNMENTS},
        "endpoint_loss": f"f![{values},pairs,2]",
        "test_endpoint_loss": f"f![{values},pairs,2]",
        "settles_at": "f",
        "test_settles_at": "f",
        "diverged": "b",
        "message": "s",
    }


def settles_at(values: np.ndarray, aligned: np.ndarray, endpoints: np.ndarray) -> float:
    """The first value whose mean aligned barrier (over seed pairs) is at most the standard
    deviation of the end points' losses at that value; NaN if none."""
    for v, barrier, ends in zip(values, aligned, endpoints, strict=True):
        if barrier.mean() <= ends.reshape(-1).std(ddof=1):
            return float(v)
    return float("nan")
