"""Command line: ``python -m landscape precompute [study ...]`` writes the presets.

Presets are computed (`landscape.precompute`) under pinned numerics (`landscape.server.numerics`):
when the environment does not hold them, the command runs itself again in a child process that
does, before torch or NumPy is imported.
"""

from __future__ import annotations

import argparse
import subprocess
import sys

from landscape.server import numerics


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m landscape")
    commands = parser.add_subparsers(dest="command", required=True)
    precompute_command = commands.add_parser(
        "precompute", help="run each study's headline configurations into assets/presets/"
    )
    precompute_command.add_argument(
        "studies", nargs="*", help="study modules (default: every study with PRESETS)"
    )
    args = parser.parse_args(argv)
    if not numerics.is_pinned():  # torch and NumPy read it when they load: a child process
        done = subprocess.run(
            [sys.executable, "-m", "landscape", *(sys.argv[1:] if argv is None else argv)],
            env=numerics.pinned_environment(),
        )
        sys.exit(done.returncode)
    from landscape import precompute, studies  # imports torch: only under the pinned environment
    from landscape.files import presets
    from landscape.server.threads import configure_threads

    configure_threads()
    if args.command == "precompute":
        written = precompute.precompute(args.studies or studies.study_modules())
        print(f"wrote {len(written)} presets to {presets.PRESET_DIR}")


if __name__ == "__main__":
    main()
