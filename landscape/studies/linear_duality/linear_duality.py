"""Study 1: strong duality of deep linear networks (seed section 2.1; MATH.md section 1).

For a data set and an architecture ``widths = [d0, d1 (x H-1), dH]``, `run` sweeps gamma, solves
the dual (eq. 3-4) at every gamma, recovers the primal weights by the seed's truncated SVD and
*measures* the duality gap ``P(W_rec) - D(L*)``; at the selected gamma it also keeps the singular
values, the Douglas-Rachford history, gradient descent on the non-convex primal from several
initial scales and seeds, and a 2-D slice of the primal around the recovered optimum.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, replace
from typing import Literal, get_args

import numpy as np

from landscape.engine import datasets
from landscape.engine.device import Device, resolve_device
from landscape.engine.directions import cosine, random_directions
from landscape.engine.progress import Progress, silent
from landscape.engine.validation import (
    COST_LIMIT,
    check_cost,
    check_integer,
    check_number,
    check_numbers,
)
from landscape.files.results import from_groups
from landscape.server import study_parts
from landscape.studies.linear_duality.linear_net import (
    DeepLinearNet,
    primal_slice,
    train_primal_batch,
)
from solvers import linear_dual

METHODS = linear_dual.METHODS  # ways to solve the dual, for the page's selector

Dataset = Literal["synthetic", "linnerud"]
DATASETS: tuple[Dataset, ...] = get_args(Dataset)
Optimizer = Literal["gd", "adam"]
OPTIMIZERS: tuple[Optimizer, ...] = get_args(Optimizer)
SWEEP_RATIO = 5.0  # the sweep reaches 5 sigma_min, the top of the page's gamma slider
LADDER = tuple(round(0.25 * k, 2) for k in range(21))  # gamma / sigma_min: 0, 0.25, ..., 5


@dataclass(frozen=True)
class Config:
    """Every knob of the Linear duality page; defaults render in about a second on a CPU."""

    dataset: Dataset = "synthetic"
    n: int = 40
    d0: int = 8
    dH: int = 4
    rank: int = 4
    noise: float = 0.3
    depth: int = 3  # H, the number of weight matrices
    hidden_width: int = 4
    gamma_ratio: float = 0.5  # gamma / sigma_min(Ytil)
    method: linear_dual.Method = "closed_form"
    sweep_points: int = 41
    init_scales: tuple[float, ...] = (0.01, 0.3, 1.0)
    restarts: int = 2
    optimizer: Optimizer = "gd"
    lr: float = 0.05
    steps: int = 600
    slice_resolution: int = 31
    slice_radius: float = 1.0
    seed: int = 0
    device: Device = "auto"

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first field outside its allowed range."""
        if self.dataset not in DATASETS:
            raise ValueError(f"dataset must be one of {DATASETS}, got {self.dataset!r}")
        if self.dataset == "synthetic":
            check_integer("n", self.n, 2, 5000)
            check_integer("d0", self.d0, 1, 500)
            check_integer("dH", self.dH, 1, 500)
            check_integer("rank", self.rank, 1, min(self.d0, self.dH, self.n))
            check_number("noise", self.noise, 0.0, 100.0)
        check_integer("depth H", self.depth, 2, 10)
        check_integer("hidden_width", self.hidden_width, 1, 1000)
        check_number("gamma_ratio (gamma / sigma_min)", self.gamma_ratio, 0.0, 100.0)
        if self.method not in linear_dual.METHODS:
            raise ValueError(f"method must be one of {linear_dual.METHODS}, got {self.method!r}")
        check_integer("sweep_points", self.sweep_points, 2, 401)
        check_numbers("init_scales", self.init_scales, 1e-6, 10.0, 20)
        check_integer("restarts", self.restarts, 1, 20)
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        check_number("lr", self.lr, 1e-7, 10.0)
        check_integer("steps", self.steps, 1, 100_000)
        check_integer("slice_resolution", self.slice_resolution, 3, 101)
        check_number("slice_radius", self.slice_radius, 1e-3, 100.0)
        check_integer("seed", self.seed, 0, 2**32 - 1)
        w, runs = self.hidden_width, len(self.init_scales) * self.restarts
        n, d0, dH = (self.n, self.d0, self.dH) if self.dataset == "synthetic" else (20, 3, 3)
        layer = n * (d0 * w + (self.depth - 2) * w * w + w * dH)
        check_cost(
            "gradient descent (init_scales x restarts x steps x n x layer sizes)",
            6.0 * runs * self.steps * layer + 2.0 * self.slice_resolution**2 * layer,
            COST_LIMIT,
            "multiply-adds",
            "lower steps, restarts, n or hidden_width",
        )

    def data(self) -> tuple[np.ndarray, np.ndarray]:
        """``X`` (n, d0) and ``Y`` (n, dH) for this configuration, both divided by ``sqrt(n)``.

        The scaling makes the squared loss a mean over samples, so singular values and step
        sizes mean the same thing for every ``n``.
        """
        if self.dataset == "linnerud":
            X, Y = datasets.linnerud()
        else:
            X, Y = datasets.low_rank_regression(
                self.n, self.d0, self.dH, self.rank, self.noise, self.seed
            )
        scale = 1.0 / np.sqrt(X.shape[0])
        return X * scale, Y * scale


# The Result is flat (one array or scalar per field, as saved); its fields come in five groups,
# one per step of `run`, each a dataclass that `Result` inherits (in this order).


@dataclass
class Setting:
    """The architecture, the spectrum of the targets and the selected gamma (group)."""

    widths: np.ndarray  # [d0, d1, ..., dH]
    d_min: int
    sigma_min: float  # smallest non-zero singular value of Ytil
    sigma_max: float
    gamma: float  # the selected gamma


@dataclass
class Sweep:
    """The dual solved, the primal recovered and the gap measured at every gamma (group)."""

    gammas: np.ndarray  # (G,)
    sweep_primal: np.ndarray  # P(W_rec(gamma)) (G,)
    sweep_dual: np.ndarray  # D(L*(gamma)) (G,)
    sweep_gap: np.ndarray  # P - D (G,), measured
    sweep_seconds: float


@dataclass
class AtGamma:
    """At the selected gamma: the gap, singular values, Douglas-Rachford's history (group)."""

    primal: float
    dual: float
    gap: float
    singular_targets: np.ndarray  # sigma(Ytil)
    singular_residual: np.ndarray  # sigma(Ytil - L*)
    singular_end_to_end: np.ndarray  # sigma(W_H ... W_1)
    singular_output: np.ndarray  # sigma(X W_1^T ... W_H^T)
    dr_values: np.ndarray  # Douglas-Rachford dual value per iteration
    dr_residuals: np.ndarray  # ||x - y||_F per iteration
    dr_infeasibility: np.ndarray  # (||x||_2 - gamma)_+ of the unprojected iterate


@dataclass
class Descent:
    """Gradient descent on the non-convex primal from every scale and seed (group)."""

    gd_scales: np.ndarray  # (R,)
    gd_seeds: np.ndarray  # (R,)
    gd_objective: np.ndarray  # (R, steps + 1), NaN after a divergence
    gd_diverged: np.ndarray  # (R,) bool


@dataclass
class Slice:
    """A 2-D slice of the primal around the recovered optimum (group)."""

    slice_alphas: np.ndarray
    slice_betas: np.ndarray
    slice_values: np.ndarray  # (len(alphas), len(betas))
    slice_direction_cosine: float


#: What a run file may hold for each Result field (landscape.files.results.check_result):
#: kind f/i/b/s, ! finite, dimensions named alike agree; a Config field's name is its value.
RESULT_SHAPES: dict[str, str] = {
    "widths": "i[depth+1]",
    "d_min": "i",
    "sigma_min": "f",
    "sigma_max": "f",
    "gamma": "f",
    "gammas": "f![G]",
    "sweep_primal": "f[G]",
    "sweep_dual": "f[G]",
    "sweep_gap": "f[G]",
    "sweep_seconds": "f",
    "primal": "f",
    "dual": "f",
    "gap": "f",
    "singular_targets": "f[KT?]",
    "singular_residual": "f[KR?]",
    "singular_end_to_end": "f[KE?]",
    "singular_output": "f[KO?]",
    "dr_values": "f[R?]",
    "dr_residuals": "f[R?]",
    "dr_infeasibility": "f[R?]",
    "gd_scales": "f![S]",
    "gd_seeds": "i[S]",
    "gd_objective": "f[S,steps+1]",
    "gd_diverged": "b[S]",
    "slice_alphas": "f![slice_resolution]",
    "slice_betas": "f![slice_resolution]",
    "slice_values": "f[slice_resolution,slice_resolution]",
    "slice_direction_cosine": "f",
    "diverged": "b",
    "message": "s",
}


@dataclass
class Result(Slice, Descent, AtGamma, Sweep, Setting):
    """Everything the page draws; NumPy arrays and floats only: the fields of `Setting`,
    `Sweep`, `AtGamma`, `Descent` and `Slice`, in that order, then ``diverged`` and
    ``message``."""

    diverged: bool = False  # some gradient-descent run diverged: its curve is NaN after it
    message: str = ""  # what is not finite and why; empty when every number is finite


def _smallest_nonzero(s: np.ndarray) -> float:
    nonzero = s[s > 1e-10 * max(float(s.max(initial=0.0)), 1e-300)]
    return float(nonzero.min()) if nonzero.size else 0.0


def gamma_grid(sigma_min: float, sigma_max: float, points: int) -> np.ndarray:
    """``points`` gammas from 0 to ``max(1.5 sigma_1, 1.05 SWEEP_RATIO sigma_min)``, plus
    sigma_min: the same grid for every selected gamma, so the sweep is computed once."""
    top = max(1.5 * sigma_max, 1.05 * SWEEP_RATIO * sigma_min, 1e-3)
    return np.unique(np.concatenate([np.linspace(0.0, top, points), [sigma_min]]))


@dataclass(frozen=True)
class Problem:
    """The part of a run that does not depend on gamma: the data, the architecture, the
    spectrum ``s`` of ``Ytil = X X^+ Y`` and the sweep across `gamma_grid`."""

    X: np.ndarray  # (n, d0), scaled by 1/sqrt(n)
    Y: np.ndarray  # (n, dH)
    widths: tuple[int, ...]  # (d0, d1, ..., dH)
    Ytil: np.ndarray  # (n, dH)
    s: np.ndarray  # sigma(Ytil), descending
    setting: Setting  # its gamma is the one of the configuration that computed it
    sweep: Sweep


def gamma_free_key(config: Config) -> Config:
    """``config`` with every field that only the selected gamma's part reads set to its default:
    configurations with equal keys share one `Problem`."""
    default = Config()
    return replace(
        config,
        gamma_ratio=default.gamma_ratio,
        init_scales=default.init_scales,
        restarts=default.restarts,
        optimizer=default.optimizer,
        lr=default.lr,
        steps=default.steps,
        slice_resolution=default.slice_resolution,
        slice_radius=default.slice_radius,
        device="cpu",
    )


def problem(config: Config, progress: Progress | None = None) -> Problem:
    """The gamma-free part of `run`, kept between runs (`PROBLEMS`): moving gamma reuses it."""
    config.validate()
    key = gamma_free_key(config)
    found = study_parts.kept(PROBLEMS, key)
    if found is None:
        found = _solve_problem(key, progress or silent)
        study_parts.keep(PROBLEMS, key, found)
    return found


def _solve_problem(config: Config, report: Progress) -> Problem:
    report(0.0, "Preparing the data")
    X, Y = config.data()
    widths = [X.shape[1], *([config.hidden_width] * (config.depth - 1)), Y.shape[1]]
    Ytil = linear_dual.projected_targets(X, Y)
    s = np.linalg.svd(Ytil, compute_uv=False)
    setting = _setting(config, X, Y, widths, s)
    sweep = _sweep(config, X, Y, widths, setting, report)
    return Problem(X, Y, tuple(widths), Ytil, s, setting, sweep)


def run(config: Config, progress: Progress | None = None) -> Result:
    """Solve, recover and measure across the gamma sweep; train the primal; slice it.

    The sweep (`problem`) does not depend on the selected gamma and is cached, so a new gamma
    costs the dual at that gamma, gradient descent (every start in one batch) and the slice.
    """
    config.validate()
    report = progress or silent
    resolve_device(config.device)  # refuses a device this machine lacks; the matrices here
    # have a few dozen entries, so every step below runs on the CPU
    base = problem(config, lambda fraction, stage: report(0.4 * fraction, stage))
    X, Y, widths = base.X, base.Y, list(base.widths)
    setting = _setting(config, X, Y, widths, base.s)
    report(0.4, "Douglas-Rachford at the selected gamma")
    weights, at_gamma = _at_gamma(config, X, Y, widths, setting, base.Ytil, base.s)
    sweep = _with_gamma(base.sweep, setting.gamma, at_gamma)
    descent = _descent(config, X, Y, widths, setting.gamma, report)
    report(0.92, "Slicing the primal around the recovered optimum")
    slice_ = _slice(config, X, Y, weights, setting.gamma)
    report(1.0, "Done")
    return _say_what_diverged(from_groups(Result, setting, sweep, at_gamma, descent, slice_))


def _with_gamma(sweep: Sweep, gamma: float, at_gamma: AtGamma) -> Sweep:
    """The sweep with the selected gamma's point inserted (the grid itself does not hold it)."""
    at = int(np.searchsorted(sweep.gammas, gamma))
    if at < len(sweep.gammas) and sweep.gammas[at] == gamma:
        return sweep
    primal = np.insert(sweep.sweep_primal, at, at_gamma.primal)
    dual = np.insert(sweep.sweep_dual, at, at_gamma.dual)
    return Sweep(
        np.insert(sweep.gammas, at, gamma), primal, dual, primal - dual, sweep.sweep_seconds
    )


def _setting(
    config: Config, X: np.ndarray, Y: np.ndarray, widths: list[int], s: np.ndarray
) -> Setting:
    """``d_min``, the extreme non-zero singular values ``s`` of ``Ytil`` and
    ``gamma = gamma_ratio * sigma_min`` (``gamma_ratio`` itself when ``Ytil`` is zero)."""
    sigma_min, sigma_max = _smallest_nonzero(s), float(s.max(initial=0.0))
    return Setting(
        widths=np.array(widths),
        d_min=int(linear_dual.default_d_min(X, Y, widths[1:-1])),
        sigma_min=sigma_min,
        sigma_max=sigma_max,
        gamma=float(config.gamma_ratio * (sigma_min if sigma_min > 0 else 1.0)),
    )


def _sweep(
    config: Config,
    X: np.ndarray,
    Y: np.ndarray,
    widths: list[int],
    setting: Setting,
    report: Progress,
) -> Sweep:
    """At every gamma of `gamma_grid`: ``D(L*)`` by ``config.method``, ``P(W_rec)`` of the
    recovered weights, and the measured gap ``P - D``."""
    gammas = gamma_grid(setting.sigma_min, setting.sigma_max, config.sweep_points)
    primal, dual = np.empty_like(gammas), np.empty_like(gammas)
    seconds = 0.0
    for index, g in enumerate(gammas):
        report(
            0.05 + 0.35 * index / len(gammas),
            f"Solving the dual ({config.method}) at gamma = {g:.3g}",
        )
        solution = linear_dual.solve_dual(X, Y, g, setting.d_min, method=config.method)
        seconds += solution.seconds
        weights = linear_dual.recover_weights(X, Y, solution.Lambda, widths)
        primal[index] = linear_dual.primal_objective(weights, X, Y, g)
        dual[index] = solution.value
    return Sweep(gammas, primal, dual, primal - dual, float(seconds))


def _at_gamma(
    config: Config,
    X: np.ndarray,
    Y: np.ndarray,
    widths: list[int],
    setting: Setting,
    Ytil: np.ndarray,
    s: np.ndarray,
) -> tuple[list[np.ndarray], AtGamma]:
    """The recovered weights ``[W_1, ..., W_H]`` at the selected gamma, and what they show:
    the gap, the singular values of ``Ytil``, ``Ytil - L*``, ``W_H ... W_1`` and the output,
    and the Douglas-Rachford history (run at this gamma whatever ``config.method`` is)."""
    gamma, d_min = setting.gamma, setting.d_min
    dr = linear_dual.solve_dual(X, Y, gamma, d_min, method="douglas_rachford")
    solution = (
        dr
        if config.method == "douglas_rachford"
        else linear_dual.solve_dual(X, Y, gamma, d_min, method=config.method)
    )
    weights = linear_dual.recover_weights(X, Y, solution.Lambda, widths)
    primal = linear_dual.primal_objective(weights, X, Y, gamma)
    end_to_end = weights[0]
    for W in weights[1:]:
        end_to_end = W @ end_to_end
    return weights, AtGamma(
        primal=float(primal),
        dual=float(solution.value),
        gap=float(primal - solution.value),
        singular_targets=s,
        singular_residual=np.linalg.svd(Ytil - solution.Lambda, compute_uv=False),
        singular_end_to_end=np.linalg.svd(end_to_end, compute_uv=False),
        singular_output=np.linalg.svd(linear_dual.network_output(weights, X), compute_uv=False),
        dr_values=dr.history_value,
        dr_residuals=dr.history_residual,
        dr_infeasibility=dr.history_infeasibility,
    )


def _descent(
    config: Config,
    X: np.ndarray,
    Y: np.ndarray,
    widths: list[int],
    gamma: float,
    report: Progress,
) -> Descent:
    """``restarts`` runs of ``config.optimizer`` on the primal from every initial scale, all
    in one batch (`train_primal_batch`: the same steps as one run at a time, the gradient
    written out on matrices of at most ``max(d_i)`` rows, on the CPU whatever the device)."""
    runs = [
        (scale, config.seed + r) for scale in config.init_scales for r in range(config.restarts)
    ]
    report(0.45, f"Gradient descent on the primal: {len(runs)} starts in one batch")
    curves = train_primal_batch(
        widths, runs, X, Y, gamma, config.steps, config.lr, optimizer=config.optimizer
    )
    return Descent(
        gd_scales=np.array([scale for scale, _ in runs], dtype=np.float64),
        gd_seeds=np.array([seed for _, seed in runs], dtype=np.int64),
        gd_objective=np.stack([c.objective for c in curves]),
        gd_diverged=np.array([c.diverged for c in curves]),
    )


def _slice(
    config: Config, X: np.ndarray, Y: np.ndarray, weights: list[np.ndarray], gamma: float
) -> Slice:
    """The primal objective on ``W + a d1 + b d2`` around the recovered weights ``W``, with two
    filter-normalised random directions and ``a, b`` in ``[-slice_radius, slice_radius]``."""
    optimum = DeepLinearNet.from_weights(weights)
    d1 = random_directions(optimum, seed=config.seed, normalization="filter")
    d2 = random_directions(optimum, seed=config.seed + 1, normalization="filter")
    as_list = [
        [d[name].detach().cpu().numpy() for name, _ in optimum.named_parameters()] for d in (d1, d2)
    ]
    radii = np.linspace(-config.slice_radius, config.slice_radius, config.slice_resolution)
    values = primal_slice(weights, (as_list[0], as_list[1]), X, Y, gamma, radii, radii)
    return Slice(radii, radii.copy(), values, cosine(d1, d2))


def _say_what_diverged(result: Result) -> Result:
    """Set ``diverged`` and ``message``: which gradient-descent runs diverged (their curves are
    NaN after the divergence), and any other field that is not finite."""
    notes = []
    failed = int(np.sum(result.gd_diverged))
    if failed:
        scales = sorted({float(s) for s in result.gd_scales[result.gd_diverged]})
        notes.append(
            f"{failed} of {len(result.gd_diverged)} gradient-descent runs diverged (NaN/inf; "
            f"initial scales {scales}): their curves stop there. Lower the step size."
        )
    others = [
        f.name
        for f in dataclasses.fields(result)
        if f.name != "gd_objective"
        and np.asarray(getattr(result, f.name)).dtype.kind == "f"
        and not np.isfinite(getattr(result, f.name)).all()
    ]
    if others:
        notes.append(f"Not finite: {', '.join(others)} (the data's scale overflowed).")
    result.diverged = bool(failed) or bool(others)
    result.message = " ".join(notes)
    return result


PROBLEMS = "linear_duality.problems"  # the gamma-free parts (landscape.server.study_parts)

PRESETS: dict[str, Config] = {
    "default": Config(),
    "linnerud": Config(dataset="linnerud", hidden_width=3),
    # a lecture moves gamma along this ladder: every rung opens at once
    **{f"gamma_{ratio:g}": Config(gamma_ratio=ratio) for ratio in LADDER if ratio != 0.5},
}
