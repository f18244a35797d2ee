"""Home: what each study shows, with a link to it."""

import streamlit as st

from ui.catalogue import STUDIES

st.title("Convexify")
st.markdown(
    "Training a neural network is a non-convex problem, yet gradient descent behaves as if it "
    "were convex. Each study below reproduces one reason from the survey *How to Convexify your "
    "Neural Network* and measures it: every number on screen is computed, never pasted."
)
for entry in STUDIES:
    with st.container(border=True):
        st.page_link(entry.path, label=entry.title, icon=entry.icon)
        st.markdown(entry.summary)
