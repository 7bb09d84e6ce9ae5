"""GUI test fixtures: offscreen Qt, a window on the tiny model, private settings, no leaked threads."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # before anything loads Qt

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
from PySide6.QtCore import QSettings, QThread  # noqa: E402

TIMEOUT_MS = 60_000  # the machine may be busy; waitUntil returns as soon as the condition holds


@pytest.fixture(autouse=True)
def fail_on_running_qthread(monkeypatch):
    """Fail a test that leaves a QThread running (napari's dangling-thread check).

    Runs its check after pytest-qt has closed the test's widgets, so a window that shuts its
    worker down in closeEvent passes and one that forgets to fails.
    """
    started: list[QThread] = []
    original_start = QThread.start

    def recording_start(self, *args, **kwargs):
        started.append(self)
        return original_start(self, *args, **kwargs)

    monkeypatch.setattr(QThread, "start", recording_start)
    yield
    running = []
    for thread in started:
        try:
            if thread.isRunning():
                running.append(thread)
        except RuntimeError:  # the C++ object is gone, so the thread is too
            continue
    for thread in running:  # stop them so one failure does not cascade into the next tests
        thread.quit()
        thread.wait(10_000)
    assert not running, f"test left QThread(s) running: {[t.objectName() for t in running]}"


@pytest.fixture
def settings(tmp_path: Path) -> QSettings:
    """A private ini file: tests never read or write the user's real settings."""
    return QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)


@pytest.fixture
def make_window(qtbot, settings, tiny_model_dir):
    """Build a MainWindow on the tiny model; waits for the model unless told not to."""
    from gui.main_window import MainWindow

    def make(model_dir=tiny_model_dir, wait_for_model: bool = True, **kwargs):
        kwargs.setdefault("models_root", Path(tiny_model_dir).parent)
        kwargs.setdefault("settings", settings)
        window = MainWindow(model_dir=model_dir, device="cpu", **kwargs)
        qtbot.addWidget(window)
        window.show()
        if wait_for_model:
            qtbot.waitUntil(lambda: window.client.model is not None, timeout=TIMEOUT_MS)
        return window

    return make


@pytest.fixture
def window(make_window):
    return make_window()


@pytest.fixture(scope="session")
def reference(tiny_model_dir):
    """The engine called directly: what the window must show."""
    from engine.translator import Translator

    return Translator.from_directory(tiny_model_dir, "cpu")
