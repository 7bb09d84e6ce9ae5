"""`--screenshot` and `--save-study`: once the translation (or an opened study) is on screen, the
real window, rendered offscreen, is saved as an image and/or what it shows as a study; then the app
quits. For documentation and for checking what a user sees without a display."""

from __future__ import annotations

import sys
from pathlib import Path

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from gui.main_window import MainWindow
from gui.studies import current_study, save_study

SETTLE_MS = 300  # after the trace is shown: the walkthrough, analysis and plots finish painting
TIMEOUT_MS = 120_000


def parse_size(text: str) -> tuple[int, int]:
    """'1600x1000' → (1600, 1000); ValueError with the reason otherwise."""
    width, sep, height = text.lower().partition("x")
    if not sep or not width.isdigit() or not height.isdigit():
        raise ValueError(f"--size {text!r}: expected WIDTHxHEIGHT, e.g. 1600x1000")
    size = int(width), int(height)
    if not (320 <= size[0] <= 7680 and 240 <= size[1] <= 4320):
        raise ValueError(f"--size {text!r}: between 320x240 and 7680x4320")
    return size


def save_when_shown(
    app: QApplication, window: MainWindow, path: Path | None, size: tuple[int, int], study: Path | None = None
) -> None:
    """Once the window has put a translation on screen and is idle, save the study to `study` and
    the window to `path`, then quit (exit status 0; 1 when saving fails or nothing was shown within
    two minutes). The status bar's passing message and the trace's latency, which differ from run to
    run, are left out of the picture."""
    window.resize(*size)
    settle = QTimer(window)
    settle.setSingleShot(True)
    settle.setInterval(SETTLE_MS)

    def save() -> None:
        if not window.idle:  # a newer request runs: wait for its trace
            settle.start()
            return
        if study is not None:
            shown = current_study(window)
            if shown is None or not save_study(window, shown, study):
                print(f"error: could not write the study {study}", file=sys.stderr)
                app.exit(1)
                return
            print(f"wrote {study}")
        if path is not None:
            window.statusBar().clearMessage()
            window.latency_label.setText("")
            QApplication.sendPostedEvents()  # the status bar is laid out again before the grab
            if not window.grab().save(str(path)):
                print(f"error: could not write the screenshot {path}", file=sys.stderr)
                app.exit(1)
                return
            print(f"wrote {path}")
        app.exit(0)

    def give_up() -> None:
        print("error: no translation was shown within two minutes; no screenshot written", file=sys.stderr)
        app.exit(1)

    settle.timeout.connect(save)

    def shown(_trace: object) -> None:
        window.source.clearFocus()  # no blinking caret; the clear button's fade is over by the grab
        settle.start()

    window.traceDisplayed.connect(shown)
    QTimer.singleShot(TIMEOUT_MS, window, give_up)
