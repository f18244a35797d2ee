"""Headline sliders, server-side: how long a page takes to answer when a teacher moves one.

Each headline control (gamma on Linear duality; I and the grid on Branches; m and H on Width;
beta on Shallow ReLU; range and resolution in the Lab) is moved through several values with
Streamlit's AppTest, and every script run is timed; p50 and p95 per control are printed for two
checkouts in the same run:

    before  a `git worktree` of ``--before`` (default: 6e3bcc6, the commit before issue 13's
            change: no gamma split, no trained-model cache, no ladder presets, no frames)
    after   this checkout

Each side runs in its own process (fresh caches, its own imports), one after the other. Values
include ladder rungs (precomputed after the change), values off the ladder (the first of them
pays what the others share, e.g. a training; in the Lab none: the presets store their training,
which the page restores while it shows the first preset), and a return to a value already seen.
Browser rendering is not included (the frames of the Figure-2 grid and of the gamma marker
answer in the browser with no script run at all; see tests/test_browser.py). In the Lab, a range
off the stored presets is answered by a run without the curvature map (surface, slices, the
centre's evidence): the map is computed after the measured run, starting once the value has
rested a second (the page's fragment polls for it; AppTest does not run that timer), and is not
in these times.

    python benchmarks/sliders.py [--before REV] [--only linear_duality]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.app_server import ROOT, worktree

DEFAULT_BEFORE = "6e3bcc6"

# (page file, widget kind, key, values moved to in order)
CONTROLS: list[tuple[str, str, str, list]] = [
    ("views/linear_duality.py", "slider", "lin_gamma", [0.25, 1.0, 1.5, 2.0, 0.3, 0.35, 0.25]),
    ("views/branches.py", "select_slider", "branches_shown", [8, 16, 32, 2, 16]),
    ("views/branches.py", "select_slider", "branches_largest", [16, 32, 4, 1, 32]),
    ("views/width.py", "slider", "width_m", [64, 512, 1024, 2048, 128, 1024]),
    ("views/width.py", "slider", "width_depth", [2, 6, 12, 4, 6]),
    ("views/shallow_relu.py", "select_slider", "shallow_relu_beta", [0.005, 0.1, 1.0, 0.05, 0.1]),
    ("views/landscape_lab.py", "slider", "landscape_lab_span", [0.5, 2.0, 3.0, 1.7, 1.3, 0.5]),
    ("views/landscape_lab.py", "slider", "landscape_lab_resolution", [11, 51, 101, 45, 35, 51]),
]


def measure(root: Path, only: str) -> dict[str, list[float]]:
    """Seconds per script run after each move, per control key, for the app under ``root``."""
    sys.path.insert(0, str(root))
    os.chdir(root)
    from streamlit.testing.v1 import AppTest

    from landscape.server.threads import configure_threads
    from ui.runner import clear_cache

    configure_threads()
    times: dict[str, list[float]] = {}
    for path, kind, key, values in CONTROLS:
        if only and only not in path:
            continue
        clear_cache()
        at = AppTest.from_file(str(root / "app.py"), default_timeout=900)
        at.run()
        at.switch_page(path)
        at.run()
        for value in values:
            widget = getattr(at, kind)(key=key)
            widget.set_value(value)
            started = time.perf_counter()
            at.run()
            seconds = time.perf_counter() - started
            if at.exception:
                raise RuntimeError(f"{key}={value}: {at.exception[0].value}")
            times.setdefault(key, []).append(seconds)
            print(f"  {key} = {value}: {seconds:.2f} s", file=sys.stderr, flush=True)
    return times


def run_side(root: Path, only: str) -> dict[str, list[float]]:
    """`measure` in a child process, so that each side has its own imports and caches."""
    env = {**os.environ, "CONVEXIFY_TORCH_THREADS": os.environ.get("CONVEXIFY_TORCH_THREADS", "1")}
    command = [sys.executable, str(Path(__file__).resolve()), "--measure", str(root)]
    if only:
        command += ["--only", only]
    done = subprocess.run(command, env=env, cwd=root, check=True, stdout=subprocess.PIPE, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default=DEFAULT_BEFORE, help="git revision of 'before'")
    parser.add_argument("--only", default="", help="only pages whose path contains this")
    parser.add_argument("--measure", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(Path(args.measure), args.only)))
        return
    with worktree(args.before) as before_root:
        print(f"before: {args.before}", file=sys.stderr)
        before = run_side(before_root, args.only)
    print("after: this checkout", file=sys.stderr)
    after = run_side(ROOT, args.only)
    print(
        f"{'control':28} {'moves':>5}  {'before p50':>10} {'p95':>7}  {'after p50':>9} {'p95':>7}"
    )
    for key in after:
        b, a = before.get(key, []), after[key]
        row = f"{key:28} {len(a):>5}  "
        row += f"{np.percentile(b, 50):>9.2f}s {np.percentile(b, 95):>6.2f}s  " if b else " " * 20
        row += f"{np.percentile(a, 50):>8.2f}s {np.percentile(a, 95):>6.2f}s"
        print(row)
    print(
        f"(server-side seconds per script run; median of all moves: "
        f"{statistics.median(t for v in after.values() for t in v):.2f} s after)"
    )


if __name__ == "__main__":
    main()
