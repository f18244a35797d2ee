"""The heavy libraries that computations import on first use, imported ahead of time by a server.

The studies import their heavy libraries where they use them, so that the command line and the
tests pay only for what they run:

- ``cvxpy``: the convex programs (Linear duality's cvxpy solve, the two-layer ReLU program);
- ``torch._dynamo``: imported (with sympy) by ``torch.optim``'s first optimiser, whose
  constructor is wrapped to keep the compiler out;
- ``sklearn.model_selection``: Branches' split of its data, and with it most of scikit-learn;
- ``sklearn.datasets``: the digits, iris and moons data sets (with ``scipy.io``).

Together they take seconds and over a hundred MiB. In a server that first use would fall in the
middle of a lecture: a student's first fresh answer would wait for the imports, and the memory
would rise long after it looked settled. `import_heavy_libraries` imports them once, at the
server's first page, before any student asks.
"""

from __future__ import annotations

import importlib
import sys
from functools import cache

HEAVY_LIBRARIES = ("torch._dynamo", "cvxpy", "sklearn.model_selection", "sklearn.datasets")


@cache
def import_heavy_libraries() -> tuple[str, ...]:
    """Import `HEAVY_LIBRARIES` (once per process); the names imported here, not before."""
    missing = tuple(name for name in HEAVY_LIBRARIES if name not in sys.modules)
    for name in missing:
        importlib.import_module(name)
    return missing
