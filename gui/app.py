"""Build the QApplication and the main window; main.py calls `run`."""

from __future__ import annotations

import signal
import sys
import tempfile
from pathlib import Path

from PySide6.QtCore import QSettings, QTimer
from PySide6.QtWidgets import QApplication

from gui.main_window import MainWindow
from gui.screenshot import save_when_shown

ORGANIZATION = "Attention Studio"
APPLICATION = "Attention Studio"


def run(
    model: str | None = None,
    device: str = "auto",
    argv: list[str] | None = None,
    text: str | None = None,
    screenshot: Path | None = None,
    size: tuple[int, int] = (1600, 1000),
) -> int:
    """Open the window (with `text` typed in); with `screenshot`, save the window once the
    translation is shown and quit. A screenshot uses default settings, not the user's, so the
    same command gives the same picture anywhere."""
    app = QApplication.instance() or QApplication(argv if argv is not None else sys.argv[:1])
    app.setOrganizationName(ORGANIZATION)
    app.setApplicationName(APPLICATION)
    app.setStyle("Fusion")  # the same look, and light/dark palettes that behave, on every platform
    scratch = tempfile.TemporaryDirectory() if screenshot is not None else None
    settings = (
        QSettings(str(Path(scratch.name) / "settings.ini"), QSettings.Format.IniFormat) if scratch else QSettings()
    )
    window = MainWindow(settings=settings, model_dir=model, device=device)
    if text is not None:
        window.source.setText(text)
    if screenshot is not None:
        save_when_shown(app, window, screenshot, size)
    app.aboutToQuit.connect(window.shutdown)  # the worker thread never outlives the event loop
    # Ctrl+C in the terminal closes the window the normal way (settings saved, thread stopped);
    # the idle timer gives Python a chance to run its signal handler while Qt waits for events.
    signal.signal(signal.SIGINT, lambda *_: window.close())
    wake = QTimer()
    wake.timeout.connect(lambda: None)
    wake.start(250)
    window.show()
    return app.exec()
