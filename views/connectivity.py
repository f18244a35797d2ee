"""Connectivity: are the minima that training finds one valley? Lines, alignments, curves.

Top-down: the headline controls (width, branches, seed pair, alignment, curve), the training
controls, one run, its figures, then the two sweeps on request. The prose lives in
views/text/connectivity.md.
"""

from typing import Any

import numpy as np
import streamlit as st

from landscape.studies.connectivity import barrier_vs_branches, barrier_vs_width, figures
from landscape.studies.connectivity import connectivity as study
from landscape.studies.connectivity.figures import ALIGNMENT_NAMES
from ui.export import cached_figure, show_figure
from ui.lecture import controls
from ui.prose import caption, show_prose
from ui.runner import build_config, run_study
from ui.sidebar import current_settings

PAGE = "connectivity"
ARCHITECTURE_NAMES = {"mlp": "MLP", "branches": "multi-branch"}
DATASET_NAMES = {"digits": "digits", "mnist": "MNIST (5,000)", "regression": "diabetes"}


def headline_ui() -> dict[str, Any]:
    """Architecture, width m, branches I, seed pair, alignment and the curve."""
    top = st.columns(4)
    architecture = top[0].radio(
        "Networks", study.ARCHITECTURES, key="conn_arch", bind="query-params",
        format_func=ARCHITECTURE_NAMES.get,
        help=r"An MLP, or a multi-branch network $f = \frac{1}{I}\sum_i f_i$ of MLPs.",
    )  # fmt: skip
    width = top[1].select_slider(
        "Width $m$", [8, 16, 32, 64, 128, 256, 512], value=64, key="conn_width",
        bind="query-params", help="Hidden units per layer (per branch).",
    )  # fmt: skip
    branches = top[1].select_slider(
        "Branches $I$", [1, 2, 4, 8, 16], value=4, key="conn_branches", bind="query-params",
        disabled=architecture != "branches", help="Parallel branches (multi-branch only).",
    )  # fmt: skip
    alignment = top[2].radio(
        "Alignment", study.ALIGNMENTS, index=1, key="conn_align", bind="query-params",
        format_func=ALIGNMENT_NAMES.get,
        help="Permute B's hidden units (and branches) to match A's before the line is drawn.",
    )  # fmt: skip
    seed_pair = top[3].slider(
        "Seed pair shown", 0, 2, 0, key="conn_pair", bind="query-params",
        help="Pair k trains A from seed 2k and B from seed 2k+1.",
    )  # fmt: skip
    curve = top[3].toggle(
        "Bezier curve", value=True, key="conn_curve", bind="query-params",
        help="Train a quadratic Bezier curve between A and B (Garipov et al.).",
    )  # fmt: skip
    return {
        "architecture": architecture, "width": width, "branches": branches,
        "alignment": alignment, "seed_pair": seed_pair, "curve": curve,
    }  # fmt: skip


def training_ui() -> dict[str, Any]:
    """Data set, depth, epochs and the t grid."""
    cols = st.columns(4)
    dataset = cols[0].radio(
        "Data", study.DATASETS, key="conn_data", bind="query-params",
        format_func=DATASET_NAMES.get, help="Both networks train on the same rows.",
    )  # fmt: skip
    depth = cols[1].slider(
        "Hidden layers", 1, 4, 2, key="conn_depth", bind="query-params",
        help="Hidden layers of each MLP (of each branch); every hidden layer is permuted.",
    )  # fmt: skip
    epochs = cols[2].slider(
        "Epochs", 1, 60, 10, key="conn_epochs", bind="query-params",
        help="Adam, mini-batches of 64, learning rate 1e-3.",
    )  # fmt: skip
    points = cols[3].slider(
        "Points along t", 5, 51, 25, 2, key="conn_points", bind="query-params",
        help="The grid on which the barrier is measured (t = 0 and 1 included).",
    )  # fmt: skip
    return {"dataset": dataset, "depth": depth, "epochs": epochs, "points": points}


def show_result(result: study.Result, alignment: str) -> None:
    """Metrics, the paths, the barriers and the plane."""
    if result.message:
        st.warning(result.message)
    cols = st.columns(4)
    before, after = result.barrier_none, getattr(result, f"barrier_{alignment}")
    cols[0].metric("barrier, no alignment", f"{before.mean():.3g} ± {before.std():.2g}")
    cols[1].metric(
        f"barrier, {ALIGNMENT_NAMES[alignment]}", f"{after.mean():.3g} ± {after.std():.2g}"
    )
    cols[2].metric("end-point loss", f"{result.endpoint_train_loss.mean():.3g}")
    cols[3].metric(
        "output change by the permutation", f"{result.output_change:.1e}",
        help="max |f_B(X) - f_B aligned(X)| on the training data: zero to float rounding.",
    )  # fmt: skip
    show_prose(PAGE, "seeing")
    show_figure(cached_figure(figures.paths, result, alignment), "conn_paths")
    left, right = st.columns(2)
    with left:
        show_figure(cached_figure(figures.barriers, result), "conn_barriers")
    with right:
        if result.plane_loss.size:
            show_figure(cached_figure(figures.plane, result, alignment), "conn_plane")
            caption(PAGE, "plane_caption")


def show_sweep(sweep: Any, axis: str, name: str) -> None:
    """A sweep's figure and what the data say about where the aligned barrier settles."""
    if sweep.message:
        st.warning(sweep.message)
    show_figure(cached_figure(figures.sweep, sweep, axis), name)
    for loss, value in (("training", sweep.settles_at), ("test", sweep.test_settles_at)):
        if np.isnan(value):
            caption(PAGE, "never_settles", loss=loss)
        else:
            caption(PAGE, "settles", loss=loss, value=f"{value:g}", axis=axis)


settings = current_settings()
st.title("Connectivity")
show_prose(PAGE, "intro")
headline = headline_ui()
with controls("Data and training"):
    training = training_ui()
config = build_config(
    study.Config, **headline, **training, seed=settings.seed, device=settings.device
)
result = run_study(study, config)
if result is not None:
    show_result(result, headline["alignment"])

st.subheader("Sweeps")
show_prose(PAGE, "sweeps")
common = {"dataset": training["dataset"], "depth": training["depth"], "seed": settings.seed}
if st.toggle(
    "Barrier against width $m$", key="conn_sweep_width", bind="query-params",
    help="MLPs at m = 8, 32, 128, three seed pairs each (the Width study's axis).",
):  # fmt: skip
    width_config = build_config(barrier_vs_width.Config, **common, device=settings.device)
    width_sweep = run_study(barrier_vs_width, width_config)
    if width_sweep is not None:
        show_sweep(width_sweep, "width m", "conn_sweep_width")
if st.toggle(
    "Barrier against branches $I$", key="conn_sweep_branches", bind="query-params",
    help="Multi-branch networks at I = 1, 2, 4, 8, three seed pairs each (the Branches "
    "study's axis).",
):  # fmt: skip
    branch_config = build_config(barrier_vs_branches.Config, **common, device=settings.device)
    branch_sweep = run_study(barrier_vs_branches, branch_config)
    if branch_sweep is not None:
        show_sweep(branch_sweep, "branches I", "conn_sweep_branches")

with st.expander("The theorem: permutation symmetry, and how the minima are aligned"):
    show_prose(PAGE, "theory")
