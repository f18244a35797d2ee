"""Lecture mode: larger type, secondary controls folded away, the studies as slides in order."""

from __future__ import annotations

import streamlit as st

from ui.catalogue import HOME, PageEntry, slide_order

LECTURE_CSS = """
<style>
[data-testid="stMain"] p, [data-testid="stMain"] li, [data-testid="stMain"] label {
    font-size: 1.3rem !important;
}
[data-testid="stMain"] h1 { font-size: 3.2rem !important; }
[data-testid="stMain"] h2, [data-testid="stMain"] h3 { font-size: 2.2rem !important; }
[data-testid="stMetricValue"] { font-size: 2.6rem !important; }
</style>
"""


def lecture_mode() -> bool:
    """Whether the sidebar's lecture-mode switch is on."""
    return bool(st.session_state.get("lecture", False))


def controls(label: str, expanded: bool = False):
    """An expander for a page's secondary controls; folded (and marked) in lecture mode."""
    if lecture_mode():
        return st.expander(f"More controls: {label}", expanded=False)
    return st.expander(label, expanded=expanded)


def apply_style() -> None:
    """Inject the lecture-mode style sheet when the mode is on."""
    if lecture_mode():
        st.html(LECTURE_CSS)


def slide_navigation(current_url_path: str) -> None:
    """Previous / next buttons through Home and the studies, section by section in the seed's
    order (`ui.catalogue.slide_order`)."""
    if not lecture_mode():
        return
    sequence: list[PageEntry] = slide_order()
    paths = [entry.url_path for entry in sequence]
    current_url_path = current_url_path or HOME.url_path  # the default page has an empty path
    if current_url_path not in paths:
        return
    index = paths.index(current_url_path)
    st.divider()
    left, middle, right = st.columns([1, 2, 1])
    if index > 0:
        left.page_link(
            sequence[index - 1].path,
            label=f"Previous: {sequence[index - 1].title}",
            icon=":material/arrow_back:",
        )
    middle.caption(f"Slide {index + 1} of {len(sequence)}")
    if index + 1 < len(sequence):
        right.page_link(
            sequence[index + 1].path,
            label=f"Next: {sequence[index + 1].title}",
            icon=":material/arrow_forward:",
        )
