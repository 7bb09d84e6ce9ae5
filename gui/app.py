"""Build the QApplication and the main window; main.py calls `run`."""

from __future__ import annotations

import signal
import sys

from PySide6.QtCore import QSettings, QTimer
from PySide6.QtWidgets import QApplication

from gui.main_window import MainWindow

ORGANIZATION = "Attention Studio"
APPLICATION = "Attention Studio"


def run(model: str | None = None, device: str = "auto", argv: list[str] | None = None) -> int:
    app = QApplication.instance() or QApplication(argv if argv is not None else sys.argv[:1])
    app.setOrganizationName(ORGANIZATION)
    app.setApplicationName(APPLICATION)
    app.setStyle("Fusion")  # the same look, and light/dark palettes that behave, on every platform
    window = MainWindow(settings=QSettings(), model_dir=model, device=device)
    app.aboutToQuit.connect(window.shutdown)  # the worker thread never outlives the event loop
    # Ctrl+C in the terminal closes the window the normal way (settings saved, thread stopped);
    # the idle timer gives Python a chance to run its signal handler while Qt waits for events.
    signal.signal(signal.SIGINT, lambda *_: window.close())
    wake = QTimer()
    wake.timeout.connect(lambda: None)
    wake.start(250)
    window.show()
    return app.exec()
