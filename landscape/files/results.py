"""Saving and loading study configurations and results: NPZ, CSV and the JSON run file.

A `Result` holds NumPy arrays, floats, ints, bools and strings only, so it maps one to one onto an
NPZ archive (one array per field) and onto JSON (lists and scalars). A *run file* is one JSON
document with the study's module name, the configuration, the result and the package versions;
`load_run_file` turns it back into the same ``(Config, Result)`` objects.
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import platform
import re
import struct
import zipfile
import zlib
from importlib import metadata
from types import ModuleType
from typing import Any, TypeVar

import numpy as np

from landscape.files.run_file_schema import (
    MAX_NDIM,
    MAX_RESULT_ELEMENTS,
    MAX_TEXT_CHARS,
    array_from_json,
    check_dtype,
    check_result,
    result_schema,
)

RUN_FILE_FORMAT = "convexify-run/1"
PACKAGES = ("convexify", "numpy", "scipy", "torch", "cvxpy", "plotly", "streamlit", "scikit-learn")
MAX_RUN_FILE_BYTES = 50_000_000
#: JSON values (counted by their commas, before parsing) of a run file: parsing costs about 40
#: bytes of memory per number, so this keeps a load under the 50 MB upload limit.
MAX_JSON_ITEMS = 1_100_000
MAX_MEMBERS = 200
MAX_MEMBER_BYTES = 64_000_000  # uncompressed bytes of one NPZ member
MAX_ARCHIVE_BYTES = 256_000_000  # uncompressed bytes of a whole NPZ archive

R = TypeVar("R")


def config_to_dict(config: Any) -> dict[str, Any]:
    """The fields of a frozen ``Config`` as JSON-ready values (tuples become lists)."""
    return {f.name: _to_json(getattr(config, f.name)) for f in dataclasses.fields(config)}


def config_from_dict(config_cls: type, values: dict[str, Any]) -> Any:
    """``config_cls(**values)`` with lists turned back into tuples; unknown fields are an error."""
    names = {f.name for f in dataclasses.fields(config_cls)}
    unknown = set(values) - names
    if unknown:
        raise ValueError(
            f"unknown configuration fields {sorted(unknown)}; allowed: {sorted(names)}"
        )
    return config_cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


def result_to_arrays(result: Any) -> dict[str, np.ndarray]:
    """One NumPy array per field of ``result``."""
    return {f.name: np.asarray(getattr(result, f.name)) for f in dataclasses.fields(result)}


def result_from_arrays(result_cls: type, arrays: dict[str, Any]) -> Any:
    """Rebuild a ``Result`` from `result_to_arrays` output: 0-d arrays become Python scalars.

    A field missing from ``arrays`` takes its default when it has one (fields added to a
    ``Result`` after a run file was saved); otherwise it is a ``ValueError``.
    """
    values = {}
    for f in dataclasses.fields(result_cls):
        if f.name not in arrays and f.default_factory is not dataclasses.MISSING:
            values[f.name] = f.default_factory()  # a field added after the file was saved
            continue
        if f.name not in arrays and f.default is not dataclasses.MISSING:
            values[f.name] = f.default
            continue
        if f.name not in arrays:
            raise ValueError(f"the saved result lacks the field {f.name!r}")
        array = np.asarray(arrays[f.name])
        values[f.name] = array.item() if array.ndim == 0 else array
    return result_cls(**values)


def from_groups(result_cls: type[R], *groups: Any, **rest: Any) -> R:
    """``result_cls`` built from the fields of its groups (dataclass instances) and ``rest``.

    A study's ``Result`` stays flat (one array or scalar per field, as saved) while the steps of
    its ``run`` each return one group, a dataclass whose fields the ``Result`` inherits.
    """
    values = {f.name: getattr(g, f.name) for g in groups for f in dataclasses.fields(g)}
    return result_cls(**values, **rest)


def result_to_npz_bytes(result: Any) -> bytes:
    """The result as a compressed NPZ archive (no pickled objects)."""
    buffer = io.BytesIO()
    arrays: dict[str, Any] = result_to_arrays(result)
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def result_from_npz_bytes(result_cls: type, data: bytes, study: ModuleType | None = None) -> Any:
    """Inverse of `result_to_npz_bytes`; never unpickles.

    Before anything is decompressed, every member's *uncompressed* size (from the zip
    directory) is checked against `MAX_MEMBER_BYTES` and their sum against `MAX_ARCHIVE_BYTES`;
    then each member's ``.npy`` header (dtype from `run_file_schema.ALLOWED_DTYPES`, shape,
    size) is read before its data. With ``study`` the arrays are also checked against the study's
    `result_schema` (kinds, shapes, finiteness).
    """
    arrays = npz_arrays(data)
    if study is not None:
        arrays = check_result(study, None, arrays)
    return result_from_arrays(result_cls, arrays)


def npz_arrays(data: bytes, max_member_bytes: int | None = None) -> dict[str, np.ndarray]:
    """The arrays of an NPZ archive, checked by the zip directory and the ``.npy`` headers first.

    Raises ``ValueError`` naming the member for: not a zip archive, a member that is not
    ``.npy``, an uncompressed size over ``max_member_bytes`` (default `MAX_MEMBER_BYTES`) or a
    total over `MAX_ARCHIVE_BYTES`, a dtype outside `run_file_schema.ALLOWED_DTYPES` (no
    objects: never unpickled), a header whose shape and dtype disagree with the member's size."""
    limit = MAX_MEMBER_BYTES if max_member_bytes is None else max_member_bytes
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError, ValueError) as error:
        raise ValueError(f"not an NPZ archive: {error}") from None
    with archive:
        members = archive.infolist()
        if len(members) > MAX_MEMBERS:
            raise ValueError(f"an NPZ archive may hold at most {MAX_MEMBERS} arrays")
        total = 0
        for member in members:
            if not member.filename.endswith(".npy"):
                raise ValueError(f"NPZ member {member.filename!r} is not a .npy array")
            if member.file_size > limit:
                raise ValueError(
                    f"NPZ member {member.filename!r} unpacks to {member.file_size / 1e6:.1f} MB, "
                    f"over the {limit / 1e6:.0f} MB limit"
                )
            total += member.file_size
        if total > MAX_ARCHIVE_BYTES:
            raise ValueError(
                f"the NPZ archive unpacks to {total / 1e6:.1f} MB, "
                f"over the {MAX_ARCHIVE_BYTES / 1e6:.0f} MB limit"
            )
        arrays = {}
        for member in members:
            name = member.filename[: -len(".npy")]
            try:
                with archive.open(member) as stream:
                    arrays[name] = _read_npy(stream, member.file_size, name)
            except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as error:
                raise ValueError(f"NPZ member {name!r} is unreadable: {error}") from None
    return arrays


def _read_npy(stream: Any, size: int, name: str) -> np.ndarray:
    """One ``.npy`` member: header checked (allowed dtype, shape agreeing with ``size``) first."""
    shape, fortran, dtype = _npy_header(stream)
    check_dtype(dtype, name)
    if len(shape) > MAX_NDIM:
        raise ValueError(f"{len(shape)} dimensions, at most {MAX_NDIM}")
    count = math.prod(shape)
    if count * dtype.itemsize > size:
        raise ValueError(
            f"its header claims {shape} {dtype} ({count * dtype.itemsize} bytes) "
            f"but the member holds {size} bytes"
        )
    raw = stream.read(count * dtype.itemsize)
    if len(raw) != count * dtype.itemsize:
        raise ValueError("the member ends early")
    array = np.frombuffer(raw, dtype=dtype, count=count)
    return array.reshape(shape, order="F" if fortran else "C").copy()


#: The header NumPy writes (``numpy.lib.format``): the dict's keys sorted, then spaces to align.
_NPY_HEADER = re.compile(
    r"\{'descr': '(?P<descr>[^']+)', 'fortran_order': (?P<fortran>True|False), "
    r"'shape': \((?P<shape>[0-9, ]*)\), \}\s*"
)
MAX_NPY_HEADER = 10_000  # bytes, as numpy.lib.format's own limit


def _npy_header(stream: Any) -> tuple[tuple[int, ...], bool, np.dtype]:
    """Shape, Fortran order and dtype from a ``.npy`` header (versions 1.0 and 2.0), read with a
    regular expression. NumPy's own reader evaluates the header with ``ast.literal_eval``, and
    CPython 3.11's conversion of syntax trees is not thread-safe (python/cpython#106905): a
    preset read in a background thread while a session's script was compiled made that page
    fail with "AST constructor recursion depth mismatch"."""
    version = np.lib.format.read_magic(stream)  # a check of bytes only, no literal_eval
    if version not in ((1, 0), (2, 0)):
        raise ValueError(f".npy version {version} is not read here")
    width = 2 if version == (1, 0) else 4
    prefix = stream.read(width)
    if len(prefix) != width:
        raise ValueError("the .npy header ends early")
    length = struct.unpack("<H" if width == 2 else "<I", prefix)[0]
    if length > MAX_NPY_HEADER:
        raise ValueError(f"a .npy header of {length} bytes, over {MAX_NPY_HEADER}")
    header = stream.read(length).decode("latin1")
    found = _NPY_HEADER.fullmatch(header)
    if found is None:
        raise ValueError(f"a .npy header not written by NumPy: {header[:80]!r}")
    shape = tuple(int(part) for part in found["shape"].split(",") if part.strip())
    try:
        dtype = np.dtype(found["descr"])
    except TypeError:
        raise ValueError(f"the .npy dtype {found['descr']!r} is not understood") from None
    return shape, found["fortran"] == "True", dtype


def result_to_csv(result: Any) -> str:
    """The result as CSV, one row per array element: ``field,index,value``.

    Scalars get an empty index; multi-dimensional arrays list their index as ``i;j``.
    """
    lines = ["field,index,value"]
    for name, array in result_to_arrays(result).items():
        if array.ndim == 0:
            lines.append(f"{name},,{array.item()}")
            continue
        for index, value in np.ndenumerate(array):
            lines.append(f"{name},{';'.join(map(str, index))},{value}")
    return "\n".join(lines) + "\n"


def package_versions() -> dict[str, str]:
    """Versions of Python and of the packages a result depends on; torch's with its build
    (``2.13.0+cu130``, ``2.13.0+cpu``), which the metadata of PyPI's CUDA wheel leaves out."""
    import torch  # loaded already wherever a result is computed

    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    versions["torch"] = torch.__version__
    return versions


def run_file(module_name: str, config: Any, result: Any) -> str:
    """The JSON run file: study, configuration, result and package versions."""
    document = {
        "format": RUN_FILE_FORMAT,
        "study": module_name,
        "config": config_to_dict(config),
        "result": {name: _to_json(v) for name, v in result_to_arrays(result).items()},
        "dtypes": {name: str(v.dtype) for name, v in result_to_arrays(result).items()},
        "versions": package_versions(),
    }
    return json.dumps(document, allow_nan=True)


def study_names(module: ModuleType) -> tuple[str, ...]:
    """The names a run file may give ``module``: its own, and ``landscape.<leaf>``, the name the
    study had before the studies moved into their folders (run files saved by earlier releases)."""
    return module.__name__, f"landscape.{module.__name__.rsplit('.', 1)[-1]}"


def load_run_file(data: bytes | str, study: ModuleType) -> tuple[Any, Any]:
    """Parse a run file of the study module ``study`` into ``(Config, Result)``.

    Raises ``ValueError`` with a message for anything that is not a valid Convexify run file of
    this study: too large, not JSON or nested too deeply, another format or study, a
    configuration that is not an object of known fields or fails ``Config.validate``, a result
    whose fields do not match the study's `result_schema` (names, kinds, dtypes from
    `run_file_schema.ALLOWED_DTYPES`, shapes with named dimensions that agree with each other
    and with the configuration, sizes, finiteness). Nothing is built before the whole file is
    checked, and nothing is imported by a name read from the file.
    """
    if len(data) > MAX_RUN_FILE_BYTES:
        raise ValueError(
            f"run file must be at most {MAX_RUN_FILE_BYTES // 1_000_000} MB, "
            f"got {len(data) / 1e6:.1f} MB"
        )
    raw = data.encode() if isinstance(data, str) else bytes(data)
    if raw.count(b",") > MAX_JSON_ITEMS:
        raise ValueError(
            f"run file holds more than {MAX_JSON_ITEMS:,} values; a run file of this app "
            "holds fewer"
        )
    try:
        document = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"run file is not valid JSON: {error}") from None
    except RecursionError:
        raise ValueError("run file is nested too deeply to be a run file") from None
    if not isinstance(document, dict) or document.get("format") != RUN_FILE_FORMAT:
        raise ValueError(f"run file format must be {RUN_FILE_FORMAT!r}")
    named = document.get("study")
    if not isinstance(named, str) or named not in study_names(study):
        shown = named if isinstance(named, str) and len(named) < 100 else type(named).__name__
        raise ValueError(f"run file is for {shown!r}, not for this page ({study.__name__!r})")
    config = _config_of(study, document.get("config"))
    raw_result, dtypes = document.get("result"), document.get("dtypes", {})
    if not isinstance(raw_result, dict):
        raise ValueError(
            f"run file's 'result' must be an object of fields, got {type(raw_result).__name__}"
        )
    if not isinstance(dtypes, dict):
        raise ValueError(f"run file's 'dtypes' must be an object, got {type(dtypes).__name__}")
    schema = result_schema(study)
    arrays = {}
    budget = [MAX_RESULT_ELEMENTS]
    for name, spec in schema.items():
        if name not in raw_result:
            continue  # a missing field: `result_from_arrays` takes its default or refuses
        arrays[name] = array_from_json(name, spec, raw_result[name], dtypes.get(name), budget)
    arrays = check_result(study, config, arrays)
    return config, result_from_arrays(study.Result, arrays)


def _config_of(study: ModuleType, values: Any) -> Any:
    """The run file's configuration as the study's validated ``Config``, or ``ValueError``."""
    if not isinstance(values, dict):
        raise ValueError(
            "run file's 'config' must be an object of configuration fields, "
            f"got {'nothing' if values is None else type(values).__name__}"
        )
    for name, value in values.items():
        if not _plain_config_value(value):
            raise ValueError(
                f"configuration field {str(name)[:50]!r} must be a number, text, true/false "
                "or a list of those"
            )
    config = config_from_dict(study.Config, values)
    try:
        config.validate()
    except ValueError:
        raise
    except (TypeError, OverflowError, ArithmeticError, AttributeError) as error:
        raise ValueError(f"the configuration is invalid: {error}") from None
    return config


def _plain_config_value(value: Any, depth: int = 0) -> bool:
    if isinstance(value, str):
        return len(value) <= MAX_TEXT_CHARS
    if value is None or isinstance(value, bool | int | float):
        return True
    if isinstance(value, list) and depth == 0:
        return len(value) <= 1000 and all(_plain_config_value(v, 1) for v in value)
    return False


def _to_json(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple):
        return list(value)
    return value
