"""Benchmark: ``surface_2d`` against the per-point loop of the usual tools, in the same run.

The baseline is what Li et al.'s ``loss-landscape`` and the ``loss-landscapes`` package do for each
grid point: write ``theta + a d1 + b d2`` into the model, forward the whole data set, compute the
loss (here ``F.cross_entropy``, full batch, no data loader: the fastest form of that loop). Both
see the same model, directions, grid and loss, in the same process (so both run with the allocator
thresholds of ``landscape.server.heap.tune_for_chunked_work``); the script checks that they agree.
Timings are wall-clock, best of ``repeats``, the two methods interleaved so that both see the same
load.

The multi-branch network takes the engine's structure-aware path; the MLP has no path of its own:
it takes the general ``vmap`` path, which finds the weight layers applied to the data and hoists
them, as it does for any model (``landscape.engine.hoisting``; the line says which layers).

    python benchmarks/surface.py [--grid 41] [--repeats 3] [--memory-grid 101] [--device cpu]

Prints, per model and device: best-of-``repeats`` seconds for both, the ratio, the largest
difference, and the peak memory of a ``memory-grid`` x ``memory-grid`` surface, measured in a fresh
process (CPU: peak resident set size, and its growth during the call; CUDA: peak allocated).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from landscape.engine.datasets import digits
from landscape.engine.directions import random_directions
from landscape.engine.nets import MultiBranchNet, mlp
from landscape.engine.problem import Problem
from landscape.engine.surface import path_taken, surface_2d
from landscape.server import heap

MODELS = {
    "MultiBranchNet(64, 10, branches=16, width=8)": lambda: MultiBranchNet(64, 10, 16, 8),
    "MLP 64-32-32-10 (3 Linear layers, ReLU)": lambda: mlp(64, 10, [32, 32]),
}


def setup(name: str, device: str) -> tuple:
    """The problem (model, cross-entropy, digits) and two filter-normalised directions, seeded."""
    torch.manual_seed(0)
    model = MODELS[name]().to(device)
    X, y = digits()
    X_t = torch.as_tensor(X, dtype=torch.float32, device=device)
    y_t = torch.as_tensor(y, device=device)
    d1, d2 = random_directions(model, 1), random_directions(model, 2)
    return Problem(model, F.cross_entropy, X_t, y_t), d1, d2


def timed(device: str, call) -> tuple[float, np.ndarray]:
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    Z = call()
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start, Z


def compare(name: str, device: str, grid: int, repeats: int) -> None:
    problem, d1, d2 = setup(name, device)
    g = np.linspace(-1.0, 1.0, grid)

    def engine() -> np.ndarray:
        return surface_2d(problem, d1, d2, g, g)

    def loop() -> np.ndarray:
        return surface_2d(problem, d1, d2, g, g, method="loop")

    engine()  # warm-up (allocator, kernels)
    best_engine = best_loop = float("inf")
    for _ in range(repeats):  # interleaved, so both see the same machine load
        t_loop, Z_loop = timed(device, loop)
        t_engine, Z_engine = timed(device, engine)
        best_loop, best_engine = min(best_loop, t_loop), min(best_engine, t_engine)
    diff = float(np.abs(Z_engine - Z_loop).max())
    print(
        f"  {name} on {device}, {grid}x{grid} grid: loop {best_loop:.3f} s, "
        f"surface_2d ({path_taken(problem)} path) {best_engine:.3f} s, "
        f"ratio {best_loop / best_engine:.1f}x, "
        f"max |difference| {diff:.1e}",
        flush=True,
    )


def _peak_memory_worker(name: str, device: str, grid: int, queue: mp.Queue) -> None:
    heap.tune_for_chunked_work()
    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", torch.get_num_threads())))
    problem, d1, d2 = setup(name, device)
    g = np.linspace(-1.0, 1.0, grid)
    before = _current_rss_bytes()
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    start = time.perf_counter()
    surface_2d(problem, d1, d2, g, g)
    elapsed = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    report = {"seconds": elapsed, "peak_rss": peak, "growth": peak - before}
    if device == "cuda":
        report["cuda_peak"] = torch.cuda.max_memory_allocated()
        report["cuda_growth"] = torch.cuda.max_memory_allocated() - base
    queue.put(report)


def _current_rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_memory(name: str, device: str, grid: int) -> None:
    context = mp.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_peak_memory_worker, args=(name, device, grid, queue))
    process.start()
    report = queue.get()
    process.join()
    line = (
        f"  {name} on {device}, {grid}x{grid} grid: {report['seconds']:.2f} s, peak RSS of the "
        f"whole process {report['peak_rss'] / 2**20:.0f} MiB (grew by "
        f"{report['growth'] / 2**20:.0f} MiB during the call)"
    )
    if device == "cuda":
        line += (
            f", CUDA peak allocated {report['cuda_peak'] / 2**20:.0f} MiB "
            f"(+{report['cuda_growth'] / 2**20:.0f} MiB)"
        )
    print(line, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--grid", type=int, default=41)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--memory-grid", type=int, default=101, help="0 skips the memory run")
    parser.add_argument("--device", choices=["cpu", "cuda", "all"], default="all")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    args = parser.parse_args()
    heap.tune_for_chunked_work()
    if args.threads:
        torch.set_num_threads(args.threads)
        os.environ["BENCH_THREADS"] = str(args.threads)
    devices = ["cpu", "cuda"] if args.device == "all" else [args.device]
    devices = [d for d in devices if d == "cpu" or torch.cuda.is_available()]
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}; "
        f"devices: {', '.join(devices)}",
        flush=True,
    )
    for device in devices:
        if device == "cuda":
            print(f"CUDA device: {torch.cuda.get_device_name()}")
        print(f"Time ({args.grid}x{args.grid} grid, best of {args.repeats}, digits 1797 x 64):")
        for name in MODELS:
            compare(name, device, args.grid, args.repeats)
        if args.memory_grid:
            print(f"Peak memory ({args.memory_grid}x{args.memory_grid} grid, fresh process):")
            for name in MODELS:
                peak_memory(name, device, args.memory_grid)
    print(f"load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
