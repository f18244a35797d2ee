"""Models from the user's own code and a weights file (the command line): the way researchers
hold models, ``--model mypkg.models:build_resnet --weights ckpt.safetensors``.

- The factory ``package.module:function`` is imported from the user's own code (the current
  directory or ``PYTHONPATH``) and called with ``--model-kwargs`` (a JSON object): it runs as
  the user's own code does, so it is accepted only from the command line, never from an upload.
- The weights are data, never code: safetensors (a JSON header and raw tensors), or a state dict
  written by ``torch.save`` and read with ``torch.load(weights_only=True)``, which rebuilds
  tensors, numbers, strings and containers and refuses every other object (a pickled payload
  that would run code is refused before anything runs).
- Loading is strict: every parameter and buffer of the model must be in the file, with its
  shape, and the file must hold nothing else.
"""

from __future__ import annotations

import importlib
import io
import json
import os
import re
import struct
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from landscape.files.data_files import file_digest
from landscape.files.model_files import ModelFile, load_model_file

FACTORY_PATTERN = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
MAX_WEIGHTS_BYTES = 8 * 2**30
# Checkpoints that wrap the state dict in one level of a dict: {"state_dict": {...}}.
WRAPPER_KEYS = ("state_dict", "model_state_dict", "model")


@dataclass
class FactoryModel:
    """A model built by the user's factory and loaded with a weights file (or none)."""

    model: nn.Module
    factory: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    weights_file: str = ""
    weights_format: str = ""  # "safetensors", "state_dict" or "" (the factory's own weights)
    weights_sha256: str = ""


def is_factory(spec: str) -> bool:
    """True when ``spec`` reads ``package.module:function`` and names no existing file."""
    return bool(FACTORY_PATTERN.match(spec)) and not Path(spec).exists()


def build_model(spec: str, kwargs_json: str | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """``function(**kwargs)`` for ``spec`` = ``"package.module:function"``; ``ValueError`` when
    the module or function is not found, the kwargs are not a JSON object, or the factory raises
    or returns something other than an ``nn.Module``."""
    if not FACTORY_PATTERN.match(spec):
        raise ValueError(f"model factory must read package.module:function, got {spec!r}")
    kwargs = _kwargs(kwargs_json)
    module_name, function_name = spec.split(":")
    try:
        with _current_folder_importable():
            module = importlib.import_module(module_name)
    except ImportError as error:
        raise ValueError(
            f"model factory {spec}: cannot import {module_name} ({error}); run from the folder "
            "that holds it or add that folder to PYTHONPATH"
        ) from None
    factory = getattr(module, function_name, None)
    if not callable(factory):
        raise ValueError(f"model factory {spec}: {module_name} has no function {function_name}")
    try:
        model = factory(**kwargs)
    except Exception as error:  # noqa: BLE001 - the user's code failed: say so, with its words
        raise ValueError(f"model factory {spec} raised {type(error).__name__}: {error}") from None
    if not isinstance(model, nn.Module):
        raise ValueError(
            f"model factory {spec} must return a torch.nn.Module, got {type(model).__name__}"
        )
    return model, kwargs


@contextmanager
def _current_folder_importable() -> Iterator[None]:
    """The current folder first on ``sys.path`` for the block (as ``python -m`` has it; the
    ``convexify`` script does not), then ``sys.path`` as it was."""
    saved = list(sys.path)
    sys.path.insert(0, os.getcwd())
    try:
        yield
    finally:
        sys.path[:] = saved


def _kwargs(kwargs_json: str | None) -> dict[str, Any]:
    if not kwargs_json:
        return {}
    try:
        kwargs = json.loads(kwargs_json)
    except json.JSONDecodeError as error:
        raise ValueError(
            f"model-kwargs must be a JSON object, got {kwargs_json!r}: {error}"
        ) from None
    if not isinstance(kwargs, dict):
        raise ValueError(f"model-kwargs must be a JSON object, got {kwargs_json!r}")
    return kwargs


def read_weights(path: str | Path, max_bytes: int = MAX_WEIGHTS_BYTES) -> tuple[dict, str]:
    """``(name -> tensor, format)`` from a safetensors file or a ``torch.save``'d state dict
    (read with ``weights_only=True``); ``ValueError`` naming what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"weights file {path} does not exist")
    size = path.stat().st_size
    if not 0 < size <= max_bytes:
        raise ValueError(
            f"weights file must hold 1 byte to {max_bytes / 2**30:.0f} GiB, got {size} bytes"
        )
    data = path.read_bytes()
    if _is_safetensors(data):
        from safetensors.torch import load as load_safetensors

        try:
            return load_safetensors(data), "safetensors"
        except Exception as error:  # noqa: BLE001 - any decoding failure is a bad file
            raise ValueError(
                f"weights file {path.name} is not valid safetensors: {error}"
            ) from None
    try:
        loaded = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - refused objects and corrupt files alike
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(
            f"weights file {path.name} is neither safetensors nor a state dict that "
            f"torch.load(weights_only=True) accepts (it refuses every object beyond tensors): "
            f"{first}"
        ) from None
    return _state_dict(loaded, path.name), "state_dict"


def _is_safetensors(data: bytes) -> bool:
    """An 8-byte little-endian header length, then a JSON object of that length."""
    if len(data) < 10:
        return False
    (length,) = struct.unpack("<Q", data[:8])
    return 2 <= length <= len(data) - 8 and data[8:9] == b"{"


def _state_dict(loaded: object, name: str) -> dict[str, torch.Tensor]:
    """The ``name -> tensor`` dict in ``loaded`` (itself, or under one wrapper key)."""
    if isinstance(loaded, Mapping):
        for key in WRAPPER_KEYS:
            inner = loaded.get(key)
            if isinstance(inner, Mapping):
                loaded = inner
                break
    if not isinstance(loaded, Mapping) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in loaded.items()
    ):
        raise ValueError(
            f"weights file {name} must hold a state dict (name -> tensor, "
            "torch.save(model.state_dict(), path)), got "
            f"{type(loaded).__name__}"
        )
    return dict(loaded)


def load_weights_strictly(model: nn.Module, state: Mapping[str, torch.Tensor], name: str) -> None:
    """``model.load_state_dict(state)`` after checking that the keys and shapes match exactly;
    ``ValueError`` listing the missing and unexpected keys and the shape mismatches."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    mismatched = [
        f"{key} (file {tuple(state[key].shape)}, model {tuple(expected[key].shape)})"
        for key in expected
        if key in state and tuple(state[key].shape) != tuple(expected[key].shape)
    ]
    problems = [
        f"{label}: {', '.join(items[:10])}{' ...' if len(items) > 10 else ''}"
        for label, items in (
            ("missing keys", missing),
            ("unexpected keys", unexpected),
            ("shape mismatches", mismatched),
        )
        if items
    ]
    if problems:
        raise ValueError(f"weights file {name} does not fit the model: " + "; ".join(problems))
    model.load_state_dict(state, strict=True)


def load_factory_model(
    spec: str, weights: str | Path | None = None, kwargs_json: str | None = None
) -> FactoryModel:
    """The model ``spec`` builds, with the weights file's tensors loaded strictly, on the CPU,
    in eval mode; its parameters must all be floating point."""
    model, kwargs = build_model(spec, kwargs_json)
    result = FactoryModel(model=model, factory=spec, kwargs=kwargs)
    if weights is not None:
        state, kind = read_weights(weights)
        load_weights_strictly(model, state, Path(weights).name)
        result.weights_file = Path(weights).name
        result.weights_format = kind
        result.weights_sha256 = file_digest(Path(weights))
    parameters = list(model.parameters())
    if not parameters or not all(p.is_floating_point() for p in parameters):
        raise ValueError(f"model factory {spec}: the model must have floating-point parameters")
    model.eval()
    return result


TORCHSCRIPT_DEPRECATED = (
    "TorchScript is deprecated upstream; prefer your own code and a weights file: "
    "--model package.module:factory --weights model.safetensors"
)


def open_model(spec: str, weights: str | None = None, kwargs_json: str | None = None) -> ModelFile:
    """The command line's model: a factory with its weights (`load_factory_model`), or a model
    file (`landscape.files.model_files.load_model_file`); ``metadata`` says which, with the
    factory, its kwargs and the weights' SHA-256. ``format`` is ``"factory"`` for the former."""
    if not is_factory(spec):
        if weights is not None or kwargs_json:
            raise ValueError(
                f"weights and model-kwargs need --model package.module:factory, got the file {spec}"
            )
        loaded = load_model_file(spec)
        loaded.metadata = {"model_format": loaded.format, "model_sha256": loaded.digest}
        return loaded
    built = load_factory_model(spec, weights, kwargs_json)
    metadata = {
        "model_format": "factory",
        "model_factory": spec,
        "model_kwargs": built.kwargs,
        "weights_file": built.weights_file,
        "weights_format": built.weights_format or "none (the factory's own parameters)",
        "weights_sha256": built.weights_sha256,
        "model_sha256": built.weights_sha256,
    }
    return ModelFile(built.model, "factory", b"", built.weights_sha256, spec, metadata)
