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
import platform
from importlib import metadata
from types import ModuleType
from typing import Any

import numpy as np

RUN_FILE_FORMAT = "convexify-run/1"
PACKAGES = ("convexify", "numpy", "scipy", "torch", "cvxpy", "plotly", "streamlit", "scikit-learn")
MAX_RUN_FILE_BYTES = 50_000_000


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


def result_to_npz_bytes(result: Any) -> bytes:
    """The result as a compressed NPZ archive (no pickled objects)."""
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **result_to_arrays(result))
    return buffer.getvalue()


def result_from_npz_bytes(result_cls: type, data: bytes) -> Any:
    """Inverse of `result_to_npz_bytes`; never unpickles."""
    with np.load(io.BytesIO(data), allow_pickle=False) as archive:
        return result_from_arrays(result_cls, {name: archive[name] for name in archive.files})


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

    Raises ``ValueError`` for anything that is not a Convexify run file of this study (too
    large, not JSON, another format, another study). Nothing is imported by a name read from the
    file.
    """
    if len(data) > MAX_RUN_FILE_BYTES:
        raise ValueError(
            f"run file must be at most {MAX_RUN_FILE_BYTES // 1_000_000} MB, "
            f"got {len(data) / 1e6:.1f} MB"
        )
    try:
        document = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"run file is not valid JSON: {error}") from None
    if not isinstance(document, dict) or document.get("format") != RUN_FILE_FORMAT:
        raise ValueError(f"run file format must be {RUN_FILE_FORMAT!r}")
    named = document.get("study")
    if named not in study_names(study):
        raise ValueError(f"run file is for {named!r}, not for this page ({study.__name__!r})")
    config = config_from_dict(study.Config, document["config"])
    config.validate()
    dtypes = document.get("dtypes", {})
    arrays = {
        name: np.asarray(value, dtype=dtypes.get(name))
        for name, value in document["result"].items()
    }
    return config, result_from_arrays(study.Result, arrays)


def _to_json(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple):
        return list(value)
    return value
