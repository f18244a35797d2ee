"""Shallow ReLU: the single-neuron relaxation and the exact convex program (seed section 2.2).

Top-down: for each of the two studies, its headline controls, its secondary controls (one
function per expander), one run and its figures. The prose lives in views/text/shallow_relu.md.
"""

from collections.abc import Sequence
from typing import Any

import streamlit as st

from landscape.studies.shallow_relu import figures, single_neuron, two_layer
from ui.export import cached_figure, show_figure
from ui.lecture import controls
from ui.prose import caption, show_prose
from ui.runner import build_config, run_study
from ui.sidebar import current_settings

PAGE = "shallow_relu"


def neuron_ui() -> dict[str, Any]:
    """The single neuron's data, step and start (the last ones folded away)."""
    top = st.columns(4)
    n = top[0].slider(
        "$n$ training samples",
        10,
        1000,
        100,
        10,
        key="shallow_relu_n",
        bind="query-params",
        help="Rows of the Gaussian training matrix $X$ (a test set is drawn alongside).",
    )
    d = top[1].slider(
        "$d$ features",
        1,
        50,
        10,
        key="shallow_relu_d",
        bind="query-params",
        help="Input dimension; a constant bias feature is appended.",
    )
    noise = top[2].slider(
        "label noise",
        0.0,
        1.0,
        0.0,
        0.05,
        key="shallow_relu_noise",
        bind="query-params",
        help=r"Standard deviation of the Gaussian noise added to $y = \mathrm{relu}(Xw^*)$.",
    )
    step = top[3].slider(
        "step size",
        0.05,
        2.0,
        0.5,
        0.05,
        key="shallow_relu_step",
        bind="query-params",
        help=r"Gradient-descent step in units of $1/(2\lambda_{\max}(X^\top X))$, the inverse "
        r"Lipschitz constant of $\nabla L_r$; the same step and start serve both losses.",
    )
    with controls("More single-neuron controls"):
        more = neuron_more_ui()
    return {"n": n, "d": d, "noise": noise, "step": step, **more}


def neuron_more_ui() -> dict[str, Any]:
    """The single neuron's start, conditioning, iterations, test set and seeds."""
    cols = st.columns(4)
    init = cols[0].radio(
        "initialisation",
        single_neuron.INITIALISATIONS,
        key="shallow_relu_init",
        bind="query-params",
        help=r"gaussian: $N(0, I/D)$. opposite: $-w^*/\|w^*\|$, the wrong half-space. dead: "
        r"the bias set so low that the neuron is off on every sample, where $\nabla L = 0$.",
    )
    condition = cols[1].select_slider(
        "condition number of the features",
        [1.0, 3.0, 10.0, 30.0, 100.0, 1000.0],
        value=1.0,
        key="shallow_relu_condition",
        bind="query-params",
        help="Ratio of the largest to the smallest eigenvalue of the feature covariance.",
    )
    iterations = cols[2].slider(
        "iterations",
        10,
        3000,
        300,
        10,
        key="shallow_relu_iterations",
        bind="query-params",
        help="Gradient-descent steps on each loss.",
    )
    n_test = cols[2].slider(
        "test samples",
        10,
        2000,
        200,
        10,
        key="shallow_relu_n_test",
        bind="query-params",
        help="Held-out samples from the same planted model, for the test error.",
    )
    seeds = cols[3].slider(
        "seeds",
        1,
        50,
        10,
        key="shallow_relu_seeds",
        bind="query-params",
        help="Independent data sets, planted $w^*$ and starts; curves show the median and the "
        "10-90% band.",
    )
    return {
        "n_test": n_test,
        "init": init,
        "condition": float(condition),
        "iterations": iterations,
        "seeds": seeds,
    }


def net_ui() -> dict[str, Any]:
    """The two-layer problem (data, beta, n, widths) and its training (folded away)."""
    top = st.columns(4)
    dataset = top[0].selectbox(
        "data",
        two_layer.DATASETS,
        key="shallow_relu_dataset",
        bind="query-params",
        help=r"regression_1d: $y = \sin(2x)$ + noise on $[-2, 2]$. moons, circles, spirals: 2-D "
        r"classification with labels $\pm 1$. A bias column is appended to the inputs.",
    )
    one_d = dataset == "regression_1d"
    beta = top[1].select_slider(
        r"$\beta$ (weight decay)",
        [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0],
        value=0.02,
        key="shallow_relu_beta",
        bind="query-params",
        help=r"$\frac{\beta}{2}(\|U\|^2 + \|a\|^2)$ in the network's objective, "
        r"$\beta\sum_i \|v_i\| + \|w_i\|$ in the convex program. Larger $\beta$: fewer neurons "
        "(smaller $m^*$). Every value is precomputed on the defaults.",
    )
    points = top[2].slider(
        "$n$ points",
        6,
        two_layer.MAX_POINTS_2D,
        16 if one_d else 24,
        key="shallow_relu_points",
        bind="query-params",
        help="The exact program uses every activation pattern: $2n$ in 1-D, $n^2 - n + 2$ in 2-D.",
    )
    width_factor = top[3].slider(
        r"widths up to ($\times m^*$)",
        1.0,
        5.0,
        3.0,
        0.5,
        key="shallow_relu_width",
        bind="query-params",
        help="Networks of widths from 1 to this multiple of the critical width $m^*$ are trained.",
    )
    with controls("More two-layer controls"):
        more = net_more_ui(one_d)
    return {
        "dataset": dataset,
        "n": points,
        "beta": float(beta),
        "width_factor": width_factor,
        **more,
    }


def net_more_ui(one_d: bool) -> dict[str, Any]:
    """The two-layer loss, solver, restarts and data noise; then the training."""
    cols = st.columns(4)
    loss = cols[0].radio(
        "loss",
        two_layer.LOSSES if not one_d else ("squared",),
        index=0 if one_d else 2,
        key="shallow_relu_loss",
        bind="query-params",
        help=r"squared: $\frac12\|f - y\|^2$; hinge: $\sum\max(0, 1 - yf)$; logistic: "
        r"$\sum\log(1 + e^{-yf})$. Regression uses the squared loss.",
    )
    solver = cols[0].radio(
        "convex solver",
        two_layer.METHODS,
        key="shallow_relu_solver",
        bind="query-params",
        help="cvxpy: Clarabel, the reference. interior_point: this project's barrier method in "
        "torch (GPU-capable), certified by a dual bound.",
    )
    restarts = cols[1].slider(
        "restarts",
        1,
        10,
        4,
        key="shallow_relu_restarts",
        bind="query-params",
        help="Random initialisations per width.",
    )
    data_noise = cols[1].slider(
        "data noise",
        0.0,
        0.5,
        0.1,
        0.05,
        key="shallow_relu_data_noise",
        bind="query-params",
        help="Noise of the regression targets or of the 2-D point positions.",
    )
    return {
        "noise": data_noise,
        "loss": loss,
        "solver": solver,
        "restarts": restarts,
        **net_training_ui(cols),
    }


def net_training_ui(cols: Sequence[Any]) -> dict[str, Any]:
    """The optimiser, its learning rate and the number of steps (columns 3 and 4)."""
    optimizer = cols[2].radio(
        "optimizer",
        two_layer.OPTIMIZERS,
        key="shallow_relu_optimizer",
        bind="query-params",
        help="Full-batch Adam or SGD on the same weight-decay objective.",
    )
    lr = cols[2].select_slider(
        "learning rate",
        [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1],
        value=0.01,
        key="shallow_relu_lr",
        bind="query-params",
        help="Step size of the optimizer.",
    )
    steps = cols[3].slider(
        "training steps",
        100,
        10000,
        1500,
        100,
        key="shallow_relu_steps",
        bind="query-params",
        help="Full-batch steps per network.",
    )
    return {"optimizer": optimizer, "lr": float(lr), "steps": steps}


def show_neuron(neuron: single_neuron.Result, seeds: int) -> None:
    """Recovery metrics, the training curves and the slices of L and L_r."""
    if neuron.message:
        st.warning(neuron.message)
    cols = st.columns(4)
    cols[0].metric(
        "median final recovery, GD on $L$",
        f"{single_neuron.final_median(neuron.vanilla_recovery):.3g}",
    )
    cols[1].metric(
        "median final recovery, GD on $L_r$",
        f"{single_neuron.final_median(neuron.relaxed_recovery):.3g}",
    )
    cols[2].metric("starts with a dead neuron", f"{int(neuron.dead_at_start.sum())} / {seeds}")
    cols[3].metric(
        r"$\max \|\nabla L_r(w^*)\| / \|X^\top y\|$",
        f"{neuron.relaxed_gradient_at_star.max():.1e}",
    )
    show_figure(cached_figure(figures.neuron_curves, neuron), "shallow_relu_neuron_curves")
    show_prose(PAGE, "neuron_seeing")
    left, right = st.columns([2, 1])
    with left:
        show_figure(cached_figure(figures.neuron_slices, neuron), "shallow_relu_neuron_slices")
    with right:
        show_figure(cached_figure(figures.neuron_line, neuron), "shallow_relu_neuron_line")
    caption(
        PAGE,
        "neuron_slices_caption",
        loss=f"{neuron.slice_min_curvature_loss:.2e}",
        relaxed=f"{neuron.slice_min_curvature_relaxed:.2e}",
        identity=f"{neuron.slice_identity_error:.1e}",
    )


def show_net(net: two_layer.Result) -> None:
    """The global optimum, its certificate, m*, and training against it."""
    if net.message:
        st.warning(net.message)
    if not net.solver_converged:
        st.info(
            "The convex solver stopped before its certificate reached the tolerance: the "
            "optimum lies between the dual bound and the objective shown."
        )
    cols = st.columns(5)
    cols[0].metric("global optimum (convex)", f"{net.convex_objective:.6g}")
    cols[1].metric("certified to", f"{two_layer.certified_to(net):.1e}")
    cols[2].metric("critical width $m^*$", f"{net.critical_width}")
    cols[3].metric("activation patterns", f"{net.n_patterns}")
    cols[4].metric("best trained, above optimum", f"{two_layer.optimality_gap(net):.2%}")
    show_figure(cached_figure(figures.optimality_gap, net), "shallow_relu_optimality_gap")
    show_prose(PAGE, "net_seeing", seconds=f"{net.solver_seconds:.2f}")
    show_figure(cached_figure(figures.fits, net), "shallow_relu_fits")
    with controls("Training curves"):
        show_figure(cached_figure(figures.training_curves, net), "shallow_relu_training_curves")


settings = current_settings()
st.title("Shallow ReLU")
show_prose(PAGE, "intro")

st.header("One neuron: $L$ and its convex relaxation $L_r$")
neuron_fields = neuron_ui()
neuron_config = build_config(
    single_neuron.Config, **neuron_fields, seed=settings.seed, device=settings.device
)
neuron = run_study(single_neuron, neuron_config)
if neuron is not None:
    show_neuron(neuron, neuron_fields["seeds"])
with st.expander("The theorem: the single-neuron relaxation"):
    show_prose(PAGE, "neuron_theorem")

st.header("Two-layer networks, exactly")
net_fields = net_ui()
net_config = build_config(
    two_layer.Config, **net_fields, seed=settings.seed, device=settings.device
)
net = run_study(two_layer, net_config)
if net is not None:
    show_net(net)
with st.expander("The theorem: two-layer ReLU networks are convex programs"):
    show_prose(PAGE, "net_theorem")
