"""Command line: ``python -m landscape precompute [study ...]`` writes the presets."""

from __future__ import annotations

import argparse

from landscape import studies
from landscape.engine import presets
from landscape.engine.device import configure_threads


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m landscape")
    commands = parser.add_subparsers(dest="command", required=True)
    precompute = commands.add_parser(
        "precompute", help="run each study's headline configurations into assets/presets/"
    )
    precompute.add_argument(
        "studies", nargs="*", help="study modules (default: every study with PRESETS)"
    )
    args = parser.parse_args(argv)
    configure_threads()
    if args.command == "precompute":
        written = presets.precompute(args.studies or studies.study_modules())
        print(f"wrote {len(written)} presets to {presets.PRESET_DIR}")


if __name__ == "__main__":
    main()
