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

RUN_FILE_FORMAT = "convexify-run/1"
PACKAGES = ("convexify", "numpy", "scipy", "torch", "cvxpy", "plotly", "streamlit", "scikit-learn")
MAX_RUN_FILE_BYTES = 50_000_000

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
    then each member's ``.npy`` header (dtype from `ALLOWED_DTYPES`, shape, size) is read
    before its data. With ``study`` the arrays are also checked against the study's
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
    total over `MAX_ARCHIVE_BYTES`, a dtype outside `ALLOWED_DTYPES` (no objects: never
    unpickled), a header whose shape and dtype disagree with the member's size."""
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
    _check_dtype(dtype, name)
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
    """Versions of the packages a result depends on, and of Python."""
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
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
    `ALLOWED_DTYPES`, shapes with named dimensions that agree with each other and with the
    configuration, sizes, finiteness). Nothing is built before the whole file is checked, and
    nothing is imported by a name read from the file.
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
        arrays[name] = _array_from_json(name, spec, raw_result[name], dtypes.get(name), budget)
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


# --- the schema a run file's result is checked against --------------------------------------

#: dtypes a result array may have, by kind: f float, i integer, b bool, s text (length-bounded)
ALLOWED_DTYPES = {
    "f": ("float16", "float32", "float64"),
    "i": ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"),
    "b": ("bool",),
}
CANONICAL = {"f": "float64", "i": "int64", "b": "bool"}
KIND_NAMES = {"f": "numbers", "i": "integers", "b": "true/false values", "s": "text"}
MAX_TEXT_CHARS = 10_000  # characters of one text field (numpy stores 4 bytes each)
MAX_RESULT_ELEMENTS = 1_100_000  # numbers in one result (the largest page's run: ~0.9 M)
#: JSON values (counted by their commas, before parsing) of a run file: parsing costs about 40
#: bytes of memory per number, so this keeps a load under the 50 MB upload limit.
MAX_JSON_ITEMS = 1_100_000
MAX_NDIM = 8
MAX_MEMBERS = 200
MAX_MEMBER_BYTES = 64_000_000  # uncompressed bytes of one NPZ member
MAX_ARCHIVE_BYTES = 256_000_000  # uncompressed bytes of a whole NPZ archive


@dataclasses.dataclass(frozen=True)
class FieldSpec:
    """What one ``Result`` field may hold: a kind, alternative shapes, finiteness.

    A dimension is an integer (exact), the name of an integer ``Config`` field (equal to it),
    ``field+k`` (the field plus k), the name of a tuple ``Config`` field (its length), or a free
    name that must agree wherever it appears in the result; a trailing ``?`` lets a free
    dimension be 0 (otherwise at least 1).
    """

    kind: str
    shapes: tuple[tuple[str, ...], ...]
    finite: bool = False

    @classmethod
    def parse(cls, text: str) -> FieldSpec:
        """``"f"``, ``"i[n]"``, ``"f![depths,branch_counts]"``, ``"f[G]|f[G,G]"``."""
        kinds, shapes, finite = set(), [], False
        for part in text.split("|"):
            part = part.strip()
            head, _, dims = part.partition("[")
            finite = finite or head.endswith("!")
            kinds.add(head.rstrip("!"))
            names = dims.rstrip("]").split(",") if dims else []
            shapes.append(tuple(n.strip() for n in names if n.strip()))
        if len(kinds) != 1 or not kinds <= {"f", "i", "b", "s"}:
            raise ValueError(f"bad result schema {text!r}")
        return cls(kinds.pop(), tuple(shapes), finite)


def result_schema(study: ModuleType) -> dict[str, FieldSpec]:
    """The study's ``RESULT_SHAPES`` (field -> spec text) parsed, covering every ``Result``
    field; a study without one gets kinds and dimensions read off its default preset."""
    declared = getattr(study, "RESULT_SHAPES", None)
    names = [f.name for f in dataclasses.fields(study.Result)]
    if declared is None:
        return _schema_from_default(study)
    schema = {name: FieldSpec.parse(declared[name]) for name in names if name in declared}
    for f in dataclasses.fields(study.Result):
        if f.name not in schema:  # not declared yet (tests/test_run_file_mutations.py says so)
            schema[f.name] = _undeclared(f)
    return {name: schema[name] for name in names}


def _undeclared(f: dataclasses.Field) -> FieldSpec:
    """A permissive spec for a field missing from ``RESULT_SHAPES``: its kind from the
    annotation (arrays: numbers of up to `MAX_NDIM` free dimensions), so a new field does not
    stop run files from loading before it is declared."""
    kind = {"float": "f", "int": "i", "bool": "b", "str": "s"}.get(str(f.type).split(" ")[0])
    if kind is not None:
        return FieldSpec(kind, ((),))
    shapes = tuple(
        tuple(f"{f.name}_{axis}?" for axis in range(ndim)) for ndim in range(MAX_NDIM + 1)
    )
    return FieldSpec("f", shapes)


def undeclared_fields(study: ModuleType) -> list[str]:
    """The ``Result`` fields the study's ``RESULT_SHAPES`` does not declare."""
    declared = getattr(study, "RESULT_SHAPES", {}) or {}
    return [f.name for f in dataclasses.fields(study.Result) if f.name not in declared]


def _schema_from_default(study: ModuleType) -> dict[str, FieldSpec]:
    from landscape.files import presets  # presets import this module

    reference = presets.lookup(study.__name__, study.Config())
    if reference is None:
        raise ValueError(f"{study.__name__} declares no RESULT_SHAPES and has no default preset")
    schema = {}
    for name, array in result_to_arrays(reference).items():
        kind = "s" if array.dtype.kind == "U" else {"f": "f", "b": "b"}.get(array.dtype.kind, "i")
        dims = tuple(f"{name}_{axis}?" for axis in range(array.ndim))
        schema[name] = FieldSpec(kind, (dims,))
    return schema


def _check_dtype(dtype: np.dtype, name: str) -> None:
    if dtype.kind == "U" and dtype.itemsize // 4 <= MAX_TEXT_CHARS:
        return
    if any(dtype == np.dtype(allowed) for group in ALLOWED_DTYPES.values() for allowed in group):
        return
    raise ValueError(f"{name!r} has dtype {dtype}, which is not allowed")


def _dtype_for(name: str, spec: FieldSpec, declared: Any) -> np.dtype:
    """The dtype a field gets: the run file's (if allowed for the field's kind) or canonical."""
    if declared is None:
        return np.dtype(CANONICAL.get(spec.kind, "U"))
    if not isinstance(declared, str) or len(declared) > 12:
        raise ValueError(f"the dtype of {name!r} must be a short dtype name")
    if spec.kind == "s":
        if declared.lstrip("<").startswith("U") and declared.lstrip("<")[1:].isdigit():
            if int(declared.lstrip("<")[1:]) <= MAX_TEXT_CHARS:
                return np.dtype("U")
        raise ValueError(f"{name!r} is text: its dtype must be U1 to U{MAX_TEXT_CHARS}")
    allowed = ALLOWED_DTYPES[spec.kind]
    if declared not in allowed:
        raise ValueError(
            f"{name!r} holds {KIND_NAMES[spec.kind]}: its dtype must be one of {allowed}"
        )
    return np.dtype(declared)


def _array_from_json(
    name: str, spec: FieldSpec, value: Any, dtype: Any, budget: list[int]
) -> np.ndarray:
    """One result field from its JSON value: nesting, leaf types and size checked first."""
    target = _dtype_for(name, spec, dtype)
    if spec.kind == "s":
        if not isinstance(value, str) or len(value) > MAX_TEXT_CHARS:
            raise ValueError(f"{name!r} must be a text of at most {MAX_TEXT_CHARS} characters")
        return np.asarray(value)
    most = max(len(shape) for shape in spec.shapes)
    leaves = _count_leaves(name, spec.kind, value, most, budget)
    try:
        array = np.asarray(value, dtype=target)
    except (ValueError, OverflowError, TypeError) as error:
        raise ValueError(
            f"{name!r} is not a rectangular array of {KIND_NAMES[spec.kind]}: {str(error)[:200]}"
        ) from None
    if array.size != leaves:
        raise ValueError(f"{name!r} is not a rectangular array")
    return array


_NOTHING = object()  # no offending element found


def _count_leaves(name: str, kind: str, value: Any, most: int, budget: list[int]) -> int:
    """Number of scalars in the nested lists ``value`` (at most ``most`` levels deep, each
    scalar of the field's kind); spends them from ``budget`` (`MAX_RESULT_ELEMENTS`)."""
    ok: tuple[type, ...]
    if kind == "f":
        ok = (int, float)
    elif kind == "i":
        ok = (int,)
    else:
        ok = (bool,)
    level, count = [value], 0
    for depth in range(most + 1):
        lists = [v for v in level if isinstance(v, list)]
        scalars = len(level) - len(lists)
        if scalars:
            if lists:
                raise ValueError(f"{name!r} mixes numbers and lists at one level")
            bad = next(
                (
                    v
                    for v in level
                    if not isinstance(v, ok) or (kind != "b" and isinstance(v, bool))
                ),
                _NOTHING,
            )
            if bad is not _NOTHING or (kind == "i" and any(abs(v) >= 2**63 for v in level)):
                raise ValueError(
                    f"{name!r} must hold {KIND_NAMES[kind]}, found {type(bad).__name__}"
                    if bad is not _NOTHING
                    else f"{name!r} holds an integer out of the int64 range"
                )
            count += scalars
            budget[0] -= scalars
            if budget[0] < 0:
                raise ValueError(f"the result holds more than {MAX_RESULT_ELEMENTS} numbers")
            return count
        if depth == most:
            if lists:
                raise ValueError(f"{name!r} is nested deeper than {most} levels")
            return count
        level = [item for v in lists for item in v]
        budget[0] -= len(lists)
        if budget[0] < 0:
            raise ValueError(f"the result holds more than {MAX_RESULT_ELEMENTS} numbers")
        if not level:
            return 0
    return count


def check_result(study: ModuleType, config: Any, arrays: dict[str, Any]) -> dict[str, np.ndarray]:
    """``arrays`` checked against the study's `result_schema`: kind, a declared shape whose
    named dimensions agree across fields and with ``config`` (when given), finiteness; empty
    arrays take their declared number of dimensions. Returns the arrays; ``ValueError`` names
    the first field that does not fit."""
    schema = result_schema(study)
    sizes: dict[str, int] = {}
    origin: dict[str, str] = {}  # the field that first fixed each free dimension
    checked: dict[str, np.ndarray] = {}
    for name, spec in schema.items():
        if name not in arrays:
            continue
        array = np.asarray(arrays[name])
        _check_dtype(array.dtype, name)
        kind = {"U": "s", "f": "f", "b": "b", "i": "i", "u": "i"}.get(array.dtype.kind)
        if kind != spec.kind and not (spec.kind == "f" and kind == "i"):
            raise ValueError(f"{name!r} must hold {KIND_NAMES[spec.kind]}, got dtype {array.dtype}")
        if array.size == 0:
            array = _empty_like_declared(name, spec, array, sizes, config)
        shape = _matching_shape(name, spec, array.shape, sizes, config)
        if shape is None:
            wanted = " or ".join(
                f"({', '.join(s)})" if s else "a single value" for s in spec.shapes
            )
            known = sorted(
                {
                    f"{d.rstrip('?')} = {sizes[d.rstrip('?')]} (from {origin[d.rstrip('?')]!r})"
                    for dims in spec.shapes
                    for d in dims
                    if d.rstrip("?") in sizes
                }
                | {
                    f"{d} = {_dimension(d, config)} (the configuration)"
                    for dims in spec.shapes
                    for d in dims
                    if not d.isdigit() and _dimension(d, config) is not None
                }
            )
            where = f", where {', '.join(known)}" if known else ""
            raise ValueError(f"{name!r} has shape {array.shape}; it must be {wanted}{where}")
        for dim in shape:
            origin.setdefault(dim.rstrip("?"), name)
        if spec.finite and array.dtype.kind == "f" and not np.isfinite(array).all():
            raise ValueError(f"{name!r} must hold finite numbers only")
        checked[name] = array
    return checked


def _dimension(dim: str, config: Any) -> int | None:
    """The length a dimension name fixes: a literal, a Config field (or its length), or None."""
    if dim.isdigit():
        return int(dim)
    base, plus, offset = dim.partition("+")
    if config is None or not hasattr(config, base):
        return None
    value = getattr(config, base)
    if isinstance(value, tuple | list):
        return len(value) + (int(offset) if plus else 0)
    if isinstance(value, int) and not isinstance(value, bool):
        return value + (int(offset) if plus else 0)
    return None


def _matching_shape(
    name: str, spec: FieldSpec, shape: tuple[int, ...], sizes: dict[str, int], config: Any
) -> tuple[str, ...] | None:
    """The first declared shape of ``name`` that ``shape`` fits (binding its free names into
    ``sizes``), or None."""
    for dims in spec.shapes:
        if len(dims) != len(shape):
            continue
        bound: dict[str, int] = {}
        ok = True
        for dim, length in zip(dims, shape, strict=True):
            plain = dim.rstrip("?")
            fixed = _dimension(plain, config)
            if fixed is not None:
                ok = ok and length == fixed
                continue
            if length == 0 and not dim.endswith("?"):
                ok = False
            known = sizes.get(plain, bound.get(plain))
            ok = ok and (known is None or known == length)
            bound[plain] = length
        if ok:
            sizes.update(bound)
            return dims
    return None


def _empty_like_declared(
    name: str, spec: FieldSpec, array: np.ndarray, sizes: dict[str, int], config: Any
) -> np.ndarray:
    """An empty array (JSON ``[]`` has no shape) given its declared number of dimensions."""
    for dims in spec.shapes:
        if len(dims) == array.ndim:
            return array
    dims = spec.shapes[0]
    if not dims:
        raise ValueError(f"{name!r} must be a single value, got an empty array")
    shape = []
    for dim in dims:
        fixed = _dimension(dim.rstrip("?"), config)
        shape.append(fixed if fixed is not None else sizes.get(dim.rstrip("?"), 0))
    if math.prod(shape) != 0:
        raise ValueError(f"{name!r} is empty; it must have shape ({', '.join(dims)})")
    return array.reshape(shape)


def _to_json(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple):
        return list(value)
    return value
