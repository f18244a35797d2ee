"""Run a study through Streamlit's cache, with a progress bar; show bad input as st.error; offer
the run's exports and load a saved run file back."""

from __future__ import annotations

import importlib
import json
import logging
from typing import Any

import streamlit as st

from landscape import presets, results
from ui.export import result_downloads

log = logging.getLogger(__name__)


@st.cache_data(max_entries=32, show_spinner=False)
def _cached_run(module_name: str, config: Any, _progress: Any = None) -> Any:
    module = importlib.import_module(module_name)
    return module.run(config, progress=_progress)


def build_config(config_cls: type, **fields: Any) -> Any | None:
    """``config_cls(**fields)`` validated; on ``ValueError`` shows ``st.error`` and returns None."""
    try:
        config = config_cls(**fields)
        config.validate()
    except ValueError as error:
        st.error(f"Invalid setting: {error}")
        return None
    return config


def _compute(module_name: str, config: Any) -> Any | None:
    stored = presets.lookup(module_name, config)
    if stored is not None:
        st.caption(
            ":material/bolt: Precomputed preset (python -m landscape precompute): "
            "move any control to compute afresh."
        )
        return stored
    bar = st.progress(0.0, text="Starting")

    def progress(fraction: float, stage: str) -> None:
        bar.progress(min(max(float(fraction), 0.0), 1.0), text=stage)

    try:
        return _cached_run(module_name, config, _progress=progress)
    except ValueError as error:
        st.error(f"Invalid setting: {error}")
    except Exception as error:  # noqa: BLE001 - the user must never see a traceback
        log.exception("study %s failed", module_name)
        st.error(f"The computation failed ({type(error).__name__}: {error}). Try other settings.")
    finally:
        bar.empty()
    return None


def run_study(module_name: str, config: Any) -> Any | None:
    """``module.run(config)``, cached on the frozen config (or a stored preset), with progress.

    Draws an expander to export the run (NPZ, CSV, JSON run file) or load a run file back; a
    loaded run file replaces the computation until it is removed. A ``ValueError`` is shown with
    ``st.error``; any other failure is logged and shown as a short message, never a traceback.
    Returns None when there is nothing to show.
    """
    stem = module_name.split(".")[-1]
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
            _, config, result = results.load_run_file(upload.getvalue(), expected_study=module_name)
        except (ValueError, KeyError, TypeError) as error:
            box.error(f"Could not load {upload.name}: {error}")
        else:
            st.info(f"Showing the run file {upload.name}; remove it to use the controls again.")
            box.code(json.dumps(results.config_to_dict(config), indent=1), language="json")
            with box:
                result_downloads(module_name, config, result)
            return result
    result = _compute(module_name, config)
    if result is not None:
        with box:
            result_downloads(module_name, config, result)
    return result


def clear_cache() -> None:
    """Forget every cached study result (tests call this between runs)."""
    _cached_run.clear()
