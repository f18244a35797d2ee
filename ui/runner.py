"""Run a study through Streamlit's cache, with a progress bar; show bad input as st.error; offer
the run's exports and load a saved run file back."""

from __future__ import annotations

import json
import logging
import threading
from collections import OrderedDict
from types import ModuleType
from typing import Any

import streamlit as st

from landscape.engine import presets, results
from ui.export import result_downloads

log = logging.getLogger(__name__)


MAX_CACHED_RESULTS = 32


class ResultCache:
    """A bounded, thread-safe LRU cache of study results keyed on ``(module, frozen Config)``.

    Shared by all sessions, like ``st.cache_data``, but it calls ``run`` with a live progress
    callback: Streamlit cannot replay element updates made inside an ``st.cache_data`` function
    (``CacheReplayClosureError`` on the next cache hit), so the cache is kept here instead.
    Results are NumPy arrays and floats that pages only read.
    """

    def __init__(self, max_entries: int = MAX_CACHED_RESULTS) -> None:
        self._entries: OrderedDict[tuple[str, Any], Any] = OrderedDict()
        self._lock = threading.Lock()
        self._max_entries = max_entries

    def get(self, key: tuple[str, Any]) -> Any | None:
        with self._lock:
            if key not in self._entries:
                return None
            self._entries.move_to_end(key)
            return self._entries[key]

    def put(self, key: tuple[str, Any], result: Any) -> None:
        with self._lock:
            self._entries[key] = result
            self._entries.move_to_end(key)
            while len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


@st.cache_resource
def _result_cache() -> ResultCache:
    return ResultCache()


def build_config(config_cls: type, **fields: Any) -> Any | None:
    """``config_cls(**fields)`` validated; on ``ValueError`` shows ``st.error`` and returns None."""
    try:
        config = config_cls(**fields)
        config.validate()
    except ValueError as error:
        st.error(f"Invalid setting: {error}")
        return None
    return config


def _compute(study: ModuleType, config: Any) -> Any | None:
    module_name = study.__name__
    stored = presets.lookup(module_name, config)
    if stored is not None:
        st.caption(
            ":material/bolt: Precomputed preset (python -m landscape precompute): "
            "move any control to compute afresh."
        )
        return stored
    cache = _result_cache()
    cached = cache.get((module_name, config))
    if cached is not None:
        return cached
    bar = st.progress(0.0, text="Starting")

    def progress(fraction: float, stage: str) -> None:
        bar.progress(min(max(float(fraction), 0.0), 1.0), text=stage)

    try:
        result = study.run(config, progress=progress)
        cache.put((module_name, config), result)
        return result
    except ValueError as error:
        st.error(f"Invalid setting: {error}")
    except Exception as error:  # noqa: BLE001 - the user must never see a traceback
        log.exception("study %s failed", module_name)
        st.error(f"The computation failed ({type(error).__name__}: {error}). Try other settings.")
    finally:
        bar.empty()
    return None


def run_study(study: ModuleType, config: Any, name: str = "") -> Any | None:
    """``study.run(config)``, cached on the frozen config (or a stored preset), with progress.

    Draws an expander to export the run (NPZ, CSV, JSON run file) or load a run file back; a
    loaded run file replaces the computation until it is removed. A ``ValueError`` is shown with
    ``st.error``; any other failure is logged and shown as a short message, never a traceback.
    Returns None when there is nothing to show. ``name`` tells apart several runs of the same
    study on one page (it keys their widgets).
    """
    module_name = study.__name__
    stem = module_name.rsplit(".", 1)[-1] + (f"_{name}" if name else "")
    box = st.expander("Export this run, or load a saved run file")
    upload = box.file_uploader(
        "Load a run file (JSON)",
        type=["json"],
        key=f"load_{stem}",
        help="A run file downloaded from this page: its configuration and results are shown "
        "instead of the controls' values until you remove the file.",
    )
    if upload is not None:
        try:
            config, result = results.load_run_file(upload.getvalue(), study)
        except (ValueError, KeyError, TypeError) as error:
            box.error(f"Could not load {upload.name}: {error}")
        else:
            st.info(f"Showing the run file {upload.name}; remove it to use the controls again.")
            box.code(json.dumps(results.config_to_dict(config), indent=1), language="json")
            with box:
                result_downloads(module_name, config, result, stem)
            return result
    result = _compute(study, config)
    if result is not None:
        with box:
            result_downloads(module_name, config, result, stem)
    return result


def clear_cache() -> None:
    """Forget every cached study result (tests call this between runs)."""
    _result_cache().clear()
