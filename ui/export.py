"""Exports: each figure as standalone HTML (and PNG where Chromium is present for kaleido), the
data as NPZ or CSV, and the JSON run file, which `ui.runner` can load back."""

from __future__ import annotations

import importlib.util
import shutil
from collections.abc import Callable, Hashable
from functools import lru_cache
from typing import Any

import plotly.graph_objects as go
import streamlit as st
from plotly.basedatatypes import BaseFigure

from landscape.engine import byte_lru, plotting
from landscape.files import results
from ui import charts
from ui.charts import Specified

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "chrome")
FIGURE_CACHE_VARIABLE = "CONVEXIFY_FIGURE_CACHE_MB"
FIGURE_CACHE_DEFAULT_MB = 64


def _figure_nbytes(entry: tuple[tuple[Any, ...], Specified]) -> int:
    """Bytes a cached figure keeps alive: the entry, the figure object and its JSON, and the
    arguments it was built from (results the result cache may have let go)."""
    return byte_lru.estimate_nbytes((entry, vars(entry[1])))


_figures: byte_lru.ByteLRU[tuple[Hashable, ...], tuple[tuple[Any, ...], Specified]] = (
    byte_lru.ByteLRU(
        byte_lru.EnvCeiling(FIGURE_CACHE_VARIABLE, FIGURE_CACHE_DEFAULT_MB),
        sizer=_figure_nbytes,
        name="Figures",
    )
)


def _identity(value: Any) -> Hashable:
    """A key for one argument of a figure function: results by identity (the runner's cache and
    the presets hand out the same object on every rerun), everything else by value."""
    if isinstance(value, str | int | float | bool | type(None)):
        return value
    return ("id", id(value))


def cached_figure(make: Callable[..., go.Figure], *args: Any) -> Specified:
    """``make(*args)``, built once per (function, result, options) and shared by every session:
    a rerun that shows an already computed result (a preset, a cached run, a value seen before)
    does not rebuild its Plotly figures. Built under `plotting.FIGURE_LOCK` (Plotly's figure
    construction is not thread-safe), once even when several sessions ask at the same moment.

    The arguments are kept with the figure, so no id is reused while the entry lives; the cache
    is bounded in bytes (``CONVEXIFY_FIGURE_CACHE_MB``, default 64). What is kept and returned
    is the figure's JSON (`charts.Specified`), made here once: `show_figure` sends it as it is.
    """
    key = (make.__module__, make.__qualname__, *(_identity(a) for a in args))
    found = _figures.get(key)
    if found is None:
        with plotting.FIGURE_LOCK:
            found = _figures.get(key)  # built by another session while this one waited
            if found is None:
                found = (args, Specified(make(*args)))
                _figures.put(key, found)
    return found[1]


def clear_figures() -> None:
    """Forget every cached figure (tests call this between runs)."""
    _figures.clear()


def figure_cache_stats() -> byte_lru.CacheStats:
    """The figure cache's entries and bytes against its ceiling, for the about box."""
    return _figures.stats()


@lru_cache(maxsize=1)
def png_export_available() -> bool:
    """PNG export needs kaleido and a Chromium or Chrome binary for it to drive."""
    has_kaleido = importlib.util.find_spec("kaleido") is not None
    return has_kaleido and any(shutil.which(name) for name in CHROMIUM_NAMES)


def show_figure(fig: BaseFigure, name: str) -> None:
    """The chart (`charts.show_chart`, updated in place from run to run) and download buttons
    for the figure (HTML, and PNG when possible).

    A figure from `cached_figure` goes to the browser as the JSON made when it was cached."""
    charts.show_chart(fig, key=f"chart_{name}")
    row = st.container(horizontal=True)  # buttons as wide as their labels, even in a narrow column
    row.download_button(
        "HTML",
        data=lambda: fig.to_html(include_plotlyjs="cdn", full_html=True),
        file_name=f"{name}.html",
        mime="text/html",
        key=f"html_{name}",
        on_click="ignore",
        icon=":material/download:",
        help="The interactive figure as a standalone HTML file.",
    )
    if png_export_available():
        row.download_button(
            "PNG",
            data=lambda: fig.to_image(format="png", scale=2),
            file_name=f"{name}.png",
            mime="image/png",
            key=f"png_{name}",
            on_click="ignore",
            icon=":material/image:",
            help="A static picture, rendered by kaleido in headless Chromium (a few seconds).",
        )
    else:
        row.caption("PNG needs Chromium (apt-get install chromium)")


def result_downloads(module_name: str, config: Any, result: Any, stem: str) -> None:
    """Download buttons for the whole run: NPZ and CSV data, and the JSON run file.

    ``stem`` names the files and keys the buttons (unique per run on a page).
    """
    cols = st.columns(3)
    cols[0].download_button(
        "Data (NPZ)",
        data=lambda: results.result_to_npz_bytes(result),
        file_name=f"{stem}.npz",
        mime="application/octet-stream",
        key=f"npz_{stem}",
        on_click="ignore",
        help="Every array of the result; load with numpy.load.",
    )
    cols[1].download_button(
        "Data (CSV)",
        data=lambda: results.result_to_csv(result),
        file_name=f"{stem}.csv",
        mime="text/csv",
        key=f"csv_{stem}",
        on_click="ignore",
        help="One row per value: field, index, value.",
    )
    cols[2].download_button(
        "Run file (JSON)",
        data=lambda: results.run_file(module_name, config, result),
        file_name=f"{stem}_run.json",
        mime="application/json",
        key=f"run_{stem}",
        on_click="ignore",
        help="Configuration, results and package versions; load it back on this page.",
    )
