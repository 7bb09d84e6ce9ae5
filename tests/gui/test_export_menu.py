"""File → Export from the window: figures through engine.render.figures, the trace as .npz/.json, clear
failures, and all of it written off the GUI thread, one export after the other."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
from PySide6.QtWidgets import QMessageBox

from engine.trace import Trace

TIMEOUT_MS = 60_000
TEXT = "je suis étudiant"
# a message box is a top-level window: the offscreen plugin warns that it cannot pass on its size hints
OFFSCREEN_DIALOG = pytest.mark.qt_log_ignore("does not support propagateSizeHints")
MAGIC = {".png": b"\x89PNG\r\n\x1a\n", ".pdf": b"%PDF-"}


def export(qtbot, window, what: str, path, dpi: int | None = None) -> str:
    """Export like the menu does and wait for it: '' when written, else the reason shown to the user."""
    outcome: list[str] = []
    window.exporter.finished.connect(lambda job, error: outcome.append(error) if job.path == path else None)
    window.export_to(what, path, dpi)
    qtbot.waitUntil(lambda: bool(outcome), timeout=TIMEOUT_MS)
    return outcome[0]


@pytest.fixture
def translated(window, qtbot):
    window.source.setText(TEXT)
    qtbot.waitUntil(lambda: window.trace is not None and window.trace.source_text == TEXT, timeout=TIMEOUT_MS)
    window.view_state.set_step(1)
    return window


def assert_valid(path, suffix: str) -> None:
    data = path.read_bytes()
    if suffix == ".svg":
        assert b"<svg" in data[:2000] and data.rstrip().endswith(b"</svg>")
    else:
        assert data.startswith(MAGIC[suffix])
    if suffix == ".pdf":
        assert data.rstrip().endswith(b"%%EOF")


@pytest.mark.parametrize("what", ["head", "grid", "positional", "step"])
@pytest.mark.parametrize("suffix", [".png", ".svg", ".pdf"])
def test_figures_export_as_png_svg_and_pdf(translated, qtbot, tmp_path, what, suffix):
    path = tmp_path / f"{what}{suffix}"
    assert export(qtbot, translated, what, path) == ""
    assert_valid(path, suffix)
    assert "Exported" in translated.statusBar().currentMessage()


def test_png_resolution_follows_the_chosen_dpi(translated, qtbot, tmp_path):
    from PySide6.QtGui import QImage

    low, high = tmp_path / "low.png", tmp_path / "high.png"
    assert export(qtbot, translated, "head", low, dpi=50) == ""
    assert export(qtbot, translated, "head", high, dpi=150) == ""
    assert QImage(str(high)).width() == pytest.approx(3 * QImage(str(low)).width(), abs=3)


def test_the_walkthrough_exports_once_its_tab_has_shown_one(translated, qtbot, tmp_path):
    translated.tabs.setCurrentWidget(translated.walkthrough_view)
    qtbot.waitUntil(lambda: translated.walkthrough is not None, timeout=TIMEOUT_MS)
    for suffix in (".png", ".svg", ".pdf"):
        path = tmp_path / f"walkthrough{suffix}"
        assert export(qtbot, translated, "walkthrough", path) == ""
        assert_valid(path, suffix)
    # the panel's own Export… button goes the same way, and the panel says what became of it
    table = tmp_path / "walkthrough.csv"
    translated.walkthrough_view.exportRequested.emit(str(table))
    qtbot.waitUntil(lambda: not translated.exporting, timeout=TIMEOUT_MS)
    assert table.read_text(encoding="utf-8").startswith("kind,")
    assert translated.walkthrough_view.export_status.text() == f"Saved {table}"


@pytest.mark.parametrize("suffix", [".npz", ".json"])
def test_the_trace_exports_as_npz_and_json(translated, qtbot, tmp_path, suffix):
    path = tmp_path / f"trace{suffix}"
    assert export(qtbot, translated, "trace", path) == ""
    loaded = Trace.load(path)
    assert loaded.translation == translated.trace.translation
    np.testing.assert_allclose(loaded.cross, translated.trace.cross, atol=1e-6)
    if suffix == ".json":
        assert json.loads(path.read_text(encoding="utf-8"))["schema"] == "attention-studio-trace"


@OFFSCREEN_DIALOG
@pytest.mark.parametrize(("what", "name"), [("head", "figure.png"), ("step", "figure.pdf"), ("trace", "trace.npz")])
def test_an_unwritable_path_gives_a_message_and_no_file(translated, qtbot, tmp_path, what, name):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory", encoding="utf-8")
    path = blocker / name  # its parent is a regular file: no one can write there, root included
    assert "cannot write" in export(qtbot, translated, what, path)
    assert not path.exists()
    left = sorted(p.name for p in tmp_path.iterdir() if p.name != "settings.ini")  # the window's own settings
    assert left == ["a-file"]  # no temporary file left behind either
    message = translated.statusBar().currentMessage()
    assert message.startswith("Export failed") and "a-file" in message
    box = translated.last_export_error
    assert isinstance(box, QMessageBox) and box.isVisible()
    assert "cannot write" in box.text()
    box.close()


@OFFSCREEN_DIALOG
def test_a_wrong_suffix_is_refused_clearly(translated, qtbot, tmp_path):
    assert "png, .svg or .pdf" in export(qtbot, translated, "grid", tmp_path / "grid.bmp")
    assert "png, .svg or .pdf" in translated.last_export_error.text()
    translated.last_export_error.close()
    assert not (tmp_path / "grid.bmp").exists()


def test_the_export_menu_lists_every_view(translated):
    texts = [a.text() for a in translated.export_menu.actions() if a.text()]
    for name in ("Head view…", "Model grid…", "Positional encodings…", "Decoder step…", "Walkthrough…", "Trace data…"):
        assert name in texts
    translated.export_menu.aboutToShow.emit()
    assert translated.export_actions["head"].isEnabled()
    assert not translated.export_actions["walkthrough"].isEnabled()  # no walkthrough computed yet


def test_an_export_runs_off_the_gui_thread_and_the_next_one_waits_its_turn(translated, qtbot, tmp_path, monkeypatch):
    """While a slow export is written, the window keeps translating; an export asked for meanwhile is
    queued, not lost, and written once the first is done."""
    import gui.export

    gate, threads, original = threading.Event(), [], gui.export.write_export

    def slow_write(job):
        threads.append(threading.current_thread())
        gate.wait(TIMEOUT_MS / 1000)  # a PDF that takes long to render
        original(job)

    monkeypatch.setattr(gui.export, "write_export", slow_write)
    first, second = tmp_path / "head.pdf", tmp_path / "grid.png"
    translated.export_to("head", first)
    translated.export_to("grid", second)
    qtbot.waitUntil(lambda: len(threads) == 1, timeout=TIMEOUT_MS)
    assert translated.exporting and translated.busy.isVisible()
    message = translated.statusBar().currentMessage()
    assert message.startswith("Exporting head view") and "(1 more waiting)" in message
    translated.source.setText("le chien dort")  # the GUI thread is free: typing still translates
    qtbot.waitUntil(lambda: translated.trace.source_text == "le chien dort", timeout=TIMEOUT_MS)
    assert translated.exporting and not first.exists()
    gate.set()
    qtbot.waitUntil(lambda: not translated.exporting, timeout=TIMEOUT_MS)
    assert threads[0] is not threading.main_thread() and len(threads) == 2
    assert_valid(first, ".pdf")
    assert_valid(second, ".png")
    assert translated.statusBar().currentMessage() == f"Exported model grid to {second}"
    assert not translated.busy.isVisible()
