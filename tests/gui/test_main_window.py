"""The main window on the tiny model: typing, the grid, the head view, errors, closing, settings."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QColor, QDropEvent, QPalette
from PySide6.QtWidgets import QApplication

from engine.render.labels import AVERAGE
from engine.translator import Translator
from gui.maps import TokenFocus, hover_text, latency_text
from gui.views.model_view import cell_data

TIMEOUT_MS = 60_000  # generous: the machine may be busy; waitUntil returns as soon as it can


def type_sentence(qtbot, window, text: str) -> None:
    """Type like a user (key by key) and wait for that sentence's trace on screen."""
    window.source.clear()
    if text.isascii():
        qtbot.keyClicks(window.source, text)
    else:  # QTest can only type ASCII keys (it asserts on 'é'): paste the rest like a user would
        window.source.insert(text)
    qtbot.waitUntil(lambda: window.trace is not None and window.trace.source_text == text, timeout=TIMEOUT_MS)


def assert_grid_shows(window, kind: str) -> None:
    maps = window.trace.attention(kind)
    assert window.model_view.grid_shape == (maps.shape[0], maps.shape[1] + 1)
    for layer in range(maps.shape[0]):
        for head in range(maps.shape[1]):
            np.testing.assert_array_equal(cell_data(window.model_view, layer, head), maps[layer, head])
        np.testing.assert_allclose(cell_data(window.model_view, layer, AVERAGE), maps[layer].mean(axis=0))
    selected = (window.view_state.layer, window.view_state.head)
    for row in window.model_view.cells:
        for cell in row:  # each cell shows its whole map, and only the selected one is outlined
            np.testing.assert_allclose(cell.viewRange(), [[0, maps.shape[3]], [0, maps.shape[2]]])
            assert (cell.border.style() != Qt.PenStyle.NoPen) == ((cell.layer, cell.head) == selected)


def test_no_widget_leaves_the_window_as_a_stray_one(window, qtbot):
    """A regression seen under Xvfb: the positional tab's controls, shown before the (lazily built)
    tab had put them in a layout, became four tiny windows of their own over the menu bar."""
    type_sentence(qtbot, window, "je suis etudiant")
    strays = [w for w in QApplication.topLevelWidgets() if w.isVisible() and w is not window]
    assert not strays, [type(w).__name__ for w in strays]


def head_view_data(window) -> np.ndarray:
    return window.head_view.heatmap.image.image


def test_typing_shows_the_translation_and_every_map(window, qtbot, reference):
    text = "je suis etudiant"
    type_sentence(qtbot, window, text)
    expected = reference.trace(text)
    assert window.sentence.translation.text() == expected.translation
    assert window.sentence.translation.isVisible() and not window.sentence.hint.isVisible()
    assert window.view_state.kind == "cross"
    assert window.model_view.grid_shape == (3, 5)  # 3 decoder layers × (4 heads + the average)
    assert_grid_shows(window, "cross")
    # typed key by key, the maps come from the rows of several cached passes: equal up to rounding
    np.testing.assert_allclose(window.trace.cross, expected.cross, atol=1e-6)
    np.testing.assert_array_equal(head_view_data(window), window.trace.cross[0, 0])
    queries, keys = expected.axis_pieces("cross")
    assert window.head_view.heatmap.row_labels == queries
    assert window.head_view.heatmap.column_labels == keys
    # the next sentence reuses the previous output as a draft: the result must not change
    type_sentence(qtbot, window, "je suis etudiant et tu es mon ami")
    assert window.sentence.translation.text() == reference.trace("je suis etudiant et tu es mon ami").translation
    assert_grid_shows(window, "cross")  # longer maps: the cells' ranges follow


def test_status_bar_shows_model_device_tokens_and_latency(window, qtbot):
    type_sentence(qtbot, window, "le chien dort")
    trace = window.trace
    assert "tiny-fr-en" in window.model_label.text()
    assert "cpu" in window.device_label.text()
    assert f"{len(trace.src_pieces)} source" in window.tokens_label.text()
    assert f"{len(trace.tgt_pieces)} target" in window.tokens_label.text()
    assert window.latency_label.text() == latency_text(trace) and window.latency_label.text().endswith(" ms")


def test_shortcuts_switch_kind_layer_and_head(window, qtbot):
    type_sentence(qtbot, window, "tu es mon ami")
    trace, state = window.trace, window.view_state
    window.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is window)
    window.head_view.setFocus()  # away from the sentence box, where Ctrl+←/→ move by words

    qtbot.keyClick(window, Qt.Key.Key_1, Qt.KeyboardModifier.ControlModifier)
    assert state.kind == "enc_self"
    assert_grid_shows(window, "enc_self")
    assert window.model_view.grid_shape == (2, 5)  # the encoder has 2 layers
    np.testing.assert_array_equal(head_view_data(window), trace.enc_self[0, 0])

    qtbot.keyClick(window, Qt.Key.Key_PageDown)
    assert state.layer == 1
    np.testing.assert_array_equal(head_view_data(window), trace.enc_self[1, 0])
    qtbot.keyClick(window, Qt.Key.Key_Right, Qt.KeyboardModifier.ControlModifier)
    qtbot.keyClick(window, Qt.Key.Key_Right, Qt.KeyboardModifier.ControlModifier)
    assert state.head == 2
    np.testing.assert_array_equal(head_view_data(window), trace.enc_self[1, 2])

    qtbot.keyClick(window, Qt.Key.Key_2, Qt.KeyboardModifier.ControlModifier)
    assert state.kind == "dec_self"
    np.testing.assert_array_equal(head_view_data(window), trace.dec_self[1, 2])
    qtbot.keyClick(window, Qt.Key.Key_Down, Qt.KeyboardModifier.ControlModifier)
    assert state.layer == 2
    qtbot.keyClick(window, Qt.Key.Key_Up, Qt.KeyboardModifier.ControlModifier)
    qtbot.keyClick(window, Qt.Key.Key_Left, Qt.KeyboardModifier.ControlModifier)
    assert (state.layer, state.head) == (1, 1)
    np.testing.assert_array_equal(head_view_data(window), trace.dec_self[1, 1])

    # Alt+→ steps heads even while the sentence box has the focus
    window.source.setFocus()
    qtbot.keyClick(window.source, Qt.Key.Key_Right, Qt.KeyboardModifier.AltModifier)
    assert state.head == 2

    qtbot.keyClick(window, Qt.Key.Key_3, Qt.KeyboardModifier.ControlModifier)
    assert state.kind == "cross"
    np.testing.assert_array_equal(head_view_data(window), trace.cross[1, 2])
    assert window.selection_bar.kind_buttons.checkedId() == 2
    assert "layer 2/3" in window.selection_bar.selection_label.text()


def test_kind_buttons_switch_the_grid(window, qtbot):
    type_sentence(qtbot, window, "il mange une pomme")
    qtbot.mouseClick(window.selection_bar.kind_buttons.button(1), Qt.MouseButton.LeftButton)
    assert window.view_state.kind == "dec_self"
    assert_grid_shows(window, "dec_self")


def click_cell(qtbot, window, layer, head) -> None:
    view = window.model_view.graphics
    cell = window.model_view.cell(layer, head)
    center = view.mapFromScene(cell.sceneBoundingRect().center())
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=center)


def test_clicking_a_cell_opens_it_in_the_head_view(window, qtbot):
    type_sentence(qtbot, window, "nous aimons le chat")
    trace = window.trace
    click_cell(qtbot, window, 2, 3)
    assert (window.view_state.layer, window.view_state.head) == (2, 3)
    np.testing.assert_array_equal(head_view_data(window), trace.cross[2, 3])
    click_cell(qtbot, window, 1, AVERAGE)
    assert (window.view_state.layer, window.view_state.head) == (1, AVERAGE)
    np.testing.assert_allclose(head_view_data(window), trace.cross[1].mean(axis=0))
    assert "average" in window.head_view.title.text()


def test_typing_fast_never_shows_a_stale_result(window, qtbot, monkeypatch):
    original = Translator.run

    def slow_trace(self, text, *args, **kwargs):
        time.sleep(0.3)  # slower than the typing, so keystrokes arrive while the worker is busy
        return original(self, text, *args, **kwargs)

    monkeypatch.setattr(Translator, "run", slow_trace)
    shown, requests = [], []
    window.traceDisplayed.connect(shown.append)
    window.translationRequested.connect(lambda: requests.append(window.source.text()))
    final = "il mange une pomme et le chien dort"
    qtbot.keyClicks(window.source, "il mange")
    qtbot.wait(150)
    qtbot.keyClicks(window.source, " une pomme")
    qtbot.wait(150)
    qtbot.keyClicks(window.source, " et le chien dort")
    qtbot.waitUntil(lambda: bool(shown) and shown[-1].source_text == final, timeout=TIMEOUT_MS)
    qtbot.wait(800)  # time for any stale result still on its way to (wrongly) arrive
    texts = [trace.source_text for trace in shown]
    # each result answers the newest text of its moment, in typing order, and the last is the final text
    assert texts == requests and texts[-1] == final
    assert all(final.startswith(text) for text in texts)
    assert [len(text) for text in texts] == sorted({len(text) for text in texts})
    assert window.sentence.translation.text() == window.trace.translation


def test_a_keystroke_is_sent_at_once_when_the_worker_is_free_and_pooled_while_busy(window, qtbot, monkeypatch):
    original = Translator.run

    def slow_trace(self, text, *args, **kwargs):
        time.sleep(0.2)
        return original(self, text, *args, **kwargs)

    monkeypatch.setattr(Translator, "run", slow_trace)
    requests = []
    window.translationRequested.connect(lambda: requests.append(window.source.text()))
    qtbot.keyClicks(window.source, "l")
    assert requests == ["l"]  # no waiting for a pause in typing
    qtbot.keyClicks(window.source, "e chien")  # 7 keys while "l" is translated: one request after it
    assert requests == ["l"] and not window.idle
    qtbot.waitUntil(lambda: window.idle, timeout=TIMEOUT_MS)
    assert requests == ["l", "le chien"]
    assert window.trace.source_text == "le chien"


def test_a_worker_exception_is_reported_and_the_app_keeps_working(window, qtbot, monkeypatch, reference):
    original = Translator.run
    failures = []

    def fail_once(self, text, *args, **kwargs):
        if not failures:
            failures.append(text)
            raise RuntimeError("simulated failure in the engine")
        return original(self, text, *args, **kwargs)

    monkeypatch.setattr(Translator, "run", fail_once)
    qtbot.keyClicks(window.source, "le chien dort")
    qtbot.waitUntil(lambda: "simulated failure" in window.statusBar().currentMessage(), timeout=TIMEOUT_MS)
    assert window.statusBar().currentMessage().startswith("Translation failed")
    assert window.client.thread.isRunning()
    type_sentence(qtbot, window, "elle lit un livre")
    assert window.sentence.translation.text() == reference.trace("elle lit un livre").translation
    assert "simulated failure" not in window.statusBar().currentMessage()


def test_closing_during_inference_stops_the_thread_cleanly(make_window, qtbot, monkeypatch):
    window = make_window()
    started = threading.Event()
    original = Translator.run

    def slow_trace(self, text, *args, **kwargs):
        started.set()
        time.sleep(0.5)
        return original(self, text, *args, **kwargs)

    monkeypatch.setattr(Translator, "run", slow_trace)
    qtbot.keyClicks(window.source, "je veux partir")
    qtbot.waitUntil(started.is_set, timeout=TIMEOUT_MS)
    assert window.close()
    assert not window.client.thread.isRunning()
    assert window.client.thread.isFinished()
    qtbot.wait(100)  # let any late queued signal arrive: it must be ignored quietly


def test_closing_while_the_model_loads_stops_the_thread(make_window):
    window = make_window(wait_for_model=False)
    window.load_model(window._initial_model)  # do not wait for the delayed start
    assert window.close()
    assert not window.client.thread.isRunning()


def test_empty_text_shows_a_hint_and_clears_the_maps(window, qtbot):
    type_sentence(qtbot, window, "je suis étudiant")
    window.source.clear()
    qtbot.waitUntil(lambda: window.trace is None, timeout=TIMEOUT_MS)
    assert window.sentence.hint.isVisible() and "sentence" in window.sentence.hint.text()
    assert not window.sentence.translation.isVisible()
    assert cell_data(window.model_view, 0, 0) is None
    assert window.head_view.heatmap.matrix.size == 0
    qtbot.keyClicks(window.source, "   ")
    qtbot.wait(300)
    assert window.trace is None and window.sentence.hint.isVisible()


def test_truncated_text_shows_a_notice(window, qtbot):
    long_text = " ".join(["je suis étudiant et tu es mon ami"] * 12)  # far beyond 64 pieces
    window.source.setText(long_text)
    qtbot.waitUntil(lambda: window.trace is not None and window.trace.source_text == long_text, timeout=TIMEOUT_MS)
    assert window.trace.truncated
    assert window.sentence.truncated_notice.isVisible()
    assert "maximum length" in window.sentence.truncated_notice.text()
    type_sentence(qtbot, window, "le chien dort")
    assert not window.sentence.truncated_notice.isVisible()


def test_hovering_the_heatmap_reads_out_the_weight_and_tokens(window, qtbot):
    type_sentence(qtbot, window, "je suis étudiant")
    heatmap = window.head_view.heatmap
    scene_point = heatmap.plot.vb.mapViewToScene(QPointF(2.0, 1.0))  # column 2, row 1
    qtbot.mouseMove(heatmap.viewport(), QPoint(1, 1))  # a real move even if the pointer was already there
    qtbot.wait(100)  # pyqtgraph ignores mouse moves that follow each other too closely
    qtbot.mouseMove(heatmap.viewport(), heatmap.mapFromScene(scene_point))
    expected = hover_text(window.trace, "cross", window.trace.cross[0, 0], 1, 2)
    qtbot.waitUntil(lambda: window.head_view.readout.text() == expected)
    assert heatmap.toolTip() == expected
    assert heatmap.cell_at(heatmap.plot.vb.mapViewToScene(QPointF(-5.0, 1.0))) == (-1, -1)


def test_lines_mode_draws_links_and_highlights_the_hovered_token(window, qtbot):
    type_sentence(qtbot, window, "je suis étudiant")
    window.lines_action.trigger()
    lines = window.head_view.lines
    assert window.head_view.stack.currentWidget() is lines
    np.testing.assert_array_equal(lines.weights, window.trace.cross[0, 0])
    assert (lines.queries, lines.keys) == window.trace.axis_pieces("cross")
    image = lines.grab().toImage()
    background = lines.palette().color(QPalette.ColorRole.Window)
    between = [
        image.pixelColor(x, y)
        for x in range(lines.width() // 3, 2 * lines.width() // 3, 7)
        for y in range(40, image.height(), 7)
    ]
    assert any(c != background for c in between), "no link drawn between the token columns"

    key_rect = lines.token_rect("key", 1)
    qtbot.mouseMove(lines, QPoint(1, 1))  # a real move even if the pointer was already there
    qtbot.wait(50)
    qtbot.mouseMove(lines, key_rect.center().toPoint())
    qtbot.waitUntil(lambda: window.view_state.token == TokenFocus("key", 1))
    assert "is attended most by" in window.head_view.readout.text()
    query_rect = lines.token_rect("query", 0)
    qtbot.mouseMove(lines, query_rect.center().toPoint())
    qtbot.waitUntil(lambda: window.view_state.token == TokenFocus("query", 0))
    assert "attends most to" in window.head_view.readout.text()
    window.lines_action.trigger()
    assert window.head_view.stack.currentWidget() is window.head_view.heatmap


def test_a_broken_model_directory_still_opens_the_window(make_window, qtbot, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{ not json", encoding="utf-8")
    window = make_window(model_dir=broken, wait_for_model=False)
    qtbot.waitUntil(lambda: "Could not load" in window.statusBar().currentMessage(), timeout=TIMEOUT_MS)
    assert window.isVisible()
    assert "config.json: not valid JSON" in window.statusBar().currentMessage()
    assert window.client.model is None
    assert not window.busy.isVisible()
    assert window.sentence.hint.isVisible() and "No model is loaded" in window.sentence.hint.text()


def test_a_failed_switch_keeps_the_loaded_model(window, qtbot, tmp_path):
    window.load_model(tmp_path / "missing-model")
    qtbot.waitUntil(lambda: "Could not load" in window.statusBar().currentMessage(), timeout=TIMEOUT_MS)
    assert "not a directory" in window.statusBar().currentMessage()
    assert window.client.model.name == "tiny-fr-en"
    assert [a.isChecked() for a in window.model_actions.actions()] == [True]
    type_sentence(qtbot, window, "le chien dort")


def test_the_model_menu_and_dropping_a_folder_switch_models(make_window, qtbot, tiny_model_dir, tmp_path):
    root = tmp_path / "models"
    shutil.copytree(tiny_model_dir, root / "alpha")
    shutil.copytree(tiny_model_dir, root / "beta")
    (root / "not-a-model").mkdir()
    window = make_window(model_dir=root / "alpha", models_root=root)
    names = [action.text() for action in window.model_actions.actions()]
    assert names == ["alpha", "beta"]
    assert window.model_actions.checkedAction().text() == "alpha"

    window.model_actions.actions()[1].trigger()
    qtbot.waitUntil(lambda: window.client.model.directory == str((root / "beta").resolve()), timeout=TIMEOUT_MS)
    assert window.model_actions.checkedAction().text() == "beta"
    assert window.busy.isHidden()

    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(root / "alpha"))])
    drop = QDropEvent(
        QPointF(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    )
    window.dropEvent(drop)
    qtbot.waitUntil(lambda: window.client.model.directory == str((root / "alpha").resolve()), timeout=TIMEOUT_MS)


def test_settings_remember_model_sentence_and_layout(make_window, qtbot, settings, tiny_model_dir):
    window = make_window()
    type_sentence(qtbot, window, "vous parlez français")
    window.resize(700, 500)  # within the offscreen screen, which restoreGeometry clamps to
    window.close()
    assert Path(str(settings.value("model/directory"))) == Path(tiny_model_dir).resolve()
    assert settings.value("source/text") == "vous parlez français"
    assert settings.value("window/geometry") is not None

    again = make_window(model_dir=None)  # no --model: the last model is used
    assert again.client.model.directory == str(Path(tiny_model_dir).resolve())
    assert again.source.text() == "vous parlez français"
    qtbot.waitUntil(lambda: again.trace is not None, timeout=TIMEOUT_MS)  # the restored sentence is translated
    assert (again.width(), again.height()) == (700, 500)


def test_dark_mode_repaints_the_plots(window, qtbot):
    type_sentence(qtbot, window, "je suis étudiant")
    app = QApplication.instance()
    original = app.palette()
    try:
        window.dark_action.setChecked(True)
        qtbot.waitUntil(lambda: window.palette().color(QPalette.ColorRole.Window).lightness() < 128)
        background = window.head_view.heatmap.backgroundBrush().color()
        assert background.lightness() < 128
        corner = window.model_view.graphics.grab().toImage().pixelColor(2, 2)
        assert corner.lightness() < 128
        assert window.decoder_steps.cross_plot.backgroundBrush().color().lightness() < 128  # the decoder steps too
        window.tabs.setCurrentWidget(window.positional_view)  # built now, in the dark palette
        assert window.positional_view.curves.backgroundBrush().color().lightness() < 128
        window.dark_action.setChecked(False)
        qtbot.waitUntil(lambda: window.palette().color(QPalette.ColorRole.Window).lightness() >= 128)
        assert window.head_view.heatmap.backgroundBrush().color().lightness() >= 128
        assert window.positional_view.curves.backgroundBrush().color().lightness() >= 128  # built plots follow
    finally:
        app.setPalette(original)


def test_the_maps_are_not_blank(window, qtbot):
    type_sentence(qtbot, window, "je suis étudiant")
    image = window.head_view.heatmap.grab().toImage()
    colours = {image.pixelColor(x, y).name() for x in range(0, image.width(), 9) for y in range(0, image.height(), 9)}
    assert len(colours) > 10  # a map of many weights, not a flat fill
    assert QColor(window.head_view.heatmap.backgroundBrush().color()).name() in colours


@pytest.mark.parametrize("text", ["je suis étudiant", "la maison est grande"])
def test_every_map_rows_sum_to_one_on_screen(window, qtbot, text):
    type_sentence(qtbot, window, text)
    for kind in ("enc_self", "dec_self", "cross"):
        window.view_state.set_kind(kind)
        for layer in range(window.model_view.grid_shape[0]):
            shown = cell_data(window.model_view, layer, AVERAGE)
            np.testing.assert_allclose(shown.sum(axis=1), 1.0, rtol=1e-4)


def test_the_model_menu_finds_a_model_written_after_start(make_window, qtbot, tiny_model_dir, tmp_path):
    root = tmp_path / "models"
    shutil.copytree(tiny_model_dir, root / "alpha")
    window = make_window(model_dir=root / "alpha", models_root=root)
    shutil.copytree(tiny_model_dir, root / "gamma")  # e.g. training has just saved it
    window.model_menu.aboutToShow.emit()
    assert [a.text() for a in window.model_actions.actions()] == ["alpha", "gamma"]
    assert window.model_actions.checkedAction().text() == "alpha"
    device_actions = [a.text() for a in window.device_actions.actions()]
    assert device_actions == ["auto", "cpu", "cuda", "mps"] and window.device_actions.checkedAction().text() == "cpu"


def test_an_unavailable_device_is_reported_and_the_model_keeps_its_device(window, qtbot, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    cuda = next(a for a in window.device_actions.actions() if a.text() == "cuda")
    cuda.trigger()
    qtbot.waitUntil(lambda: "Could not load" in window.statusBar().currentMessage(), timeout=TIMEOUT_MS)
    assert "CUDA is not available" in window.statusBar().currentMessage()
    assert window.device == "cpu" and window.device_actions.checkedAction().text() == "cpu"
    assert window.client.model.device == "cpu"


def test_the_window_says_at_once_that_the_model_is_loading(make_window):
    window = make_window(wait_for_model=False)
    assert window.busy.isVisible()
    assert window.statusBar().currentMessage().startswith("Loading model tiny-fr-en")
    assert window.model_view.stack.currentWidget() is window.model_view.placeholder
    assert window.head_view.stack.currentWidget() is window.head_view.placeholder


def test_long_sentences_thin_the_axis_labels_instead_of_overlapping_them(window, qtbot):
    window.source.setText(" ".join(["je suis étudiant et tu es mon ami"] * 12))
    qtbot.waitUntil(lambda: window.trace is not None, timeout=TIMEOUT_MS)
    top = window.head_view.heatmap.plot.getAxis("top")
    shown = top._tickLevels[0]
    assert 0 < len(shown) < len(window.trace.src_pieces)
    assert shown[0] == (0, window.trace.src_pieces[0])


def test_typing_skips_qkv_and_the_walkthrough_tab_asks_for_them(window, qtbot, reference):
    type_sentence(qtbot, window, "le chien dort")
    assert window.trace.qkv is None  # the views of the typing path do not need them
    window.tabs.setCurrentWidget(window.walkthrough_view)
    qtbot.waitUntil(lambda: window.walkthrough is not None, timeout=TIMEOUT_MS)
    assert window.trace.qkv is not None and window.trace.source_text == "le chien dort"
    assert window.trace.translation == reference.trace("le chien dort").translation
    type_sentence(qtbot, window, "le chat dort")  # with the tab open, each keystroke brings them
    assert window.trace.qkv is not None
