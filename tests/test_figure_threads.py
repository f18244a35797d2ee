"""Figures built by several sessions at once: Streamlit runs each session's script in a thread of
its own, and Plotly's figure construction is not thread-safe (its validator cache fills a shared
parameter dict in place while making a validator; ``InfoArrayValidator`` renames shared item
validators while it checks a value). Builders are serialised (landscape.engine.plotting); these
tests build figures from many threads at once, on a cold validator cache, and watch Plotly's
unsafe sections: two threads are never inside them together, nothing raises, and every figure
equals the one built alone. And a study importing pandas for the first time (in the run queue's
thread) while a session draws a figure: Plotly reads pandas from ``sys.modules`` half imported.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from _plotly_utils import basevalidators
from plotly.validator_cache import ValidatorCache

from landscape.files import presets
from landscape.studies.branches import branches
from landscape.studies.branches import figures as branch_figures
from landscape.studies.lab import figures as lab_figures
from landscape.studies.lab import lab
from landscape.studies.width import figures as width_figures
from landscape.studies.width import width
from ui import export

THREADS = 8


class Occupancy:
    """How many threads are inside Plotly's thread-unsafe sections now, and at most."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.now = 0
        self.most = 0

    def __enter__(self) -> None:
        with self._lock:
            self.now += 1
            self.most = max(self.most, self.now)

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self.now -= 1


@pytest.fixture
def watched(monkeypatch: pytest.MonkeyPatch) -> Iterator[Occupancy]:
    """A cold validator cache (restored afterwards) and Plotly's unsafe sections instrumented;
    a validator made from scratch sleeps a little, so that unserialised threads do overlap."""
    occupancy = Occupancy()
    saved = dict(ValidatorCache._cache)
    ValidatorCache._cache.clear()
    make = ValidatorCache.get_validator
    rename = basevalidators.InfoArrayValidator.validate_element_with_indexed_name

    def get_validator(parent_path: str, prop_name: str) -> Any:
        with occupancy:
            if (parent_path, prop_name) not in ValidatorCache._cache:
                time.sleep(0.002)
            return make(parent_path, prop_name)

    def renaming(self: Any, val: Any, validator: Any, inds: Any) -> Any:
        with occupancy:
            time.sleep(0)  # let another thread run here if it can
            return rename(self, val, validator, inds)

    monkeypatch.setattr(ValidatorCache, "get_validator", staticmethod(get_validator))
    monkeypatch.setattr(
        basevalidators.InfoArrayValidator, "validate_element_with_indexed_name", renaming
    )
    yield occupancy
    ValidatorCache._cache.clear()
    ValidatorCache._cache.update(saved)


def at_once(build: Callable[[], Any]) -> tuple[list[dict], list[BaseException]]:
    """``build()`` in `THREADS` threads released together: each figure's dict, and errors."""
    barrier = threading.Barrier(THREADS)
    figures: list[dict] = []
    errors: list[BaseException] = []

    def work() -> None:
        barrier.wait()
        try:
            figures.append(build().to_dict())
        except BaseException as error:  # noqa: BLE001 - collected and asserted below
            errors.append(error)

    threads = [threading.Thread(target=work) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return figures, errors


def preset(module: Any) -> Any:
    result = presets.lookup(module.__name__, module.Config())
    assert result is not None, f"no preset for {module.__name__}'s defaults"
    return result


LAB_BUILDERS = [
    lambda r: lab_figures.lab_surface(r, False),  # make_subplots with a 3-D scene
    lambda r: lab_figures.lab_surface(r, True),
    lab_figures.lab_slices,
    lab_figures.lab_training,
]


@pytest.mark.slow
@pytest.mark.parametrize("index", range(len(LAB_BUILDERS)))
def test_lab_figures_built_by_many_sessions_at_once(watched: Occupancy, index: int) -> None:
    result = preset(lab)
    build = LAB_BUILDERS[index]
    figures, errors = at_once(lambda: build(result))
    assert not errors, errors[0]
    assert watched.most == 1, f"{watched.most} threads inside Plotly's unsafe sections at once"
    alone = build(result).to_dict()
    assert len(figures) == THREADS and all(figure == alone for figure in figures)


@pytest.mark.parametrize(
    ("module", "build"),
    [
        (branches, lambda r: branch_figures.surface_grid(r, "heatmap")),  # many subplots
        (width, width_figures.convergence),
    ],
)
def test_cached_figures_of_other_studies_built_at_once(
    watched: Occupancy, module: Any, build: Callable[[Any], Any]
) -> None:
    """Pages build the other studies' figures through `ui.export.cached_figure`, which builds
    under the same lock (and once: the threads then share the figure)."""
    result = preset(module)
    export.clear_figures()
    figures, errors = at_once(lambda: export.cached_figure(build, result))
    assert not errors, errors[0]
    assert watched.most == 1, f"{watched.most} threads inside Plotly's unsafe sections at once"
    assert len(figures) == THREADS and all(figure == figures[0] for figure in figures)


FIRST_IMPORT_WHILE_DRAWING = textwrap.dedent(
    """
    import threading, time, traceback
    import numpy as np
    from landscape.studies.lab import figures  # what a page imports before drawing

    errors, drawn, stop = [], [0], threading.Event()
    x = np.linspace(-1.0, 1.0, 9)
    z = np.add.outer(x**2, x**2)

    def draw():  # a session: build the Lab's figure and serialise it for its chart
        while not stop.is_set():
            try:
                figures.surface_and_contour(x, x, z).to_json()
                drawn[0] += 1
            except Exception:
                errors.append(traceback.format_exc(limit=3))
                return

    session = threading.Thread(target=draw)
    session.start()
    time.sleep(0.2)
    import pandas  # a study reading data imports it for the first time, in another thread
    import PIL.Image
    stop.set()
    session.join()
    print(drawn[0], len(errors))
    print(errors[0] if errors else "")
    """
)


@pytest.mark.slow
def test_a_first_import_of_pandas_elsewhere_never_breaks_a_figure() -> None:
    """In a fresh interpreter (pandas not yet imported): one thread draws figures in a loop
    while another imports pandas and PIL for the first time; every drawing succeeds."""
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [sys.executable, "-c", FIRST_IMPORT_WHILE_DRAWING],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    counts, _, first_error = done.stdout.partition("\n")
    drawn, errors = map(int, counts.split())
    assert drawn > 0
    assert errors == 0, first_error
