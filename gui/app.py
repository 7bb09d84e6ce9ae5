"""Build the QApplication and the main window; main.py calls `run`."""

from __future__ import annotations

import signal
import sys
import tempfile
from pathlib import Path

import shiboken6
from PySide6.QtCore import QSettings, QTimer
from PySide6.QtWidgets import QApplication

from engine.study import Study, StudyError
from gui.main_window import MainWindow
from gui.screenshot import save_when_shown
from gui.studies import apply_study, study_model_exists

ORGANIZATION = "Attention Studio"
APPLICATION = "Attention Studio"


def run(
    model: str | None = None,
    device: str = "auto",
    argv: list[str] | None = None,
    text: str | None = None,
    screenshot: Path | None = None,
    size: tuple[int, int] = (1600, 1000),
    study: Path | None = None,
    save_study_to: Path | None = None,
) -> int:
    """Open the window (with `text` typed in, or a `study` opened); with `screenshot` and/or
    `save_study_to`, save the window and/or the study once the translation is shown and quit.
    Those headless runs use default settings, not the user's, so the same command gives the same
    picture anywhere."""
    app = QApplication.instance() or QApplication(argv if argv is not None else sys.argv[:1])
    app.setOrganizationName(ORGANIZATION)
    app.setApplicationName(APPLICATION)
    app.setStyle("Fusion")  # the same look, and light/dark palettes that behave, on every platform
    headless = screenshot is not None or save_study_to is not None
    scratch = tempfile.TemporaryDirectory() if headless else None
    settings = (
        QSettings(str(Path(scratch.name) / "settings.ini"), QSettings.Format.IniFormat) if scratch else QSettings()
    )
    opened = None
    if study is not None:
        try:
            opened = Study.load(study)
        except StudyError as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
        if model is None and study_model_exists(opened):
            model = opened.model_directory
    # a study whose model is missing is shown read-only: no other model loads over it
    autoload = opened is None or study_model_exists(opened) or model is not None
    window = MainWindow(settings=settings, model_dir=model, device=device, autoload=autoload)
    if opened is not None:
        apply_study(window, opened, study.name, load=False)
    if text is not None:
        window.source.setText(text)
    if headless:
        save_when_shown(app, window, screenshot, size, save_study_to)
    app.aboutToQuit.connect(window.shutdown)  # the worker thread never outlives the event loop
    # Ctrl+C in the terminal closes the window the normal way (settings saved, thread stopped);
    # the idle timer gives Python a chance to run its signal handler while Qt waits for events.
    signal.signal(signal.SIGINT, lambda *_: window.close())
    wake = QTimer()
    wake.timeout.connect(lambda: None)
    wake.start(250)
    window.show()
    code = app.exec()
    # Take the window down here, in a fixed order, while Python is still whole: left to the
    # interpreter's exit, Qt objects die in an arbitrary order and a run whose work is done (the
    # screenshot written) could still end with a segmentation fault (seen once in CI).
    wake.stop()
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    window.shutdown()
    shiboken6.delete(window)
    return code
