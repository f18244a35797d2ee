"""Model files read from the user's own disk (the command line): ONNX, TorchScript, ``.pt2``.

- ONNX (``torch.onnx.export``): a protobuf, data rather than code, read by the same checked
  loader as the web upload (`landscape.files.uploads`), with the command line's larger limits.
- TorchScript (``torch.jit.save``): code that runs when loaded and called; accepted here because
  the file is the user's own, never from an upload.
- ``.pt2`` (``torch.export.save``): ``torch.export.load`` unpickles its weights with
  ``weights_only=False``, so it is only as safe as its author; accepted from the user's disk.

A plain pickled checkpoint (``torch.save``: a zip holding ``data.pkl`` and no code, or a raw
pickle) is refused everywhere: unpickling it could run anything, and it holds no architecture.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from landscape.files.data_files import file_digest

FORMATS = ("onnx", "torchscript", "pt2")
MAX_CLI_MODEL_BYTES = 2 * 2**30  # the command line: models of hundreds of MB
PICKLE_REFUSED = (
    "is a pickled checkpoint (torch.save), which is refused: unpickling runs arbitrary code and "
    "the file holds no architecture. Export the model instead: torch.onnx.export (ONNX), "
    "torch.jit.save (TorchScript) or torch.export.save (.pt2)"
)


class ExportedModel(nn.Module):
    """A ``torch.export`` program as an ``nn.Module`` the engine can run: parameters under
    ``program.``, and ``train``/``eval`` only set the flag (exported graphs are frozen in the
    mode they were exported in; export in eval mode)."""

    def __init__(self, program: nn.Module) -> None:
        super().__init__()
        self.program = program

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The exported program's output at the batch ``x`` (n, ...), as it was exported."""
        return self.program(x)

    def train(self, mode: bool = True) -> ExportedModel:
        """Set ``training`` to ``mode`` on this wrapper alone (the graph keeps its mode); returns
        the wrapper, as ``nn.Module.train`` does."""
        self.training = mode
        return self


@dataclass
class ModelFile:
    """A model read from disk: the module, its format, the file's bytes and SHA-256, and what a
    surface file records of it (``metadata``)."""

    model: nn.Module
    format: str
    data: bytes
    digest: str
    name: str
    metadata: dict[str, Any] = field(default_factory=dict)


def sniff_format(data: bytes, name: str = "model file") -> str:
    """``"onnx"``, ``"torchscript"`` or ``"pt2"`` from the file's content (not its name).

    Raises ``ValueError`` for a pickled checkpoint (refused) or an unknown archive.
    """
    if data[:1] == b"\x80":  # pickle protocol 2+ opcode PROTO
        raise ValueError(f"{name} {PICKLE_REFUSED}")
    if zipfile.is_zipfile(io.BytesIO(data)):
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = archive.namelist()
        if any(n.endswith("/models/model.json") or n.endswith("archive_format") for n in names):
            return "pt2"
        if any("/code/" in n or n.endswith("constants.pkl") for n in names):
            return "torchscript"
        if any(n.endswith("data.pkl") for n in names):
            raise ValueError(f"{name} {PICKLE_REFUSED}")
        raise ValueError(f"{name} is a zip archive but neither TorchScript nor a .pt2 export")
    return "onnx"


def load_model_file(path: str | Path, max_bytes: int = MAX_CLI_MODEL_BYTES) -> ModelFile:
    """Read a model file from the user's disk, on the CPU; see the module's note on formats.

    Raises ``ValueError`` naming what is wrong (missing, too large, pickled, unreadable, no
    floating-point parameters).
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"model file {path} does not exist")
    size = path.stat().st_size
    if size == 0 or size > max_bytes:
        raise ValueError(
            f"model file must hold 1 byte to {max_bytes / 2**20:.0f} MiB, "
            f"got {size / 2**20:.1f} MiB"
        )
    data = path.read_bytes()
    kind = sniff_format(data, path.name)
    model = load_model_bytes(data, kind, path.name)
    return ModelFile(model, kind, data, file_digest(path), path.name)


def load_model_bytes(data: bytes, kind: str, name: str = "model file") -> nn.Module:
    """The module in ``data`` of format ``kind`` (one of `FORMATS`), on the CPU, eval mode."""
    if kind == "onnx":
        from landscape.files import uploads

        try:
            model: nn.Module = uploads.load_model(data, **uploads.CLI_LIMITS)
        except ValueError as error:
            raise ValueError(f"{name}: {error}") from None
    elif kind == "torchscript":
        try:
            model = torch.jit.load(io.BytesIO(data), map_location="cpu")
        except Exception as error:  # noqa: BLE001 - any loader failure is a bad file
            raise ValueError(f"{name} could not be loaded as TorchScript: {error}") from None
    elif kind == "pt2":
        try:
            program = torch.export.load(io.BytesIO(data))
        except Exception as error:  # noqa: BLE001
            raise ValueError(f"{name} could not be loaded as a .pt2 export: {error}") from None
        model = ExportedModel(program.module())
    else:
        raise ValueError(f"model format must be one of {FORMATS}, got {kind!r}")
    parameters = list(model.parameters())
    if not parameters or not all(p.is_floating_point() for p in parameters):
        raise ValueError(f"{name}: the model must have parameters, all floating point")
    model.eval()
    return model
