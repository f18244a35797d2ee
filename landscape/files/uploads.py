"""User uploads, size-limited, never unpickled, never run as code: ONNX models and tables.

A model upload is ONNX (a protobuf: data, not code), checked against declared limits before any
tensor is materialised and run by `landscape.files.onnx_graph`'s bounded interpreter; TorchScript
(code that runs at load and at call) is refused from uploads and read only from the user's own
disk (`load_local_torchscript`). An NPZ member's declared shape, dtype and uncompressed size are
checked before it is read, without pickle; CSV must be all numbers. Uploads live in a small
in-memory store keyed by their SHA-256, so that a study's frozen ``Config`` can name an upload by
its digest.
"""

from __future__ import annotations

import hashlib
import io
import math
import time
import zipfile
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

from landscape.files.onnx_graph import (
    ALLOWED_OPS,
    FLOAT_TYPES,
    INT_TYPES,
    MIN_OPSET,
    OnnxGraphModule,
    convert,
)
from landscape.server import serving

MAX_MODEL_BYTES = 20 * 2**20
MAX_PARAMETERS = 5_000_000  # values in all of an ONNX model's initializers and constants
MAX_NODES = 2000  # nodes of an ONNX graph
MAX_ELEMENTS = 2**27  # values of one tensor an uploaded model declares or computes (512 MiB f32)
MAX_WORK = 2**36  # multiply-adds of one call of an uploaded model, all nodes together
MAX_OUTPUTS = 4096  # numbers per sample the probe call of check_model may return
MAX_PROBE_SECONDS = 10.0  # time of check_model's probe call on at most 8 samples
MAX_DATA_BYTES = 20 * 2**20
MAX_ARRAY_BYTES = 256 * 2**20  # one NPZ member, uncompressed (its .npy header included)
MAX_ROWS = 50_000
# The command line reads the user's own model files (landscape.files.model_files): the same
# checks of the protobuf, with limits for models of hundreds of MB.
CLI_LIMITS = {
    "max_bytes": 2 * 2**30,
    "max_parameters": 500_000_000,
    "max_nodes": 100_000,
    "max_elements": 2**31,
    "max_work": 2**46,
}
MAX_FEATURES = 4096
MAX_CLASSES = 1000
LABEL_COLUMNS = ("y", "target", "label", "class")
STORE_VARIABLE = "CONVEXIFY_UPLOAD_CACHE_MB"
STORE_DEFAULT_MB = 64

_store: serving.ByteLRU[str, bytes] = serving.ByteLRU(
    serving.EnvCeiling(STORE_VARIABLE, STORE_DEFAULT_MB), sizer=len, name="Uploads"
)


def store(data: bytes) -> str:
    """Keep ``data`` in the upload store; returns its SHA-256 (hex), the key for `fetch`.

    The store holds at most ``CONVEXIFY_UPLOAD_CACHE_MB`` MiB (default 64) of uploads, the
    least recently used going first; ``ValueError`` when ``data`` alone is larger than that.
    """
    digest = hashlib.sha256(data).hexdigest()
    if not _store.put(digest, bytes(data)):
        raise ValueError(
            f"upload of {len(data) / 2**20:.1f} MiB is larger than the upload store "
            f"({_store.max_bytes / 2**20:.1f} MiB, {STORE_VARIABLE})"
        )
    return digest


def store_stats() -> serving.CacheStats:
    """Bytes and entries held by the upload store, and its ceiling."""
    return _store.stats()


def fetch(digest: str) -> bytes:
    """The upload stored under ``digest``; ``ValueError`` when it is gone (upload it again)."""
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


def load_model(
    data: bytes,
    max_bytes: int = MAX_MODEL_BYTES,
    *,
    max_parameters: int | None = None,
    max_nodes: int | None = None,
    max_elements: int | None = None,
    max_work: int | None = None,
) -> OnnxGraphModule:
    """An uploaded ONNX model (``torch.onnx.export(model, example, "model.onnx")``) as an
    ``nn.Module`` on the CPU, float32 parameters: the web upload path, which runs no uploaded code.

    The protobuf is parsed with ``onnx`` and checked (`check_onnx`) before any tensor is
    materialised; the graph then runs in `landscape.files.onnx_graph`'s bounded interpreter. Raises
    ``ValueError`` for a file that is too large, not ONNX (a TorchScript archive, a pickle), or
    outside the limits (the web's by default; the command line passes `CLI_LIMITS`).
    """
    _check_size("model file", data, max_bytes)
    if zipfile.is_zipfile(io.BytesIO(data)) or data[:4] == b"PK\x03\x04":
        raise ValueError(
            "model file is an archive (TorchScript or torch.save), which uploads refuse: they run "
            'code. Export ONNX instead: torch.onnx.export(model, example, "model.onnx")'
        )
    model = onnx.ModelProto()
    try:
        model.ParseFromString(bytes(data))
    except Exception:  # noqa: BLE001 - any parse failure is a bad upload
        raise ValueError(
            "model file is not an ONNX model: export one with torch.onnx.export(model, example, "
            '"model.onnx")'
        ) from None
    max_elements = MAX_ELEMENTS if max_elements is None else max_elements
    max_work = MAX_WORK if max_work is None else max_work
    check_onnx(model, max_parameters=max_parameters, max_nodes=max_nodes, max_elements=max_elements)
    module = convert(model, max_elements, max_work)
    if not any(True for _ in module.parameters()):
        raise ValueError("model must have at least one floating-point parameter")
    return module


def check_onnx(
    model: onnx.ModelProto,
    *,
    max_parameters: int | None = None,
    max_nodes: int | None = None,
    max_elements: int | None = None,
) -> None:
    """Refuse, before materialising a tensor, an ONNX model that is not a plain bounded graph.

    Checked from the protobuf's declarations: a default-domain opset in [``MIN_OPSET``, the
    installed ``onnx``'s]; no local functions, sparse tensors or sub-graphs; at most
    ``MAX_NODES`` nodes, each an operator of ``ALLOWED_OPS``; initializers and constants of
    float or integer type, stored in the file (external data names a path on our disk and is
    refused) and whose declared sizes hold; at most ``MAX_PARAMETERS`` values in all; declared
    tensor shapes of at most ``MAX_ELEMENTS`` values.
    """
    # None: the web limits, read at call time (module constants)
    max_parameters = MAX_PARAMETERS if max_parameters is None else max_parameters
    max_nodes = MAX_NODES if max_nodes is None else max_nodes
    max_elements = MAX_ELEMENTS if max_elements is None else max_elements
    _check_header(model, max_nodes)
    graph = model.graph
    tensors, attribute_values = _checked_node_tensors(graph)
    values = attribute_values
    for tensor in (*graph.initializer, *tensors):
        values += _declared_values(tensor, max_parameters)
        if values > max_parameters:
            raise ValueError(
                f"model must hold at most {max_parameters:,} parameter values (MAX_PARAMETERS); "
                f"its tensors and attributes declare more than that"
            )
    for info in (*graph.input, *graph.output, *graph.value_info):
        dims = info.type.tensor_type.shape.dim if info.type.HasField("tensor_type") else []
        known = [d.dim_value for d in dims if d.HasField("dim_value")]
        if any(d < 0 for d in known) or math.prod(known) > max_elements:
            raise ValueError(
                f"model declares the tensor {info.name!r} of shape {known}: more than the limit "
                f"of {max_elements:,} values per tensor (MAX_ELEMENTS)"
            )


def _check_header(model: onnx.ModelProto, max_nodes: int) -> None:
    """A graph with nodes, a supported default-domain opset, no local functions, no sparse
    initializers and at most ``max_nodes`` nodes."""
    if not model.HasField("graph") or not model.graph.node:
        raise ValueError("model file is not an ONNX model (no graph): export one with torch.onnx")
    opsets = {o.domain: o.version for o in model.opset_import}
    version = opsets.get("", opsets.get("ai.onnx"))
    if version is None or not MIN_OPSET <= version <= onnx.defs.onnx_opset_version():
        raise ValueError(
            f"model's ONNX opset must be in [{MIN_OPSET}, {onnx.defs.onnx_opset_version()}], "
            f"got {version}"
        )
    if model.functions:
        raise ValueError("model defines its own functions, which are refused")
    if model.graph.sparse_initializer:
        raise ValueError("model has sparse initializers, which are refused")
    if len(model.graph.node) > max_nodes:
        raise ValueError(f"model must have at most {max_nodes} nodes, got {len(model.graph.node)}")


def _checked_node_tensors(graph: onnx.GraphProto) -> tuple[list[onnx.TensorProto], int]:
    """The tensors the nodes hold as attributes (constants) and the number of values in their
    other attributes (lists of numbers or strings, the bytes of strings), after checking every
    node: the default domain, an operator of `ALLOWED_OPS`, no sub-graphs and no tensor lists."""
    tensors = []
    values = 0
    for node in graph.node:
        if node.domain not in ("", "ai.onnx"):
            raise ValueError(f"model uses the custom operator domain {node.domain!r}, refused")
        if node.op_type not in ALLOWED_OPS:
            raise ValueError(
                f"model uses the operator {node.op_type!r}, which is not allowed (allowed: "
                f"{', '.join(sorted(ALLOWED_OPS))})"
            )
        for attribute in node.attribute:
            if attribute.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS):
                raise ValueError(f"model's {node.op_type} node holds a sub-graph, refused")
            if attribute.type in (
                onnx.AttributeProto.SPARSE_TENSOR,
                onnx.AttributeProto.SPARSE_TENSORS,
                onnx.AttributeProto.TENSORS,
            ):
                raise ValueError(f"model's {node.op_type} node has tensor-list attributes")
            if attribute.type == onnx.AttributeProto.TENSOR:
                tensors.append(attribute.t)
            values += len(attribute.ints) + len(attribute.floats) + len(attribute.s)
            values += sum(len(text) for text in attribute.strings)
    return tensors, values


def _declared_values(tensor: onnx.TensorProto, max_parameters: int) -> int:
    """The number of values ``tensor`` declares, after checking that its bytes are in the file
    and match its declared shape and type (nothing is materialised)."""
    name = tensor.name or "a constant"
    if tensor.data_location == onnx.TensorProto.EXTERNAL or tensor.external_data:
        raise ValueError(
            f"model's tensor {name!r} refers to external data (a file path), which is refused: "
            "save the model as one self-contained .onnx file"
        )
    if tensor.HasField("segment"):
        raise ValueError(f"model's tensor {name!r} is segmented, which is refused")
    if any(d < 0 for d in tensor.dims):
        raise ValueError(f"model's tensor {name!r} has a negative dimension {list(tensor.dims)}")
    count = math.prod(tensor.dims)
    if count > max_parameters:
        raise ValueError(
            f"model's tensor {name!r} declares {count:,} values, more than the limit of "
            f"{max_parameters:,} parameter values (MAX_PARAMETERS)"
        )
    sizes = {**FLOAT_TYPES, **INT_TYPES}
    if tensor.data_type not in sizes:
        raise ValueError(
            f"model's tensor {name!r} has type "
            f"{onnx.TensorProto.DataType.Name(tensor.data_type)}; float, integer or boolean "
            "tensors only"
        )
    if tensor.HasField("raw_data"):
        stored = len(tensor.raw_data) // sizes[tensor.data_type]
    else:
        stored = max(
            len(tensor.float_data),
            len(tensor.double_data),
            len(tensor.int32_data),
            len(tensor.int64_data),
        )
    if stored != count:
        raise ValueError(
            f"model's tensor {name!r} declares {count:,} values but the file holds {stored:,}"
        )
    return count


def load_local_torchscript(path: str | Path) -> torch.jit.ScriptModule:
    """A TorchScript model from a file on the user's own disk (for the command line).

    NEVER for uploads: TorchScript is code (its ``__setstate__`` runs when it loads, its
    ``forward`` when called, and may create files with ``torch.from_file``); the web upload path
    is `load_model` (ONNX). Raises ``ValueError`` when the file is not a TorchScript archive (a
    pickled ``torch.save`` checkpoint is refused, never unpickled) or cannot be loaded.
    """
    data = Path(path).read_bytes()
    _check_size("model file", data, MAX_MODEL_BYTES)
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
    except Exception as error:  # noqa: BLE001 - any loader failure is a bad file
        raise ValueError(f"model file could not be loaded as TorchScript: {error}") from None
    parameters = list(model.parameters())
    if not parameters or not all(p.is_floating_point() for p in parameters):
        raise ValueError("model must have at least one parameter, all floating point")
    return model


def check_model(
    model: nn.Module, X: np.ndarray, y: np.ndarray, task: str, integer_inputs: bool = False
) -> int:
    """Forward the first rows of ``X`` through ``model``; returns the number of outputs.

    Classification needs outputs (n, ..., k) with labels (n, ...) and ``k > max(y)``;
    regression needs outputs shaped like ``y`` (n,) or (n, ...). ``X`` goes in the parameters'
    dtype, integer ``X`` as integers with ``integer_inputs`` (token ids). An uploaded ONNX
    model's probe call stops past ``MAX_PROBE_SECONDS`` (checked between nodes, each node's
    output bounded by ``MAX_ELEMENTS`` and the call's multiply-adds by ``MAX_WORK``); any model
    may return at most ``MAX_OUTPUTS`` numbers per sample. Raises ``ValueError`` naming what does
    not fit.
    """
    dtype = next(model.parameters()).dtype
    sample = torch.as_tensor(X[: min(8, len(X))])
    sample = sample if integer_inputs and not sample.is_floating_point() else sample.to(dtype)
    out = _probe(model, sample, tuple(X.shape[1:]))
    if task == "classification":
        positions = (len(sample),) + tuple(y.shape[1:])
        if out.dim() < 2 or tuple(out.shape[:-1]) != positions:
            raise ValueError(
                f"model must return (n, classes) scores, or (n, ..., classes) for labels "
                f"(n, ...), for labels {tuple(y.shape)} got shape {tuple(out.shape)}"
            )
        classes = int(y.max()) + 1
        if out.shape[-1] < classes:
            raise ValueError(
                f"model returns {out.shape[-1]} scores per sample but the labels need {classes}"
            )
        return int(out.shape[-1])
    expected = (len(sample),) + tuple(y.shape[1:])
    if tuple(out.shape) != expected:
        raise ValueError(
            f"model must return shape {expected} for regression, got {tuple(out.shape)}"
        )
    return int(np.prod(out.shape[1:], dtype=int)) if out.dim() > 1 else 1


def takes_integer_inputs(model: nn.Module, X: np.ndarray) -> bool:
    """True when ``X`` is integer and the model cannot run its first rows as floating point
    (in the parameters' dtype) but can as integers: token ids for an embedding."""
    if X.dtype.kind not in "iu":
        return False
    dtype = next(model.parameters()).dtype
    sample = torch.as_tensor(X[: min(8, len(X))])
    with torch.no_grad():
        try:
            model(sample.to(dtype))
            return False
        except Exception:  # noqa: BLE001 - any failure: floats are not what it takes
            pass
        try:
            model(sample.long())
            return True
        except Exception:  # noqa: BLE001 - check_model then says why floats fail
            return False


def _probe(model: nn.Module, sample: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """The model's output on ``sample`` (rows of ``shape``), within `MAX_PROBE_SECONDS` and
    `MAX_OUTPUTS` numbers per sample, one finite floating-point tensor; ``ValueError`` else."""
    started = time.monotonic()
    if isinstance(model, OnnxGraphModule):
        model.deadline = started + MAX_PROBE_SECONDS
    try:
        with torch.no_grad():
            out = model(sample)
    except ValueError as error:
        if "time limit" in str(error):
            raise ValueError(f"{error} (MAX_PROBE_SECONDS = {MAX_PROBE_SECONDS:g})") from None
        if "(MAX_" in str(error):  # a limit of the interpreter, already named
            raise ValueError(str(error)) from None
        raise ValueError(
            f"model cannot run the data of shape {shape} per sample: {error}"
        ) from None
    except Exception as error:  # noqa: BLE001 - a model that cannot run the data is a bad pair
        raise ValueError(
            f"model cannot run the data of shape {shape} per sample: {error}"
        ) from None
    finally:
        if isinstance(model, OnnxGraphModule):
            model.deadline = None
    seconds = time.monotonic() - started
    if seconds > MAX_PROBE_SECONDS:
        raise ValueError(
            f"model took {seconds:.1f} s on {len(sample)} samples, more than the limit of "
            f"{MAX_PROBE_SECONDS:g} s (MAX_PROBE_SECONDS)"
        )
    if isinstance(out, torch.Tensor) and out.numel() > MAX_OUTPUTS * len(sample):
        raise ValueError(
            f"model returns {out.numel() // len(sample):,} numbers per sample, more than the "
            f"limit of {MAX_OUTPUTS:,} (MAX_OUTPUTS)"
        )
    if not isinstance(out, torch.Tensor) or not out.is_floating_point():
        raise ValueError("model must return one floating-point tensor")
    if not torch.isfinite(out).all():
        raise ValueError("model returns NaN or inf on the data")
    return out


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
    """Arrays ``X`` and ``y`` of an NPZ archive. Each member's uncompressed size (from the zip
    directory) and its ``.npy`` header's dtype and shape are checked before its data is read:
    a deflate bomb or a header that claims a huge array is refused without allocating it."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError, EOFError):
        raise ValueError("data file is not a valid NPZ archive (numpy.savez)") from None
    with archive:
        members = {info.filename: info for info in archive.infolist()}
        if "X.npy" not in members or "y.npy" not in members:
            found = sorted(name.removesuffix(".npy") for name in members)
            raise ValueError(f"NPZ must hold arrays 'X' and 'y', found {found}")
        return _read_member(archive, members["X.npy"]), _read_member(archive, members["y.npy"])


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> np.ndarray:
    name = info.filename.removesuffix(".npy")
    if info.file_size > MAX_ARRAY_BYTES:
        raise ValueError(
            f"NPZ array {name!r} unpacks to {info.file_size / 2**20:,.0f} MiB, more than the "
            f"limit of {MAX_ARRAY_BYTES / 2**20:.0f} MiB (MAX_ARRAY_BYTES)"
        )
    fmt = np.lib.format
    try:
        with archive.open(info) as stream:
            version = fmt.read_magic(stream)
            if version == (1, 0):
                shape, fortran, dtype = fmt.read_array_header_1_0(stream)
            elif version == (2, 0):
                shape, fortran, dtype = fmt.read_array_header_2_0(stream)
            else:
                raise ValueError(f"NPZ array {name!r} has .npy version {version}, not 1.0 or 2.0")
            if dtype.hasobject or dtype.kind not in "biuf":
                raise ValueError(
                    f"NPZ array {name!r} has dtype {dtype}: it must be numeric (object arrays are "
                    "refused, no pickle)"
                )
            count = math.prod(shape)
            if count * dtype.itemsize > MAX_ARRAY_BYTES or (shape and shape[0] > MAX_ROWS):
                raise ValueError(
                    f"NPZ array {name!r} declares shape {shape} of {dtype}: more than the limits "
                    f"of {MAX_ROWS:,} rows and {MAX_ARRAY_BYTES / 2**20:.0f} MiB"
                )
            array = np.frombuffer(stream.read(count * dtype.itemsize), dtype=dtype)
    except ValueError:
        raise
    except (zipfile.BadZipFile, OSError, EOFError) as error:
        raise ValueError(f"NPZ array {name!r} could not be read: {error}") from None
    if array.size != count:
        raise ValueError(f"NPZ array {name!r} is truncated: {array.size} of {count} values")
    return array.reshape(shape, order="F" if fortran else "C")


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
