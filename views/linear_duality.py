"""Linear duality: strong duality of deep linear networks (seed section 2.1).

Top-down: the headline controls, the secondary controls (one function per expander), one run,
then the figures. The prose lives in views/text/linear_duality.md.
"""

import math
from collections.abc import Sequence
from typing import Any

import streamlit as st

from landscape.studies.linear_duality import figures
from landscape.studies.linear_duality import linear_duality as study
from ui.export import cached_figure, show_figure
from ui.lecture import controls
from ui.prose import caption, prose, show_prose
from ui.runner import build_config, run_study
from ui.sidebar import current_settings

PAGE = "linear_duality"
DEFAULT = study.Config()


def headline_ui() -> dict[str, Any]:
    """gamma (in units of sigma_min) and the dual solver."""
    top = st.columns([3, 1])
    gamma_ratio = top[0].slider(
        r"$\gamma/\sigma_{\min}(\tilde Y)$",
        0.0,
        5.0,
        DEFAULT.gamma_ratio,
        0.05,
        key="lin_gamma",
        bind="query-params",
        help=r"Regularisation strength in units of the smallest non-zero singular value of the "
        r"projected targets $\tilde Y = X X^+ Y$. The theorem covers "
        r"$0 \le \gamma \le \sigma_{\min}$ (ratio 1).",
    )
    method = top[1].selectbox(
        "Dual solver",
        study.METHODS,
        key="lin_method",
        bind="query-params",
        help=r"closed_form: $L^* = U \mathrm{diag}(\min(s, \gamma)) V^\top$. cvxpy: the SDP for "
        "the top-k squared singular values (Clarabel). douglas_rachford: operator splitting on "
        "the singular values.",
    )
    return {"gamma_ratio": gamma_ratio, "method": method}


def data_ui() -> dict[str, Any]:
    """Data set, sizes, noise and the network's depth and hidden width."""
    cols = st.columns(4)
    dataset = cols[0].radio(
        "Data",
        study.DATASETS,
        key="lin_data",
        bind="query-params",
        help="synthetic: $Y = X B$ + noise with $B$ of the chosen rank. linnerud: scikit-learn's "
        r"$20 \times 3 \to 3$ multi-output regression set (standardised).",
    )
    fixed = dataset != "synthetic"
    n = cols[1].slider(
        "$n$ samples",
        5,
        400,
        DEFAULT.n,
        key="lin_n",
        bind="query-params",
        disabled=fixed,
        help="Number of samples (rows of $X$).",
    )
    d0 = cols[1].slider(
        "$d_0$ inputs",
        1,
        32,
        DEFAULT.d0,
        key="lin_d0",
        bind="query-params",
        disabled=fixed,
        help="Input dimension (columns of $X$).",
    )
    dH = cols[2].slider(
        "$d_H$ outputs",
        1,
        32,
        DEFAULT.dH,
        key="lin_dH",
        bind="query-params",
        disabled=fixed,
        help="Output dimension (columns of $Y$).",
    )
    more = planted_and_architecture_ui(cols, fixed)
    return {
        "dataset": dataset,
        "n": n,
        "d0": d0,
        "dH": dH,
        **more,
    }


def planted_and_architecture_ui(cols: Sequence[Any], fixed: bool) -> dict[str, Any]:
    """The planted map's rank, the noise, the depth and the hidden width."""
    rank = cols[2].slider(
        "rank of $B$",
        1,
        16,
        DEFAULT.rank,
        key="lin_rank",
        bind="query-params",
        disabled=fixed,
        help=r"Rank of the planted linear map; at most $\min(n, d_0, d_H)$.",
    )
    noise = cols[3].slider(
        "noise",
        0.0,
        2.0,
        DEFAULT.noise,
        0.05,
        key="lin_noise",
        bind="query-params",
        disabled=fixed,
        help="Standard deviation of the label noise.",
    )
    depth = cols[3].slider(
        "depth $H$",
        2,
        6,
        DEFAULT.depth,
        key="lin_depth",
        bind="query-params",
        help=r"Number of weight matrices ($H \ge 2$).",
    )
    hidden = cols[0].slider(
        "hidden width",
        1,
        16,
        DEFAULT.hidden_width,
        key="lin_width",
        bind="query-params",
        help=r"Width $d_1 = \dots = d_{H-1}$ of every hidden layer; "
        r"$d_{\min} = \min(d_0, \dots, d_H, n)$ caps the rank of the network.",
    )
    return {
        "rank": rank,
        "noise": noise,
        "depth": depth,
        "hidden_width": hidden,
    }


def descent_ui() -> dict[str, Any]:
    """Gradient descent on the primal (starts, optimizer, steps) and the slice around W*."""
    cols = st.columns(4)
    scales = cols[0].multiselect(
        "initial scales",
        [0.001, 0.01, 0.1, 0.3, 1.0, 2.0],
        default=list(DEFAULT.init_scales),
        key="lin_scales",
        bind="query-params",
        help=r"Each weight starts as scale $\cdot N(0, 1)/\sqrt{\text{fan-in}}$; small scales "
        "sit longer on the saddle at $W = 0$.",
    )
    restarts = cols[0].slider(
        "seeds per scale",
        1,
        5,
        DEFAULT.restarts,
        key="lin_restarts",
        bind="query-params",
        help="Random initialisations per scale.",
    )
    optimizer = cols[1].radio(
        "optimizer",
        study.OPTIMIZERS,
        key="lin_opt",
        bind="query-params",
        help="Full-batch gradient descent or Adam on objective (2) itself.",
    )
    lr = cols[1].select_slider(
        "step size",
        [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5],
        value=DEFAULT.lr,
        key="lin_lr",
        bind="query-params",
        help="Learning rate of the optimizer.",
    )
    steps = cols[2].slider(
        "iterations",
        50,
        3000,
        DEFAULT.steps,
        50,
        key="lin_steps",
        bind="query-params",
        help="Number of full-batch steps.",
    )
    more = slice_ui(cols)
    return {
        "init_scales": tuple(scales),
        "restarts": restarts,
        "optimizer": optimizer,
        "lr": lr,
        "steps": steps,
        **more,
    }


def slice_ui(cols: Sequence[Any]) -> dict[str, Any]:
    """The slice around W*: its resolution and radius (column 4)."""
    resolution = cols[3].slider(
        "slice resolution",
        11,
        61,
        DEFAULT.slice_resolution,
        2,
        key="lin_res",
        bind="query-params",
        help="Grid points per axis of the 2-D slice.",
    )
    radius = cols[3].slider(
        "slice radius",
        0.1,
        3.0,
        DEFAULT.slice_radius,
        0.1,
        key="lin_radius",
        bind="query-params",
        help="The slice covers $[-r, r]^2$ in units of the filter-normalised directions.",
    )
    return {
        "slice_resolution": resolution,
        "slice_radius": radius,
    }


def show_result(result: study.Result, method: str) -> None:
    """Metrics, the gamma sweep (with its in-browser marker), and the figures at gamma."""
    if result.message:
        st.warning(result.message)  # which runs diverged or which numbers are not finite
    cols = st.columns(5)
    cols[0].metric(r"$\gamma$", f"{result.gamma:.4g}")
    cols[1].metric(r"$\sigma_{\min}(\tilde Y)$", f"{result.sigma_min:.4g}")
    cols[2].metric(r"primal $P(W_{\mathrm{rec}})$", f"{result.primal:.8g}")
    cols[3].metric(r"dual $D(\Lambda^*)$", f"{result.dual:.8g}")
    cols[4].metric("measured gap $P - D$", f"{result.gap:.2e}")
    if result.gamma <= result.sigma_min:
        st.success(prose(PAGE, "inside"))
    else:
        st.info(prose(PAGE, "outside"))
    show_prose(PAGE, "seeing")

    st.subheader(r"Duality gap across $\gamma$")
    show_figure(cached_figure(figures.gamma_sweep, result), "linear_gamma_sweep")
    caption(
        PAGE,
        "sweep_caption",
        d_min=result.d_min,
        widths=result.widths.tolist(),
        floor=f"10^{{{math.log10(figures.GAP_FLOOR):.0f}}}",
        count=len(result.gammas),
        method=method,
        seconds=f"{result.sweep_seconds:.2f}",
    )

    left, right = st.columns(2)
    with left:
        st.subheader("Singular values")
        show_figure(cached_figure(figures.singular_values, result), "linear_singular_values")
        caption(PAGE, "singular_caption")
    with right:
        st.subheader("Douglas-Rachford")
        show_figure(cached_figure(figures.douglas_rachford, result), "linear_douglas_rachford")
        caption(PAGE, "dr_caption")

    st.subheader("Gradient descent on the non-convex primal")
    show_figure(cached_figure(figures.gradient_descent, result), "linear_gradient_descent")
    caption(PAGE, "gd_caption")
    diverged = int(result.gd_diverged.sum())
    if diverged:
        st.caption(f"{diverged} run(s) diverged: lower the step size.")

    st.subheader("The primal around the recovered optimum")
    show_figure(cached_figure(figures.primal_slice, result), "linear_primal_slice")
    st.caption(
        "Two filter-normalised random directions in weight space (cosine between them "
        f"{result.slice_direction_cosine:.3f})."
    )


settings = current_settings()
st.title("Linear duality")
show_prose(PAGE, "intro")
headline = headline_ui()
with controls("Data and architecture", expanded=True):
    data = data_ui()
with controls("Gradient descent on the primal and the slice"):
    descent = descent_ui()
config = build_config(
    study.Config, **headline, **data, **descent, seed=settings.seed, device=settings.device
)
result = run_study(study, config)
if result is not None:
    show_result(result, headline["method"])
with st.expander("The theorem"):
    show_prose(PAGE, "theorem")
