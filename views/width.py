"""Width: Du et al.'s Gram matrices, linear convergence and weight movement (seed section 3.1)."""

import streamlit as st

from landscape.studies.width import depth_sweep, figures, width_sweep
from landscape.studies.width import width as study
from landscape.studies.width.width import ACTIVATIONS, ARCHITECTURES
from ui.export import show_figure
from ui.lecture import controls
from ui.runner import build_config, run_study
from ui.sidebar import current_settings

MULTIPLIERS = [1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1e3, 3e3, 1e4, 3e4, 1e5, 3e5]
NAMES = {"fc": "fully connected", "resnet": "ResNet"}

settings = current_settings()
st.title("Width")
st.markdown(
    "Du, Lee, Li, Wang & Zhai prove that a wide enough network trained by gradient descent on the "
    "squared loss drives the training loss to zero at a **linear rate** fixed by one matrix, the "
    "infinite-width Gram matrix K^(H) of the data (seed section 3.1). Here K^(H) is computed from "
    "its recursion, a network of the chosen width is trained at the theorem's step size, and the "
    "quantities of the proof are **measured**: the loss against the bound, how far the weights "
    "move, and how far the Gram matrix of the output gradients drifts."
)

top = st.columns(4)
width = top[0].slider(
    "Width m",
    16,
    4096,
    256,
    16,
    key="width_m",
    bind="query-params",
    help="Units per hidden layer. The theorem needs m large (FC: exponential in H; ResNet: "
    "polynomial); movement and drift should fall like 1/sqrt(m). The cost grows like m^2: "
    "m = 4096 takes minutes on a 2-core CPU, seconds on a GPU.",
)
depth = top[1].slider(
    "Depth H",
    1,
    12,
    3,
    key="width_depth",
    bind="query-params",
    help="Number of hidden weight matrices W^(1..H) (ResNet needs H >= 2).",
)
architecture = top[2].radio(
    "Architecture",
    ARCHITECTURES,
    key="width_arch",
    bind="query-params",
    format_func=NAMES.get,
    help="Fully connected: x^(h) = sqrt(c_sigma/m) sigma(W^(h) x^(h-1)). ResNet: "
    "x^(h) = x^(h-1) + c_res/(H sqrt(m)) sigma(W^(h) x^(h-1)) for h >= 2.",
)
activation = top[3].selectbox(
    "Activation",
    ACTIVATIONS,
    index=ACTIVATIONS.index("tanh"),
    key="width_act",
    bind="query-params",
    help="erf, tanh and softplus are smooth and covered by the theorem; ReLU is not (its "
    "derivative jumps) and is shown for comparison. ReLU and erf use closed forms, softplus and "
    "tanh Gauss-Hermite quadrature.",
)

with controls("Step size and data", expanded=True):
    cols = st.columns(4)
    multiplier = cols[0].select_slider(
        "Step multiplier",
        MULTIPLIERS,
        value=100.0,
        key="width_mult",
        bind="query-params",
        format_func=lambda v: f"{v:g}",
        help="eta = multiplier x lambda_min(K^(H)) / n^2 (ResNet: x H^2), the theorem's step with "
        "its unspecified constant. The metric below gives the largest stable multiplier.",
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
        help="sphere: points uniform on the unit sphere, y = sin(pi <v, x>). digits: scikit-"
        "learn's 8x8 digits, centred, rows scaled to unit norm, y = +1 odd / -1 even.",
    )
    n = cols[2].slider(
        "Data size n",
        4,
        256,
        32,
        key="width_n",
        bind="query-params",
        help="Number of training points.",
    )
    input_dim = cols[2].slider(
        "Input dimension d",
        2,
        64,
        8,
        key="width_d",
        bind="query-params",
        disabled=dataset != "sphere",
        help="Dimension of the sphere's ambient space (digits: 64).",
    )
    c_res = cols[3].slider(
        "c_res",
        0.05,
        0.95,
        0.5,
        0.05,
        key="width_cres",
        bind="query-params",
        disabled=architecture != "resnet",
        help="Residual scale, 0 < c_res < 1 (ResNet only).",
    )

common = {
    "dataset": dataset,
    "n": n,
    "input_dim": input_dim,
    "activation": activation,
    "c_res": c_res,
    "seed": settings.seed,
    "device": settings.device,
}
config = build_config(
    study.Config,
    depth=depth,
    width=width,
    architecture=architecture,
    step_multiplier=multiplier,
    iterations=iterations,
    **common,
)
result = run_study(study, config) if config is not None else None

if result is not None:
    if result.message:
        st.warning(result.message)
    cols = st.columns(6)
    cols[0].metric("lambda_min(K^(H))", f"{result.lambda_min:.3g}")
    cols[1].metric("step eta", f"{result.eta:.3g}")
    if result.loss.size:
        cols[2].metric(
            "stable multiplier",
            f"{multiplier * result.eta_stable / result.eta:.3g}",
            help="2 / lambda_max(G(0)) in units of the theorem's step: beyond it the "
            "linearised dynamics diverge.",
        )
        cols[3].metric(
            "measured rate",
            f"{result.measured_rate:.4f}",
            help="(L(k)/L(0))^(1/k) at the last step k: the average factor per step.",
        )
        cols[4].metric(
            "bound's rate",
            f"{result.bound_rate:.6f}",
            help="1 - eta lambda_min(K^(H)) / 2, the factor per step in the theorem's bound.",
        )
        cols[5].metric(
            "init. deviation",
            f"{result.init_deviation:.3g}",
            help="||G^(H)(0) - K^(H)||_2 / lambda_min(K^(H)): how far this network's last-layer "
            "Gram matrix starts from the infinite-width one; the proof needs it below 1/4.",
        )

    st.markdown(
        "**What you are seeing.** The loss falls at least as fast as the bound "
        "L(0)(1 - eta lambda_min/2)^k, usually much faster: the bound uses only the smallest "
        "eigenvalue of the last layer's Gram matrix, while every layer (and every eigen-direction) "
        "contributes to the decrease. Widen the network and watch the weight movement and the "
        "Gram drift shrink while the loss curve stays put: the wide network trains like its "
        "linearisation. With softplus, fully connected, the smallest eigenvalue of K^(H) "
        "collapses with depth and the theorem's step becomes tiny."
    )
    st.subheader("Convergence")
    show_figure(figures.convergence(result), "width_convergence")
    show_figure(figures.dynamics(result), "width_dynamics")
    st.caption(
        "Left: the largest relative move of any weight matrix. Middle: the drift of the last "
        "layer's Gram matrix G^(H)(k) in units of lambda_min(K^(H)); the proof keeps it below 1/4. "
        "Right: lambda_min of G^(H)(k) and of the full G(k), against lambda_min(K^(H)) and half of "
        "it (the rate in the bound)."
    )
    left, right = st.columns(2)
    with left:
        show_figure(figures.gram_heatmap(result), "width_gram")
    with right:
        show_figure(figures.gram_spectrum(result), "width_spectrum")

st.subheader("Sweeps")
st.markdown(
    "Both sweeps use the data, activation and seed above; they train many networks, so they run "
    "on request: tens of seconds each on an idle 2-core CPU with the defaults (longer on a busy "
    "one), seconds on a GPU, which they use when there is one."
)
if st.toggle(
    "Width sweep: the same network at every width",
    key="width_sweep_on",
    bind="query-params",
    help="Trains the architecture above at m = 16, 32, ..., up to the chosen width.",
):
    largest = st.select_slider(
        "Largest width",
        [64, 128, 256, 512, 1024, 2048, 4096],
        value=512,
        key="width_sweep_max",
        bind="query-params",
        help="Widths are the powers of two from 16 up to this; the cost grows like m^2.",
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
    sweep = run_study(width_sweep, sweep_config) if sweep_config else None
    if sweep is not None:
        if sweep.message:
            st.warning(sweep.message)
        left, right = st.columns(2)
        with left:
            show_figure(figures.width_scaling(sweep), "width_scaling")
        with right:
            show_figure(figures.width_curves(sweep), "width_curves")
        st.caption(
            f"Fitted log-log slopes: weight movement {sweep.movement_slope:.2f}, Gram drift "
            f"{sweep.drift_slope:.2f}, deviation at initialisation {sweep.deviation_slope:.2f}. "
            "Du et al.'s proof bounds all three by O(m^(-1/2)); the drift during training often "
            "falls faster, like 1/m, as later analyses of the tangent kernel predict."
        )

if st.toggle(
    "Depth sweep: fully connected against ResNet",
    key="width_depth_on",
    bind="query-params",
    help="lambda_min(K^(H)), the width the concentration argument needs, and the width that "
    "reaches a target loss, at every depth, for both architectures.",
):
    with controls("Depth sweep settings", expanded=True):
        cols = st.columns(4)
        depths = cols[0].multiselect(
            "Depths",
            [2, 3, 4, 5, 6, 8, 10, 12],
            default=[2, 4, 6, 8],
            key="width_depths",
            bind="query-params",
            help="Depths H to compare (ResNet needs H >= 2).",
        )
        target = cols[1].select_slider(
            "Target L / L(0)",
            [1e-1, 1e-2, 1e-3, 1e-4],
            value=1e-2,
            key="width_target",
            bind="query-params",
            format_func=lambda v: f"{v:g}",
            help="A width succeeds when the loss reaches this fraction of L(0) in the iterations.",
        )
        sweep_iterations = cols[1].slider(
            "Iterations (depth sweep)",
            10,
            1000,
            200,
            10,
            key="width_depth_iters",
            bind="query-params",
            help="Gradient-descent steps per training run in this sweep.",
        )
        multiplier_fc = cols[2].select_slider(
            "Step multiplier, FC",
            MULTIPLIERS,
            value=100.0,
            key="width_mult_fc",
            bind="query-params",
            format_func=lambda v: f"{v:g}",
            help="The theorem's O(.) constant for the fully connected step "
            "eta = multiplier x lambda_min / n^2.",
        )
        multiplier_resnet = cols[2].select_slider(
            "Step multiplier, ResNet",
            MULTIPLIERS,
            value=3000.0,
            key="width_mult_res",
            bind="query-params",
            format_func=lambda v: f"{v:g}",
            help="The constant for ResNet's step eta = multiplier x lambda_min H^2 / n^2.",
        )
        train_max = cols[3].select_slider(
            "Largest trained width",
            [64, 128, 256, 512, 1024, 2048],
            value=256,
            key="width_depth_max",
            bind="query-params",
            help="Training tries m = 16, 32, ... up to this width and stops at the first success.",
        )
        concentration_max = cols[3].select_slider(
            "Largest width at initialisation",
            [2**10, 2**12, 2**14, 2**16, 2**18],
            value=2**14,
            key="width_conc_max",
            bind="query-params",
            help="G^(H)(0) is drawn exactly in O(H n^2 m) without forming the m x m weights, so "
            "much wider networks fit here than in training.",
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
    deep = run_study(depth_sweep, depth_config) if depth_config else None
    if deep is not None:
        if deep.message:  # which entries are NaN, and why (divergence, singular kernel, ...)
            st.warning(deep.message)
        left, right = st.columns([1, 2])
        with left:
            show_figure(figures.depth_lambda(deep), "width_depth_lambda")
        with right:
            show_figure(figures.depth_widths(deep), "width_depth_widths")
        st.caption(
            "Left: ResNet's lambda_min carries the factor (c_res/H)^2, which its step size "
            "H^2 / n^2 cancels; fully connected softplus collapses exponentially, tanh and erf do "
            "not. Middle: the width at which ||G^(H)(0) - K^(H)||_2 falls to lambda_min / 4, from "
            "a log-log fit of the measured deviation (extrapolated beyond the largest width "
            "drawn). Right: the smallest trained width that reached the target; a missing point "
            "means no width in the grid did."
        )

with st.expander("The theorem"):
    st.markdown(
        "Du, Lee, Li, Wang & Zhai (2019), seed section 3.1. Inputs on the unit sphere, "
        "every weight N(0, 1), all layers trained by gradient descent on "
        r"$L = \tfrac12\|u - y\|^2$, $c_\sigma = 1 / \mathbb{E}_{z\sim N(0,1)}\sigma(z)^2$:"
    )
    st.latex(
        r"x^{(h)} = \sqrt{\tfrac{c_\sigma}{m}}\,\sigma\big(W^{(h)}x^{(h-1)}\big)\ \text{(FC)},"
        r"\qquad x^{(h)} = x^{(h-1)} + \tfrac{c_{res}}{H\sqrt m}\,\sigma\big(W^{(h)}x^{(h-1)}\big)"
        r"\ \text{(ResNet, } h \ge 2),\qquad u = a^\top x^{(H)}"
    )
    st.latex(
        r"K^{(h)}_{ij} = c_\sigma\,\mathbb{E}_{(u,v)\sim N(0, A^{(h)}_{ij})}\,\sigma(u)\sigma(v),"
        r"\qquad K^{(H)}_{ij} = c_\sigma K^{(H-1)}_{ij}\,"
        r"\mathbb{E}_{(u,v)\sim N(0, A^{(H)}_{ij})}\,\sigma'(u)\sigma'(v)"
    )
    st.latex(
        r"m = \Omega\Big(2^{O(H)}\max\big(\tfrac{n^4}{\lambda_{\min}^4(K^{(H)})},"
        r"\tfrac{n}{\delta}, \tfrac{n^2\log(Hn/\delta)}{\lambda_{\min}^2(K^{(H)})}\big)\Big),"
        r"\quad \eta = O\Big(\tfrac{\lambda_{\min}(K^{(H)})}{n^2 2^{O(H)}}\Big)"
        r"\ \Longrightarrow\ L(\theta(k)) \le \Big(1 - \tfrac{\eta\lambda_{\min}(K^{(H)})}{2}"
        r"\Big)^k L(\theta(0))"
    )
    st.markdown(
        "with probability at least 1 - delta (seed eq. 13-15). For ResNet the width needs only "
        r"to be polynomial in n and H, with step $\eta = O(\lambda_{\min}(K^{(H)})H^2/n^2)$. "
        "Assumptions: |y_i| = O(1), K^(H) positive definite (distinct, non-parallel inputs), and "
        "an activation that is Lipschitz and smooth: erf, tanh and softplus qualify; "
        "**ReLU does not** (its derivative jumps at 0), so its curves here are outside the "
        "theorem. Two notes on the recursion: the last layer's expectation is over the "
        "covariance A^(H) built from K^(H-1) (the seed prints A^(H-1), which a Monte Carlo of the "
        "network rejects), and the ResNet recursion, with its mean terms b^(h), was derived from "
        "the network and checked against it at width 10^6. The bound's rate uses lambda_min of "
        "the last layer's Gram matrix only; the step's constant is not given by the theorem, "
        "hence the multiplier."
    )
