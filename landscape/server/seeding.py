"""Seeded construction of torch modules in a process where several runs build theirs at once.

An ``nn.Module``'s constructor draws its initial weights from torch's global generator, so
``torch.manual_seed(seed)`` followed by a constructor gives the same weights every time only if no
other thread seeds or draws from that generator in between. The server runs computations in
several threads (the run queue's slots, prefetches): two builds at once would interleave their
draws, and a run's model, and so its answer, would depend on what else was computing. `seeded`
holds a lock around the seeding and the construction, so a build draws alone.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import torch

_GLOBAL_GENERATOR = threading.Lock()


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Inside the block, torch's global generator is seeded with ``seed`` and no other
    ``seeded`` block of the process runs: build the modules whose weights ``seed`` decides here
    (and nothing slow). The generator's state after the block is what the block left, as after
    ``torch.manual_seed(seed)`` and the same draws in a single thread."""
    with _GLOBAL_GENERATOR:
        torch.manual_seed(int(seed))
        yield
