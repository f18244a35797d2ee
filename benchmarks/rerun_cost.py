"""Benchmark: the server's CPU per script run of a page that shows an answer already computed.

A classroom's reruns are mostly preset and ladder values (and answers another student already
asked for): no computation, only the page itself: widgets, preset lookup, figures built and
serialised, export buttons. Each study page is opened with its defaults (a preset) through
Streamlit's AppTest; after a warm-up run, ``--runs`` more script runs are timed in CPU seconds
of this process (``time.process_time``: what the server's cores pay, whatever the machine's
load), and the median per page is printed. ``--profile`` adds the functions with the most
cumulative time in one run (cProfile).

    python benchmarks/rerun_cost.py [--runs 5] [--profile 12] [--only width]

``--json FILE`` writes the medians, so that two checkouts compare (``--compare FILE`` prints the
ratio of a saved run's medians to this run's).

``--beside`` asks whether a heavy run blocks other sessions' preset answers: for each of a few
fresh runs (a cvxpy solve, which holds the GIL in Python; torch training, which releases it),
the run is started in the server's run queue and the Width page's preset rerun is timed in wall
seconds while it computes, against the same rerun with nothing else running.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import json
import pstats
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


@contextlib.contextmanager
def profiled_script_thread(profiler: cProfile.Profile) -> Iterator[None]:
    """Profile the script runs started inside the block (each runs in a thread of its own)."""
    from streamlit.runtime.scriptrunner import script_runner

    original = script_runner.ScriptRunner._run_script_thread

    def run_profiled(self: Any) -> None:
        profiler.enable()
        try:
            original(self)
        finally:
            profiler.disable()

    script_runner.ScriptRunner._run_script_thread = run_profiled  # type: ignore[method-assign]
    try:
        yield
    finally:
        script_runner.ScriptRunner._run_script_thread = original  # type: ignore[method-assign]


def rerun_seconds(path: str, runs: int, profile: int) -> tuple[list[float], str]:
    """CPU seconds of ``runs`` script runs of the page at ``path`` (after one warm-up run),
    and the cProfile summary of one more run when ``profile`` > 0."""
    from streamlit.runtime.scriptrunner.script_cache import ScriptCache
    from streamlit.testing.v1 import AppTest, app_test, local_script_runner

    # AppTest compiles the scripts again on every run (a new ScriptCache each time); a server
    # compiles each once: share one cache, so that only what a server pays is timed
    shared = ScriptCache()
    app_test.ScriptCache = local_script_runner.ScriptCache = lambda: shared  # type: ignore[attr-defined]
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=900)
    at.run()
    at.switch_page(path)
    at.run()  # warm-up: loads the preset, builds (and caches) what the page caches
    if at.exception:
        raise RuntimeError(f"{path}: {at.exception[0].value}")
    seconds = []
    for _ in range(runs):
        started = time.process_time()
        at.run()
        seconds.append(time.process_time() - started)
    summary = ""
    if profile:
        profiler = cProfile.Profile()
        with profiled_script_thread(profiler):
            at.run()
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(profile)
        summary = text.getvalue()
    return seconds, summary


def beside_heavy_runs(runs: int) -> None:
    """Wall seconds of a preset rerun while each heavy run computes, against an idle server."""
    import dataclasses

    from streamlit.testing.v1 import AppTest

    from landscape.server import serving
    from landscape.studies.lab import lab
    from landscape.studies.shallow_relu import two_layer
    from landscape.studies.width import width
    from ui import runner

    heavy = [
        ("two-layer ReLU, cvxpy (Python)", two_layer, {"beta": 0.0123}),
        ("width, torch training", width, {"width": 200}),
        ("Lab surface, torch", lab, {"resolution": 33}),
    ]
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=900)
    at.run()
    at.switch_page("views/width.py")
    at.run()

    def walls() -> list[float]:
        seconds = []
        for _ in range(runs):
            started = time.perf_counter()
            at.run()
            seconds.append(time.perf_counter() - started)
        return seconds

    idle = statistics.median(walls())
    print(f"preset rerun of the Width page, idle server: {idle:.3f} s (median of {runs})")
    for label, module, fields in heavy:
        config = dataclasses.replace(module.Config(), **fields)
        ticket = runner.run_queue().submit(
            (module.__name__, config), lambda progress, m=module, c=config: m.run(c, progress)
        )
        while ticket.state == serving.QUEUED:
            time.sleep(0.01)
        busy = []
        while not ticket.wait(0):
            busy.extend(walls())
        ticket.release()
        shown = statistics.median(busy) if busy else float("nan")
        print(
            f"  beside {label}: {shown:.3f} s (median of {len(busy)} reruns while it ran; "
            f"{shown / idle:.1f}x idle)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="timed script runs per page")
    parser.add_argument("--profile", type=int, default=0, help="cProfile: top N functions")
    parser.add_argument("--only", default="", help="pages whose path contains this")
    parser.add_argument("--json", default="", help="write the medians to this file")
    parser.add_argument("--compare", default="", help="a --json file of another checkout")
    parser.add_argument(
        "--beside", action="store_true", help="preset reruns while heavy runs compute"
    )
    args = parser.parse_args()
    if args.beside:
        from landscape.server.threads import configure_threads

        configure_threads()
        beside_heavy_runs(args.runs)
        return

    from landscape.server.threads import configure_threads
    from ui.catalogue import STUDIES

    configure_threads()
    medians: dict[str, float] = {}
    for entry in STUDIES:
        if args.only and args.only not in entry.path:
            continue
        seconds, summary = rerun_seconds(entry.path, args.runs, args.profile)
        medians[entry.url_path] = statistics.median(seconds)
        spread = ", ".join(f"{s:.3f}" for s in seconds)
        print(f"{entry.url_path:16} median {medians[entry.url_path]:.3f} CPU-s ({spread})")
        if summary:
            print(summary)
    before = json.loads(Path(args.compare).read_text()) if args.compare else {}
    if before:
        print(f"\n{'page':16}{'before':>10}{'after':>10}{'ratio':>8}")
        for name, after in medians.items():
            if name in before:
                ratio = before[name] / after if after > 0 else float("inf")
                print(f"{name:16}{before[name]:10.3f}{after:10.3f}{ratio:8.1f}x")
    if args.json:
        Path(args.json).write_text(json.dumps(medians, indent=1))


if __name__ == "__main__":
    main()
