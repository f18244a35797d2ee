"""Streamlit glue shared by the pages: the sidebar, cached study runs, error display.

The layering is `pages -> ui -> landscape -> solvers`: only `pages` and `ui` import streamlit,
and `ui` holds no mathematics.
"""
