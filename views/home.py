"""Home: the studies in the seed's order, section by section, each with a link."""

import streamlit as st

from ui.catalogue import by_section
from ui.prose import show_prose

st.title("Convexify")
show_prose("home", "intro")
for section, entries in by_section().items():
    st.header(section)
    for entry in entries:
        with st.container(border=True):
            label = entry.title + (f" (seed {entry.seed_section})" if entry.seed_section else "")
            st.page_link(entry.path, label=label, icon=entry.icon)
            st.markdown(entry.summary)
