"""User uploads, size-limited and never unpickled: TorchScript models and tables (CSV or NPZ).

A model is read by ``torch.jit.load`` from bytes (a TorchScript archive: code plus tensors, read
by TorchScript's own loader, not Python's pickle). NPZ archives are read with
``allow_pickle=False``; CSV must be all numbers. Uploads live in a small in-memory store keyed by
their SHA-256, so that a study's frozen ``Config`` can name an upload by its digest.
"""

from __future__ import annotations

import hashlib
import io
import threading
import zipfile
from collections import OrderedDict

import numpy as np
import torch
from torch import nn

MAX_MODEL_BYTES = 20 * 2**20
MAX_DATA_BYTES = 20 * 2**20
MAX_ROWS = 50_000
MAX_FEATURES = 4096
MAX_CLASSES = 1000
LABEL_COLUMNS = ("y", "target", "label", "class")
_STORE_ENTRIES = 8

_store: OrderedDict[str, bytes] = OrderedDict()
_lock = threading.Lock()


def store(data: bytes) -> str:
    """Keep ``data`` in the upload store; returns its SHA-256 (hex), the key for `fetch`."""
    digest = hashlib.sha256(data).hexdigest()
    with _lock:
        _store[digest] = bytes(data)
        _store.move_to_end(digest)
        while len(_store) > _STORE_ENTRIES:
            _store.popitem(last=False)
    return digest


def fetch(digest: str) -> bytes:
    """The upload stored under ``digest``; ``ValueError`` when it is gone (upload it again)."""
    with _lock:
        data = _store.get(digest)
    if data is None:
        raise ValueError(f"upload {digest[:12]}... is no longer in memory: upload the file again")
    return data


def _check_size(label: str, data: bytes, limit: int) -> None:
    if not isinstance(data, bytes | bytearray):
        raise ValueError(f"{label} must be bytes, got {type(data).__name__}")
    if len(data) == 0:
        raise ValueError(f"{label} is empty")
    if len(data) > limit:
        raise ValueError(
            f"{label} must be at most {limit / 2**20:.0f} MiB, got {len(data) / 2**20:.1f} MiB"
        )


def load_torchscript(data: bytes, max_bytes: int = MAX_MODEL_BYTES) -> torch.jit.ScriptModule:
    """A TorchScript model from the bytes of ``torch.jit.save``, on the CPU, float parameters.

    Raises ``ValueError`` when the file is too large, is not a TorchScript archive (for example a
    pickled ``torch.save`` checkpoint, which is refused, never unpickled), cannot be loaded, or
    has no floating-point parameters.
    """
    _check_size("model file", data, max_bytes)
    if not zipfile.is_zipfile(io.BytesIO(data)):
        raise ValueError("model file is not a TorchScript archive (save it with torch.jit.save)")
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        names = archive.namelist()
    if not any(name.endswith("constants.pkl") or "/code/" in name for name in names):
        raise ValueError(
            "model file is a zip archive but not TorchScript: a torch.save checkpoint is refused "
            "(it would need unpickling); export the model with torch.jit.save(torch.jit.script(m))"
        )
    try:
        model = torch.jit.load(io.BytesIO(data), map_location="cpu")
    except Exception as error:  # noqa: BLE001 - any loader failure is a bad upload
        raise ValueError(f"model file could not be loaded as TorchScript: {error}") from None
    parameters = list(model.parameters())
    if not parameters or not all(p.is_floating_point() for p in parameters):
        raise ValueError("model must have at least one parameter, all floating point")
    return model


def check_model(model: nn.Module, X: np.ndarray, y: np.ndarray, task: str) -> int:
    """Forward the first rows of ``X`` through ``model``; returns the number of outputs.

    Classification needs outputs (n, k) with ``k > max(y)``; regression needs outputs shaped
    like ``y`` (n,) or (n, k). Raises ``ValueError`` naming what does not fit.
    """
    dtype = next(model.parameters()).dtype
    sample = torch.as_tensor(X[: min(8, len(X))], dtype=dtype)
    try:
        with torch.no_grad():
            out = model(sample)
    except Exception as error:  # noqa: BLE001 - a model that cannot run the data is a bad pair
        raise ValueError(
            f"model cannot run the data of shape {tuple(X.shape[1:])} per sample: {error}"
        ) from None
    if not isinstance(out, torch.Tensor) or not out.is_floating_point():
        raise ValueError("model must return one floating-point tensor")
    if not torch.isfinite(out).all():
        raise ValueError("model returns NaN or inf on the data")
    if task == "classification":
        if out.dim() != 2:
            raise ValueError(f"model must return (n, classes) scores, got shape {tuple(out.shape)}")
        classes = int(y.max()) + 1
        if out.shape[1] < classes:
            raise ValueError(
                f"model returns {out.shape[1]} scores per sample but the labels need {classes}"
            )
        return int(out.shape[1])
    expected = (len(sample),) + tuple(y.shape[1:])
    if tuple(out.shape) != expected:
        raise ValueError(
            f"model must return shape {expected} for regression, got {tuple(out.shape)}"
        )
    return int(np.prod(out.shape[1:], dtype=int)) if out.dim() > 1 else 1


def load_table(
    data: bytes, name: str, max_bytes: int = MAX_DATA_BYTES
) -> tuple[np.ndarray, np.ndarray]:
    """``(X, y)`` from an uploaded ``.csv`` or ``.npz`` file, float64 ``X`` with samples in rows.

    CSV: numbers only, an optional header; the label is the column named one of
    ``LABEL_COLUMNS``, else the last column. NPZ: arrays ``X`` (n, ...) and ``y`` (n,) or (n, k),
    read without pickle. 1-D labels that are integers in [0, MAX_CLASSES) come back as int64
    (classification); any other target stays float64 (regression).
    """
    _check_size("data file", data, max_bytes)
    suffix = name.lower().rsplit(".", 1)[-1] if "." in name else ""
    if suffix == "csv":
        X, y = _read_csv(data)
    elif suffix == "npz":
        X, y = _read_npz(data)
    else:
        raise ValueError(f"data file must end in .csv or .npz, got {name!r}")
    return _validate_table(X, y)


def _read_csv(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    import pandas as pd

    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("data file is not UTF-8 text") from None
    first = text.splitlines()[0] if text.strip() else ""
    header = 0 if any(not _is_number(cell) for cell in first.split(",")) else None
    try:
        frame = pd.read_csv(io.StringIO(text), header=header)
    except Exception as error:  # noqa: BLE001 - parser errors are bad uploads
        raise ValueError(f"data file is not valid CSV: {error}") from None
    if frame.shape[1] < 2:
        raise ValueError(
            f"CSV must have at least 2 columns (features, label), got {frame.shape[1]}"
        )
    columns = [str(c).strip().lower() for c in frame.columns]
    label = next((i for i, c in enumerate(columns) if c in LABEL_COLUMNS), frame.shape[1] - 1)
    try:
        values = frame.to_numpy(dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError("CSV must contain numbers only (plus an optional header row)") from None
    return np.delete(values, label, axis=1), values[:, label]


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _read_npz(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    if not zipfile.is_zipfile(io.BytesIO(data)):
        raise ValueError("data file is not a valid NPZ archive (numpy.savez)")
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            if "X" not in archive.files or "y" not in archive.files:
                raise ValueError(f"NPZ must hold arrays 'X' and 'y', found {archive.files}")
            return np.asarray(archive["X"]), np.asarray(archive["y"])
    except ValueError as error:
        if "pickle" in str(error).lower():
            raise ValueError("NPZ holds object arrays, which are refused (no pickle)") from None
        raise
    except (OSError, zipfile.BadZipFile, EOFError):
        raise ValueError("data file is not a valid NPZ archive") from None


def _validate_table(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if X.dtype.kind not in "biuf" or y.dtype.kind not in "biuf":
        raise ValueError(f"X and y must be numeric, got dtypes {X.dtype} and {y.dtype}")
    if X.ndim < 2:
        raise ValueError(f"X must have shape (n, features...), got {X.shape}")
    if y.ndim not in (1, 2):
        raise ValueError(f"y must have shape (n,) or (n, k), got {y.shape}")
    if X.shape[0] != y.shape[0]:
        raise ValueError(
            f"X and y must have the same number of rows, got {X.shape[0]} and {y.shape[0]}"
        )
    if not 2 <= X.shape[0] <= MAX_ROWS:
        raise ValueError(f"number of samples must be in [2, {MAX_ROWS}], got {X.shape[0]}")
    features = int(np.prod(X.shape[1:]))
    if not 1 <= features <= MAX_FEATURES:
        raise ValueError(f"features per sample must be in [1, {MAX_FEATURES}], got {features}")
    X = X.astype(np.float64)
    y = y.astype(np.float64)
    if not np.isfinite(X).all():
        raise ValueError(f"X holds {int((~np.isfinite(X)).sum())} NaN or infinite values")
    if not np.isfinite(y).all():
        raise ValueError(f"y holds {int((~np.isfinite(y)).sum())} NaN or infinite values")
    if y.ndim == 1 and np.all(y == np.round(y)) and y.min() >= 0 and y.max() < MAX_CLASSES:
        return X, y.astype(np.int64)
    return X, y


def task_of(y: np.ndarray) -> str:
    """``"classification"`` for integer labels (n,), else ``"regression"``."""
    return "classification" if y.ndim == 1 and y.dtype.kind in "iu" else "regression"
