"""Attention Studio: `python main.py` opens the desktop app.

The command line is a set of subcommands with the GUI as the default, so headless commands
(e.g. `python main.py export ...`) can be added beside `gui` without changing how the app starts.
"""

from __future__ import annotations

import argparse
import sys

from engine.devices import DEVICE_CHOICES


def add_gui_options(parser: argparse.ArgumentParser, default=None) -> None:
    parser.add_argument(
        "--model", metavar="DIR", default=default, help="model directory (default: resources/models/fr-en)"
    )
    parser.add_argument(
        "--device",
        choices=DEVICE_CHOICES,
        default="auto" if default is None else default,
        help="where the model runs (default: auto = CUDA, then MPS, then CPU)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="attention-studio",
        description="Type a sentence and watch every layer and head of a Transformer translate it.",
    )
    add_gui_options(parser)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    gui = commands.add_parser("gui", help="open the desktop app (what runs when no command is given)")
    # SUPPRESS: options given before the command keep their values
    add_gui_options(gui, default=argparse.SUPPRESS)
    export = commands.add_parser(
        "export", help="write attention figures (PNG, SVG, PDF) and trace data headless; no display needed"
    )
    from engine.cli.export import add_export_arguments  # Qt-free and torch-free at import

    add_export_arguments(export)
    return parser


def run_gui(args: argparse.Namespace) -> int:
    from gui.app import run  # Qt is imported only when the app really starts (not for --help)

    return run(model=args.model, device=args.device, argv=sys.argv[:1])


def run_export(args: argparse.Namespace) -> int:
    from engine.cli.export import run_export as export

    return export(args)


COMMANDS = {"gui": run_gui, "export": run_export}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return COMMANDS[args.command or "gui"](args)


if __name__ == "__main__":
    sys.exit(main())
