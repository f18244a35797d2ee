"""Width: Du et al.'s Gram matrices, linear convergence and weight movement (seed section 3.1).

Top-down: the headline controls (m, H), the secondary controls (one function per expander), one
run, its figures, then the two sweeps on request. The prose lives in views/text/width.md.
"""

from collections.abc import Sequence
from typing import Any

import streamlit as st

from landscape.studies.width import depth_sweep, figures, width_sweep
from landscape.studies.width import width as study
from landscape.studies.width.width import ACTIVATIONS, ARCHITECTURES
from ui.controls import Slider, sliders_ui
from ui.export import cached_figure, show_figure
from ui.lecture import controls
from ui.prose import caption, show_prose
from ui.runner import build_config, run_study
from ui.sidebar import current_settings

MULTIPLIERS = [1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1e3, 3e3, 1e4, 3e4, 1e5, 3e5]
NAMES = {"fc": "fully connected", "resnet": "ResNet"}

PAGE = "width"


def headline_ui() -> dict[str, Any]:
    """Width m, depth H, architecture and activation."""
    top = st.columns(4)
    width = top[0].slider(
        "Width $m$",
        16,
        4096,
        256,
        16,
        key="width_m",
        bind="query-params",
        help="Units per hidden layer. The theorem needs $m$ large (FC: exponential in $H$; "
        r"ResNet: polynomial); movement and drift should fall like $1/\sqrt{m}$. The cost grows "
        "like $m^2$; the ladder $m = 16, 32, \\dots, 4096$ is precomputed (on the defaults), "
        "other widths are computed: $m = 4096$ takes minutes on a 2-core CPU.",
    )
    depth = top[1].slider(
        "Depth $H$",
        1,
        12,
        3,
        key="width_depth",
        bind="query-params",
        help=r"Number of hidden weight matrices $W^{(1..H)}$ (ResNet needs $H \ge 2$).",
    )
    architecture = top[2].radio(
        "Architecture",
        ARCHITECTURES,
        key="width_arch",
        bind="query-params",
        format_func=NAMES.get,
        help=r"Fully connected: $x^{(h)} = \sqrt{c_\sigma/m}\,\sigma(W^{(h)} x^{(h-1)})$. ResNet: "
        r"$x^{(h)} = x^{(h-1)} + \frac{c_{res}}{H\sqrt m}\sigma(W^{(h)} x^{(h-1)})$ for $h \ge 2$.",
    )
    activation = top[3].selectbox(
        "Activation",
        ACTIVATIONS,
        index=ACTIVATIONS.index("tanh"),
        key="width_act",
        bind="query-params",
        help="erf, tanh and softplus are smooth and covered by the theorem; ReLU is not (its "
        "derivative jumps) and is shown for comparison. ReLU and erf use closed forms, softplus "
        "and tanh Gauss-Hermite quadrature.",
    )
    return {"width": width, "depth": depth, "architecture": architecture, "activation": activation}


def data_ui(architecture: str) -> dict[str, Any]:
    """Step multiplier, iterations, data set, n, d and c_res."""
    cols = st.columns(4)
    multiplier = cols[0].select_slider(
        "Step multiplier",
        MULTIPLIERS,
        value=100.0,
        key="width_mult",
        bind="query-params",
        format_func=lambda v: f"{v:g}",
        help=r"$\eta = \text{multiplier}\cdot\lambda_{\min}(K^{(H)})/n^2$ (ResNet: $\times H^2$), "
        "the theorem's step with its unspecified constant. The metric below gives the largest "
        "stable multiplier.",
    )
    iterations = cols[0].slider(
        "Iterations",
        10,
        2000,
        200,
        10,
        key="width_iters",
        bind="query-params",
        help="Full-batch gradient-descent steps.",
    )
    dataset = cols[1].radio(
        "Data",
        study.DATASETS,
        key="width_data",
        bind="query-params",
        help=r"sphere: points uniform on the unit sphere, $y = \sin(\pi \langle v, x\rangle)$. "
        r"digits: scikit-learn's $8\times8$ digits, centred, rows scaled to unit norm, $y = +1$ "
        "odd / $-1$ even.",
    )
    more = sizes_ui(cols, dataset, architecture)
    return {
        "step_multiplier": multiplier,
        "iterations": iterations,
        "dataset": dataset,
        **more,
    }


def sizes_ui(cols: Sequence[Any], dataset: str, architecture: str) -> dict[str, Any]:
    """Data size n and input dimension d (column 3), and ResNet's c_res (column 4)."""
    n = cols[2].slider(
        "Data size $n$",
        4,
        256,
        32,
        key="width_n",
        bind="query-params",
        help="Number of training points.",
    )
    input_dim = cols[2].slider(
        "Input dimension $d$",
        2,
        64,
        8,
        key="width_d",
        bind="query-params",
        disabled=dataset != "sphere",
        help="Dimension of the sphere's ambient space (digits: 64).",
    )
    c_res = cols[3].slider(
        "$c_{res}$",
        0.05,
        0.95,
        0.5,
        0.05,
        key="width_cres",
        bind="query-params",
        disabled=architecture != "resnet",
        help="Residual scale, $0 < c_{res} < 1$ (ResNet only).",
    )
    return {
        "n": n,
        "input_dim": input_dim,
        "c_res": c_res,
    }


def show_result(result: study.Result, multiplier: float) -> None:
    """Metrics, the convergence against the bound, the dynamics and the Gram matrix."""
    if result.message:
        st.warning(result.message)
    cols = st.columns(6)
    cols[0].metric(r"$\lambda_{\min}(K^{(H)})$", f"{result.lambda_min:.3g}")
    cols[1].metric(r"step $\eta$", f"{result.eta:.3g}")
    if result.loss.size:
        cols[2].metric(
            "stable multiplier",
            f"{study.stable_multiplier(result, multiplier):.3g}",
            help=r"$2/\lambda_{\max}(G(0))$ in units of the theorem's step: beyond it the "
            "linearised dynamics diverge.",
        )
        cols[3].metric(
            "measured rate",
            f"{result.measured_rate:.4f}",
            help="$(L(k)/L(0))^{1/k}$ at the last step $k$: the average factor per step.",
        )
        cols[4].metric(
            "bound's rate",
            f"{result.bound_rate:.6f}",
            help=r"$1 - \eta\lambda_{\min}(K^{(H)})/2$, the factor per step in the theorem's "
            "bound.",
        )
        cols[5].metric(
            "init. deviation",
            f"{result.init_deviation:.3g}",
            help=r"$\|G^{(H)}(0) - K^{(H)}\|_2/\lambda_{\min}(K^{(H)})$: how far this network's "
            "last-layer Gram matrix starts from the infinite-width one; the proof needs it "
            "below $1/4$.",
        )
    show_prose(PAGE, "seeing")
    st.subheader("Convergence")
    show_figure(cached_figure(figures.convergence, result), "width_convergence")
    show_figure(cached_figure(figures.dynamics, result), "width_dynamics")
    caption(PAGE, "dynamics_caption")
    left, right = st.columns(2)
    with left:
        show_figure(cached_figure(figures.gram_heatmap, result), "width_gram")
    with right:
        show_figure(cached_figure(figures.gram_spectrum, result), "width_spectrum")


settings = current_settings()
st.title("Width")
show_prose(PAGE, "intro")
headline = headline_ui()
with controls("Step size and data", expanded=True):
    data = data_ui(headline["architecture"])
common = {
    "dataset": data["dataset"],
    "n": data["n"],
    "input_dim": data["input_dim"],
    "activation": headline["activation"],
    "c_res": data["c_res"],
    "seed": settings.seed,
    "device": settings.device,
}
depth, architecture = headline["depth"], headline["architecture"]
multiplier, iterations = data["step_multiplier"], data["iterations"]
config = build_config(
    study.Config,
    depth=depth,
    width=headline["width"],
    architecture=architecture,
    step_multiplier=multiplier,
    iterations=iterations,
    **common,
)
result = run_study(study, config)
if result is not None:
    show_result(result, multiplier)

st.subheader("Sweeps")
show_prose(PAGE, "sweeps")
if st.toggle(
    "Width sweep: the same network at every width",
    key="width_sweep_on",
    bind="query-params",
    help=r"Trains the architecture above at $m = 16, 32, \dots$ up to the chosen width.",
):
    largest = st.select_slider(
        "Largest width",
        [64, 128, 256, 512, 1024, 2048, 4096],
        value=512,
        key="width_sweep_max",
        bind="query-params",
        help="Widths are the powers of two from 16 up to this; the cost grows like $m^2$.",
    )
    sweep_config = build_config(
        width_sweep.Config,
        depth=depth,
        architecture=architecture,
        step_multiplier=multiplier,
        iterations=iterations,
        max_width=largest,
        **common,
    )
    sweep = run_study(width_sweep, sweep_config)
    if sweep is not None:
        if sweep.message:
            st.warning(sweep.message)
        left, right = st.columns(2)
        with left:
            show_figure(cached_figure(figures.width_scaling, sweep), "width_scaling")
        with right:
            show_figure(cached_figure(figures.width_curves, sweep), "width_curves")
        caption(
            PAGE,
            "width_sweep_caption",
            movement=f"{sweep.movement_slope:.2f}",
            drift=f"{sweep.drift_slope:.2f}",
            deviation=f"{sweep.deviation_slope:.2f}",
        )

if st.toggle(
    "Depth sweep: fully connected against ResNet",
    key="width_depth_on",
    bind="query-params",
    help=r"$\lambda_{\min}(K^{(H)})$, the width the concentration argument needs, and the width "
    "that reaches a target loss, at every depth, for both architectures.",
):
    with controls("Depth sweep settings", expanded=True):
        cols = st.columns(4)
        depths = cols[0].multiselect(
            "Depths",
            [2, 3, 4, 5, 6, 8, 10, 12],
            default=[2, 4, 6, 8],
            key="width_depths",
            bind="query-params",
            help=r"Depths $H$ to compare (ResNet needs $H \ge 2$).",
        )
        target, sweep_iterations, multiplier_fc, multiplier_resnet, train_max, concentration_max = (
            sliders_ui(
                [
                    Slider(
                        "Target $L/L(0)$",
                        "width_target",
                        "A width succeeds when the loss reaches this fraction of $L(0)$ in the "
                        "iterations.",
                        1e-2,
                        options=[1e-1, 1e-2, 1e-3, 1e-4],
                        format_func=lambda v: f"{v:g}",
                        column=1,
                    ),
                    Slider(
                        "Iterations (depth sweep)",
                        "width_depth_iters",
                        "Gradient-descent steps per training run in this sweep.",
                        200,
                        10,
                        1000,
                        10,
                        column=1,
                    ),
                    Slider(
                        "Step multiplier, FC",
                        "width_mult_fc",
                        r"The theorem's $O(\cdot)$ constant for the fully connected step "
                        r"$\eta = \text{multiplier}\cdot\lambda_{\min}/n^2$.",
                        100.0,
                        options=MULTIPLIERS,
                        format_func=lambda v: f"{v:g}",
                        column=2,
                    ),
                    Slider(
                        "Step multiplier, ResNet",
                        "width_mult_res",
                        r"The constant for ResNet's step "
                        r"$\eta = \text{multiplier}\cdot\lambda_{\min}H^2/n^2$.",
                        3000.0,
                        options=MULTIPLIERS,
                        format_func=lambda v: f"{v:g}",
                        column=2,
                    ),
                    Slider(
                        "Largest trained width",
                        "width_depth_max",
                        r"Training tries $m = 16, 32, \dots$ up to this width and stops at the "
                        "first success.",
                        256,
                        options=[64, 128, 256, 512, 1024, 2048],
                        column=3,
                    ),
                    Slider(
                        "Largest width at initialisation",
                        "width_conc_max",
                        r"$G^{(H)}(0)$ is drawn exactly in $O(Hn^2m)$ without forming the "
                        r"$m\times m$ weights, so much wider networks fit here than in training.",
                        2**14,
                        options=[2**10, 2**12, 2**14, 2**16, 2**18],
                        column=3,
                    ),
                ],
                cols,
            )
        )
    depth_config = build_config(
        depth_sweep.Config,
        depths=tuple(sorted(depths)),
        multiplier_fc=multiplier_fc,
        multiplier_resnet=multiplier_resnet,
        iterations=sweep_iterations,
        target=target,
        max_width=train_max,
        concentration_max_width=concentration_max,
        **common,
    )
    deep = run_study(depth_sweep, depth_config)
    if deep is not None:
        if deep.message:  # which entries are NaN, and why (divergence, singular kernel, ...)
            st.warning(deep.message)
        left, right = st.columns([1, 2])
        with left:
            show_figure(cached_figure(figures.depth_lambda, deep), "width_depth_lambda")
        with right:
            show_figure(cached_figure(figures.depth_widths, deep), "width_depth_widths")
        caption(PAGE, "depth_sweep_caption")

with st.expander("The theorem"):
    show_prose(PAGE, "theorem")
