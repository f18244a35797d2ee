"""The list of pages: the router builds the navigation from it and Home links to every study.

A new study adds one `PageEntry` line here.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PageEntry:
    """One page of the dashboard."""

    path: str  # file under views/
    title: str
    icon: str
    url_path: str
    summary: str  # one or two sentences for Home; empty for Home itself


HOME = PageEntry("views/home.py", "Home", ":material/home:", "home", "")

STUDIES: list[PageEntry] = [
    PageEntry(
        "views/linear_duality.py",
        "Linear duality",
        ":material/functions:",
        "linear_duality",
        "Deep linear networks with Schatten-norm regularisation have a convex dual with zero "
        "duality gap (seed section 2.1): solve it three ways, recover the weights, measure the "
        "gap as gamma moves, and watch gradient descent on the non-convex primal.",
    ),
    PageEntry(
        "views/branches.py",
        "Branches",
        ":material/account_tree:",
        "branches",
        "Networks of I parallel branches (seed section 3.2): loss surfaces against I as in the "
        "seed's Figure 2, their non-convexity measured three ways, and the duality gap measured "
        "against an exact convex program.",
    ),
    PageEntry(
        "views/beyond.py",
        "Beyond the seed",
        ":material/explore:",
        "beyond",
        "The seed's three open questions (section 4) answered with measurements: what each "
        "parameter buys at equal budgets, ResNets against matched multi-branch networks, and "
        "Gram eigenvalues against depth for more architectures; plus exact convex programs of "
        "three-layer parallel ReLU networks and two-layer CNNs.",
    ),
    PageEntry(
        "views/landscape_lab.py",
        "Landscape Lab",
        ":material/landscape:",
        "landscape_lab",
        "Train a built-in or uploaded model, then draw its loss surface (random, PCA or "
        "three-model planes), 1-D slices, interpolation and Hessian curvature map, evaluated many "
        "grid points per pass; download the surface.",
    ),
    PageEntry(
        "views/width.py",
        "Width",
        ":material/width:",
        "width",
        "Du et al.'s infinite-width Gram matrices K^(H) (seed section 3.1): train fully connected "
        "and ResNet networks at the theorem's step, measure the loss against its linear-rate "
        "bound, the weight movement and the Gram drift against width, and FC against ResNet "
        "across depth.",
    ),
    PageEntry(
        "views/shallow_relu.py",
        "Shallow ReLU",
        ":material/neurology:",
        "shallow_relu",
        "A single ReLU neuron trained on a convex relaxation of its loss, and two-layer ReLU "
        "networks solved exactly as a convex program over activation patterns (seed section "
        "2.2): the global optimum, the critical width m*, and how far ordinary training stays.",
    ),
]
