"""Busy moments: closing, switching model and exporting while a translation runs in the worker.

The worker is made slow by wrapping Translator.run, so each action lands while a request is in
flight (checked after the action: the worker is still inside trace). Each test asserts: no exception (pytest-qt fails a test on one raised in a slot), no Qt
warning (read from qtlog, besides the suite-wide qt_log_level_fail), no QThread left running, and
for exports a complete file with no temporary file beside it.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from model_fixtures import build_tiny_model
from PySide6.QtCore import QtMsgType
from PySide6.QtGui import QImage

from engine.trace import Trace
from engine.translator import Translator

TIMEOUT_MS = 60_000
SLOW_S = 0.6  # long enough for the GUI thread to act while the worker is inside trace()


class SlowWorker:
    """Events the slowed Translator.run sets in the worker thread: on entering and on leaving."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.finished = threading.Event()

    def inside_trace(self) -> bool:
        """The worker is computing a trace now: what the GUI thread does meanwhile lands mid-request."""
        return self.started.is_set() and not self.finished.is_set()


@pytest.fixture
def slow_worker(monkeypatch):
    """Translator.run sleeps first, so that the GUI thread can act while a request is in flight."""
    worker = SlowWorker()
    original = Translator.run

    def slow_trace(self, text, *args, **kwargs):
        worker.finished.clear()
        worker.started.set()
        try:
            time.sleep(SLOW_S)
            return original(self, text, *args, **kwargs)
        finally:
            worker.finished.set()

    monkeypatch.setattr(Translator, "run", slow_trace)
    return worker


@pytest.fixture(scope="module")
def wider_model_dir(tmp_path_factory):
    """A second model with other layer and head counts than the tiny one (2 encoder, 3 decoder, 4 heads)."""
    return build_tiny_model(
        tmp_path_factory.mktemp("models") / "tiny-wide", seed=2, n_encoder_layers=4, n_decoder_layers=1, n_heads=2
    )


def qt_warnings(qtlog) -> list[str]:
    bad = (QtMsgType.QtWarningMsg, QtMsgType.QtCriticalMsg, QtMsgType.QtFatalMsg)
    return [record.message for record in qtlog.records if record.type in bad]


def show(qtbot, window, text: str) -> Trace:
    window.source.setText(text)
    qtbot.waitUntil(lambda: window.trace is not None and window.trace.source_text == text, timeout=TIMEOUT_MS)
    return window.trace


def start_slow_translation(qtbot, window, worker: SlowWorker, text: str) -> None:
    worker.started.clear()
    window.source.setText(text)
    qtbot.waitUntil(worker.started.is_set, timeout=TIMEOUT_MS)


def test_closing_while_translating_with_more_requests_queued(make_window, qtbot, qtlog, slow_worker):
    window = make_window()
    window.tabs.setCurrentWidget(window.walkthrough_view)  # a walkthrough request follows every trace
    show(qtbot, window, "je suis étudiant")
    shown = []
    window.traceDisplayed.connect(shown.append)
    start_slow_translation(qtbot, window, slow_worker, "tu es mon ami")
    for text in ("tu es mon ami et", "tu es mon ami et le chien"):  # queued behind the running one
        window.source.setText(text)
        window.request_translation()
    window.load_model(window.client.model.directory)  # a reload queued too
    assert slow_worker.inside_trace()  # all of it while the first request runs
    assert window.close()
    assert not window.client.thread.isRunning() and window.client.thread.isFinished()
    qtbot.wait(2 * int(SLOW_S * 1000))  # any late signal must be dropped quietly
    assert shown == []  # nothing reached the closed window
    assert qt_warnings(qtlog) == []


def test_switching_model_while_translating_ends_on_the_new_model(
    make_window, qtbot, qtlog, slow_worker, wider_model_dir
):
    window = make_window()
    show(qtbot, window, "je suis étudiant")
    window.view_state.select(kind="cross", layer=2, head=3)  # beyond the new model's 1 layer and 2 heads
    start_slow_translation(qtbot, window, slow_worker, "il mange une pomme")
    window.load_model(wider_model_dir)
    assert slow_worker.inside_trace()
    # while the new model loads and translates, the user keeps moving through layers and heads
    for _ in range(6):
        window.view_state.step_layer(1)
        window.view_state.step_head(1)
        qtbot.wait(50)
    qtbot.waitUntil(
        lambda: window.trace is not None and window.trace.model_name == "tiny-wide" and not window.client.translating,
        timeout=TIMEOUT_MS,
    )
    state, trace = window.view_state, window.trace
    assert trace.source_text == "il mange une pomme"
    assert trace.n_layers == {"enc_self": 4, "dec_self": 1, "cross": 1} and trace.n_heads == 2
    assert state.layer < trace.n_layers[state.kind]
    assert state.head == "average" or state.head < trace.n_heads
    assert window.model_view.grid_shape == (1, 3)  # 1 layer × (2 heads + the average)
    assert window.client.model.name == "tiny-wide"
    assert "tiny-wide" in window.windowTitle()
    assert window.close()
    assert not window.client.thread.isRunning()
    assert qt_warnings(qtlog) == []


def test_stepping_layers_between_a_model_switch_and_its_first_trace(
    make_window, qtbot, qtlog, slow_worker, wider_model_dir
):
    """Once the new model loads, the old model's trace leaves the screen (no view shows it beside the
    new model's name) and the view state has the new model's layer count (4 encoder layers against
    the old trace's 2); stepping through them before the new trace arrives is safe."""
    window = make_window()
    show(qtbot, window, "je suis étudiant")
    window.view_state.set_kind("enc_self")
    loaded = []
    window.client.modelLoaded.connect(loaded.append)
    window.load_model(wider_model_dir)
    qtbot.waitUntil(lambda: bool(loaded), timeout=TIMEOUT_MS)
    assert window.trace is None  # the new trace is still being computed (slowly); the old one is gone
    assert window.model_view.stack.currentWidget() is window.model_view.placeholder
    for _ in range(4):
        window.view_state.step_layer(1)  # up to layer 4 of 4, which the old trace does not have
    window.view_state.step_head(1)
    qtbot.waitUntil(lambda: window.trace is not None and window.trace.model_name == "tiny-wide", timeout=TIMEOUT_MS)
    assert window.view_state.layer < window.trace.n_layers["enc_self"]
    assert window.close()
    assert qt_warnings(qtlog) == []


def assert_no_temporary_files(directory) -> None:
    leftovers = [p.name for p in directory.iterdir() if p.name.startswith(".") or p.suffix == ".part"]
    assert leftovers == []


def test_exporting_while_translating_writes_complete_files(make_window, qtbot, qtlog, slow_worker, tmp_path):
    window = make_window()
    before = show(qtbot, window, "je suis étudiant")
    start_slow_translation(qtbot, window, slow_worker, "elle lit un livre")
    paths = {
        "head": tmp_path / "head.png",
        "grid": tmp_path / "grid.svg",
        "step": tmp_path / "step.pdf",
        "trace": tmp_path / "trace.npz",
    }
    errors = []
    window.exporter.finished.connect(lambda job, error: errors.append(error))
    for what, path in paths.items():
        window.export_to(what, path)
    json_path = tmp_path / "trace.json"
    window.export_to("trace", json_path)
    assert slow_worker.inside_trace()  # handed over at once: the GUI thread never waited for a file
    qtbot.waitUntil(lambda: not window.exporting, timeout=TIMEOUT_MS)
    assert errors == [""] * 5
    assert not QImage(str(paths["head"])).isNull()
    assert paths["grid"].read_bytes().rstrip().endswith(b"</svg>")
    assert paths["step"].read_bytes().rstrip().endswith(b"%%EOF")
    for path in (paths["trace"], json_path):
        assert Trace.load(path).equals(before)  # the trace on screen when exporting, whole
    assert_no_temporary_files(tmp_path)
    after = show(qtbot, window, "elle lit un livre")
    assert after.source_text != before.source_text
    window.export_to("trace", paths["trace"])  # overwriting in place is atomic too
    qtbot.waitUntil(lambda: not window.exporting, timeout=TIMEOUT_MS)
    assert errors[-1] == ""
    np.testing.assert_array_equal(Trace.load(paths["trace"]).cross, after.cross)
    assert_no_temporary_files(tmp_path)
    assert window.close()
    assert not window.client.thread.isRunning()
    assert qt_warnings(qtlog) == []


def test_exporting_then_closing_at_once_while_translating(make_window, qtbot, qtlog, slow_worker, tmp_path):
    window = make_window()
    show(qtbot, window, "le chien dort")
    start_slow_translation(qtbot, window, slow_worker, "la maison est grande")
    window.export_to("grid", tmp_path / "grid.png")
    assert slow_worker.inside_trace() and window.exporting
    assert window.close()  # the export asked for is still written
    assert not window.client.thread.isRunning()
    assert not QImage(str(tmp_path / "grid.png")).isNull()
    assert_no_temporary_files(tmp_path)
    assert qt_warnings(qtlog) == []
