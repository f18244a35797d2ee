"""The server's process and the machine under a class: CPU time, resident memory, and the trend
of the memory over a run.
"""

from __future__ import annotations

import bisect
import os
import threading
import time
from pathlib import Path

import numpy as np

from benchmarks.app_server import (
    AppServer,
)
from loadtests.lecture import ENVELOPE_SECONDS


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far, in seconds."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    """CPU time every core of this machine has spent busy so far (``/proc/stat``), in seconds."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return float("nan")
    user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int) -> float:
    """Resident memory of a process and its children (the streamlit server), in MiB."""
    total = 0.0
    pids = [pid]
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        pids += [int(c) for c in children]
    except OSError:
        pass
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) / 1024
        except OSError:
            pass
    return total


class Server(AppServer):
    """The app (`benchmarks.app_server.AppServer`), its memory and CPU time sampled every
    ``every`` seconds."""

    def __init__(self, env: dict[str, str], every: float = 5.0) -> None:
        super().__init__(env, start_timeout=90.0)
        self.started = time.monotonic()
        self.memory: list[tuple[float, float]] = []
        self.cpu: list[tuple[float, float]] = []
        self.machine: list[tuple[float, float]] = []  # every core's busy time
        self._stop = threading.Event()
        self._every = every
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()

    def _sample(self) -> None:
        while not self._stop.is_set():
            now = time.monotonic() - self.started
            self.memory.append((now, rss_mib(self.pid)))
            self.cpu.append((now, cpu_seconds(self.pid)))
            self.machine.append((now, machine_busy_seconds()))
            self._stop.wait(self._every)

    def stop(self) -> str:
        if hasattr(self, "_stop"):
            self._stop.set()
        return super().stop()


def memory_change(memory: list[tuple[float, float]], whole: bool = False) -> tuple[float, float]:
    """The server's memory change over the last half of the run (``whole``: over all of
    ``memory``), in percent of its mean there: the least-squares line through the samples (slope
    x the half's duration), which one sample caught during a computation's transient arrays does
    not decide; and the change from the half's first sample to its last."""
    half = memory if whole else last_half(memory)
    times = np.array([t for t, _ in half])
    values = np.array([m for _, m in half])
    mean = float(values.mean())
    if len(half) < 2 or np.ptp(times) == 0:
        return 0.0, 0.0
    slope = float(np.polyfit(times, values, 1)[0])
    trend = 100 * slope * float(np.ptp(times)) / mean
    return trend, 100 * float(values[-1] - values[0]) / float(values[0])


def outside_caches(
    memory: list[tuple[float, float]], caches: list[tuple[float, float]]
) -> list[tuple[float, float]]:
    """The (time, MiB) samples of ``memory`` less the caches' bytes last seen before each
    (``caches``: (time, MiB), in time order); samples before the first cache reading are left
    out."""
    times = [t for t, _ in caches]
    outside = []
    for t, mib in memory:
        seen = bisect.bisect_right(times, t)
        if seen:
            outside.append((t, mib - caches[seen - 1][1]))
    return outside


def floor_trend(memory: list[tuple[float, float]]) -> float:
    """The fitted trend over the last half (as `memory_change`) of the lowest sample in each
    `ENVELOPE_SECONDS` window: whether the memory between computations rises, apart from when a
    sample happened to catch a computation's working memory."""
    half = last_half(memory)
    if len(half) < 2:
        return 0.0
    start = half[0][0]
    windows: dict[int, list[tuple[float, float]]] = {}
    for t, m in half:
        windows.setdefault(int((t - start) // ENVELOPE_SECONDS), []).append((t, m))
    return memory_change([min(w, key=lambda s: s[1]) for w in windows.values()], whole=True)[0]


def last_half(memory: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The (time, MiB) samples of the run's second half."""
    return [(t, m) for t, m in memory if t >= memory[-1][0] / 2]


def peaks(memory: list[tuple[float, float]]) -> tuple[float, float]:
    """The highest sample of the first half of the run and of the last half, MiB."""
    last = last_half(memory)
    first = memory[: len(memory) - len(last)]
    return max((m for _, m in first), default=float("nan")), max(m for _, m in last)
