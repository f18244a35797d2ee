"""Convexify: the router. Pages live in views/; this file adds what every page shares: the
navigation in the seed's order (one section per part of the seed), the sidebar, lecture mode's
style and its previous/next slide buttons."""

import streamlit as st

from landscape.server.heap import keep_glibc_thresholds
from landscape.server.libraries import import_heavy_libraries
from landscape.server.threads import configure_threads
from ui.catalogue import HOME, PageEntry, by_section
from ui.charts import preload_plotly
from ui.lecture import apply_style, slide_navigation
from ui.links import begin_page, install
from ui.sidebar import refuse_setting, shared_sidebar

try:
    configure_threads()
except ValueError as error:  # CONVEXIFY_TORCH_THREADS out of its range
    refuse_setting(error)
keep_glibc_thresholds()  # a server runs for hours: freed memory goes back to the system
import_heavy_libraries()  # at the first page, not at a student's first fresh answer
install()  # every link parameter bound to a widget is checked before the widget reads it
# An emoji favicon is drawn in the page (an inline SVG); a ":material/...:" one is fetched from a
# Google fonts host, which an offline classroom never reaches.
st.set_page_config(page_title="Convexify", page_icon="⛰️", layout="wide")


def as_page(entry: PageEntry) -> st.Page:
    """The router's page for one catalogue entry."""
    return st.Page(
        entry.path,
        title=entry.title,
        icon=entry.icon,
        url_path=entry.url_path,
        default=entry is HOME,
    )


sections = {"": [as_page(HOME)]}
sections.update(
    {name: [as_page(entry) for entry in entries] for name, entries in by_section().items()}
)
page = st.navigation(sections)
begin_page()  # ignored link parameters are listed here, at the top of the page
st.session_state["settings"] = shared_sidebar()
with st.sidebar:
    preload_plotly()  # plotly.js loads while the page's script runs, before its first chart
apply_style()
page.run()
slide_navigation(page.url_path)
