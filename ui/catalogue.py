"""The list of pages, in the seed's order: the router builds the navigation from it (one section
per part of the seed), Home links to every study and lecture mode walks through them as slides.

A new study adds one `PageEntry` line here, naming its section.
"""

from __future__ import annotations

from dataclasses import dataclass

SECTIONS: tuple[str, ...] = ("The objective", "The architecture", "Beyond the seed", "The tools")


@dataclass(frozen=True)
class PageEntry:
    """One page of the dashboard."""

    path: str  # file under views/
    title: str
    icon: str
    url_path: str
    summary: str  # one or two sentences for Home; empty for Home itself
    section: str = ""  # one of SECTIONS; empty for Home
    seed_section: str = ""  # the seed's section number, e.g. "2.1"; empty for the tools


HOME = PageEntry("views/home.py", "Home", ":material/home:", "home", "")

STUDIES: list[PageEntry] = [
    PageEntry(
        "views/linear_duality.py",
        "Linear duality",
        ":material/functions:",
        "linear_duality",
        "Deep linear networks with Schatten-norm regularisation have a convex dual with zero "
        "duality gap (seed section 2.1): solve it three ways, recover the weights, measure the "
        r"gap as $\gamma$ moves, and watch gradient descent on the non-convex primal.",
        section="The objective",
        seed_section="2.1",
    ),
    PageEntry(
        "views/shallow_relu.py",
        "Shallow ReLU",
        ":material/neurology:",
        "shallow_relu",
        "A single ReLU neuron trained on a convex relaxation of its loss, and two-layer ReLU "
        "networks solved exactly as a convex program over activation patterns (seed section "
        r"2.2): the global optimum, the critical width $m^*$, and how far ordinary training stays.",
        section="The objective",
        seed_section="2.2",
    ),
    PageEntry(
        "views/width.py",
        "Width",
        ":material/width:",
        "width",
        r"Du et al.'s infinite-width Gram matrices $K^{(H)}$ (seed section 3.1): train fully "
        "connected and ResNet networks at the theorem's step, measure the loss against its "
        "linear-rate bound, the weight movement and the Gram drift against width, and FC against "
        "ResNet across depth.",
        section="The architecture",
        seed_section="3.1",
    ),
    PageEntry(
        "views/branches.py",
        "Branches",
        ":material/account_tree:",
        "branches",
        r"Networks of $I$ parallel branches (seed section 3.2): loss surfaces against $I$ as in "
        "the seed's Figure 2, their non-convexity measured three ways, and the duality gap "
        "measured against an exact convex program.",
        section="The architecture",
        seed_section="3.2",
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
        section="Beyond the seed",
        seed_section="4",
    ),
    PageEntry(
        "views/connectivity.py",
        "Connectivity",
        ":material/route:",
        "connectivity",
        "Are the minima one valley? Two networks trained from different seeds, the loss barrier "
        "on the line between them before and after aligning their hidden units by a "
        "permutation, a trained Bezier curve around the barrier, and the barrier against width "
        "and branches.",
        section="Beyond the seed",
    ),
    PageEntry(
        "views/landscape_lab.py",
        "Landscape Lab",
        ":material/landscape:",
        "landscape_lab",
        "Train a built-in or uploaded model, then draw its loss surface (random, PCA or "
        "three-model planes), 1-D slices, interpolation and Hessian curvature map, evaluated many "
        "grid points per pass; download the surface.",
        section="The tools",
    ),
]


def by_section() -> dict[str, list[PageEntry]]:
    """The studies grouped under `SECTIONS`, in order (sections without a page are left out)."""
    unknown = {entry.section for entry in STUDIES} - set(SECTIONS)
    if unknown:
        raise ValueError(f"section must be one of {SECTIONS}, got {sorted(unknown)}")
    groups = {name: [e for e in STUDIES if e.section == name] for name in SECTIONS}
    return {name: entries for name, entries in groups.items() if entries}


def slide_order() -> list[PageEntry]:
    """Home, then the studies section by section: the order of lecture mode's slides."""
    return [HOME, *(entry for entries in by_section().values() for entry in entries)]
