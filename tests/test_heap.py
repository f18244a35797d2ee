"""The server's heap after a computation (`landscape.server.heap`): cyclic garbage collected,
freed pages given back to the system, at most once per interval."""

from __future__ import annotations

import gc
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import NamedTuple

import pytest

from landscape.server import heap

GLIBC = heap.trim_available()
ROOT = Path(__file__).resolve().parents[1]

#: A child process makes one choice of thresholds (the server's, or none), then does what the
#: first surface does (`tune_for_chunked_work`), writes a 20 MiB block and frees it. Prints
#: whether the process was tuned, the choice in force, and resident MiB at start, with the block
#: and after freeing it.
FREED_BLOCK = textwrap.dedent(
    """
    import sys
    from landscape.server import heap

    def rss():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * 4096 / 2**20

    if sys.argv[1] == "server":
        heap.keep_glibc_thresholds()
    tuned = heap.tune_for_chunked_work()
    start = rss()
    block = bytearray(b"x") * (20 * 2**20)
    held = rss()
    del block
    print(tuned, heap.thresholds() == heap.GLIBC_OWN, start, held, rss())
    """
)

#: A child process fragments its heap: 64 KiB blocks (below glibc's mmap threshold, so they
#: come from the heap) each followed by a small block that stays alive and pins the pages
#: below it; then frees the large blocks. Prints resident MiB at start, after freeing, after
#: `give_back_free_memory`.
FRAGMENT = textwrap.dedent(
    """
    import gc
    from landscape.server import heap

    def rss():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * 4096 / 2**20

    start = rss()
    large, pins = [], []
    for _ in range(3000):
        large.append(bytearray(64 * 1024))
        pins.append(bytearray(1024))
    del large
    gc.collect()
    freed = rss()
    heap.give_back_free_memory()
    print(start, freed, rss())
    """
)


@pytest.mark.skipif(not GLIBC, reason="malloc_trim is glibc's; this C library has none")
def test_freed_pages_pinned_by_live_blocks_are_given_back() -> None:
    out = subprocess.run(
        [sys.executable, "-c", FRAGMENT], capture_output=True, text=True, check=True, cwd=ROOT
    ).stdout
    start, freed, trimmed = map(float, out.split())
    held = 3000 * 64 / 1024  # MiB of freed 64 KiB blocks
    assert freed - start > 0.8 * held, "the freed blocks stay resident without a trim"
    assert freed - trimmed > 0.8 * held, (start, freed, trimmed)


class FreedBlock(NamedTuple):
    tuned: bool
    glibc_own: bool
    start: float  # resident MiB
    held: float
    freed: float


def freed_block(choice: str) -> FreedBlock:
    """`FREED_BLOCK` in a fresh process after ``choice`` ("server" or "engine")."""
    out = subprocess.run(
        [sys.executable, "-c", FREED_BLOCK, choice],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    ).stdout.split()
    start, held, freed = map(float, out[2:])
    return FreedBlock(out[0] == "True", out[1] == "True", start, held, freed)


@pytest.mark.skipif(not GLIBC, reason="glibc's thresholds; this C library has others")
def test_the_engine_keeps_a_freed_block_and_the_server_gives_it_back() -> None:
    tuned, glibc_own, start, held, freed = freed_block("engine")
    assert tuned and not glibc_own
    assert held - start > 18 and freed - start > 18, "tuned: the block stays on the heap"
    tuned, glibc_own, start, held, freed = freed_block("server")
    assert not tuned and glibc_own, "the server's choice came first and holds"
    assert held - start > 18 and freed - start < 2, "glibc's own: the block goes back"


@pytest.mark.slow
def test_a_release_collects_cyclic_garbage() -> None:
    release = heap.HeapRelease(min_interval=0.0)
    gc.disable()
    try:
        for _ in range(50):
            cycle: list[object] = []
            cycle.append(cycle)
        del cycle
        assert release()
    finally:
        gc.enable()
    assert release.stats.collected >= 50
    assert release.stats.releases == 1


@pytest.mark.slow
def test_releases_are_at_most_one_per_interval_and_the_last_is_not_lost() -> None:
    release = heap.HeapRelease(min_interval=0.5)
    assert release()  # the first always runs
    assert not release() and not release()  # a burst inside the interval
    assert release.stats.releases == 1 and release.stats.skipped == 2
    deadline = time.monotonic() + 30
    while release.stats.releases < 2:  # one release scheduled at the interval's end
        assert time.monotonic() < deadline, "the burst's release never ran"
        time.sleep(0.05)
    time.sleep(0.7)
    assert release.stats.releases == 2  # one for the whole burst, not one per call


def test_a_negative_interval_is_refused() -> None:
    with pytest.raises(ValueError, match="min_interval must be >= 0 seconds, got -1"):
        heap.HeapRelease(min_interval=-1)
