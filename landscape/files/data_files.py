"""Data for surfaces at scale: in memory, or streamed from an NPZ file in batches of rows.

A surface's loss at a grid point is a mean over samples, ``L = (1/n) sum_s l_s``, so over batches
``B_1, ..., B_K`` of ``n_1, ..., n_K`` rows it is ``L = sum_k (n_k / n) L_k``, with ``L_k`` the
mean over batch ``k`` (`landscape.server.cluster` accumulates it in float64). A data set that
does not fit the memory budget is never loaded whole: `NpzStream` reads an ``.npz`` archive's
``X`` and ``y`` members (stored or deflated) sequentially, ``rows`` at a time, without pickle.
"""

from __future__ import annotations

import hashlib
import math
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import numpy as np

MiB = 2**20
DEFAULT_DATA_BUDGET = 512 * MiB
_HASH_BLOCK = 4 * MiB


def file_digest(path: str | Path) -> str:
    """SHA-256 (hex) of a file, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(_HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def array_digest(*arrays: np.ndarray) -> str:
    """SHA-256 (hex) of arrays' dtypes, shapes and bytes."""
    digest = hashlib.sha256()
    for array in arrays:
        a = np.ascontiguousarray(array)
        digest.update(f"{a.dtype.str}{a.shape}".encode())
        digest.update(a.data.cast("B"))
    return digest.hexdigest()


@dataclass
class ArrayData:
    """Samples held in memory: ``X`` (n, ...) and ``y`` (n, ...), NumPy arrays."""

    X: np.ndarray
    y: np.ndarray
    digest: str = ""

    def __post_init__(self) -> None:
        if self.X.shape[0] != self.y.shape[0] or self.X.shape[0] == 0:
            raise ValueError(
                f"X and y must have the same number n >= 1 of rows, got {self.X.shape[0]} and "
                f"{self.y.shape[0]}"
            )
        if not self.digest:
            self.digest = array_digest(self.X, self.y)

    @property
    def n(self) -> int:
        """The number of samples n, ``X.shape[0]``."""
        return int(self.X.shape[0])

    def row_bytes(self) -> int:
        """Bytes of one sample (its features and its target)."""
        return _row_bytes(self.X) + _row_bytes(self.y)

    def batches(self, rows: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """``(X[k:k+rows], y[k:k+rows])`` for k = 0, rows, 2 rows, ... (views, no copies)."""
        for start in range(0, self.n, rows):
            yield self.X[start : start + rows], self.y[start : start + rows]


@dataclass
class NpzStream:
    """Samples in an ``.npz`` archive with members ``X`` (n, ...) and ``y`` (n, ...), read in
    batches of rows from disk. On a cluster, ``path`` must be readable by every worker."""

    path: str
    digest: str = ""
    _shapes: dict[str, tuple[tuple[int, ...], np.dtype]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._shapes = npz_members(self.path)
        for name in ("X", "y"):
            if name not in self._shapes:
                found = list(self._shapes)
                raise ValueError(f"data file must hold arrays 'X' and 'y', found {found}")
        (x_shape, _), (y_shape, _) = self._shapes["X"], self._shapes["y"]
        if not x_shape or not y_shape or x_shape[0] != y_shape[0] or x_shape[0] == 0:
            raise ValueError(
                f"X and y must have the same number n >= 1 of rows, got shapes {x_shape} and "
                f"{y_shape}"
            )
        if not self.digest:
            self.digest = file_digest(self.path)

    @property
    def n(self) -> int:
        """The number of samples n, the first dimension of ``X.npy`` (read from its header)."""
        return int(self._shapes["X"][0][0])

    def row_bytes(self) -> int:
        """Bytes of one sample (its features and its target): ``prod(shape[1:]) * itemsize``
        summed over ``X.npy`` and ``y.npy``."""
        return sum(math.prod(shape[1:]) * dtype.itemsize for shape, dtype in self._shapes.values())

    def batches(self, rows: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Consecutive batches of at most ``rows`` samples, read from the archive as they go."""
        with zipfile.ZipFile(self.path) as archive:
            with archive.open("X.npy") as fx, archive.open("y.npy") as fy:
                x_shape, x_dtype, x_order = _header(fx)
                y_shape, y_dtype, y_order = _header(fy)
                for start in range(0, self.n, rows):
                    count = min(rows, self.n - start)
                    yield (
                        _read_rows(fx, x_shape, x_dtype, x_order, count),
                        _read_rows(fy, y_shape, y_dtype, y_order, count),
                    )

    def load(self) -> ArrayData:
        """The whole archive in memory (``allow_pickle=False``)."""
        with np.load(self.path, allow_pickle=False) as archive:
            return ArrayData(np.asarray(archive["X"]), np.asarray(archive["y"]), self.digest)


def npz_members(path: str | Path) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """``name -> (shape, dtype)`` of every array in an ``.npz`` archive, read from the headers
    alone. Object arrays (which would need pickle) are refused."""
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{Path(path).name} is not an NPZ archive (numpy.savez)")
    members = {}
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            if not info.filename.endswith(".npy"):
                raise ValueError(f"NPZ member {info.filename!r} is not a .npy array")
            with archive.open(info) as handle:
                shape, dtype, _ = _header(handle)
            members[info.filename[: -len(".npy")]] = (shape, dtype)
    return members


def open_data(path: str | Path, budget: int = DEFAULT_DATA_BUDGET) -> ArrayData | NpzStream:
    """An ``.npz`` data file (arrays ``X`` (n, ...) and ``y`` (n,) or (n, k)): in memory when
    its arrays fit ``budget`` bytes, else streamed from disk in batches."""
    path = Path(path)
    if path.suffix.lower() != ".npz":
        raise ValueError(f"data file must be an .npz archive with arrays X and y, got {path.name}")
    stream = NpzStream(str(path))
    for name, (_, dtype) in stream._shapes.items():
        if name in ("X", "y") and dtype.kind not in "biuf":
            raise ValueError(f"data array {name} must be numeric, got dtype {dtype}")
    if stream.n * stream.row_bytes() <= budget:
        return stream.load()
    return stream


def batch_rows(data: ArrayData | NpzStream, budget: int) -> int:
    """Rows per batch so that one batch of samples takes at most ``budget`` bytes (at least 1)."""
    return max(1, min(data.n, budget // max(1, data.row_bytes())))


def _row_bytes(array: np.ndarray) -> int:
    return int(math.prod(array.shape[1:]) * array.dtype.itemsize)


def _header(handle: IO[bytes]) -> tuple[tuple[int, ...], np.dtype, bool]:
    version = np.lib.format.read_magic(handle)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(handle)
    elif version == (2, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(handle)
    else:
        raise ValueError(f"unsupported .npy format version {version}")
    if dtype.hasobject:
        raise ValueError("NPZ holds object arrays, which are refused (no pickle)")
    if fortran and len(shape) > 1:
        raise ValueError("NPZ arrays must be C-ordered to be streamed by rows")
    return tuple(int(s) for s in shape), dtype, bool(fortran)


def _read_rows(
    handle: IO[bytes], shape: tuple[int, ...], dtype: np.dtype, _fortran: bool, count: int
) -> np.ndarray:
    per_row = math.prod(shape[1:])
    want = count * per_row * dtype.itemsize
    raw = handle.read(want)
    if len(raw) != want:
        raise ValueError("data file ended before its declared number of rows")
    return np.frombuffer(bytearray(raw), dtype=dtype).reshape(count, *shape[1:])
