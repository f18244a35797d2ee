"""Precomputed results for each study's headline configurations, so that pages open instantly.

A study module lists its headline configurations in ``PRESETS: dict[str, Config]``.
``python -m landscape precompute`` (`landscape.precompute`) runs them on the CPU and writes one
NPZ per preset under ``assets/presets/`` plus ``index.json`` (study, name, configuration, file,
the code fingerprint it was computed from). Every server serves these same files, so every
student of a class sees the same figures whatever the machine. `lookup` returns the stored
result when a page asks for exactly a preset's configuration (the device aside: presets are
computed on the CPU and shown on any device).

A study whose runs share a training may store it too: its module defines
``training_key(config) -> Config`` (the configuration with every field the training does not
read at its default) and ``training_state(config) -> dict[str, np.ndarray]`` (what it keeps of
that training, as named arrays). `precompute` then writes one ``<study>__<name>__training.npz``
per distinct training key among the presets, named after the first preset of that key, and
records it as ``"training"`` on each preset entry of that key; `stored_training` reads it back,
so that a configuration off the presets with such a key need not train.
"""

from __future__ import annotations

import contextvars
import importlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from landscape.engine import byte_lru
from landscape.files import results

PRESET_DIR = Path(__file__).resolve().parents[2] / "assets" / "presets"
INDEX = "index.json"
CACHE_VARIABLE = "CONVEXIFY_PRESET_CACHE_MB"
CACHE_DEFAULT_MB = 64


def presets_of(module_name: str) -> dict[str, Any]:
    """The study's ``PRESETS`` (name -> Config)."""
    return dict(importlib.import_module(module_name).PRESETS)


def _rounded(value: Any) -> Any:
    """Floats to 12 significant digits, inside lists too: a slider's ``0.05 * 15`` computed in
    the browser (``0.7500000000000001``) finds the preset stored for ``0.75``."""
    if isinstance(value, float):
        return float(f"{value:.12g}")
    if isinstance(value, list | tuple):
        return [_rounded(item) for item in value]
    return value


def index_key(module_name: str, config: Any) -> str:
    """The index key of ``config``: study and fields as JSON, floats `_rounded`, the device
    aside."""
    values = {name: _rounded(value) for name, value in results.config_to_dict(config).items()}
    values.pop("device", None)
    return json.dumps([module_name, values], sort_keys=True)


_afresh: contextvars.ContextVar[bool] = contextvars.ContextVar("presets_afresh", default=False)


@contextmanager
def afresh() -> Iterator[None]:
    """Inside (this thread or task), `stored_part` finds nothing: a study computes every part
    itself. `precompute` runs inside it (a preset is never built from an older preset), and so
    does the test that the stored presets are current."""
    token = _afresh.set(True)
    try:
        yield
    finally:
        _afresh.reset(token)


def afresh_active() -> bool:
    """Whether this thread or task is inside `afresh`."""
    return _afresh.get()


def stored_part(module_name: str, config: Any) -> Any | None:
    """The stored result of ``config`` (as `lookup`) for a study that reuses parts of it, e.g.
    the curvature that a new resolution does not change; None inside `afresh`."""
    return None if _afresh.get() else lookup(module_name, config)


def forget() -> None:
    """Drop what this process read of the presets (index, training table, loaded results), so
    the next lookup reads the folder again (after `landscape.precompute` rewrote it)."""
    _index.cache_clear()
    _trainings.cache_clear()
    _load.cache_clear()


@lru_cache(maxsize=4)
def _index(directory: Path) -> dict[str, dict[str, Any]]:
    path = directory / INDEX
    if not path.exists():
        return {}
    entries = json.loads(path.read_text())
    table = {}
    for entry in entries:
        module = importlib.import_module(entry["study"])
        config = results.config_from_dict(module.Config, entry["config"])
        table[index_key(entry["study"], config)] = entry
    return table


@lru_cache(maxsize=4)
def _trainings(directory: Path) -> dict[str, str]:
    """Training key (as `key`) -> the file of its stored training state."""
    table = {}
    for entry in _index(directory).values():
        if "training" in entry:
            module = importlib.import_module(entry["study"])
            config = results.config_from_dict(module.Config, entry["config"])
            table[index_key(entry["study"], module.training_key(config))] = entry["training"]
    return table


def stored_training(
    module_name: str, key: Any, directory: Path | None = None
) -> dict[str, np.ndarray] | None:
    """The training state stored with the presets (the study's ``training_state``, named arrays)
    whose training key is ``key`` (the study's ``training_key(config)``, the device aside), read
    without unpickling (`results.npz_arrays`) from ``directory`` (default `PRESET_DIR`); None
    inside `afresh`, when no preset has this key, or when its file is missing or unreadable
    (the study then trains)."""
    directory = PRESET_DIR if directory is None else directory
    file = None if _afresh.get() else _trainings(directory).get(index_key(module_name, key))
    if file is None:
        return None
    try:
        return results.npz_arrays((directory / file).read_bytes())
    except (OSError, ValueError):
        return None


def entries(directory: Path = PRESET_DIR) -> Iterator[dict[str, Any]]:
    """The index entries (study, name, file, config) of the stored presets."""
    yield from _index(directory).values()


def lookup(module_name: str, config: Any, directory: Path = PRESET_DIR) -> Any | None:
    """The stored result for ``config`` if it is a preset of ``module_name``, else None."""
    entry = _index(directory).get(index_key(module_name, config))
    if entry is None:
        return None
    return _load(directory, module_name, entry["file"])


@byte_lru.byte_lru_cache(byte_lru.EnvCeiling(CACHE_VARIABLE, CACHE_DEFAULT_MB), name="Presets")
def _load(directory: Path, module_name: str, file: str) -> Any:
    """A stored result, read once per process (pages rerun on every widget move) and kept in a
    cache of at most ``CONVEXIFY_PRESET_CACHE_MB`` MiB (default 64), least recently used out."""
    module = importlib.import_module(module_name)
    return results.result_from_npz_bytes(module.Result, (directory / file).read_bytes())


def cache_stats() -> byte_lru.CacheStats:
    """Bytes and entries of the loaded presets' cache, and its ceiling."""
    return _load.cache.stats()
