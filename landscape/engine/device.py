"""Choice of the torch device: ``"auto"`` picks cuda, then mps, then cpu."""

from __future__ import annotations

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
