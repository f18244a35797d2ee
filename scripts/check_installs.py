"""Run the README's set-up and test commands in fresh virtual environments, one per Python.

For each Python (pyenv's 3.11, 3.12 and 3.13 by default) this clones the current commit into a
temporary folder, makes a fresh virtual environment there, runs the README's install command
``python -m pip install -c constraints.txt -e ".[dev]"`` and its test command
``python -m pytest`` (plus any ``--pytest-args``), and prints one Markdown table row per Python:
install time, the torch and NumPy that pip chose (and whether torch is a CUDA build), the size
of the environment, the tests' summary and pass or fail; the logs hold every command's output
and ``pip freeze``. Standard library only; commit first (uncommitted changes are not in the
clone).

    python scripts/check_installs.py                          # 3.11, 3.12, 3.13, whole suite
    python scripts/check_installs.py --python 3.12 3.13 --pytest-args='-m "not browser"'
    python scripts/check_installs.py --python /usr/bin/python3.12 --install-only
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYENV_VERSIONS = Path(os.environ.get("PYENV_ROOT", str(Path.home() / ".pyenv"))) / "versions"
DEFAULT_PYTHONS = ("3.11", "3.12", "3.13")
INSTALL = ["-m", "pip", "install", "-q", "-c", "constraints.txt", "-e", ".[dev]"]
#: What the run must not inherit from the caller's shell: a PYTHONPATH would import the
#: caller's checkout instead of the clone; a virtual environment's markers confuse pip.
DROPPED = ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME", "CONDA_PREFIX")
VERSION_PROBE = (
    "import sys, numpy, torch; "
    "print(sys.version.split()[0], torch.__version__, torch.version.cuda or '-', numpy.__version__)"
)


@dataclasses.dataclass
class Outcome:
    """One Python's row of the table."""

    python: str
    install: str = "not run"
    install_seconds: float = 0.0
    torch: str = "-"
    cuda: str = "-"
    numpy: str = "-"
    size: str = "-"
    tests: str = "not run"
    test_seconds: float = 0.0
    passed: bool = False


def find_python(wanted: str) -> Path:
    """An interpreter from a version (``3.12``: pyenv's newest 3.12.x) or a path."""
    if os.sep in wanted:
        path = Path(wanted)
        if not path.exists():
            raise SystemExit(f"--python {wanted}: no such file")
        return path
    found = sorted(
        (p for p in PYENV_VERSIONS.glob(f"{wanted}.*") if re.fullmatch(r"\d+\.\d+\.\d+", p.name)),
        key=lambda p: tuple(int(part) for part in p.name.split(".")),
    )
    if not found:
        raise SystemExit(f"--python {wanted}: not under {PYENV_VERSIONS}; give a path instead")
    return found[-1] / "bin" / "python"


def clean_environment() -> dict[str, str]:
    """The caller's environment without what would leak the caller's installation in."""
    return {name: value for name, value in os.environ.items() if name not in DROPPED}


def run(command: list[str], cwd: Path, log: Path, timeout: float) -> tuple[int, float, str]:
    """``command`` in ``cwd``, its output appended to ``log``: exit status, seconds, output."""
    start = time.monotonic()
    try:
        done = subprocess.run(
            command,
            cwd=cwd,
            env=clean_environment(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        status, output = done.returncode, done.stdout + done.stderr
    except subprocess.TimeoutExpired as error:
        status = 124
        output = f"{error.stdout or ''}{error.stderr or ''}\ntimed out after {timeout:.0f} s"
    with log.open("a") as stream:
        stream.write(f"$ {shlex.join(command)}\n{output}\n")
    return status, time.monotonic() - start, output


def clone(workdir: Path, commit: str) -> Path:
    """A fresh clone of this repository at ``commit`` under ``workdir``."""
    target = workdir / "convexify"
    subprocess.run(["git", "clone", "-q", "--no-checkout", str(ROOT), str(target)], check=True)
    subprocess.run(["git", "-C", str(target), "checkout", "-q", "--detach", commit], check=True)
    return target


def pytest_summary(output: str) -> str:
    """pytest's last summary line (``12 passed, 1 skipped in 3.4s``) without the timing."""
    found = r"\d+ (passed|failed|error|errors|skipped|deselected)\b.* in \d"
    lines = [line.strip("= ") for line in output.splitlines() if re.search(found, line)]
    return re.sub(r" in [\d.]+s.*$", "", lines[-1]) if lines else output.strip()[-200:]


def check(python: Path, commit: str, options: argparse.Namespace, logs: Path) -> Outcome:
    """Clone, make a virtual environment, install, test: one Python's `Outcome`."""
    outcome = Outcome(python=str(python))
    log = logs / f"{python.parent.parent.name}.log"
    with tempfile.TemporaryDirectory(prefix="convexify-install-") as tmp:
        source = clone(Path(tmp), commit)
        venv = Path(tmp) / "venv"
        subprocess.run([str(python), "-m", "venv", str(venv)], check=True)
        interpreter = str(venv / "bin" / "python")
        status, seconds, output = run([interpreter, *INSTALL], source, log, options.timeout)
        outcome.install_seconds = seconds
        outcome.install = "ok" if status == 0 else f"failed ({status})"
        if status != 0:
            outcome.tests = output.strip().splitlines()[-1][:160] if output.strip() else "-"
            return outcome
        run([interpreter, "-m", "pip", "freeze", "--exclude-editable"], source, log, 600)
        status, _, output = run([interpreter, "-c", VERSION_PROBE], source, log, 600)
        if status == 0:
            outcome.python, outcome.torch, outcome.cuda, outcome.numpy = output.split()[:4]
        outcome.size = subprocess.run(
            ["du", "-sh", str(venv)], capture_output=True, text=True
        ).stdout.split("\t")[0]
        if options.install_only:
            outcome.passed, outcome.tests = True, "not run (--install-only)"
            return outcome
        command = [interpreter, "-m", "pytest", "-q", "-p", "no:cacheprovider", *options.pytest]
        status, seconds, output = run(command, source, log, options.timeout)
        outcome.tests, outcome.test_seconds = pytest_summary(output), seconds
        outcome.passed = status == 0
    return outcome


def _verdict(outcome: Outcome) -> str:
    if not outcome.passed:
        return "FAIL"
    return "installed" if outcome.tests.startswith("not run") else "pass"


def table(outcomes: list[Outcome], pytest_args: list[str]) -> str:
    """The outcomes as a Markdown table."""
    shown = shlex.join(["python", "-m", "pytest", *pytest_args])
    rows = [
        f"| Python | install | torch (CUDA) | NumPy | environment | `{shown}` | result |",
        "|---|---|---|---|---|---|---|",
    ]
    for o in outcomes:
        tests = f"{o.tests} ({o.test_seconds / 60:.1f} min)" if o.test_seconds else o.tests
        rows.append(
            f"| {o.python} | {o.install} ({o.install_seconds:.0f} s) | {o.torch} ({o.cuda}) "
            f"| {o.numpy} | {o.size} | {tests} | {_verdict(o)} |"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--python",
        nargs="+",
        default=list(DEFAULT_PYTHONS),
        help="versions found under pyenv (3.12) or interpreter paths (default: 3.11 3.12 3.13)",
    )
    parser.add_argument(
        "--pytest-args",
        default="",
        help="extra arguments for pytest, one string: --pytest-args='-m \"not browser\"'",
    )
    parser.add_argument("--install-only", action="store_true", help="install, do not test")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per step")
    parser.add_argument(
        "--logs", type=Path, default=Path("check-installs-logs"), help="folder of the full logs"
    )
    options = parser.parse_args(argv)
    options.pytest = shlex.split(options.pytest_args)
    if shutil.which("git") is None:
        raise SystemExit("git is needed to clone the current commit")
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    options.logs.mkdir(parents=True, exist_ok=True)
    outcomes = []
    for wanted in options.python:
        python = find_python(wanted)
        print(f"{python}: installing and testing commit {commit[:10]} ...", flush=True)
        outcomes.append(check(python, commit, options, options.logs))
        print(table(outcomes[-1:], options.pytest), flush=True)
    print(f"\ncommit {commit[:10]}, logs in {options.logs}/\n")
    print(table(outcomes, options.pytest))
    return 0 if all(o.passed for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
