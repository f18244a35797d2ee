"""Shallow ReLU: the single-neuron relaxation and the exact convex program (seed section 2.2)."""

import streamlit as st

from landscape.studies.shallow_relu import figures, single_neuron, two_layer
from ui.export import show_figure
from ui.lecture import controls
from ui.runner import build_config, run_study
from ui.sidebar import current_settings

settings = current_settings()
st.title("Shallow ReLU")
st.markdown(
    "Two ways to make a shallow ReLU network convex (seed section 2.2). A **single neuron** "
    "trained on a convex relaxation of its squared loss (Ergen & Pilanci 2019), and a "
    "**two-layer network** with weight decay, whose training problem is *exactly* a convex "
    "program over the activation patterns of the data (Pilanci & Ergen 2020): solve it and "
    "you hold the global optimum that ordinary training can only approach."
)

# --------------------------------------------------------------------------------------------
st.header("One neuron: L and its convex relaxation L_r")
top = st.columns(4)
n = top[0].slider(
    "n training samples",
    10,
    1000,
    100,
    10,
    key="shallow_relu_n",
    bind="query-params",
    help="Rows of the Gaussian training matrix X (a test set is drawn alongside).",
)
d = top[1].slider(
    "d features",
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
    help="Standard deviation of the Gaussian noise added to y = relu(X w*).",
)
step = top[3].slider(
    "step size",
    0.05,
    2.0,
    0.5,
    0.05,
    key="shallow_relu_step",
    bind="query-params",
    help="Gradient-descent step in units of 1 / (2 lambda_max(X^T X)), the inverse Lipschitz "
    "constant of grad L_r; the same step and start serve both losses.",
)
with controls("More single-neuron controls"):
    cols = st.columns(4)
    init = cols[0].radio(
        "initialisation",
        single_neuron.INITIALISATIONS,
        key="shallow_relu_init",
        bind="query-params",
        help="gaussian: N(0, I/D). opposite: -w*/||w*||, the wrong half-space. dead: the bias "
        "set so low that the neuron is off on every sample, where grad L = 0.",
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
        help="Independent data sets, planted w* and starts; curves show the median and the "
        "10-90% band.",
    )

neuron_config = build_config(
    single_neuron.Config,
    n=n,
    n_test=n_test,
    d=d,
    noise=noise,
    step=step,
    init=init,
    condition=float(condition),
    iterations=iterations,
    seeds=seeds,
    seed=settings.seed,
    device=settings.device,
)
neuron = run_study(single_neuron, neuron_config) if neuron_config else None
if neuron is not None:
    if neuron.message:
        st.warning(neuron.message)
    cols = st.columns(4)
    cols[0].metric(
        "median final recovery, GD on L",
        f"{single_neuron.final_median(neuron.vanilla_recovery):.3g}",
    )
    cols[1].metric(
        "median final recovery, GD on L_r",
        f"{single_neuron.final_median(neuron.relaxed_recovery):.3g}",
    )
    cols[2].metric("starts with a dead neuron", f"{int(neuron.dead_at_start.sum())} / {seeds}")
    cols[3].metric(
        "max ||grad L_r(w*)|| / ||X^T y||", f"{neuron.relaxed_gradient_at_star.max():.1e}"
    )
    show_figure(figures.neuron_curves(neuron), "shallow_relu_neuron_curves")
    st.markdown(
        "**What you are seeing.** Gradient descent on the non-convex loss L (red) and on the "
        "relaxed loss L_r (blue), from the same start with the same step, on planted data "
        "y = relu(X w*) + noise: the seed's Figure 3, with the band over seeds. The relaxed "
        "gradient 2 X^T (relu(Xw) - y) drops the mask D = diag(1[Xw > 0]), so a neuron that "
        "starts dead (choose *dead*) still moves, and one started in the wrong half-space "
        "(*opposite*) is not trapped. With label noise the two minimisers differ: L_r adds "
        "2 y^T relu(-Xw), which noise makes informative about nothing, and its recovery "
        "error levels off above that of a well-started GD on L."
    )
    left, right = st.columns([2, 1])
    with left:
        show_figure(figures.neuron_slices(neuron), "shallow_relu_neuron_slices")
    with right:
        show_figure(figures.neuron_line(neuron), "shallow_relu_neuron_line")
    st.caption(
        "The plane through 0, w* and a random direction orthogonal to w* (first seed's training "
        f"data). Smallest second difference along any grid line, relative to max L: "
        f"{neuron.slice_min_curvature_loss:.2e} for L (negative: not convex), "
        f"{neuron.slice_min_curvature_relaxed:.2e} for L_r. The identity "
        f"L_r = L + 2 y^T relu(-Xw) holds on the grid to {neuron.slice_identity_error:.1e}."
    )

with st.expander("The theorem: the single-neuron relaxation"):
    st.markdown("Ergen & Pilanci (2019), seed section 2.2, in the project's notation (X is n x D):")
    st.latex(
        r"L(w) = \|\mathrm{relu}(Xw) - y\|_2^2, \qquad "
        r"L_r(w) = \|\mathrm{relu}(Xw)\|_2^2 - 2y^\top Xw + \|y\|_2^2"
    )
    st.latex(r"L_r(w) = L(w) + 2\,y^\top \mathrm{relu}(-Xw) \;\ge\; L(w) \quad (y \ge 0)")
    st.markdown(
        "L_r is convex (a convex quadratic of relu plus a linear term). If y = relu(X w*), then "
        "grad L_r(w*) = 2 X^T (relu(X w*) - y) = 0, so w* minimises L_r; since L_r >= L >= 0 and "
        "L_r(w*) = 0, it also minimises L. The seed states: the global minimiser of L_r is a "
        "global minimiser of L. Assumptions: noiseless planted labels; uniqueness needs the "
        "samples active at w* to have full column rank. The seed does not publish its data, "
        "sizes or steps; the ones here are our choices."
    )

# --------------------------------------------------------------------------------------------
st.header("Two-layer networks, exactly")
top = st.columns(4)
dataset = top[0].selectbox(
    "data",
    two_layer.DATASETS,
    key="shallow_relu_dataset",
    bind="query-params",
    help="regression_1d: y = sin(2x) + noise on [-2, 2]. moons, circles, spirals: 2-D "
    "classification with labels -1 / +1. A bias column is appended to the inputs.",
)
one_d = dataset == "regression_1d"
beta = top[1].select_slider(
    "beta (weight decay)",
    [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0],
    value=0.02,
    key="shallow_relu_beta",
    bind="query-params",
    help="beta/2 (||U||^2 + ||a||^2) in the network's objective, beta sum ||v_i|| + ||w_i|| in "
    "the convex program. Larger beta: fewer neurons (smaller m*).",
)
points = top[2].slider(
    "n points",
    6,
    two_layer.MAX_POINTS_2D,
    16 if one_d else 24,
    key="shallow_relu_points",
    bind="query-params",
    help="The exact program uses every activation pattern: 2n in 1-D, n^2 - n + 2 in 2-D.",
)
width_factor = top[3].slider(
    "widths up to (x m*)",
    1.0,
    5.0,
    3.0,
    0.5,
    key="shallow_relu_width",
    bind="query-params",
    help="Networks of widths from 1 to this multiple of the critical width m* are trained.",
)
with controls("More two-layer controls"):
    cols = st.columns(4)
    loss = cols[0].radio(
        "loss",
        two_layer.LOSSES if not one_d else ("squared",),
        index=0 if one_d else 2,
        key="shallow_relu_loss",
        bind="query-params",
        help="squared: 1/2 ||f - y||^2; hinge: sum max(0, 1 - y f); logistic: "
        "sum log(1 + exp(-y f)). Regression uses the squared loss.",
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

net_config = build_config(
    two_layer.Config,
    dataset=dataset,
    n=points,
    noise=data_noise,
    loss=loss,
    beta=float(beta),
    solver=solver,
    restarts=restarts,
    width_factor=width_factor,
    optimizer=optimizer,
    lr=float(lr),
    steps=steps,
    seed=settings.seed,
    device=settings.device,
)
net = run_study(two_layer, net_config) if net_config else None
if net is not None:
    if net.message:
        st.warning(net.message)
    if not net.solver_converged:
        st.info(
            "The convex solver stopped before its certificate reached the tolerance: the "
            "optimum lies between the dual bound and the objective shown."
        )
    gap = (net.best_objective - net.convex_objective) / net.convex_objective
    cols = st.columns(5)
    cols[0].metric("global optimum (convex)", f"{net.convex_objective:.6g}")
    cols[1].metric(
        "certified to",
        f"{(net.convex_objective - net.convex_lower_bound) / net.convex_objective:.1e}",
    )
    cols[2].metric("critical width m*", f"{net.critical_width}")
    cols[3].metric("activation patterns", f"{net.n_patterns}")
    cols[4].metric("best trained, above optimum", f"{gap:.2%}")
    show_figure(figures.optimality_gap(net), "shallow_relu_optimality_gap")
    st.markdown(
        "**What you are seeing.** Each orange point is one network of width m trained from a "
        "random start on the very objective the convex program minimises; the blue line is "
        "that program's optimum, the global minimum over networks of every width. No point "
        "can lie below it. Narrow networks (m < m*) cannot reach it at all; wider ones get "
        "close, and how close depends on the start: the optimality gap of ordinary training. "
        f"The convex program took {net.solver_seconds:.2f} s."
    )
    show_figure(figures.fits(net), "shallow_relu_fits")
    with controls("Training curves"):
        show_figure(figures.training_curves(net), "shallow_relu_training_curves")

with st.expander("The theorem: two-layer ReLU networks are convex programs"):
    st.markdown(
        "Pilanci & Ergen (ICML 2020), seed section 2.2 and its references [4, 5]. For "
        "D_i = diag(1[X g_i > 0]) over all activation patterns of X:"
    )
    st.latex(
        r"\min_{U, a}\; \ell\big(\mathrm{relu}(XU^\top)a,\, y\big) + "
        r"\tfrac{\beta}{2}\big(\|U\|_F^2 + \|a\|_2^2\big)"
    )
    st.latex(
        r"= \min_{v_i, w_i}\; \ell\Big(\sum_i D_i X (v_i - w_i),\, y\Big) + "
        r"\beta \sum_i \big(\|v_i\|_2 + \|w_i\|_2\big)\quad \text{s.t. } "
        r"(2D_i - I) X v_i \ge 0,\ (2D_i - I) X w_i \ge 0"
    )
    st.markdown(
        "for any convex loss, whenever the width m is at least the critical width m* (at most "
        "n + 1). The optimal network is read off the solution: u = v_i / sqrt(||v_i||), "
        "a = sqrt(||v_i||), and a = -sqrt(||w_i||) for the w_i. The patterns are enumerated "
        "exactly here (inputs of rank <= 3); with sampled patterns the program gives an upper "
        "bound. The dual certificate shown comes from the solver's multipliers; m* is counted "
        "after merging parallel neurons."
    )
