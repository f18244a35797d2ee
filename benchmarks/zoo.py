"""Benchmark: ``surface_2d`` on every zoo model against the per-point loop, in the same run.

The baseline is `tests/zoo.py: reference_surface`: for each grid point, ``functional_call`` of
the model at ``theta + a d1 + b d2`` on the whole data set, then the loss (what the usual tools do,
without writing into the model). The engine takes its own path (``vmap`` over chunks of points
with the data-side layers hoisted, or, where ``vmap`` has no batching rule, one
``functional_call`` per point in the same chunks); the line names it. Both see the same model,
directions, grid, data and loss; the script checks that they agree (largest relative
difference). Timings are wall-clock, best of ``repeats``, the two interleaved so that both see
the same load. Peak memory: the engine's call alone, in a fresh process per model (CPU: peak
resident set size during the call, reset before it, less the size before it; CUDA: peak
allocated above what was allocated before).

    python benchmarks/zoo.py [--grid 11] [--samples 256] [--repeats 3] [--device cpu]

Prints a Markdown table: model, path, points per second (engine, loop), ratio, peak MiB.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import zoo  # noqa: E402

from benchmarks.surface import timed  # noqa: E402
from landscape.engine.directions import random_directions  # noqa: E402
from landscape.engine.problem import Problem  # noqa: E402
from landscape.engine.surface import path_taken, surface_2d  # noqa: E402
from landscape.server import heap  # noqa: E402


def setup(name: str, device: str, samples: int) -> tuple:
    """The species' model and data (``samples`` rows), on ``device``, and two directions."""
    zoo.N_SAMPLES = samples  # the zoo's data functions read it when called
    species = zoo.BY_NAME[name]
    model = species.model().to(device)
    X, y = (t.to(device) for t in species.dataset())
    d1, d2 = random_directions(model, 1), random_directions(model, 2)
    return species, model, X, y, d1, d2


def compare(name: str, device: str, grid: int, samples: int, repeats: int) -> dict:
    """Best-of-``repeats`` points per second of the engine and of the loop, and their path."""
    species, model, X, y, d1, d2 = setup(name, device, samples)
    problem = Problem(model, species.loss, X, y)
    g = np.linspace(-1.0, 1.0, grid)

    def engine() -> np.ndarray:
        return surface_2d(problem, d1, d2, g, g)

    def loop() -> np.ndarray:
        return zoo.reference_surface(model, species.loss, X, y, d1, d2, g, g)

    engine()  # warm-up (allocator, kernels)
    best_engine = best_loop = float("inf")
    for _ in range(repeats):  # interleaved, so both see the same machine load
        t_loop, Z_loop = timed(device, loop)
        t_engine, Z_engine = timed(device, engine)
        best_loop, best_engine = min(best_loop, t_loop), min(best_engine, t_engine)
    points = grid * grid
    return {
        "path": path_taken(problem),
        "engine": points / best_engine,
        "loop": points / best_loop,
        "difference": float(np.max(np.abs(Z_engine - Z_loop) / np.abs(Z_loop))),
    }


def _peak_memory_worker(
    name: str, device: str, grid: int, samples: int, threads: int, queue: mp.Queue
) -> None:
    heap.tune_for_chunked_work()
    torch.set_num_threads(threads)
    species, model, X, y, d1, d2 = setup(name, device, samples)
    problem = Problem(model, species.loss, X, y)
    g = np.linspace(-1.0, 1.0, grid)
    surface_2d(problem, d1, d2, g[:2], g[:2])  # imports and kernels loaded before measuring
    before = _status_bytes("VmRSS")
    _reset_peak_rss()
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    surface_2d(problem, d1, d2, g, g)
    if device == "cuda":
        queue.put(torch.cuda.max_memory_allocated() - base)
    else:
        queue.put(_status_bytes("VmHWM") - before)


def _reset_peak_rss() -> None:
    """Linux: writing 5 to clear_refs resets the peak resident set size (VmHWM) to the current
    one, so that the peak read after the call is the call's own."""
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")


def _status_bytes(field: str) -> int:
    """``VmRSS`` (current) or ``VmHWM`` (peak) resident set size from /proc/self/status."""
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def peak_memory(name: str, device: str, grid: int, samples: int) -> float:
    """MiB the engine's call adds at its peak, measured in a fresh process."""
    context = mp.get_context("spawn")
    queue = context.Queue()
    args = (name, device, grid, samples, torch.get_num_threads(), queue)
    process = context.Process(target=_peak_memory_worker, args=args)
    process.start()
    grown = queue.get()
    process.join()
    return max(0, grown) / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--grid", type=int, default=11)
    parser.add_argument("--samples", type=int, default=256, help="rows of each model's data")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    parser.add_argument("--models", nargs="*", default=[s.name for s in zoo.ZOO])
    args = parser.parse_args()
    heap.tune_for_chunked_work()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = args.device
    where = torch.cuda.get_device_name() if device == "cuda" else f"{os.cpu_count()} CPUs"
    print(
        f"torch {torch.__version__}, {device} ({where}), {torch.get_num_threads()} threads, "
        f"load average {os.getloadavg()[0]:.2f}; {args.grid}x{args.grid} grid, "
        f"{args.samples} samples, best of {args.repeats}\n",
        flush=True,
    )
    print("| model | path | points/s engine | points/s loop | ratio | peak MiB | max rel. diff |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for name in args.models:
        r = compare(name, device, args.grid, args.samples, args.repeats)
        peak = peak_memory(name, device, args.grid, args.samples)
        print(
            f"| {name} | {r['path']} | {r['engine']:.0f} | {r['loop']:.0f} | "
            f"{r['engine'] / r['loop']:.1f}x | {peak:.1f} | {r['difference']:.1e} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
