"""Exports: each figure as standalone HTML (and PNG where Chromium is present for kaleido), the
data as NPZ or CSV, and the JSON run file, which `ui.runner` can load back."""

from __future__ import annotations

import importlib.util
import shutil
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from functools import lru_cache
from typing import Any

import plotly.graph_objects as go
import streamlit as st

from landscape.engine import results

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "chrome")
MAX_FIGURES = 64  # figures kept by `cached_figure`

_figures: OrderedDict[tuple[Hashable, ...], tuple[tuple[Any, ...], go.Figure]] = OrderedDict()
_figures_lock = threading.Lock()


def _identity(value: Any) -> Hashable:
    """A key for one argument of a figure function: results by identity (the runner's cache and
    the presets hand out the same object on every rerun), everything else by value."""
    if isinstance(value, str | int | float | bool | type(None)):
        return value
    return ("id", id(value))


def cached_figure(make: Callable[..., go.Figure], *args: Any) -> go.Figure:
    """``make(*args)``, built once per (function, result, options): a rerun that shows an
    already computed result (a preset, a cached run, a value seen before) does not rebuild its
    Plotly figures. The arguments are kept with the figure, so no id is reused while the entry
    lives; figures are only read (``st.plotly_chart`` serialises a copy)."""
    key = (make.__module__, make.__qualname__, *(_identity(a) for a in args))
    with _figures_lock:
        found = _figures.get(key)
        if found is not None:
            _figures.move_to_end(key)
            return found[1]
    fig = make(*args)
    with _figures_lock:
        _figures[key] = (args, fig)
        while len(_figures) > MAX_FIGURES:
            _figures.popitem(last=False)
    return fig


@lru_cache(maxsize=1)
def png_export_available() -> bool:
    """PNG export needs kaleido and a Chromium or Chrome binary for it to drive."""
    has_kaleido = importlib.util.find_spec("kaleido") is not None
    return has_kaleido and any(shutil.which(name) for name in CHROMIUM_NAMES)


def show_figure(fig: go.Figure, name: str) -> None:
    """``st.plotly_chart`` plus download buttons for the figure (HTML, and PNG when possible)."""
    st.plotly_chart(fig, width="stretch", key=f"chart_{name}")
    cols = st.columns([1, 1, 4])
    cols[0].download_button(
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
        cols[1].download_button(
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
        cols[1].caption("PNG needs Chromium (apt-get install chromium)")


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
