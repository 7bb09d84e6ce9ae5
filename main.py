"""Attention Studio: `python main.py` opens the desktop app; `python main.py COMMAND` works headless.

The command tree is engine.cli's (translate, evaluate, train, export); this module adds `gui`, the
default when no command is given, and imports Qt only when the app really starts.
"""

from __future__ import annotations

import argparse
import os
import sys

from engine import cli


def run_gui(args: argparse.Namespace) -> int:
    from gui.platform_check import platform_problem  # no Qt: it runs before Qt could abort

    if args.screenshot is not None:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # no display needed
    problem = platform_problem()
    if problem is not None:
        print(f"error: {problem}", file=sys.stderr)
        return 1
    from gui.app import run  # Qt is imported only when the app really starts (not for --help)
    from gui.screenshot import parse_size

    try:
        size = parse_size(args.size)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return run(args.model, args.device, sys.argv[:1], args.text, args.screenshot, size)


def build_parser() -> argparse.ArgumentParser:
    return cli.build_parser(prog="attention-studio", gui=run_gui)


def main(argv: list[str] | None = None) -> int:
    return cli.run(build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
