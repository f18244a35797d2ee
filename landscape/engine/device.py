"""Choice of the torch device: ``"auto"`` picks cuda, then cpu; Apple's mps only when named.

mps has no float64, and the project's checks are in float64: curvature operators (every
Hessian or Gauss-Newton product and its Ritz check), Gram matrices, permutation scores and
duality gaps. So ``"auto"`` never picks it, the dashboard does not offer it, and a curvature
operator refuses it with a `ValueError`; surfaces (float32 forward passes, summed in float64 on
the CPU) run on it when it is named.
"""

from __future__ import annotations

from typing import Literal, get_args

import torch

Device = Literal["auto", "cpu", "cuda", "mps"]
DEVICE_CHOICES: tuple[Device, ...] = get_args(Device)
#: Device types torch cannot hold float64 tensors on.
WITHOUT_FLOAT64 = ("mps",)


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


def has_float64(device: torch.device | str) -> bool:
    """Whether torch holds float64 tensors on ``device`` (not on Apple's mps)."""
    return torch.device(device).type not in WITHOUT_FLOAT64


def float64_devices() -> list[str]:
    """`available_devices` that hold float64, best first: what the studies may run on."""
    return [name for name in available_devices() if has_float64(name)]


def float64_device(device: torch.device | str) -> torch.device:
    """``device``, or the CPU in place of a device without float64 (Apple's mps)."""
    return torch.device(device) if has_float64(device) else torch.device("cpu")


def require_float64(device: torch.device | str, what: str) -> None:
    """``ValueError`` naming the device when ``what`` (which computes in float64) cannot run
    on it."""
    if not has_float64(device):
        raise ValueError(
            f"device={torch.device(device).type!r} has no float64, which {what} needs; "
            "use device='cpu' or 'cuda'"
        )


def resolve_device(preference: str = "auto") -> torch.device:
    """The torch device for ``preference``: ``"auto"`` picks cuda, then cpu (mps only when
    named: it has no float64).

    Raises ``ValueError`` naming the field when the preference is unknown or not present here.
    """
    if preference not in DEVICE_CHOICES:
        raise ValueError(f"device must be one of {DEVICE_CHOICES}, got {preference!r}")
    if preference == "auto":
        return torch.device(float64_devices()[0])
    if preference not in available_devices():
        raise ValueError(
            f"device={preference!r} is not available on this machine; "
            f"available: {available_devices()}"
        )
    return torch.device(preference)
