"""A library call leaves the process as it found it.

The command line and the server may tune the process (the allocator's thresholds in
`landscape.server.heap`, torch's thread count, the pinned numerics of
`landscape.server.numerics`); a call of the front door changes none of them. `isolated` wraps a
public call so that torch's thread count, its gradient mode and its global random generator on
the CPU are what they were before, whatever happens inside; the engine itself draws every
random number from generators of its own and leaves the model's parameters and training flags
as it found them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import torch

P = ParamSpec("P")
R = TypeVar("R")


def isolated(call: Callable[P, R]) -> Callable[P, R]:
    """``call`` with torch's thread count, gradient mode and CPU generator restored after it."""

    @functools.wraps(call)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        threads = torch.get_num_threads()
        grad = torch.is_grad_enabled()
        with torch.random.fork_rng(devices=[]):
            try:
                return call(*args, **kwargs)
            finally:
                torch.set_grad_enabled(grad)
                if torch.get_num_threads() != threads:
                    torch.set_num_threads(threads)

    return wrapper
