"""The shared sidebar: device and global seed, bound to the URL so links reproduce a view."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NoReturn

import streamlit as st

from landscape.engine.device import float64_devices, resolve_device
from landscape.server import cluster, cluster_access
from ui.runner import serving_stats


@dataclass(frozen=True)
class Settings:
    """What the sidebar decides for every page."""

    device: str  # a concrete device name ("cpu", "cuda", "mps"), never "auto"
    seed: int
    compute_on: str = ""  # "" (this machine) or the Ray address sweeps run at


def shared_sidebar() -> Settings:
    """Draw the sidebar controls and return the resolved settings."""
    with st.sidebar:
        st.markdown("### Settings")
        choice = st.selectbox(
            "Device",
            ["auto", *float64_devices()],
            key="device",
            bind="query-params",
            help="Where torch runs: auto picks cuda, then cpu. Apple's mps is not offered: it has "
            "no float64, which the studies' checks need.",
        )
        device = str(resolve_device(choice or "auto"))
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
        compute_on = compute_on_setting()
        about_box()
    return Settings(device=device, seed=int(seed), compute_on=compute_on)


RAY_CHOICES = ("this machine", "Ray cluster")


def compute_on_setting() -> str:
    """The "Compute on" control: ``""`` for this machine, else the Ray address the server's
    operator set (``CONVEXIFY_RAY_ADDRESS``, default ``auto``: the cluster of ``ray start
    --head`` on this machine, or a local one). Hidden when Ray is not installed.

    The address is the operator's, never typed in the browser: results come back from the
    cluster unpickled, so the server must only talk to a cluster it trusts. When it cannot be
    used (nothing answers there, or the cluster refuses the server's token), choosing the
    cluster shows why, in the words of the command line, and sweeps run here.
    """
    if not cluster.ray_available():
        return ""
    address = cluster.default_address() or "auto"
    choice = st.radio(
        "Compute on",
        RAY_CHOICES,
        horizontal=True,
        key="compute_on",
        help="Where sweeps run (Width: width and depth sweeps; Branches: the (depth, I) grid "
        f"and the gap-vs-I restarts): here, or as Ray tasks on the cluster at {address} "
        "(set by the server's CONVEXIFY_RAY_ADDRESS). The numbers are the same.",
    )
    if choice != RAY_CHOICES[1]:
        return ""
    problem = cluster_problem(address)
    if problem:
        st.error(
            f"This server cannot use the Ray cluster it was given (CONVEXIFY_RAY_ADDRESS): "
            f"{problem}. Sweeps run on this machine meanwhile."
        )
        return ""
    st.caption(f"Sweeps run on Ray at **{address}**")
    return address


@st.cache_data(ttl=60, show_spinner=False)
def cluster_problem(address: str) -> str:
    """`cluster_access.address_problem`, asked at most once a minute per address (it takes
    about a second: a connection and a child process that asks the cluster)."""
    return cluster_access.address_problem(address)


def current_settings() -> Settings:
    """The settings the router's sidebar stored for this run (defaults if a page runs alone)."""
    settings = st.session_state.get("settings")
    if isinstance(settings, Settings):
        return settings
    return Settings(device=str(resolve_device("auto")), seed=0)


def _mib(nbytes: int) -> str:
    return f"{nbytes / 2**20:.1f}"


def refuse_setting(error: ValueError) -> NoReturn:
    """Stop the page with a server setting's error (it names the setting and its range)."""
    st.error(f"This server's settings: {error}")
    st.stop()


def about_box() -> None:
    """The sidebar's "About this server": heavy runs at once and queued, and each cache's bytes
    against its ceiling (settings: README, "Serving a class"). A setting out of its range stops
    the page with an error that names it (the queue and caches are made at the first page)."""
    try:
        queue, caches = serving_stats()
    except ValueError as error:
        refuse_setting(error)
    with st.expander("About this server"):
        st.caption(
            f"Heavy runs at once: **{queue.running} of {queue.slots}** "
            f"(CONVEXIFY_MAX_RUNS); queued now: **{queue.queued}** "
            f"(longest so far {queue.longest_queue}); "
            f"answers shared between sessions: {queue.joined}; "
            f"runs started: {queue.started}, dropped unwanted: {queue.cancelled}."
        )
        lines = [
            f"- {cache.name}: **{_mib(cache.nbytes)} of {_mib(cache.max_bytes)} MiB** "
            f"({cache.entries} held, {cache.evictions} evicted)"
            for cache in caches
        ]
        st.caption(
            "Memory ceilings (CONVEXIFY_RESULT_CACHE_MB, CONVEXIFY_FIGURE_CACHE_MB, "
            "CONVEXIFY_PRESET_CACHE_MB, CONVEXIFY_UPLOAD_CACHE_MB, CONVEXIFY_PARTS_CACHE_MB):\n"
            + "\n".join(lines)
        )
