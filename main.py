"""Attention Studio: `python main.py` opens the desktop app; `python main.py COMMAND` works headless.

The command tree is engine.cli's (translate, evaluate, train, export); this module adds `gui`, the
default when no command is given, and imports Qt only when the app really starts.
"""

from __future__ import annotations

import argparse
import sys

from engine import cli


def run_gui(args: argparse.Namespace) -> int:
    from gui.app import run  # Qt is imported only when the app really starts (not for --help)

    return run(model=args.model, device=args.device, argv=sys.argv[:1])


def build_parser() -> argparse.ArgumentParser:
    return cli.build_parser(prog="attention-studio", gui=run_gui)


def main(argv: list[str] | None = None) -> int:
    return cli.run(build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
