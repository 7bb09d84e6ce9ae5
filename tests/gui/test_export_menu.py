"""File → Export from the window: figures through engine.render.figures, the trace as .npz/.json, clear failures."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PySide6.QtWidgets import QMessageBox

from engine.trace import Trace

TIMEOUT_MS = 60_000
TEXT = "je suis étudiant"
# a message box is a top-level window: the offscreen plugin warns that it cannot pass on its size hints
OFFSCREEN_DIALOG = pytest.mark.qt_log_ignore("does not support propagateSizeHints")
MAGIC = {".png": b"\x89PNG\r\n\x1a\n", ".pdf": b"%PDF-"}


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
def test_figures_export_as_png_svg_and_pdf(translated, tmp_path, what, suffix):
    path = tmp_path / f"{what}{suffix}"
    assert translated.export_to(what, path)
    assert_valid(path, suffix)
    assert "Exported" in translated.statusBar().currentMessage()


def test_png_resolution_follows_the_chosen_dpi(translated, tmp_path):
    from PySide6.QtGui import QImage

    low, high = tmp_path / "low.png", tmp_path / "high.png"
    assert translated.export_to("head", low, dpi=50)
    assert translated.export_to("head", high, dpi=150)
    assert QImage(str(high)).width() == pytest.approx(3 * QImage(str(low)).width(), abs=3)


def test_the_walkthrough_exports_once_its_tab_has_shown_one(translated, qtbot, tmp_path):
    translated.tabs.setCurrentWidget(translated.walkthrough_panel)
    qtbot.waitUntil(lambda: translated.walkthrough is not None, timeout=TIMEOUT_MS)
    for suffix in (".png", ".svg", ".pdf"):
        path = tmp_path / f"walkthrough{suffix}"
        assert translated.export_to("walkthrough", path)
        assert_valid(path, suffix)


@pytest.mark.parametrize("suffix", [".npz", ".json"])
def test_the_trace_exports_as_npz_and_json(translated, tmp_path, suffix):
    path = tmp_path / f"trace{suffix}"
    assert translated.export_to("trace", path)
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
    assert not translated.export_to(what, path)
    assert not path.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]  # no temporary file left behind either
    message = translated.statusBar().currentMessage()
    assert message.startswith("Export failed") and "a-file" in message
    box = translated.last_export_error
    assert isinstance(box, QMessageBox) and box.isVisible()
    assert "cannot write" in box.text()
    box.close()


@OFFSCREEN_DIALOG
def test_a_wrong_suffix_is_refused_clearly(translated, tmp_path):
    assert not translated.export_to("grid", tmp_path / "grid.bmp")
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
