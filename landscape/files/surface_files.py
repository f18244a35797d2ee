"""Surface files: a computed surface, its optional slices and curvature map, and the metadata
that redoes it, in one NPZ archive (no pickled objects).

Arrays (float64): ``alphas`` (A,), ``betas`` (B,), ``loss`` (A, B) with ``loss[i, j]`` at
``(alphas[i], betas[j])`` (the Lab's "Surface (NPZ)" download has exactly these three);
optionally ``slice_ts`` (S,), ``slice_d1`` (S,) = ``L(theta + t d1)``, ``slice_d2`` (S,); and
``curvature_alphas`` (C1,), ``curvature_betas`` (C2,), ``lambda_min``, ``lambda_max``,
``curvature_ratio`` (C1, C2). ``metadata`` is a 0-d unicode array holding a JSON object with
``format`` = `FORMAT` and, from the command line, the model's and data's SHA-256, the
directions and their seeds, the grid, the engine path, the package versions and the command.

`load_surface` reads untrusted bytes (a browser upload): size-limited before and after
decompression, ``allow_pickle=False``, every member named, typed and shaped as above, finite,
grids strictly increasing.
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

FORMAT = "convexify-surface/1"
MAX_FILE_BYTES = 20 * 2**20
MAX_UNCOMPRESSED_BYTES = 64 * 2**20
MAX_GRID = 1001  # points per axis
MAX_METADATA_CHARS = 65_536
SLICE_FIELDS = ("slice_ts", "slice_d1", "slice_d2")
CURVATURE_FIELDS = (
    "curvature_alphas",
    "curvature_betas",
    "lambda_min",
    "lambda_max",
    "curvature_ratio",
)
ARRAY_FIELDS = ("alphas", "betas", "loss", *SLICE_FIELDS, *CURVATURE_FIELDS)


@dataclass
class SurfaceFile:
    """The contents of a surface file; the optional parts are empty arrays when absent."""

    alphas: np.ndarray
    betas: np.ndarray
    loss: np.ndarray
    metadata: dict[str, Any] = field(default_factory=dict)
    slice_ts: np.ndarray = field(default_factory=lambda: np.zeros(0))
    slice_d1: np.ndarray = field(default_factory=lambda: np.zeros(0))
    slice_d2: np.ndarray = field(default_factory=lambda: np.zeros(0))
    curvature_alphas: np.ndarray = field(default_factory=lambda: np.zeros(0))
    curvature_betas: np.ndarray = field(default_factory=lambda: np.zeros(0))
    lambda_min: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    lambda_max: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    curvature_ratio: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))

    def __post_init__(self) -> None:
        _validate(self)


def surface_bytes(surface: SurfaceFile) -> bytes:
    """The surface file as compressed NPZ bytes (optional parts written only when present)."""
    _validate(surface)
    arrays: dict[str, np.ndarray] = {}
    for name in ARRAY_FIELDS:
        value = np.asarray(getattr(surface, name), dtype=np.float64)
        if value.size or name in ("alphas", "betas", "loss"):
            arrays[name] = value
    metadata = {"format": FORMAT, **surface.metadata}
    arrays["metadata"] = np.array(json.dumps(metadata, sort_keys=True, allow_nan=False))
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)  # type: ignore[arg-type]
    return buffer.getvalue()


def save_surface(path: str | Path, surface: SurfaceFile) -> None:
    """Write `surface_bytes` to ``path``."""
    Path(path).write_bytes(surface_bytes(surface))


def load_surface(data: bytes, max_bytes: int = MAX_FILE_BYTES) -> SurfaceFile:
    """Parse and validate a surface file; ``ValueError`` naming what is wrong otherwise."""
    names = _member_names(data, max_bytes)
    arrays = _read_arrays(data, names)
    metadata = _metadata(arrays.pop("metadata", None))
    values = {}
    for name, array in arrays.items():
        if array.dtype.kind not in "fiu":
            raise ValueError(f"surface array {name!r} must be numeric, got dtype {array.dtype}")
        values[name] = array.astype(np.float64)
    for group in (SLICE_FIELDS, CURVATURE_FIELDS):
        present = [name for name in group if name in values]
        if present and len(present) != len(group):
            missing = sorted(set(group) - set(present))
            raise ValueError(f"surface file holds {present} but lacks {missing}")
    return SurfaceFile(metadata=metadata, **values)


def _member_names(data: bytes, max_bytes: int) -> list[str]:
    """The archive's array names, checked before anything is unpacked: a non-empty NPZ of at
    most ``max_bytes``, top-level ``.npy`` members only, declared sizes within
    `MAX_UNCOMPRESSED_BYTES`, known names, and ``alphas``, ``betas`` and ``loss`` present."""
    if not isinstance(data, bytes | bytearray) or len(data) == 0:
        raise ValueError("surface file is empty")
    if len(data) > max_bytes:
        raise ValueError(
            f"surface file must be at most {max_bytes / 2**20:.0f} MiB, got "
            f"{len(data) / 2**20:.1f} MiB"
        )
    if not zipfile.is_zipfile(io.BytesIO(data)):
        raise ValueError("surface file is not an NPZ archive (numpy.savez)")
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        infos = archive.infolist()
    names = []
    total = 0
    for info in infos:
        if not info.filename.endswith(".npy") or "/" in info.filename:
            raise ValueError(f"surface file member {info.filename!r} is not a top-level .npy")
        names.append(info.filename[: -len(".npy")])
        total += info.file_size
    if total > MAX_UNCOMPRESSED_BYTES:
        raise ValueError(
            f"surface file must unpack to at most {MAX_UNCOMPRESSED_BYTES / 2**20:.0f} MiB, "
            f"declares {total / 2**20:.1f} MiB"
        )
    unknown = sorted(set(names) - {*ARRAY_FIELDS, "metadata"})
    if unknown:
        raise ValueError(
            f"surface file holds unknown arrays {unknown}; allowed: {[*ARRAY_FIELDS, 'metadata']}"
        )
    for required in ("alphas", "betas", "loss"):
        if required not in names:
            raise ValueError(f"surface file must hold the array {required!r}")
    return names


def _read_arrays(data: bytes, names: list[str]) -> dict[str, np.ndarray]:
    """The named arrays, read without unpickling; any reading error as a ``ValueError``."""
    arrays: dict[str, np.ndarray] = {}
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            for name in names:
                arrays[name] = np.asarray(archive[name])
    except ValueError as error:
        if "pickle" in str(error).lower():
            raise ValueError("surface file holds object arrays, which are refused") from None
        raise ValueError(f"surface file could not be read: {error}") from None
    except (OSError, EOFError, zipfile.BadZipFile) as error:
        raise ValueError(f"surface file could not be read: {error}") from None
    return arrays


def _metadata(array: np.ndarray | None) -> dict[str, Any]:
    if array is None:
        return {}
    if array.dtype.kind != "U" or array.ndim != 0:
        raise ValueError("surface metadata must be one JSON string")
    text = str(array)
    if len(text) > MAX_METADATA_CHARS:
        raise ValueError(f"surface metadata must be at most {MAX_METADATA_CHARS} characters")
    try:
        document = json.loads(text)
    except json.JSONDecodeError:
        raise ValueError("surface metadata is not valid JSON") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise ValueError(f"surface metadata must be a JSON object with format {FORMAT!r}")
    return document


def _grid(name: str, values: np.ndarray, low: int = 2) -> None:
    if values.ndim != 1 or not low <= values.size <= MAX_GRID:
        raise ValueError(
            f"{name} must be 1-D with {low} to {MAX_GRID} points, got shape {values.shape}"
        )
    if not np.all(np.isfinite(values)) or not np.all(np.diff(values) > 0):
        raise ValueError(f"{name} must be finite and strictly increasing")


def _validate(s: SurfaceFile) -> None:
    s.alphas = np.asarray(s.alphas, dtype=np.float64)
    s.betas = np.asarray(s.betas, dtype=np.float64)
    s.loss = np.asarray(s.loss, dtype=np.float64)
    _grid("alphas", s.alphas)
    _grid("betas", s.betas)
    if s.loss.shape != (s.alphas.size, s.betas.size):
        raise ValueError(
            f"loss must have shape (len(alphas), len(betas)) = ({s.alphas.size}, "
            f"{s.betas.size}), got {s.loss.shape}"
        )
    if not np.all(np.isfinite(s.loss)):
        raise ValueError(f"loss holds {int((~np.isfinite(s.loss)).sum())} NaN or infinite values")
    if np.asarray(s.slice_ts).size:
        _grid("slice_ts", np.asarray(s.slice_ts, dtype=np.float64))
        for name in ("slice_d1", "slice_d2"):
            line = np.asarray(getattr(s, name), dtype=np.float64)
            if line.shape != np.shape(s.slice_ts) or not np.all(np.isfinite(line)):
                raise ValueError(f"{name} must be finite with the shape of slice_ts")
    if np.asarray(s.curvature_alphas).size:
        ca = np.asarray(s.curvature_alphas, dtype=np.float64)
        cb = np.asarray(s.curvature_betas, dtype=np.float64)
        _grid("curvature_alphas", ca, low=1)
        _grid("curvature_betas", cb, low=1)
        for name in ("lambda_min", "lambda_max", "curvature_ratio"):
            grid = np.asarray(getattr(s, name), dtype=np.float64)
            if grid.shape != (ca.size, cb.size) or not np.all(np.isfinite(grid)):
                raise ValueError(
                    f"{name} must be finite with shape ({ca.size}, {cb.size}), got {grid.shape}"
                )
