"""Attention Studio: `python main.py` opens the desktop app; `python main.py COMMAND` works headless.

The command tree is engine.cli's (translate, evaluate, train, export); this module adds `gui`, the
default when no command is given, and imports Qt only when the app really starts.
"""

from __future__ import annotations

import argparse
import os
import sys

from engine import cli
from engine.study import SUFFIX as STUDY_SUFFIX


def run_gui(args: argparse.Namespace) -> int:
    from gui.platform_check import platform_problem  # no Qt: it runs before Qt could abort

    if args.screenshot is not None or args.save_study is not None:
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
    return run(args.model, args.device, sys.argv[:1], args.text, args.screenshot, size, args.study, args.save_study)


def build_parser() -> argparse.ArgumentParser:
    return cli.build_parser(prog="attention-studio", gui=run_gui)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0].endswith(STUDY_SUFFIX):  # `python main.py FILE.study` opens it
        argv = ["--study", *argv]
    return cli.run(build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
