"""The schema a study's result is checked against before it is built: from a run file, an
NPZ archive or the presets.

A study declares ``RESULT_SHAPES`` (``Result`` field -> spec text, `FieldSpec.parse`): the kind
(f numbers, i integers, b true/false, s text), alternative shapes whose dimensions are literals,
``Config`` fields or free names that must agree across fields, and finiteness. `check_result`
holds arrays to it; `array_from_json` turns one field's JSON value into an array, nesting, leaf
types and the element budget (`MAX_RESULT_ELEMENTS`) checked first.
"""

from __future__ import annotations

import dataclasses
import math
from types import ModuleType
from typing import Any

import numpy as np

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
MAX_NDIM = 8


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
    field: a field it does not declare (or every field, without ``RESULT_SHAPES``) gets the
    permissive spec of `_undeclared`."""
    declared = getattr(study, "RESULT_SHAPES", None) or {}
    names = [f.name for f in dataclasses.fields(study.Result)]
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


def check_dtype(dtype: np.dtype, name: str) -> None:
    """Accept a unicode string of at most ``MAX_TEXT_CHARS`` characters or a dtype listed in
    ``ALLOWED_DTYPES``; ``ValueError`` naming the array ``name`` and its dtype otherwise."""
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


def array_from_json(
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
        check_dtype(array.dtype, name)
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
