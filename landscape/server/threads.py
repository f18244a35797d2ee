"""Torch's intra-op thread count: set once at start-up, narrowed or widened around a block.

The thread count is process-wide state, so it lives with the server's runtime and not with the
mathematics: the command line, the app and the benchmarks call `configure_threads` at start-up;
a study narrows a loop of tiny operations to one thread with `limited_threads`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import torch

THREADS_VARIABLE = "CONVEXIFY_TORCH_THREADS"


def configure_threads(threads: int | None = None) -> int:
    """Set torch's intra-op thread count once at start-up; returns the count used.

    ``threads``, else the environment variable ``CONVEXIFY_TORCH_THREADS``, else every core;
    ``ValueError`` naming the variable when it is not a whole number >= 0 (0: every core).
    """
    count = threads or threads_from_env() or max(1, os.cpu_count() or 1)
    if torch.get_num_threads() != count:
        torch.set_num_threads(count)
    return count


def threads_from_env() -> int:
    """``CONVEXIFY_TORCH_THREADS`` as a count (0 where it is unset or empty)."""
    text = os.environ.get(THREADS_VARIABLE, "").strip()
    if not text:
        return 0
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise ValueError(
            f"{THREADS_VARIABLE} must be a whole number >= 0 (0: every core), got {text!r}"
        )
    return value


@contextmanager
def thread_count(count: int) -> Iterator[None]:
    """Run a block with exactly ``count`` (>= 1) intra-op threads, then restore the previous
    count: a step inside a `limited_threads` block that does gain from threads (a surface)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(max(1, count))
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@contextmanager
def limited_threads(threads: int = 1) -> Iterator[None]:
    """Run a block with at most ``threads`` intra-op threads, then restore the previous count.

    For loops of tiny tensor operations, where spreading each op over threads costs more than it
    saves, and where a thread that a busy machine does not schedule stalls every parallel region.
    """
    with thread_count(min(threads, torch.get_num_threads())):
        yield
