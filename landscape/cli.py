"""The ``convexify`` command: loss surfaces of real models, and the studies' sweeps, headless.

``convexify surface`` computes a 2-D loss surface (optionally 1-D slices and a curvature map) of
a model file on a data file and writes a surface file (`landscape.files.surface_files`) that
the Lab opens ("Open a computed surface"). ``convexify sweep STUDY`` runs one of the studies'
sweeps and writes the JSON run file its page loads. Both run in this process, or on a Ray
cluster with ``--ray`` (`landscape.server.cluster`).

This module sits above the studies (it dispatches to them), beside ``landscape/__main__.py``.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import math
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from importlib import metadata as importlib_metadata
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch
from torch import nn

from landscape.engine.curvature import curvature_map
from landscape.engine.device import resolve_device
from landscape.engine.directions import parameters_of, pca_directions, random_directions
from landscape.engine.problem import Problem
from landscape.engine.surface import path_taken
from landscape.files import results, uploads
from landscape.files.data_files import DEFAULT_DATA_BUDGET, ArrayData, NpzStream, open_data
from landscape.files.model_code import (
    TORCHSCRIPT_DEPRECATED,
    is_factory,
    open_model,
    read_weights,
)
from landscape.files.model_code import load_weights_strictly as load_weights
from landscape.files.model_files import load_model_file
from landscape.files.surface_files import SurfaceFile, save_surface
from landscape.server import cluster, heap
from landscape.server.threads import configure_threads
from landscape.studies.branches import branch_gap, branches
from landscape.studies.connectivity import barrier_vs_branches, barrier_vs_width
from landscape.studies.width import depth_sweep, width_sweep

MiB = 2**20
SWEEPS: dict[str, ModuleType] = {
    "width-sweep": width_sweep,
    "depth-sweep": depth_sweep,
    "barrier-vs-width": barrier_vs_width,
    "barrier-vs-branches": barrier_vs_branches,
    "branch-grid": branches,
    "gap-vs-I": branch_gap,
}
SURFACE_HELP = """\
Models (read from your own disk):
  --model package.module:factory --weights FILE [--model-kwargs JSON]: your own code and a
         weights file, the recommended way. The factory is IMPORTED AND RUN from your own code
         (the current folder or PYTHONPATH), as your training script would; the weights are data:
         safetensors, or a state dict (torch.save(model.state_dict())) read with
         torch.load(weights_only=True), which refuses every object beyond tensors. Keys and
         shapes must match the model exactly.
  .onnx  ONNX (torch.onnx.export), data not code: the format the web upload accepts too.
  .pt2   torch.export.save: its loader unpickles the weights; trusted here because it is your file.
  TorchScript (torch.jit.save): deprecated upstream; code that runs when loaded, trusted here
         because it is your file. Prefer factory + weights.
  A pickled model or checkpoint given as --model is refused.
Data: an .npz archive with X (n, ...) (integer X that the model takes as integers, e.g. token
ids, stays integer) and y: for cross_entropy integer labels shaped like the model's outputs
without their last (class) axis, (n,) or (n, T), averaged over every position; for mse targets
of the outputs' shape. Data larger than --data-budget is streamed from disk in batches; the loss is
accumulated over the batches (the same numbers to float rounding).
Ray: --ray auto joins this machine's cluster (ray start --head) or starts a local one; --ray
HEAD_IP:PORT joins the cluster of `ray start --head --port=PORT`, from a machine of the cluster,
with RAY_AUTH_MODE=token and the cluster's token (RAY_AUTH_TOKEN, or ~/.ray/auth_token): see
docs/cluster.md. The grid's rows are split into shards, each a Ray task; with --checkpoint DIR
finished shards are kept on disk and a rerun computes only the missing ones."""


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``convexify`` console script; returns the exit status."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if args.command == "surface" and extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.params = extra
    configure_threads(args.threads)
    heap.tune_for_chunked_work()
    try:
        if args.command == "surface":
            surface_command(args, list(sys.argv[1:] if argv is None else argv))
        else:
            sweep_command(args)
    except ValueError as error:
        print(f"convexify: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("convexify: interrupted (--checkpoint keeps finished shards)", file=sys.stderr)
        return 130
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``convexify`` command's parser: ``surface`` (a loss surface ``Z(a, b) = L(theta +
    a d1 + b d2)`` of a model file on a data file, written as a surface file) and ``sweep`` (a
    study's sweep, written as its JSON run file), both taking ``--threads``."""
    parser = argparse.ArgumentParser(
        prog="convexify",
        description="Loss surfaces and sweeps of Convexify, headless.",
        allow_abbrev=False,
    )
    common = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    common.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: every core)"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    _add_surface_command(commands, common)
    w = commands.add_parser(
        "sweep",
        parents=[common],
        allow_abbrev=False,
        help="run a study's sweep and write its JSON run file",
        description="Run a sweep of a study; --NAME VALUE sets a field of the study's Config "
        "(e.g. --min-width 8; tuples comma-separated: --branch-counts 1,2,4). The run file "
        "loads on the study's page.",
    )
    w.add_argument("study", choices=tuple(SWEEPS))
    w.add_argument("--out", default=None, help="run file to write (default: STUDY.json)")
    w.add_argument("--ray", default=None, metavar="auto|local|ADDRESS", help="run on Ray")
    w.add_argument("--no-progress", action="store_true")
    return parser


# --------------------------------------------------------------------------------------------
# surface


def _add_surface_command(commands: Any, common: argparse.ArgumentParser) -> None:
    """The ``surface`` subcommand's arguments."""
    s = commands.add_parser(
        "surface",
        parents=[common],
        allow_abbrev=False,
        help="compute a loss surface of a model file on a data file",
        description="Compute Z(a, b) = L(theta + a d1 + b d2) on a grid and write a surface "
        "file (.npz) that the Lab opens.",
        epilog=SURFACE_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_plane_arguments(s)
    _add_curvature_arguments(s)
    _add_compute_arguments(s)


def _add_plane_arguments(s: argparse.ArgumentParser) -> None:
    """What the surface is of: model, data, loss, directions, grid and output file."""
    s.add_argument(
        "--model",
        required=True,
        help="package.module:factory (your own code, imported and run), or an ONNX, .pt2 or "
        "TorchScript file (see below)",
    )
    s.add_argument("--weights", default=None, help="safetensors or state-dict file for --model")
    s.add_argument(
        "--model-kwargs", default=None, metavar="JSON", help="keyword arguments of the factory"
    )
    s.add_argument("--data", required=True, help=".npz with arrays X and y")
    s.add_argument("--loss", required=True, choices=tuple(cluster.LOSSES))
    s.add_argument(
        "--directions",
        default="filter",
        choices=("filter", "layer", "pca"),
        help="filter/layer: random directions normalised per filter or per layer (Li et al.); "
        "pca: top two principal directions of --trajectory",
    )
    s.add_argument(
        "--trajectory",
        nargs="+",
        default=[],
        help="for --directions pca: earlier checkpoints (model files, or weights files of the "
        "factory, oldest first); --model is the last point and the centre",
    )
    s.add_argument("--one-dim", default="zero", choices=("zero", "keep"), help="biases: zero/keep")
    s.add_argument("--seed", type=int, default=0, help="directions' seed (d1: 2s, d2: 2s + 1)")
    s.add_argument("--range", type=float, default=1.0, help="the grid covers [-range, range]^2")
    s.add_argument("--resolution", type=int, default=51, help="grid points per axis")
    s.add_argument("--out", required=True, help="surface file to write (.npz)")
    s.add_argument("--slices", type=int, default=0, help="points of 1-D slices (0: none)")


def _add_curvature_arguments(s: argparse.ArgumentParser) -> None:
    """The Lanczos curvature map: its grid, budget and batching."""
    s.add_argument(
        "--curvature",
        type=int,
        default=0,
        help="points per axis of a Lanczos curvature map, in-process (0: none)",
    )
    s.add_argument(
        "--lanczos",
        type=int,
        default=100,
        help="Lanczos budget per point of the curvature map: it stops earlier once both extreme "
        "Ritz residuals are below 1e-4 max|theta|; each point is 'negative curvature found' "
        "(proven by a vector, in float64) or 'none found' (metadata curvature_state: -1 / 0)",
    )
    s.add_argument(
        "--curvature-batch-rows",
        type=int,
        default=0,
        help="Hessian-vector products accumulated over batches of this many samples (0: one "
        "pass), for data whose double-backward graph does not fit in memory at once",
    )


def _add_compute_arguments(s: argparse.ArgumentParser) -> None:
    """Where and how it runs: device, dtype, Ray, checkpoints, shards, budgets, progress."""
    s.add_argument("--device", default="cpu", choices=("auto", "cpu", "cuda", "mps"))
    s.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    s.add_argument("--ray", default=None, metavar="auto|local|ADDRESS", help="run on Ray")
    s.add_argument("--checkpoint", default=None, metavar="DIR", help="keep finished shards")
    s.add_argument("--shard-rows", type=int, default=None, help="grid rows per shard")
    s.add_argument(
        "--data-budget",
        type=float,
        default=DEFAULT_DATA_BUDGET / MiB,
        help="MiB of samples held at once; larger data is streamed in batches",
    )
    s.add_argument(
        "--memory-budget", type=float, default=None, help="MiB of working memory per pass"
    )
    s.add_argument("--no-progress", action="store_true", help="no progress bar")


def _progress_bar(total: int, disabled: bool, unit: str = "points") -> Any:
    from tqdm import tqdm

    return tqdm(total=total, unit=unit, disable=disabled, smoothing=0.1, dynamic_ncols=True)


def _points_reporter(bar: Any) -> Callable[[int], None]:
    def update(points: int) -> None:
        if points > bar.n:
            bar.update(points - bar.n)

    return update


def surface_command(args: argparse.Namespace, argv: list[str]) -> Path:
    """Compute the surface the arguments describe and write it; returns the written path."""
    started = time.perf_counter()
    _check_surface_arguments(args)
    device = resolve_device(args.device)
    dtype = getattr(torch, args.dtype)
    model_file, model, data = _checked_model_and_data(args, device, dtype)
    center = parameters_of(model)
    d1, d2, extent, pca_info = _directions(args, model, center, device, dtype)
    grid = np.linspace(-extent, extent, args.resolution)
    job = _surface_job(args, model_file, model, data, center, (d1, d2), grid)
    run = _run_surface_job(args, job, device)
    extra = _slices(args, job, extent)
    curvature_meta: dict[str, Any] = {}
    if args.curvature:
        curvature, curvature_meta = _curvature(args, job, extent)
        extra.update(curvature)
    meta = {
        "command": "convexify " + shlex.join(argv),
        **_inputs_metadata(args, model_file, job),
        **_plane_metadata(args, extent, pca_info, device),
        **_run_metadata(args, job, run, started),
        **curvature_meta,
    }
    save_surface(
        args.out,
        SurfaceFile(alphas=grid, betas=grid, loss=run.surface, metadata=meta, **extra),
    )
    print(
        f"wrote {args.out}: {args.resolution}x{args.resolution} surface in "
        f"{run.seconds:.1f} s ({run.backend}, {len(run.computed)} of {len(run.shards)} "
        "shards computed)"
    )
    return Path(args.out)


def _surface_job(
    args: argparse.Namespace,
    model_file: Any,
    model: nn.Module,
    data: Any,
    center: dict[str, torch.Tensor],
    directions: tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]],
    grid: np.ndarray,
) -> cluster.SurfaceJob:
    """The grid job: model, loss, data, the plane ``center + a d1 + b d2`` and the budgets."""
    memory_budget = int(args.memory_budget * MiB) if args.memory_budget else None
    return cluster.SurfaceJob(
        model=model,
        loss=args.loss,
        data=data,
        center=center,
        d1=directions[0],
        d2=directions[1],
        alphas=grid,
        betas=grid,
        memory_budget=memory_budget,
        data_budget=int(args.data_budget * MiB),
        threads=torch.get_num_threads() if args.ray is None else 1,
        model_digest=model_file.digest,
        model_file=None if model_file.format == "factory" else (model_file.format, model_file.data),
        integer_inputs=model_file.metadata.get("inputs") == "integer",
    )


def _run_surface_job(
    args: argparse.Namespace, job: cluster.SurfaceJob, device: torch.device
) -> cluster.SurfaceRun:
    """`cluster.run_surface` with a progress bar (a GPU per shard on Ray when on CUDA)."""
    gpus = 1.0 if device.type == "cuda" and args.ray is not None else 0.0
    bar = _progress_bar(job.shape[0] * job.shape[1], args.no_progress)
    with bar:
        return cluster.run_surface(
            job,
            ray_address=args.ray,
            shard_rows=args.shard_rows,
            checkpoint=args.checkpoint,
            points_done=_points_reporter(bar),
            gpus_per_shard=gpus,
        )


def _inputs_metadata(
    args: argparse.Namespace, model_file: Any, job: cluster.SurfaceJob
) -> dict[str, Any]:
    """What was read: the model file and the data file (names, digests, sizes), and the loss."""
    return {
        "model_file": Path(args.model).name,
        **model_file.metadata,
        "model_class": type(job.model).__name__,
        "n_parameters": int(sum(t.numel() for t in job.center.values())),
        "data_file": Path(args.data).name,
        "data_sha256": job.data.digest,
        "n_samples": job.data.n,
        "data_streamed": isinstance(job.data, NpzStream),
        "loss": args.loss,
    }


def _plane_metadata(
    args: argparse.Namespace, extent: float, pca_info: dict[str, Any], device: torch.device
) -> dict[str, Any]:
    """The plane: directions and their seeds (or the PCA), range, grid, device and dtype."""
    return {
        "directions": args.directions,
        "one_dim": args.one_dim,
        "seed": args.seed,
        "direction_seeds": [2 * args.seed, 2 * args.seed + 1] if not pca_info else [],
        **pca_info,
        "range": args.range,
        "extent": extent,
        "resolution": args.resolution,
        "device": str(device),
        "dtype": args.dtype,
    }


def _run_metadata(
    args: argparse.Namespace, job: cluster.SurfaceJob, run: cluster.SurfaceRun, started: float
) -> dict[str, Any]:
    """How it ran: engine path, backend, shards, checkpoint, timings and package versions."""
    n_points = job.shape[0] * job.shape[1]
    return {
        "engine_path": path_taken(cluster.first_batch_problem(job), job.center),
        "backend": run.backend,
        "shards": len(run.shards),
        "shards_computed": len(run.computed),
        "checkpoint": args.checkpoint or "",
        "surface_seconds": run.seconds,
        "points_per_second": n_points / run.seconds if run.computed else None,
        "total_seconds": time.perf_counter() - started,
        "versions": versions(),
    }


def _check_surface_arguments(args: argparse.Namespace) -> None:
    if not 2 <= args.resolution <= 1001:
        raise ValueError(f"resolution must be in [2, 1001], got {args.resolution}")
    if not (math.isfinite(args.range) and args.range > 0):
        raise ValueError(f"range must be a positive number, got {args.range}")
    if args.curvature < 0 or args.slices < 0 or args.curvature_batch_rows < 0:
        raise ValueError("slices, curvature and curvature-batch-rows must be >= 0")


def _checked_model_and_data(
    args: argparse.Namespace, device: torch.device, dtype: torch.dtype
) -> tuple[Any, nn.Module, Any]:
    """The model file, its model (``dtype``, on ``device``) and the data, after the
    model ran the data's first rows (`uploads.check_model`)."""
    model_file = open_model(args.model, args.weights, args.model_kwargs)
    if model_file.format == "torchscript":
        print(f"convexify: warning: {TORCHSCRIPT_DEPRECATED}", file=sys.stderr)
    model = model_file.model.to(dtype)
    data = open_data(args.data, int(args.data_budget * MiB))
    task = "classification" if args.loss == "cross_entropy" else "regression"
    X_probe, y_probe = next(iter(data.batches(min(data.n, 4096))))
    y_check = y_probe[:, None] if task == "regression" and y_probe.ndim == 1 else y_probe
    if task == "classification" and y_probe.dtype.kind not in "iu":
        raise ValueError(f"cross_entropy needs integer labels y, got {y_probe.dtype}")
    integer = uploads.takes_integer_inputs(model, X_probe)
    model_file.metadata["inputs"] = "integer" if integer else "floating point"
    uploads.check_model(model, X_probe, y_check, task, integer_inputs=integer)
    return model_file, model.to(device), data


def _directions(
    args: argparse.Namespace,
    model: nn.Module,
    center: dict[str, torch.Tensor],
    device: torch.device,
    dtype: torch.dtype,
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], float, dict[str, Any]]:
    """``d1``, ``d2``, the grid's half-width and the PCA metadata: random directions (seeds
    ``2 seed``, ``2 seed + 1``) over ``range``, or the trajectory's top two principal
    directions over ``range`` times 1.2 times the farthest checkpoint."""
    if args.directions != "pca":
        d1 = random_directions(model, 2 * args.seed, args.directions, args.one_dim)
        d2 = random_directions(model, 2 * args.seed + 1, args.directions, args.one_dim)
        return d1, d2, args.range, {}
    if len(args.trajectory) < 2:
        raise ValueError("--directions pca needs --trajectory with at least 2 earlier files")
    points = [_trajectory_point(args, model, p, device, dtype) for p in args.trajectory]
    pca = pca_directions([*points, center])
    extent = args.range * 1.2 * float(np.abs(pca.coordinates).max())
    pca_info = {
        "explained_variance_ratio": pca.explained_variance_ratio.tolist(),
        "trajectory_files": [str(p) for p in args.trajectory],
    }
    return pca.d1, pca.d2, extent, pca_info


def _trajectory_point(
    args: argparse.Namespace,
    model: nn.Module,
    path: str,
    device: torch.device,
    dtype: torch.dtype,
) -> dict[str, torch.Tensor]:
    """A checkpoint's parameters: a model file's, or (with a factory) a weights file's, loaded
    strictly into a copy of the model."""
    if not is_factory(args.model):
        return parameters_of(load_model_file(path).model.to(device, dtype))
    copied = copy.deepcopy(model)
    load_weights(copied, read_weights(path)[0], Path(path).name)
    return parameters_of(copied)


def _slices(args: argparse.Namespace, job: cluster.SurfaceJob, extent: float) -> dict[str, Any]:
    """``--slices`` points of the 1-D slices along d1 and d2 through the centre (none for 0)."""
    if not args.slices:
        return {}
    ts = np.linspace(-extent, extent, max(args.slices, 2))
    zero = {name: torch.zeros_like(t) for name, t in job.d1.items()}
    lines = []
    for direction in (job.d1, job.d2):
        line_job = dataclasses.replace(job, d1=direction, d2=zero, alphas=ts, betas=np.zeros(1))
        line_job._fingerprint = ""
        lines.append(cluster.run_surface(line_job, ray_address=args.ray).surface[:, 0])
    return {"slice_ts": ts, "slice_d1": lines[0], "slice_d2": lines[1]}


def _curvature(
    args: argparse.Namespace, job: cluster.SurfaceJob, extent: float
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The Lanczos curvature map on a ``--curvature``-square grid, in-process (arrays for the
    surface file, evidence for its metadata); needs the data in memory."""
    data = job.data
    if not isinstance(data, ArrayData):
        raise ValueError("--curvature needs the data in memory: raise --data-budget")
    coarse = np.linspace(-extent, extent, args.curvature)
    X_t, y_t = cluster.job_tensors(job, data.X, data.y)
    problem = Problem(
        job.model,
        cluster.LOSSES[args.loss],
        X_t,
        y_t,
        memory_budget=job.memory_budget,
        batch_rows=args.curvature_batch_rows or None,
    )
    cmap = curvature_map(
        problem,
        job.d1,
        job.d2,
        coarse,
        coarse,
        center=job.center,
        iterations=args.lanczos,
        seed=args.seed,
    )
    meta = {
        "curvature_state": cmap.state.tolist(),
        "curvature_rayleigh": cmap.rayleigh.tolist(),
        "curvature_iterations": cmap.iterations.tolist(),
        "curvature_batch_rows": args.curvature_batch_rows,
    }
    arrays = {
        "curvature_alphas": coarse,
        "curvature_betas": coarse,
        "lambda_min": cmap.lambda_min,
        "lambda_max": cmap.lambda_max,
        "curvature_ratio": cmap.ratio,
    }
    return arrays, meta


def versions() -> dict[str, str]:
    """`results.package_versions` plus the optional packages the command line uses."""
    out = results.package_versions()
    for name in ("ray", "onnx", "tqdm"):
        try:
            out[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


# --------------------------------------------------------------------------------------------
# sweep


def parse_params(config_cls: type, params: Sequence[str]) -> dict[str, Any]:
    """``["--min-width", "8", "--branch-counts", "1,2,4"]`` -> typed ``Config`` fields, each
    converted like the field's default (tuples: comma-separated)."""
    fields = {f.name: f for f in dataclasses.fields(config_cls)}
    out: dict[str, Any] = {}
    items = list(params)
    if items and items[0] == "--":
        items = items[1:]
    if len(items) % 2:
        raise ValueError(f"parameters must come as --name value pairs, got {items}")
    for flag, text in zip(items[::2], items[1::2], strict=True):
        name = flag.lstrip("-").replace("-", "_")
        if not flag.startswith("--") or name not in fields:
            raise ValueError(f"unknown parameter {flag}; allowed: {sorted(fields)}")
        default = fields[name].default
        out[name] = _convert(name, text, default)
    return out


def _convert(name: str, text: str, default: Any) -> Any:
    try:
        if isinstance(default, bool):
            if text.lower() not in ("true", "false", "1", "0"):
                raise ValueError
            return text.lower() in ("true", "1")
        if isinstance(default, int):
            return int(text)
        if isinstance(default, float):
            return float(text)
        if isinstance(default, tuple):
            kind = type(default[0]) if default else float
            return tuple(kind(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise ValueError(f"{name} must be like {default!r}, got {text!r}") from None
    return text


def sweep_command(args: argparse.Namespace) -> Path:
    """Run the sweep, write its run file; returns the written path."""
    module = SWEEPS[args.study]
    config = module.Config(**parse_params(module.Config, args.params))
    config.validate()
    bar = _progress_bar(1000, args.no_progress, unit="‰")

    def progress(fraction: float, stage: str) -> None:
        target = int(1000 * min(max(fraction, 0.0), 1.0))
        if target > bar.n:
            bar.update(target - bar.n)
        bar.set_description(stage[:40])

    with bar, cluster.compute_on(args.ray):
        result = module.run(config, progress=progress)
    out = Path(args.out or f"{args.study}.json")
    out.write_text(results.run_file(module.__name__, config, result))
    message = getattr(result, "message", "")
    print(f"wrote {out}" + (f" ({message})" if message else ""))
    return out


if __name__ == "__main__":
    raise SystemExit(main())
