"""The command line: one tree of subcommands for `python main.py …` and `python -m engine …`.

    translate   text or a file through a model          (engine/cli/translate.py)
    evaluate    sacreBLEU and chrF on a TSV test set     (engine/cli/translate.py)
    train       a vocabulary and a model                 (engine/cli/train.py)
    export      figures and trace data, headless         (engine/cli/export.py)
    analyze     which heads matter for one sentence      (engine/cli/analyze.py)
    gui         the desktop app: main.py adds it, the default when no command is given

The command line prints; the library it calls returns values or raises, and logs.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from pathlib import Path

from engine.cli.analyze import add_analyze_parser, run_analyze
from engine.cli.export import add_export_arguments, run_export
from engine.cli.train import add_average_parser, add_train_parser, run_average, run_train
from engine.cli.translate import add_evaluate_parser, add_translate_parser, run_evaluate, run_translate
from engine.devices import DEVICE_CHOICES, DEVICE_HELP

Handler = Callable[[argparse.Namespace], int]
DESCRIPTION = "Type a sentence and watch every layer and head of a Transformer translate it."


def add_gui_options(parser: argparse.ArgumentParser, default: object = None) -> None:
    parser.add_argument("--model", metavar="DIR", default=default, help="model directory (default: the fr-en model)")
    parser.add_argument(
        "--device", choices=DEVICE_CHOICES, default="auto" if default is None else default, help=DEVICE_HELP
    )
    parser.add_argument("--text", default=default, help="start with this text typed in")
    parser.add_argument(
        "--screenshot",
        metavar="PNG",
        type=Path,
        default=default,
        help="render the window offscreen once the translation is shown, save it here and quit",
    )
    parser.add_argument("--study", metavar="FILE", type=Path, default=default, help="open this saved study")
    parser.add_argument(
        "--save-study",
        metavar="FILE",
        type=Path,
        default=default,
        help="once the translation is shown, save it as a study and quit (with --text: headless)",
    )
    parser.add_argument(
        "--size", default="1600x1000" if default is None else default, help="window size for --screenshot"
    )


def build_parser(prog: str = "python -m engine", gui: Handler | None = None) -> argparse.ArgumentParser:
    """Every subcommand; with a `gui` handler, also `gui`, which runs when no command is given."""
    parser = argparse.ArgumentParser(prog=prog, description=DESCRIPTION)
    parser.add_argument("-v", "--verbose", action="store_true", help="log what the engine does")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=gui is None)
    if gui is not None:
        add_gui_options(parser)
        parser.set_defaults(handler=gui)
        app = commands.add_parser("gui", help="open the desktop app (what runs when no command is given)")
        add_gui_options(app, default=argparse.SUPPRESS)  # options given before the command keep their values
        app.set_defaults(handler=gui)
    add_translate_parser(commands).set_defaults(handler=run_translate)
    add_evaluate_parser(commands).set_defaults(handler=run_evaluate)
    add_train_parser(commands).set_defaults(handler=run_train)
    add_average_parser(commands).set_defaults(handler=run_average)
    export = commands.add_parser(
        "export", help="write attention figures (PNG, SVG, PDF) and trace data headless; no display needed"
    )
    add_export_arguments(export)
    export.set_defaults(handler=run_export)
    add_analyze_parser(commands).set_defaults(handler=run_analyze)
    return parser


def run(parser: argparse.ArgumentParser, argv: list[str] | None = None) -> int:
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    return args.handler(args)


def main(argv: list[str] | None = None) -> int:
    """`python -m engine …`: the tree without the app."""
    return run(build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
