"""The heavy libraries a server imports ahead of time (`landscape.server.libraries`): the
studies import them on first use, and after `import_heavy_libraries` a fresh run of those
studies imports next to nothing more."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from landscape.server.libraries import HEAVY_LIBRARIES

ROOT = Path(__file__).resolve().parents[1]
OWN_PACKAGES = ("landscape", "solvers")

#: In a fresh interpreter: the studies' modules imported (as the pages import them), the heavy
#: libraries imported or not (argv[1]), then one fresh (non-preset) run of each study that
#: imports them lazily. Prints which heavy libraries the study modules had imported, and the
#: modules the runs imported, outside this project's own packages.
FRESH_RUNS = textwrap.dedent(
    """
    import json, sys
    from landscape.server.libraries import HEAVY_LIBRARIES, import_heavy_libraries
    from landscape.studies.branches import branches
    from landscape.studies.shallow_relu import two_layer

    at_import = [name for name in HEAVY_LIBRARIES if name in sys.modules]
    if sys.argv[1] == "preload":
        import_heavy_libraries()
    before = set(sys.modules)
    two_layer.run(two_layer.Config(n=8, restarts=1, width_count=2, steps=20, grid=11, seed=5))
    small = dict(n_samples=60, epochs=2, resolution=5, seeds=1, seed=5)
    branches.run(branches.Config(branch_counts=(1, 2), **small))
    new = sorted(set(sys.modules) - before)
    foreign = [m for m in new if not m.startswith({own})]
    print(json.dumps({{"at_import": at_import, "imported_by_runs": foreign}}))
    """
).format(own=OWN_PACKAGES)


def fresh_runs(preload: bool) -> dict[str, list[str]]:
    out = subprocess.run(
        [sys.executable, "-c", FRESH_RUNS, "preload" if preload else "lazy"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


@pytest.mark.slow
def test_the_studies_import_the_heavy_libraries_on_first_use() -> None:
    lazy = fresh_runs(preload=False)
    assert lazy["at_import"] == [], "a study module imports a heavy library at import time"
    imported = set(lazy["imported_by_runs"])
    assert set(HEAVY_LIBRARIES) <= imported
    assert len(imported) > 1000  # what a server would import in the middle of a class


@pytest.mark.slow
def test_after_the_preload_fresh_runs_import_next_to_nothing() -> None:
    imported = fresh_runs(preload=True)["imported_by_runs"]
    assert len(imported) < 20, imported
