"""Precomputed results for each study's headline configurations, so that pages open instantly.

A study module lists its headline configurations in ``PRESETS: dict[str, Config]``.
``python -m landscape precompute`` finds the studies in `landscape.studies`, runs them on the CPU
under pinned numerics (`landscape.engine.numerics`) and writes one NPZ per preset under
``assets/presets/`` plus ``index.json`` (study, name, configuration, file, numerics). `lookup`
returns the stored result when a page asks for exactly a preset's configuration (the device
aside: presets are computed on the CPU and shown on any device).
"""

from __future__ import annotations

import contextvars
import dataclasses
import importlib
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

from landscape.engine import numerics, results, serving

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


def _key(module_name: str, config: Any) -> str:
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


def precompute(
    modules: list[str],
    directory: Path = PRESET_DIR,
    log: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """Run the presets of the study ``modules`` on the CPU, write their NPZ files into
    ``directory`` and update ``index.json``, keeping the other studies' entries."""
    directory.mkdir(parents=True, exist_ok=True)
    index_path = directory / INDEX
    kept = json.loads(index_path.read_text()) if index_path.exists() else []
    index = [entry for entry in kept if entry["study"] not in modules]
    for module_name in modules:
        module = importlib.import_module(module_name)
        for name, config in presets_of(module_name).items():
            config = dataclasses.replace(config, device="cpu")
            log(f"{module_name}: {name}")
            with afresh():
                result = module.run(config)
            file = f"{module_name.split('.')[-1]}__{name}.npz"
            (directory / file).write_bytes(results.result_to_npz_bytes(result))
            index.append(
                {
                    "study": module_name,
                    "name": name,
                    "file": file,
                    "config": results.config_to_dict(config),
                    "numerics": numerics.fingerprint(),
                }
            )
    index_path.write_text(json.dumps(index, indent=1) + "\n")
    _index.cache_clear()
    _load.cache_clear()
    return index


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
        table[_key(entry["study"], config)] = entry
    return table


def entries(directory: Path = PRESET_DIR) -> Iterator[dict[str, Any]]:
    """The index entries (study, name, file, config) of the stored presets."""
    yield from _index(directory).values()


def lookup(module_name: str, config: Any, directory: Path = PRESET_DIR) -> Any | None:
    """The stored result for ``config`` if it is a preset of ``module_name``, else None."""
    entry = _index(directory).get(_key(module_name, config))
    if entry is None:
        return None
    return _load(directory, module_name, entry["file"])


@serving.byte_lru_cache(
    serving.mebibytes_from_env(CACHE_VARIABLE, CACHE_DEFAULT_MB), name="Presets"
)
def _load(directory: Path, module_name: str, file: str) -> Any:
    """A stored result, read once per process (pages rerun on every widget move) and kept in a
    cache of at most ``CONVEXIFY_PRESET_CACHE_MB`` MiB (default 64), least recently used out."""
    module = importlib.import_module(module_name)
    return results.result_from_npz_bytes(module.Result, (directory / file).read_bytes())


def cache_stats() -> serving.CacheStats:
    """Bytes and entries of the loaded presets' cache, and its ceiling."""
    return _load.cache.stats()
