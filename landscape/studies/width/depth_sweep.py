"""The depth sweep of the Width study (seed section 3.1; MATH.md section 3): FC against ResNet.

At every depth H, for both architectures:

- ``lambda_min(K^(H))`` (ResNet's ``K^(H)`` carries the factor ``(c_res / H)^2``, which its step
  size ``eta ~ lambda_min H^2 / n^2`` compensates);
- the deviation ``||G^(H)(0) - K^(H)||_2 / lambda_min(K^(H))`` at initialisation against m (drawn
  by `sample_last_gram_at_init`, averaged over ``samples`` draws), its log-log fit, and the width
  where the fitted line reaches 1/4, the concentration the proofs need (then
  ``lambda_min(G^(H)(0)) >= 3/4 lambda_min(K^(H))``): measured up to
  ``concentration_max_width``, extrapolated beyond it;
- the smallest width whose trained loss reaches ``target * L(0)`` within ``iterations`` steps at
  the theorem's step (one multiplier per architecture: the O(.) constants differ).

A width that no grid point meets (or no fit gives) is NaN. The seed's claim is that FC needs
width exponential in H and ResNet polynomial; these are finite-size measurements of it, not a
proof.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from landscape.engine.device import Device, float64_device, resolve_device
from landscape.engine.gram import (
    ACTIVATIONS,
    ARCHITECTURES,
    KernelActivation,
    gram_matrices,
    lambda_min,
)
from landscape.engine.progress import Progress, silent
from landscape.engine.validation import (
    COST_LIMIT,
    check_choice,
    check_cost,
    check_integer,
    check_integers,
    check_number,
)
from landscape.server import cluster
from landscape.studies.width.wide_nets import (
    WideNetSpec,
    sample_last_gram_at_init,
    train,
)
from landscape.studies.width.width import (
    MAX_DEPTH,
    MAX_WIDTH,
    SINGULAR_RTOL,
    DataFields,
    sphere_data,
    theorem_step,
)
from landscape.studies.width.width_sweep import check_width_range, loglog_slope, power_of_two_widths

CONCENTRATION_THRESHOLD = 0.25  # ||G^(H)(0) - K^(H)||_2 <= lambda_min / 4
MAX_CONCENTRATION_WIDTH = 2**20
MAX_DRAW_BYTES = 8e9  # memory of one draw of G^(H)(0): four (n, m) float64 arrays


@dataclass(frozen=True)
class Config(DataFields):
    """Fully connected against ResNet at every depth in ``depths``; defaults take about half a
    minute on a 2-core CPU."""

    depths: tuple[int, ...] = (2, 4, 6, 8)
    activation: KernelActivation = "tanh"
    c_res: float = 0.5
    multiplier_fc: float = 100.0
    multiplier_resnet: float = 3000.0
    iterations: int = 200
    target: float = 1e-2  # reach L(k) <= target L(0) within the iterations
    min_width: int = 16
    max_width: int = 256
    concentration_max_width: int = 2**14
    samples: int = 2
    seed: int = 0
    device: Device = "auto"

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first field outside its allowed range."""
        self.validate_data()
        check_integers("depths", self.depths, 2, MAX_DEPTH, MAX_DEPTH)
        check_choice("activation", self.activation, ACTIVATIONS)
        if not 0.0 < check_number("c_res", self.c_res, 0.0, 1.0) < 1.0:
            raise ValueError(f"c_res must be in (0, 1), got {self.c_res}")
        check_number("multiplier_fc", self.multiplier_fc, 1e-6, 1e9)
        check_number("multiplier_resnet", self.multiplier_resnet, 1e-6, 1e9)
        check_integer("iterations", self.iterations, 1, 20_000)
        check_number("target", self.target, 1e-12, 0.999)
        check_width_range(self.min_width, self.max_width, MAX_WIDTH)
        check_width_range(
            self.min_width,
            self.concentration_max_width,
            MAX_CONCENTRATION_WIDTH,
            "concentration_max_width",
        )
        check_integer("samples", self.samples, 1, 50)
        check_integer("seed", self.seed, 0, 2**32 - 1)
        widths = power_of_two_widths(self.min_width, self.max_width)
        layers = sum(
            self.n * (self.input_dim * m + (depth - 1) * m * m + m)
            for m in widths
            for depth in self.depths
        )
        check_cost(
            "training (architectures x depths x widths x iterations x n x m^2)",
            2 * 6.0 * self.iterations * layers,
            COST_LIMIT,
            "multiply-adds",
            "lower max_width, the depths or iterations",
        )
        widest = self.concentration_max_width
        check_cost(
            "the concentration draws (architectures x samples x depth x n^2 x m, every width)",
            2.0 * self.samples * sum(self.depths) * self.n**2 * 2 * widest,
            COST_LIMIT,
            "multiply-adds",
            "lower concentration_max_width, samples or the depths",
        )
        check_cost(
            "one concentration draw's activations (4 arrays of n x concentration_max_width)",
            4.0 * 8 * self.n * widest,
            MAX_DRAW_BYTES,
            "bytes",
            "lower concentration_max_width or n",
        )


@dataclass
class Result:
    """Per depth and architecture (rows: ``ARCHITECTURES`` order, fc then resnet)."""

    depths: np.ndarray  # (D,)
    lambda_min: np.ndarray  # (2, D) lambda_min(K^(H))
    concentration_widths: np.ndarray  # (Wc,)
    deviation: np.ndarray  # (2, D, Wc) mean ||G^(H)(0) - K^(H)||_2 / lambda_min
    deviation_slope: np.ndarray  # (2, D) log-log slope of deviation against m
    deviation_intercept: np.ndarray  # (2, D)
    width_needed: np.ndarray  # (2, D) width where the fit reaches 1/4 (extrapolated), NaN if none
    train_widths: np.ndarray  # (Wt,)
    final_relative_loss: np.ndarray  # (2, D, Wt) L(T) / L(0); NaN: diverged or not run
    width_to_target: np.ndarray  # (2, D) smallest width reaching target L(0), NaN if none
    eta: np.ndarray  # (2, D) the step used
    target: float
    diverged: bool = False  # some training run diverged (NaN/inf): its entries are NaN
    message: str = ""  # why entries are NaN, one sentence per cause; empty when all are finite


#: What a run file may hold for each Result field (landscape.files.results.check_result):
#: kind f/i/b/s, ! finite, dimensions named alike agree; a Config field's name is its value.
RESULT_SHAPES: dict[str, str] = {
    "depths": "i[depths]",
    "lambda_min": "f[2,depths]",
    "concentration_widths": "i[WC]",
    "deviation": "f[2,depths,WC]",
    "deviation_slope": "f[2,depths]",
    "deviation_intercept": "f[2,depths]",
    "width_needed": "f[2,depths]",
    "train_widths": "i[WT]",
    "final_relative_loss": "f[2,depths,WT]",
    "width_to_target": "f[2,depths]",
    "eta": "f[2,depths]",
    "target": "f",
    "diverged": "b",
    "message": "s",
}


@dataclass(frozen=True)
class DepthCell:
    """One (architecture, depth) of the sweep, with its kernel ``K`` (n, n) and the data."""

    config: Config
    architecture: str
    depth: int
    K: np.ndarray
    X: np.ndarray
    y: np.ndarray
    device: torch.device


def depth_cell(cell: DepthCell) -> dict[str, Any]:
    """``lambda_min``, the concentration deviation per width (Wc,) and its fit, the step, and
    ``L(T) / L(0)`` per training width (Wt,) up to the first that reaches the target (a Ray task
    inside ``engine.cluster.compute_on``)."""
    config, architecture, depth, K = cell.config, cell.architecture, cell.depth, cell.K
    concentration_widths = power_of_two_widths(config.min_width, config.concentration_max_width)
    train_widths = power_of_two_widths(config.min_width, config.max_width)
    out: dict[str, Any] = {
        "lambda_min": lambda_min(K),
        "eta": np.nan,
        "slope": np.nan,
        "intercept": np.nan,
        "needed": np.nan,
        "reached": np.nan,
        "deviation": np.full(len(concentration_widths), np.nan),
        "relative": np.full(len(train_widths), np.nan),
        "singular": False,
        "diverged": [],  # widths whose training diverged
    }
    if out["lambda_min"] <= SINGULAR_RTOL * np.linalg.eigvalsh(K)[-1]:
        out["singular"] = True
        return out  # K^(H) singular: no concentration threshold, no step size
    _concentration(cell, out, concentration_widths)
    multipliers = {"fc": config.multiplier_fc, "resnet": config.multiplier_resnet}
    out["eta"] = theorem_step(
        out["lambda_min"], config.n, depth, architecture, multipliers[architecture]
    )
    _width_to_target(cell, out, train_widths)
    return out


def _concentration(cell: DepthCell, out: dict[str, Any], widths: np.ndarray) -> None:
    """Into ``out``: the mean deviation ``||G^(H)(0) - K^(H)||_2 / lambda_min`` over ``samples``
    draws at every width, its log-log fit and, for a falling fit, the width where it reaches
    `CONCENTRATION_THRESHOLD`."""
    config, architecture, depth, K = cell.config, cell.architecture, cell.depth, cell.K
    concentration_widths, lam = widths, out["lambda_min"]
    X_t = torch.as_tensor(cell.X, device=float64_device(cell.device))
    for w, m in enumerate(concentration_widths):
        spec = WideNetSpec(depth, int(m), config.activation, architecture, config.c_res)
        draws = [
            sample_last_gram_at_init(spec, X_t, config.seed + s).cpu().numpy()
            for s in range(config.samples)
        ]
        out["deviation"][w] = np.mean([np.linalg.norm(G - K, 2) for G in draws]) / lam
    out["slope"], out["intercept"] = loglog_slope(
        concentration_widths.astype(np.float64), out["deviation"]
    )
    if out["slope"] < 0:
        out["needed"] = np.exp((np.log(CONCENTRATION_THRESHOLD) - out["intercept"]) / out["slope"])


def _width_to_target(cell: DepthCell, out: dict[str, Any], widths: np.ndarray) -> None:
    """Into ``out``: ``L(T) / L(0)`` after ``iterations`` steps of ``out["eta"]`` at each width,
    smallest first, up to the first that reaches ``target`` (then ``reached``); the widths whose
    training diverged."""
    config, architecture, depth = cell.config, cell.architecture, cell.depth
    for w, m in enumerate(widths):
        spec = WideNetSpec(depth, int(m), config.activation, architecture, config.c_res)
        history = train(
            spec,
            cell.X,
            cell.y,
            out["eta"],
            config.iterations,
            config.seed,
            cell.device,
            track=False,
        )
        if history.diverged:
            out["diverged"].append(int(m))
            continue
        out["relative"][w] = history.loss[-1] / history.loss[0]
        if out["relative"][w] <= config.target:
            out["reached"] = m
            break


def _notes(cell: DepthCell, out: dict[str, Any], target: float, widths: np.ndarray) -> list[str]:
    """Why entries of one (architecture, depth) cell are NaN, one sentence per cause."""
    stage = f"{cell.architecture}, H = {cell.depth}"
    if out["singular"]:
        return [f"{stage}: K^(H) is singular, so there is no step size (NaN)."]
    notes = []
    if not out["slope"] < 0:
        notes.append(
            f"{stage}: the deviation at initialisation does not fall with the width, so no "
            "width needed is fitted (NaN)."
        )
    if out["diverged"]:
        notes.append(
            f"{stage}: training diverged (NaN/inf) at width(s) {out['diverged']}; lower the "
            "step multiplier."
        )
    if np.isnan(out["reached"]):
        notes.append(f"{stage}: no trained width reached the target loss {target:g} (NaN).")
    elif out["reached"] < widths[-1]:
        notes.append(
            f"{stage}: widths above {int(out['reached'])} were not trained once it reached the "
            "target (NaN)."
        )
    return notes


def run(config: Config, progress: Progress | None = None) -> Result:
    """Both architectures at every depth: lambda_min, concentration at init, width to target."""
    config.validate()
    report = progress or silent
    device = resolve_device(config.device)
    X, y = sphere_data(config.dataset, config.n, config.input_dim, config.seed)
    depths = np.array(sorted(config.depths), dtype=np.int64)
    concentration_widths = power_of_two_widths(config.min_width, config.concentration_max_width)
    train_widths = power_of_two_widths(config.min_width, config.max_width)
    cells = []
    for architecture in ARCHITECTURES:
        grams = gram_matrices(X, depths.tolist(), config.activation, architecture, config.c_res)
        cells += [
            DepthCell(config, architecture, int(depth), K, X, y, device)
            for depth, K in zip(depths, grams, strict=True)
        ]
    done = cluster.parallel_map(  # one Ray task per (architecture, depth) inside compute_on
        depth_cell,
        cells,
        progress=lambda k, cell: report(
            k / len(cells), f"{cell.architecture}, H = {cell.depth}: concentration and training"
        ),
    )
    shape = (len(ARCHITECTURES), len(depths))

    def table(key: str) -> np.ndarray:  # (architectures, depths, ...) in float64
        values = np.array([out[key] for out in done], dtype=np.float64)
        return values.reshape(*shape, *values.shape[1:])

    lam, deviation = table("lambda_min"), table("deviation")
    notes = [
        note
        for k, out in enumerate(done)
        for note in _notes(cells[k], out, config.target, train_widths)
    ]
    diverged = any(out["diverged"] for out in done)
    for name, values in (("lambda_min", lam), ("deviation", deviation)):
        if not np.isfinite(values).all():
            notes.append(f"Some {name} values are not finite (the kernel overflowed).")
    report(1.0, "Done")
    return Result(
        depths=depths,
        lambda_min=lam,
        concentration_widths=concentration_widths,
        deviation=deviation,
        deviation_slope=table("slope"),
        deviation_intercept=table("intercept"),
        width_needed=table("needed"),
        train_widths=train_widths,
        final_relative_loss=table("relative"),
        width_to_target=table("reached"),
        eta=table("eta"),
        target=float(config.target),
        diverged=diverged,
        message=" ".join(dict.fromkeys(notes)),
    )
