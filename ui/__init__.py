"""Streamlit glue shared by the pages: the page list, the sidebar, cached study runs, the charts
(updated in place in the browser), exports, lecture mode and the Lab's uploads.

The layering is `views -> ui -> landscape.studies -> landscape.engine -> solvers`: only `views`
and `ui` import streamlit, and `ui` holds no mathematics.
"""
