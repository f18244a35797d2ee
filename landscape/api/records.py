"""What every result of the front door carries besides its numbers, and its progress bar.

``metadata`` is a plain dict (JSON-serialisable) that says how to compute the numbers again:
``call`` (the public function's name), ``arguments`` (every argument that is not a model, a
tensor or an array, with its value as used: ``getattr(landscape, m["call"])(model, X=X, y=y,
**m["arguments"])`` redoes the result), ``inputs`` (each model and array by class or shape,
dtype and SHA-256 of its bytes, to check that the same ones are passed again), ``device``,
``path`` (the engine's path, where it chooses one), ``versions`` (Python, torch, NumPy,
convexify) and what the call adds (``directions``, ``grid``, ...).
"""

from __future__ import annotations

import hashlib
import platform
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from importlib import metadata as importlib_metadata
from typing import Any

import numpy as np
import torch
from torch import nn

from landscape.engine.progress import Progress

PROGRESS_STEPS = 1000


def versions() -> dict[str, str]:
    """The versions of Python, torch, NumPy and convexify in this process."""
    try:
        ours = importlib_metadata.version("convexify")
    except importlib_metadata.PackageNotFoundError:
        ours = "unknown"
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "convexify": ours,
    }


def describe_array(values: np.ndarray | torch.Tensor) -> dict[str, Any]:
    """``{"shape", "dtype", "sha256"}`` of an array or tensor (its C-ordered bytes)."""
    array = values.detach().cpu().numpy() if isinstance(values, torch.Tensor) else values
    array = np.ascontiguousarray(np.asarray(array))
    digest = hashlib.sha256(array.tobytes()).hexdigest()
    return {"shape": list(array.shape), "dtype": str(array.dtype), "sha256": digest}


def describe_parameters(params: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """``{"parameters", "sha256"}``: the number of entries and the hash of every tensor's bytes
    in order."""
    digest = hashlib.sha256()
    for name, tensor in params.items():
        digest.update(name.encode())
        digest.update(np.ascontiguousarray(tensor.detach().cpu().numpy()).tobytes())
    count = sum(int(t.numel()) for t in params.values())
    return {"parameters": count, "sha256": digest.hexdigest()}


def describe_model(model: nn.Module) -> dict[str, Any]:
    """``{"class", "parameters", "sha256"}`` of a model's parameters (buffers not included)."""
    named = dict(model.named_parameters())
    return {"class": type(model).__qualname__, **describe_parameters(named)}


def metadata(
    call: str, arguments: Mapping[str, Any], inputs: Mapping[str, Any], **extra: Any
) -> dict[str, Any]:
    """The metadata dict of one call (module docstring), with ``versions`` filled in."""
    return {
        "call": call,
        "arguments": dict(arguments),
        "inputs": dict(inputs),
        **extra,
        "versions": versions(),
    }


#: Parameters that name inputs (described under ``inputs``) or change how a result is computed,
#: not what: left out of ``arguments``.
NOT_ARGUMENTS = frozenset(
    ("model", "X", "y", "start", "end", "trajectory", "point", "device", "progress")
)


def arguments_of(parameters: Mapping[str, Any]) -> dict[str, Any]:
    """A call's ``arguments`` metadata from its parameters (``locals()`` on entry): all but
    `NOT_ARGUMENTS`, with ``loss`` as its name (a callable by its dotted name)."""
    out = {k: v for k, v in parameters.items() if k not in NOT_ARGUMENTS}
    if "loss" in out:
        loss = out["loss"]
        out["loss"] = loss if isinstance(loss, str) else _dotted_name(loss)
    return out


def _dotted_name(function: Any) -> str:
    module = getattr(function, "__module__", None) or type(function).__module__
    name = getattr(function, "__qualname__", None) or type(function).__qualname__
    return f"{module}.{name}"


def read_only(values: np.ndarray | float | list[float]) -> np.ndarray:
    """A float64 copy of ``values`` that cannot be written to (a result is frozen)."""
    array = np.array(values, dtype=np.float64)
    array.flags.writeable = False
    return array


@contextmanager
def progress_bar(enabled: bool, description: str) -> Iterator[Progress | None]:
    """A tqdm bar (on stderr) as the engine's ``progress(fraction, stage)`` when ``enabled``;
    None otherwise (a library call is silent by default)."""
    if not enabled:
        yield None
        return
    from tqdm import tqdm

    bar = tqdm(total=PROGRESS_STEPS, desc=description, unit="‰", dynamic_ncols=True)

    def report(fraction: float, stage: str) -> None:
        bar.n = min(PROGRESS_STEPS, max(0, round(fraction * PROGRESS_STEPS)))
        bar.set_postfix_str(stage, refresh=False)
        bar.refresh()

    try:
        yield report
        report(1.0, "done")
    finally:
        bar.close()
