"""Choice of the torch device and of the thread count, in one place."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal, get_args

import torch

Device = Literal["auto", "cpu", "cuda", "mps"]
DEVICE_CHOICES: tuple[Device, ...] = get_args(Device)


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def available_devices() -> list[str]:
    """The device names this machine can run on, best first (always ends with ``"cpu"``)."""
    names = []
    if torch.cuda.is_available():
        names.append("cuda")
    if _mps_available():
        names.append("mps")
    names.append("cpu")
    return names


def resolve_device(preference: str = "auto") -> torch.device:
    """The torch device for ``preference``: ``"auto"`` picks cuda, then mps, then cpu.

    Raises ``ValueError`` naming the field when the preference is unknown or not present here.
    """
    if preference not in DEVICE_CHOICES:
        raise ValueError(f"device must be one of {DEVICE_CHOICES}, got {preference!r}")
    if preference == "auto":
        return torch.device(available_devices()[0])
    if preference not in available_devices():
        raise ValueError(
            f"device={preference!r} is not available on this machine; "
            f"available: {available_devices()}"
        )
    return torch.device(preference)


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
def limited_threads(threads: int = 1) -> Iterator[None]:
    """Run a block with at most ``threads`` intra-op threads, then restore the previous count.

    For loops of tiny tensor operations, where spreading each op over threads costs more than it
    saves (and, on a busy 2-core machine, far more).
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(max(1, min(threads, previous)))
    try:
        yield
    finally:
        torch.set_num_threads(previous)
