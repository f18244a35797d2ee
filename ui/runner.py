"""Run a study through Streamlit's cache, with a progress bar, and show bad input as st.error."""

from __future__ import annotations

import importlib
import logging
from typing import Any

import streamlit as st

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


def run_study(module_name: str, config: Any) -> Any | None:
    """``module.run(config)`` cached on the frozen config, with a progress bar.

    A ``ValueError`` is shown with ``st.error``; any other failure is logged and shown as a short
    message, never as a traceback. Returns None when the run failed.
    """
    bar = st.progress(0.0, text="Starting")

    def progress(fraction: float, stage: str) -> None:
        bar.progress(min(max(float(fraction), 0.0), 1.0), text=stage)

    try:
        result = _cached_run(module_name, config, _progress=progress)
    except ValueError as error:
        st.error(f"Invalid setting: {error}")
        return None
    except Exception as error:  # noqa: BLE001 - the user must never see a traceback
        log.exception("study %s failed", module_name)
        st.error(f"The computation failed ({type(error).__name__}: {error}). Try other settings.")
        return None
    finally:
        bar.empty()
    return result


def clear_cache() -> None:
    """Forget every cached study result (tests call this between runs)."""
    _cached_run.clear()
