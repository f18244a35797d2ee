"""The shared sidebar: device and global seed, bound to the URL so links reproduce a view."""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from landscape.engine.device import available_devices, resolve_device


@dataclass(frozen=True)
class Settings:
    """What the sidebar decides for every page."""

    device: str  # a concrete device name ("cpu", "cuda", "mps"), never "auto"
    seed: int


def shared_sidebar() -> Settings:
    """Draw the sidebar controls and return the resolved settings."""
    with st.sidebar:
        st.markdown("### Settings")
        choice = st.selectbox(
            "Device",
            ["auto", *available_devices()],
            key="device",
            bind="query-params",
            help="Where torch runs: auto picks cuda, then mps, then cpu.",
        )
        device = str(resolve_device(choice))
        st.caption(f"Running on **{device}**")
        seed = st.number_input(
            "Seed",
            min_value=0,
            max_value=2**31 - 1,
            value=0,
            step=1,
            key="seed",
            bind="query-params",
            help="Global random seed: every study is reproducible bit for bit on the CPU.",
        )
        st.toggle(
            "Lecture mode",
            key="lecture",
            bind="query-params",
            help="Larger type, secondary controls folded away, and previous/next buttons that "
            "walk through the studies in order, like slides.",
        )
    return Settings(device=device, seed=int(seed))


def current_settings() -> Settings:
    """The settings the router's sidebar stored for this run (defaults if a page runs alone)."""
    settings = st.session_state.get("settings")
    if isinstance(settings, Settings):
        return settings
    return Settings(device=str(resolve_device("auto")), seed=0)
