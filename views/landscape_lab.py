"""Landscape Lab: train a model, then draw its loss surface, slices and curvature (MATH.md s. 5)."""

import numpy as np
import streamlit as st

from landscape.studies.lab import figures
from landscape.studies.lab import lab as study
from ui import lab_uploads
from ui.export import show_figure
from ui.lecture import controls
from ui.runner import build_config, run_study
from ui.sidebar import current_settings

KEY = "landscape_lab_"
DIRECTION_LABELS = {
    "random": "random (Li et al.)",
    "pca": "PCA of the training trajectory",
    "three_models": "three trained models (Zhang et al.)",
    "sharpest": "two sharpest directions (top Hessian eigenvectors)",
}
STATE_BOXES = {-1: st.warning, 0: st.info, 1: st.success}

settings = current_settings()
st.title("Landscape Lab")
st.markdown(
    "Train a small network, then look at its loss around the trained weights: "
    "Z(alpha, beta) = L(theta + alpha d1 + beta d2) on a 2-D plane of weight space, 1-D slices, "
    "the line from the initial weights, and the curvature of the full Hessian. Bring your own "
    "ONNX model and data, or use a built-in network on digits, iris or moons. Every "
    "surface is evaluated many grid points per pass (see benchmarks/surface.py)."
)

with st.expander("Open a computed surface"):
    surface_upload = st.file_uploader(
        "Surface file (.npz)",
        type=["npz"],
        key=KEY + "surface_file",
        help="A surface computed headless by `convexify surface ... --out surface.npz` (any "
        "model size, on a Ray cluster if you like), or this page's own Surface (NPZ) download: "
        "drawn here with the Lab's figures instead of the controls' model. Checked before it "
        "is drawn (at most 20 MiB, numbers only, never unpickled).",
    )
opened = None
if surface_upload is not None:
    try:
        opened, opened_meta = study.open_surface_file(surface_upload.getvalue())
    except ValueError as error:
        st.error(f"{surface_upload.name}: {error}")

top = st.columns(4)
span = top[0].slider(
    "Range",
    0.1,
    3.0,
    1.0,
    0.1,
    key=KEY + "span",
    bind="query-params",
    help="The plane covers [-range, range]^2 in units of the directions (random directions "
    "have the norms of the weights, filter by filter); for PCA and the three-model plane, "
    "range 1 just covers the trajectory or the models.",
)
resolution = top[1].slider(
    "Resolution",
    5,
    101,
    31,
    2,
    key=KEY + "resolution",
    bind="query-params",
    help="Grid points per axis (up to 101 x 101 = 10,201 evaluations on the full data).",
)
direction = top[2].selectbox(
    "Directions",
    study.DIRECTIONS,
    format_func=DIRECTION_LABELS.get,
    key=KEY + "directions",
    bind="query-params",
    help="random: two Gaussian directions, normalised below. PCA: the top two principal "
    "directions of the training trajectory (drawn on the surface). Three models: train three "
    "seeds; the plane passes through all three, centred on their mean.",
)
normalization = top[3].selectbox(
    "Normalisation",
    study.NORMALIZATIONS,
    key=KEY + "normalization",
    bind="query-params",
    disabled=direction != "random",
    help="filter: each row (output unit or channel) of a random direction gets the norm of the "
    "same row of the weights (Li et al.), so that the plot does not depend on the weights' "
    "scale. layer: the same per tensor. none: raw Gaussian.",
)
row = st.columns(4)
one_dim = row[0].radio(
    "Biases and other 1-D weights",
    study.ONE_DIM_CHOICES,
    horizontal=True,
    key=KEY + "one_dim",
    bind="query-params",
    disabled=direction != "random",
    help="zero: random directions leave biases (and BatchNorm scales) fixed, as Li et al. do. "
    "keep: they move too, normalised as one filter.",
)
log_scale = row[1].toggle(
    "Log scale",
    value=False,
    key=KEY + "log",
    bind="query-params",
    help="Show log10 of the loss on the surface and contours.",
)

with controls("Model, data and training", expanded=False):
    cols = st.columns(4)
    model = cols[0].radio(
        "Model",
        study.MODELS,
        format_func={"multibranch": "MultiBranchNet", "mlp": "MLP", "upload": "upload"}.get,
        key=KEY + "model",
        bind="query-params",
        help="MultiBranchNet: f(x) = (1/I) sum_i f_i(x), seed eq. 16. MLP: three Linear layers. "
        "upload: your ONNX model (torch.onnx.export; at most 20 MiB, 5 million parameters; "
        "read as data, never run as code).",
    )
    dataset = cols[0].radio(
        "Data",
        study.DATASETS,
        key=KEY + "dataset",
        bind="query-params",
        help="scikit-learn's digits (1797 x 64, 10 classes), iris (150 x 4, 3 classes), moons "
        "(400 x 2, 2 classes), or your CSV (label column 'y', 'target', 'label' or the last) "
        "or NPZ (arrays X and y).",
    )
    branches = cols[1].slider(
        "Branches I",
        1,
        64,
        16,
        key=KEY + "branches",
        bind="query-params",
        disabled=model != "multibranch",
        help="Number of parallel branches of the MultiBranchNet.",
    )
    width = cols[1].slider(
        "Branch width",
        1,
        64,
        8,
        key=KEY + "width",
        bind="query-params",
        disabled=model != "multibranch",
        help="Hidden units per layer of each branch.",
    )
    depth = cols[1].slider(
        "Branch depth",
        1,
        3,
        1,
        key=KEY + "depth",
        bind="query-params",
        disabled=model != "multibranch",
        help="Hidden layers per branch. Depth 1 takes the engine's fast path.",
    )
    hidden = cols[2].slider(
        "MLP width",
        2,
        256,
        32,
        key=KEY + "hidden",
        bind="query-params",
        disabled=model != "mlp",
        help="Width of both hidden layers of the MLP.",
    )
    activation = cols[2].selectbox(
        "Activation",
        tuple(study.ACTIVATIONS),
        key=KEY + "activation",
        bind="query-params",
        disabled=model == "upload",
        help="Activation of the built-in models.",
    )
    epochs = cols[3].slider(
        "Epochs",
        0,
        500,
        60,
        10,
        key=KEY + "epochs",
        bind="query-params",
        help="Full-batch Adam steps (0 keeps an uploaded model as it is).",
    )
    lr = cols[3].select_slider(
        "Learning rate",
        [0.0003, 0.001, 0.003, 0.01, 0.03, 0.1],
        value=0.01,
        key=KEY + "lr",
        bind="query-params",
        help="Adam's step size.",
    )
    model_file = data_file = None
    if model == "upload":
        model_file = st.file_uploader(
            "ONNX model",
            type=["onnx"],
            key=KEY + "model_file",
            help='Export it with torch.onnx.export(model, example, "model.onnx"), one input '
            "(samples first) and one output. Common layers only (Linear/Gemm, Conv, pooling, "
            "batch norm, activations, reshapes); no loops or custom operators; weights inside "
            "the file (no external data). TorchScript and torch.save files are refused: they "
            "run code.",
        )
    if dataset == "upload":
        data_file = st.file_uploader(
            "Data (CSV or NPZ)",
            type=["csv", "npz"],
            key=KEY + "data_file",
            help="Numbers only. Integer labels mean classification (cross-entropy), anything "
            "else regression (squared loss). At most 20 MiB, 50,000 rows.",
        )

with controls("Curvature and sub-sampling", expanded=False):
    cols = st.columns(3)
    curvature_resolution = cols[0].slider(
        "Curvature grid",
        0,
        15,
        5,
        key=KEY + "curvature",
        bind="query-params",
        help="Points per axis of the coarse grid on which Lanczos computes the Hessian's extreme "
        "eigenvalues (0 switches the map off; the cost grows with its square).",
    )
    lanczos_iterations = cols[1].slider(
        "Lanczos budget",
        2,
        study.MAX_LANCZOS,
        60,
        key=KEY + "lanczos",
        bind="query-params",
        help="At most this many Hessian-vector products per grid point: Lanczos stops earlier "
        f"once both extreme Ritz residuals ||Hv - theta v|| are below {study.MAP_TOLERANCE:g} "
        "max|theta|. Too few steps can miss negative curvature; a point is then marked "
        "'none found', never 'convex'.",
    )
    sample_size = cols[2].number_input(
        "Sub-sample size (0 = all)",
        0,
        lab_uploads.MAX_ROWS,
        0,
        key=KEY + "sample",
        bind="query-params",
        help="With a sub-sample, the 1-D slices show mean +/- std of the loss over "
        f"{study.BAND_REPEATS} random sub-samples of this size.",
    )

upload_fields = lab_uploads.upload_fields(model_file, data_file, model, dataset)

config = None
if upload_fields is not None:
    config = build_config(
        study.Config,
        model=model,
        branches=branches,
        width=width,
        depth=depth,
        hidden=hidden,
        activation=activation,
        dataset=dataset,
        epochs=epochs,
        lr=lr,
        directions=direction,
        normalization=normalization,
        one_dim=one_dim,
        span=span,
        resolution=resolution,
        sample_size=int(sample_size),
        curvature_resolution=curvature_resolution,
        lanczos_iterations=lanczos_iterations,
        seed=settings.seed,
        device=settings.device,
        **upload_fields,
    )
result = run_study(study, config) if config is not None and opened is None else None

if opened is not None:
    st.info(
        f"Showing the computed surface {surface_upload.name}; remove the file (Open a computed "
        "surface) to use the controls again."
    )
    cols = st.columns(4)
    cols[0].metric("Loss at the centre", f"{opened.center_loss:.4g}")
    if opened.n_parameters:
        cols[1].metric("Parameters", f"{opened.n_parameters:,}")
    if opened.n_samples:
        cols[2].metric("Samples", f"{opened.n_samples:,}")
    if opened_meta.get("surface_seconds") is not None:
        cols[3].metric(
            "Surface",
            f"{opened.surface_seconds:.1f} s",
            help=f"engine path: {opened.surface_method}",
        )
    described = [
        f"{len(opened.alphas)} x {len(opened.betas)} grid",
        f"model {opened.model_name} ({opened_meta.get('model_format', 'unknown format')}, "
        f"SHA-256 {str(opened_meta.get('model_sha256', '?'))[:12]})",
    ]
    if "data_sha256" in opened_meta:
        described.append(
            f"data {opened_meta.get('data_file', '')} (SHA-256 {opened_meta['data_sha256'][:12]})"
        )
    if "directions" in opened_meta:
        described.append(
            f"{opened_meta['directions']} directions, seed {opened_meta.get('seed', '?')}"
        )
    st.caption("; ".join(described) + ".")
    if "command" in opened_meta:
        st.code(opened_meta["command"], language="bash")
    show_figure(figures.lab_surface(opened, log_scale), "lab_surface")
    left, right = st.columns(2)
    with left:
        if opened.slice_ts.size:
            show_figure(figures.lab_slices(opened), "lab_slices")
        else:
            st.info("No 1-D slices in this file (convexify surface --slices N adds them).")
    with right:
        if opened.curvature_ratio.size:
            show_figure(figures.lab_curvature(opened), "lab_curvature")
        else:
            st.info("No curvature map in this file (convexify surface --curvature N adds one).")
elif result is not None and result.diverged:
    st.warning(result.message)
    show_figure(figures.lab_training(result), "lab_training")
elif result is not None:
    cols = st.columns(5)
    cols[0].metric("Training loss at the centre", f"{result.center_loss:.4g}")
    if result.task == "classification":
        cols[1].metric("Training accuracy", f"{result.train_accuracy:.1%}")
    cols[2].metric("Parameters", f"{result.n_parameters:,}")
    cols[3].metric(
        "Surface", f"{result.surface_seconds:.2f} s", help=f"engine path: {result.surface_method}"
    )
    cols[4].metric(
        "Hessian trace (Hutchinson)",
        f"{result.hessian_trace:.3g}",
        help=f"+/- {result.hessian_trace_error:.2g} (standard error, {study.TRACE_PRODUCTS} "
        "probes); the curvature section compares Hutch++ and, for small models, the exact trace.",
    )
    st.markdown(
        "**What you are seeing.** Left, the training loss over the plane as a surface; right, "
        "its contours (the trained weights sit at the centre"
        + (
            ", the projected training trajectory is drawn in white"
            if len(result.trajectory)
            else ""
        )
        + (", the three trained models are marked w0, w1, w2" if len(result.model_points) else "")
        + "). A bowl means the loss looks convex along this plane, which is only a 2-D view of a "
        f"{result.n_parameters:,}-dimensional function: the curvature map below measures the "
        "whole Hessian instead. Cosine between the two directions: "
        f"{result.direction_cosine:.3f}"
        + (
            f"; the PCA plane explains {result.explained_variance.sum():.1%} of the trajectory's "
            "variance."
            if len(result.trajectory)
            else "."
        )
    )
    st.caption(
        f"{result.model_name} on {result.n_samples} samples ({result.task}); "
        f"{len(result.alphas)} x {len(result.betas)} grid; engine path: {result.surface_method}."
    )
    show_figure(figures.lab_surface(result, log_scale), "lab_surface")
    downloads = st.columns([1, 1, 4])
    downloads[0].download_button(
        "Surface (NPZ)",
        data=study.surface_npz(result),
        file_name="surface.npz",
        mime="application/octet-stream",
        key=KEY + "npz",
        on_click="ignore",
        help="Arrays alphas (R,), betas (R,) and loss (R, R), loss[i, j] at (alphas[i], betas[j]).",
    )
    downloads[1].download_button(
        "Surface (CSV)",
        data=study.surface_csv(result),
        file_name="surface.csv",
        mime="text/csv",
        key=KEY + "csv",
        on_click="ignore",
        help="One row per grid point: alpha, beta, loss.",
    )

    left, right = st.columns(2)
    with left:
        show_figure(figures.lab_slices(result), "lab_slices")
    with right:
        if len(result.interpolation):
            show_figure(figures.lab_interpolation(result), "lab_interpolation")
        else:
            st.info("No training, no interpolation: the initial and final weights coincide.")

    left, right = st.columns([3, 2])
    with left:
        if result.curvature_ratio.size:
            show_figure(figures.lab_curvature(result), "lab_curvature")
        else:
            st.info("The curvature map is off (Curvature grid = 0).")
    with right:
        st.markdown("**The slice's own 2x2 Hessian at the centre**")
        exact, fd = result.slice_hessian, result.slice_hessian_fd
        st.dataframe(
            {
                "entry": ["d1 H d1", "d1 H d2", "d2 H d2", "eigenvalues"],
                "Hessian-vector products": [
                    f"{exact[0, 0]:.4g}",
                    f"{exact[0, 1]:.4g}",
                    f"{exact[1, 1]:.4g}",
                    ", ".join(f"{v:.3g}" for v in result.slice_eigenvalues),
                ],
                "finite differences": [
                    f"{fd[0, 0]:.4g}",
                    f"{fd[0, 1]:.4g}",
                    f"{fd[1, 1]:.4g}",
                    ", ".join(f"{v:.3g}" for v in result.slice_fd_eigenvalues),
                ],
            },
            hide_index=True,
        )
        st.caption(
            r"Both eigenvalues $\ge 0$: the slice curves up in every direction of the plane at the "
            "centre. With ReLU the two columns can differ: the finite differences (step 1% of "
            "the range) also see the kinks of ReLU that the Hessian ignores."
        )
    st.markdown("**What the curvature proves at the centre**")
    if np.isfinite(result.centre_lambda_max):
        STATE_BOXES[result.centre_state](figures.centre_state_text(result))
        left, right = st.columns([3, 2])
        with left:
            show_figure(figures.lab_density(result), "lab_density")
        with right:
            show_figure(figures.lab_training_density(result), "lab_training_density")
        exact_trace = (
            f"{result.exact_trace:.4g}" if np.isfinite(result.exact_trace) else "(model too large)"
        )
        st.dataframe(
            {
                "trace estimator": ["Hutchinson", "Hutch++", "exact (dense Hessian)"],
                "estimate": [
                    f"{result.hessian_trace:.4g}",
                    f"{result.hutchpp_trace:.4g}",
                    exact_trace,
                ],
                "standard error": [
                    f"{result.hessian_trace_error:.2g}",
                    f"{result.hutchpp_trace_error:.2g}",
                    "0",
                ],
                "Hessian-vector products": [
                    str(study.TRACE_PRODUCTS),
                    str(study.TRACE_PRODUCTS),
                    f"{result.n_parameters:,}" if np.isfinite(result.exact_trace) else "",
                ],
            },
            hide_index=True,
        )
        st.caption(
            "The density is stochastic Lanczos quadrature: "
            f"{study.DENSITY_PROBES} random probes of {study.DENSITY_ITERATIONS} Lanczos steps, "
            "each node broadened by a Gaussian; the negative mass is the share of the spectrum "
            "below -t, +/- its standard error over probes, where t = spread / steps^2 is the "
            "quadrature's resolution (closer to zero it cannot tell an eigenvalue from zero; "
            "along training: "
            f"{study.TRAINING_PROBES} probes of {study.TRAINING_ITERATIONS} steps). Hutch++ "
            "spends a third of its products on the top of the spectrum, which it takes exactly "
            "(benchmarks/curvature.py measures the products each estimator needs for a given "
            "error)."
        )
    else:
        st.info("This result was saved before the curvature evidence existed: run it again.")
    show_figure(figures.lab_training(result), "lab_training")

with st.expander("The theorem"):
    st.markdown(
        "There is no single theorem here: the Lab draws the pictures that the convexity results "
        "of the seed are about (seed section 3.2, Figure 2, after Li, Xu, Taylor, Studer & "
        "Goldstein 2018; MATH.md section 5). The surface is"
    )
    st.latex(r"Z(\alpha, \beta) = L(\theta^* + \alpha\, d_1 + \beta\, d_2)")
    st.markdown("with random directions normalised filter by filter (rows ``i`` of each weight):")
    st.latex(r"d_{j,i} \leftarrow \frac{d_{j,i}}{\|d_{j,i}\|}\,\|\theta^*_i\|")
    st.markdown(
        "For the three-model plane of Zhang, Shao & Salakhutdinov: "
        r"$\theta^* = \tfrac13(w_0 + w_1 + w_2)$, "
        r"$d_1 = (w_0 - w_1)\,\|w_2\| / \|w_0 - w_1\|$, "
        r"$d_2 = (w_0 - w_2)\,\|w_2\| / \|w_0 - w_2\|$. "
        "Local convexity is measured by the Hessian's extreme eigenvalues (Lanczos on "
        "Hessian-vector products):"
    )
    st.latex(
        r"\rho = \left|\frac{\lambda_{\min}(\nabla^2 L)}{\lambda_{\max}(\nabla^2 L)}\right|,"
        r"\qquad \rho = 0 \iff \nabla^2 L \succeq 0 \text{ (locally convex)}"
    )
    st.markdown(
        "What a computation can prove. A unit vector $v$ with $v^\\top H v < 0$ proves that the "
        "point is not convex (the smallest eigenvalue is at most $v^\\top H v$); the Lab checks "
        "the Ritz vector's Rayleigh quotient in float64. Lanczos' Ritz values lie inside the "
        "spectrum, so a run that finds no such vector proves nothing; with $m$ steps from a "
        "random start, Kuczynski and Wozniakowski (1992) bound what it can have missed:"
    )
    st.latex(
        r"\Pr\left[\frac{\theta_{\min} - \lambda_{\min}}{\lambda_{\max} - \lambda_{\min}}"
        r" \ge \varepsilon\right] \le 1.648\,\sqrt{P}\; e^{-\sqrt{\varepsilon}\,(2m - 1)}"
    )
    st.markdown(
        "Only the exact eigenvalues (models of at most "
        f"{study.EXACT_LIMIT:,} parameters, dense Hessian) can say *convex here*. Each Ritz "
        "value $\\theta$ with residual $r = \\|Hv - \\theta v\\|$ has an eigenvalue in "
        "$[\\theta - r, \\theta + r]$; Lanczos stops once the extreme residuals are small."
    )
    st.markdown(
        "Assumptions and limits: a 2-D slice can look convex while the full Hessian has "
        "negative eigenvalues (compare the slice's 2x2 Hessian with the map); ReLU networks are "
        "only piecewise twice differentiable, so Hessians are taken where they exist. The "
        r"seed's theorem (duality gap $\le 2\Delta_{worst}/I$ for $I$ branches) is measured on the "
        "Branches page."
    )
