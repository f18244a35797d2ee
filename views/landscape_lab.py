"""Landscape Lab: train a model, then draw its loss surface, slices and curvature (MATH.md s. 5).

Top-down: an opened surface file, the plane's controls, the model and the curvature controls (one
function per group), one run, then its figures. The prose lives in views/text/landscape_lab.md;
the uploads are checked in ui/lab_uploads.py.
"""

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import streamlit as st

from landscape.studies.lab import figures
from landscape.studies.lab import lab as study
from ui import lab_uploads
from ui.export import cached_figure, show_figure
from ui.lecture import controls
from ui.prose import caption, prose, show_prose
from ui.runner import build_config, computed, poll_study, prefetch, run_study
from ui.sidebar import current_settings

PAGE = "landscape_lab"
KEY = "landscape_lab_"
DIRECTION_LABELS = {
    "random": "random (Li et al.)",
    "pca": "PCA of the training trajectory",
    "three_models": "three trained models (Zhang et al.)",
    "sharpest": "two sharpest directions (top Hessian eigenvectors)",
}
MODEL_LABELS = {"multibranch": "MultiBranchNet", "mlp": "MLP", "upload": "upload"}
STATE_BOXES = {-1: st.warning, 0: st.info, 1: st.success}
MAP_WAITING = "_lab_map_waiting"  # session state: the configuration whose map the page awaits


def surface_file_ui() -> tuple[Any, study.Result | None, dict]:
    """The uploaded surface file (or None), and its Result and metadata once checked."""
    with st.expander("Open a computed surface"):
        upload = st.file_uploader(
            "Surface file (.npz)",
            type=["npz"],
            key=KEY + "surface_file",
            help="A surface computed headless by `convexify surface ... --out surface.npz` (any "
            "model size, on a Ray cluster if you like), or this page's own Surface (NPZ) "
            "download: drawn here with the Lab's figures instead of the controls' model. Checked "
            "before it is drawn (at most 20 MiB, numbers only, never unpickled).",
        )
    if upload is None:
        return None, None, {}
    try:
        opened, meta = study.open_surface_file(upload.getvalue())
    except ValueError as error:
        st.error(f"{upload.name}: {error}")
        return upload, None, {}
    return upload, opened, meta


def plane_ui() -> tuple[dict[str, Any], bool]:
    """Range, resolution, directions, normalisation and 1-D weights; and the log scale."""
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
    directions = top[2].selectbox(
        "Directions",
        study.DIRECTIONS,
        format_func=DIRECTION_LABELS.get,
        key=KEY + "directions",
        bind="query-params",
        help="random: two Gaussian directions, normalised below. PCA: the top two principal "
        "directions of the training trajectory (drawn on the surface). Three models: train "
        "three seeds; the plane passes through all three, centred on their mean.",
    )
    normalization = top[3].selectbox(
        "Normalisation",
        study.NORMALIZATIONS,
        key=KEY + "normalization",
        bind="query-params",
        disabled=directions != "random",
        help="filter: each row (output unit or channel) of a random direction gets the norm of "
        "the same row of the weights (Li et al.), so that the plot does not depend on the "
        "weights' scale. layer: the same per tensor. none: raw Gaussian.",
    )
    one_dim, log_scale = second_row_ui(directions)
    fields = {
        "span": span,
        "resolution": resolution,
        "directions": directions,
        "normalization": normalization,
        "one_dim": one_dim,
    }
    return fields, log_scale


def second_row_ui(directions: str | None) -> tuple[Any, bool]:
    """The 1-D weights' choice (random directions only) and the log scale."""
    row = st.columns(4)
    one_dim = row[0].radio(
        "Biases and other 1-D weights",
        study.ONE_DIM_CHOICES,
        horizontal=True,
        key=KEY + "one_dim",
        bind="query-params",
        disabled=directions != "random",
        help="zero: random directions leave biases (and BatchNorm scales) fixed, as Li et al. "
        "do. keep: they move too, normalised as one filter.",
    )
    log_scale = row[1].toggle(
        "Log scale",
        value=False,
        key=KEY + "log",
        bind="query-params",
        help="Show log10 of the loss on the surface and contours.",
    )
    return one_dim, bool(log_scale)


def model_ui() -> dict[str, Any]:
    """Model, data, the built-in models' sizes and activation, and the training."""
    cols = st.columns(4)
    model = cols[0].radio(
        "Model",
        study.MODELS,
        format_func=MODEL_LABELS.get,
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
    return {
        "model": model,
        "dataset": dataset,
        "branches": branches,
        "width": width,
        "depth": depth,
        **mlp_and_training_ui(cols, model),
    }


def mlp_and_training_ui(cols: Sequence[Any], model: str | None) -> dict[str, Any]:
    """The MLP's width, the activation, epochs and learning rate (columns 3 and 4)."""
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
    return {"hidden": hidden, "activation": activation, "epochs": epochs, "lr": lr}


def upload_ui(model: str | None, dataset: str | None) -> tuple[Any, Any]:
    """The ONNX model and the data file, each asked for only when its choice is 'upload'."""
    model_file = data_file = None
    if model == "upload":
        model_file = st.file_uploader(
            "ONNX model",
            type=["onnx"],
            key=KEY + "model_file",
            help='Export it with torch.onnx.export(model, example, "model.onnx"), one input '
            "(samples first) and one output. Standard layers (Linear, Conv, ConvTranspose, "
            "pooling, batch/layer/group/instance norm, attention, embeddings, LSTM, GRU, "
            "activations, reshapes), opset 11 or newer; no loops or custom operators; weights "
            "inside the file (no external data). TorchScript and torch.save files are refused: "
            "they run code.",
        )
    if dataset == "upload":
        data_file = st.file_uploader(
            "Data (CSV or NPZ)",
            type=["csv", "npz"],
            key=KEY + "data_file",
            help="Numbers only. Integer labels mean classification (cross-entropy), anything "
            "else regression (squared loss). At most 20 MiB, 50,000 rows.",
        )
    return model_file, data_file


def curvature_ui() -> dict[str, Any]:
    """The curvature map's grid, the Lanczos budget and the sub-sample size."""
    cols = st.columns(3)
    curvature_resolution = cols[0].slider(
        "Curvature grid",
        0,
        15,
        5,
        key=KEY + "curvature",
        bind="query-params",
        help="Points per axis of the coarse grid on which Lanczos computes the Hessian's "
        "extreme eigenvalues (0 switches the map off; the cost grows with its square).",
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
    return {
        "curvature_resolution": curvature_resolution,
        "lanczos_iterations": lanczos_iterations,
        "sample_size": int(sample_size),
    }


def show_opened(opened: study.Result, meta: dict, name: str, log_scale: bool) -> None:
    """An opened surface file: what it is, its surface, and its slices and map if it has them."""
    st.info(
        f"Showing the computed surface {name}; remove the file (Open a computed surface) to use "
        "the controls again."
    )
    cols = st.columns(4)
    cols[0].metric("Loss at the centre", f"{opened.center_loss:.4g}")
    if opened.n_parameters:
        cols[1].metric("Parameters", f"{opened.n_parameters:,}")
    if opened.n_samples:
        cols[2].metric("Samples", f"{opened.n_samples:,}")
    if meta.get("surface_seconds") is not None:
        seconds = f"{opened.surface_seconds:.1f} s"
        cols[3].metric("Surface", seconds, help=f"engine path: {opened.surface_method}")
    st.caption("; ".join(opened_description(opened, meta)) + ".")
    if "command" in meta:
        st.code(meta["command"], language="bash")
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


def opened_description(opened: study.Result, meta: dict) -> list[str]:
    """The opened file in a few phrases: grid, model (format, digest), data, directions."""
    described = [
        f"{len(opened.alphas)} x {len(opened.betas)} grid",
        f"model {opened.model_name} ({meta.get('model_format', 'unknown format')}, "
        f"SHA-256 {str(meta.get('model_sha256', '?'))[:12]})",
    ]
    if "data_sha256" in meta:
        described.append(f"data {meta.get('data_file', '')} (SHA-256 {meta['data_sha256'][:12]})")
    if "directions" in meta:
        described.append(f"{meta['directions']} directions, seed {meta.get('seed', '?')}")
    return described


def show_metrics(result: study.Result) -> None:
    """Loss, accuracy, size, the surface's time and the Hessian's trace."""
    cols = st.columns(5)
    cols[0].metric("Training loss at the centre", f"{result.center_loss:.4g}")
    if result.task == "classification":
        cols[1].metric("Training accuracy", f"{result.train_accuracy:.1%}")
    cols[2].metric("Parameters", f"{result.n_parameters:,}")
    cols[3].metric(
        "Surface", f"{result.surface_seconds:.2f} s", help=f"engine path: {result.surface_method}"
    )
    cols[4].metric(
        "Hessian trace",
        f"{result.hessian_trace:.3g}",
        help=f"Hutchinson's estimate, +/- {result.hessian_trace_error:.2g} (standard error, "
        f"{study.TRACE_PRODUCTS} probes); the curvature section compares Hutch++ and, for small "
        "models, the exact trace.",
    )


def show_surface(result: study.Result, log_scale: bool) -> None:
    """What the surface shows, the surface with its contours, and its downloads."""
    traced = len(result.trajectory) > 0
    show_prose(
        PAGE,
        "seeing",
        trajectory=prose(PAGE, "seeing_trajectory") if traced else "",
        models=prose(PAGE, "seeing_models") if len(result.model_points) else "",
        parameters=f"{result.n_parameters:,}",
        cosine=f"{result.direction_cosine:.3f}",
        variance=(
            prose(PAGE, "seeing_variance", explained=f"{result.explained_variance.sum():.1%}")
            if traced
            else "."
        ),
    )
    st.caption(
        f"{result.model_name} on {result.n_samples} samples ({result.task}); "
        f"{len(result.alphas)} x {len(result.betas)} grid; engine path: {result.surface_method}."
    )
    show_figure(cached_figure(figures.lab_surface, result, log_scale), "lab_surface")
    downloads = st.columns([1, 1, 4])
    downloads[0].download_button(
        "Surface (NPZ)",
        data=lambda: study.surface_npz(result),  # built on click only
        file_name="surface.npz",
        mime="application/octet-stream",
        key=KEY + "npz",
        on_click="ignore",
        help="Arrays alphas (R,), betas (R,) and loss (R, R), loss[i, j] at (alphas[i], betas[j]).",
    )
    downloads[1].download_button(
        "Surface (CSV)",
        data=lambda: study.surface_csv(result),
        file_name="surface.csv",
        mime="text/csv",
        key=KEY + "csv",
        on_click="ignore",
        help="One row per grid point: alpha, beta, loss.",
    )


def show_slices(result: study.Result) -> None:
    """The 1-D slices beside the line from the initial to the trained weights."""
    left, right = st.columns(2)
    with left:
        show_figure(cached_figure(figures.lab_slices, result), "lab_slices")
    with right:
        if len(result.interpolation):
            show_figure(cached_figure(figures.lab_interpolation, result), "lab_interpolation")
        else:
            st.info("No training, no interpolation: the initial and final weights coincide.")


def lab_run(config: study.Config | None) -> tuple[study.Result | None, study.Config | None]:
    """The run to show now, and the configuration whose curvature map is still coming (None
    when nothing is).

    An answer already there (a preset, a cached run), or one whose curvature map is (a new
    resolution, a range seen before), shows whole. Otherwise the page first shows
    the run without the map (``curvature_resolution = 0``: the surface, the slices and the
    centre's evidence, which reuse the cached training and evidence), and `pending_map` fills
    the map in when the full run, started in the background, has answered.
    """
    if (
        config is None
        or config.curvature_resolution == 0
        or study.curvature_ready(config)  # e.g. a new resolution: the map is the same
        or computed(study, config) is not None
    ):
        return run_study(study, config), None
    return run_study(study, replace(config, curvature_resolution=0)), config


@st.fragment(run_every=1.0)
def pending_map(config: study.Config) -> None:
    """While the full run computes the curvature map: its progress, redrawn every second; once
    it has answered, the whole page reruns and shows it (with its exports). The run starts on
    the fragment's second run, so that only a configuration shown for a second costs a map."""
    st.caption(
        f"The curvature map (Lanczos at {config.curvature_resolution} x "
        f"{config.curvature_resolution} points) is being computed: it appears here when ready."
    )
    # Started from the fragment's next run (a second later) for the configuration still shown:
    # a teacher dragging the range starts no map for the values passed over.
    if st.session_state.get(MAP_WAITING) != config:
        st.session_state[MAP_WAITING] = config
        return
    if poll_study(study, config, name="curvature map") is not None:
        st.rerun()


def show_curvature_map(result: study.Result, pending: study.Config | None = None) -> None:
    """The curvature map (or, while it computes, `pending_map`) beside the slice's own 2x2
    Hessian at the centre."""
    left, right = st.columns([3, 2])
    with left:
        if pending is not None:
            pending_map(pending)
        elif result.curvature_ratio.size:
            show_figure(cached_figure(figures.lab_curvature, result), "lab_curvature")
        else:
            st.info("The curvature map is off (Curvature grid = 0).")
    with right:
        st.markdown("**The slice's own 2x2 Hessian at the centre**")
        exact, fd = result.slice_hessian, result.slice_hessian_fd
        st.dataframe(
            {
                "entry": ["d1 H d1", "d1 H d2", "d2 H d2", "eigenvalues"],
                "Hessian-vector products": hessian_column(exact, result.slice_eigenvalues),
                "finite differences": hessian_column(fd, result.slice_fd_eigenvalues),
            },
            hide_index=True,
        )
        caption(PAGE, "slice_hessian_caption")


def hessian_column(hessian: np.ndarray, eigenvalues: np.ndarray) -> list[str]:
    """A 2x2 symmetric matrix's three entries and its eigenvalues, as table cells."""
    entries = [f"{hessian[0, 0]:.4g}", f"{hessian[0, 1]:.4g}", f"{hessian[1, 1]:.4g}"]
    return [*entries, ", ".join(f"{v:.3g}" for v in eigenvalues)]


def show_evidence(result: study.Result) -> None:
    """What the curvature proves at the centre: its state, the densities and the traces."""
    st.markdown("**What the curvature proves at the centre**")
    if not np.isfinite(result.centre_lambda_max):
        st.info("This result was saved before the curvature evidence existed: run it again.")
        return
    STATE_BOXES[result.centre_state](figures.centre_state_text(result))
    left, right = st.columns([3, 2])
    with left:
        show_figure(cached_figure(figures.lab_density, result), "lab_density")
    with right:
        show_figure(cached_figure(figures.lab_training_density, result), "lab_training_density")
    st.dataframe(trace_table(result), hide_index=True)
    caption(
        PAGE,
        "density_caption",
        probes=study.DENSITY_PROBES,
        iterations=study.DENSITY_ITERATIONS,
        training_probes=study.TRAINING_PROBES,
        training_iterations=study.TRAINING_ITERATIONS,
    )


def trace_table(result: study.Result) -> dict[str, list[str]]:
    """Hutchinson, Hutch++ and (small models) the exact trace, with errors and costs."""
    exact = np.isfinite(result.exact_trace)
    return {
        "trace estimator": ["Hutchinson", "Hutch++", "exact (dense Hessian)"],
        "estimate": [
            f"{result.hessian_trace:.4g}",
            f"{result.hutchpp_trace:.4g}",
            f"{result.exact_trace:.4g}" if exact else "(model too large)",
        ],
        "standard error": [
            f"{result.hessian_trace_error:.2g}",
            f"{result.hutchpp_trace_error:.2g}",
            "0",
        ],
        "Hessian-vector products": [
            str(study.TRACE_PRODUCTS),
            str(study.TRACE_PRODUCTS),
            f"{result.n_parameters:,}" if exact else "",
        ],
    }


def show_result(result: study.Result, log_scale: bool, pending: study.Config | None = None) -> None:
    """A computed run: metrics, surface, slices, curvature (its map still coming for
    ``pending``), evidence and training."""
    if result.diverged:
        st.warning(result.message)
        show_figure(cached_figure(figures.lab_training, result), "lab_training")
        return
    show_metrics(result)
    show_surface(result, log_scale)
    show_slices(result)
    show_curvature_map(result, pending)
    show_evidence(result)
    show_figure(cached_figure(figures.lab_training, result), "lab_training")


settings = current_settings()
st.title("Landscape Lab")
show_prose(PAGE, "intro")
surface_upload, opened, opened_meta = surface_file_ui()
plane, log_scale = plane_ui()
with controls("Model, data and training", expanded=False):
    training = model_ui()
    model_file, data_file = upload_ui(training["model"], training["dataset"])
with controls("Curvature and sub-sampling", expanded=False):
    sampling = curvature_ui()
upload_fields = lab_uploads.upload_fields(
    model_file, data_file, training["model"], training["dataset"]
)
config = None
if upload_fields is not None:
    config = build_config(
        study.Config,
        **training,
        **plane,
        **sampling,
        seed=settings.seed,
        device=settings.device,
        **upload_fields,
    )
if opened is not None:
    show_opened(opened, opened_meta, surface_upload.name, log_scale)
else:
    result, pending = lab_run(config)
    if result is not None:
        show_result(result, log_scale, pending)
    if config is not None and not study.trained_ready(config):
        # a preset shown needed no training: train now for the next move of the range
        prefetch("lab training", study.training_key(config), lambda: study.prepare(config))
with st.expander("The theorem"):
    show_prose(PAGE, "theorem", exact_limit=f"{study.EXACT_LIMIT:,}")
