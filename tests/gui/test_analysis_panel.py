"""The Analysis tab and the head view's Rollout / Value norms (issue 18) on the tiny model: the numbers
are engine.analysis' for the trace on screen, computed in the worker only while someone looks, and an
older sentence's analysis never stays on screen."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from PySide6.QtCore import Qt

from engine.analysis import analyze_trace, attention_rollout
from engine.architecture import ATTENTION_KINDS
from gui.analysis_maps import NO_ROLLOUT
from gui.views.analysis_view import COLUMNS

TIMEOUT_MS = 60_000
TEXT = "je suis etudiant"


def show(qtbot, window, text: str) -> None:
    window.source.setText(text)
    qtbot.waitUntil(lambda: window.trace is not None and window.trace.source_text == text, timeout=TIMEOUT_MS)


def wait_for_analysis(qtbot, window, complete: bool = True) -> None:
    panel = window.analysis_panel

    def ready() -> bool:
        analysis = panel.analysis
        return analysis is not None and panel.trace is window.trace and (analysis.complete or not complete)

    qtbot.waitUntil(ready, timeout=TIMEOUT_MS)


@pytest.fixture
def analysed(window, qtbot):
    window.tabs.setCurrentWidget(window.analysis_panel.view)
    show(qtbot, window, TEXT)
    wait_for_analysis(qtbot, window)
    return window


def table_rows(view) -> list[tuple[str, int, int, float]]:
    """(kind, layer, head, entropy) of every row, 0-based, in the table's order."""
    table, column = view.table, COLUMNS.index("entropy")
    assert table.horizontalHeaderItem(column).text() == "entropy"
    rows = []
    for row in range(table.rowCount()):
        kind, layer, head = table.item(row, 0).data(Qt.ItemDataRole.UserRole)
        rows.append((kind, layer, head, table.item(row, column).value))
    return rows


def test_the_table_has_one_row_per_head_with_the_engines_entropies(analysed):
    trace = analysed.trace
    view = analysed.analysis_panel.view
    expected = analyze_trace(trace)
    rows = table_rows(view)
    assert len(rows) == sum(trace.n_layers[kind] * trace.n_heads for kind in ATTENTION_KINDS)
    assert {(k, layer, h) for k, layer, h, _ in rows} == {
        (kind, layer, head)
        for kind in ATTENTION_KINDS
        for layer in range(trace.n_layers[kind])
        for head in range(trace.n_heads)
    }
    for kind, layer, head, entropy in rows:
        assert entropy == pytest.approx(float(expected.statistics[kind].entropy[layer, head]), abs=1e-9)
    # the table shows layers and heads numbered from 1, and every importance once it is complete
    assert view.table.item(0, 1).text() == str(view.table.item(0, 1).value + 1)
    assert all(view.table.item(row, COLUMNS.index("importance")).text() != "—" for row in range(view.table.rowCount()))
    assert "Most important heads" in view.top_line.text() and view.top_line.text().count(" L") == 5
    for kind in ATTENTION_KINDS:  # one importance map per kind, layers × heads, the engine's numbers
        np.testing.assert_allclose(
            view.importance_maps[kind].matrix, analysed.analysis_panel.analysis.importance[kind].drop, rtol=1e-6
        )


def test_flagged_source_pieces_are_named_under_the_sentence_and_in_the_tab(analysed):
    from dataclasses import replace

    panel, trace = analysed.analysis_panel, analysed.trace
    assert not analysed.sentence.coverage_notice.isVisible()  # nothing flagged on this sentence
    flagged = np.zeros(len(trace.src_pieces), dtype=bool)
    flagged[1] = True
    coverage = replace(panel.analysis.coverage, flagged=flagged)
    panel._on_analysis(trace, replace(panel.analysis, coverage=coverage))
    notice = analysed.sentence.coverage_notice
    assert notice.isVisible() and trace.src_pieces[1] in notice.text()
    assert trace.src_pieces[1] in panel.view.coverage_line.text()
    ticks = {i: label.lstrip("\n") for i, label in panel.view.coverage_plot.getAxis("bottom")._tickLevels[0]}
    assert ticks[1] == f"⚠{trace.src_pieces[1]}" and not ticks[0].startswith("⚠")  # a flagged piece keeps its label


def test_clicking_a_row_opens_that_head(analysed, qtbot):
    table, state = analysed.analysis_panel.view.table, analysed.view_state
    target = next(
        row
        for row in range(table.rowCount())
        if tuple(table.item(row, 0).data(Qt.ItemDataRole.UserRole)) == ("enc_self", 1, 2)
    )
    assert (state.kind, state.layer, state.head) != ("enc_self", 1, 2)
    rect = table.visualItemRect(table.item(target, 5))
    qtbot.mouseClick(table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert (state.kind, state.layer, state.head) == ("enc_self", 1, 2)
    np.testing.assert_array_equal(analysed.head_view.heatmap.image.image, analysed.trace.enc_self[1, 2])


def test_a_new_sentence_drops_the_old_analysis(analysed, qtbot):
    panel, view = analysed.analysis_panel, analysed.analysis_panel.view
    shown: list[str] = []
    analysed.client.analysisShown.connect(lambda trace, _analysis: shown.append(trace.source_text))
    newer = "le chat est sur la table"
    analysed.source.setText(newer)
    qtbot.waitUntil(lambda: analysed.trace.source_text == newer, timeout=TIMEOUT_MS)
    # the moment the new trace is painted, no row of the old sentence is left
    assert view.trace is analysed.trace and view.analysis is panel.analysis
    assert panel.analysis is None or panel.analysis.coverage.received.shape == (len(analysed.trace.src_pieces),)
    wait_for_analysis(qtbot, analysed)
    trace = analysed.trace
    assert view.trace is trace and panel.analysis.coverage.received.shape == (len(trace.src_pieces),)
    ticks = [label.lstrip("\n").lstrip("⚠") for _, label in view.coverage_plot.getAxis("bottom")._tickLevels[0]]
    assert ticks == list(trace.src_pieces)
    expected = analyze_trace(trace)
    for kind, layer, head, entropy in table_rows(view):
        assert entropy == pytest.approx(float(expected.statistics[kind].entropy[layer, head]), abs=1e-9)
    assert set(shown) == {newer}  # nothing of the old sentence arrived after the new one was typed


def test_the_tab_keeps_its_height_as_an_analysis_comes_in(analysed, qtbot):
    """The tab's titles and top line keep their height as an analysis empties, fills in kind by kind and
    completes: a line gained or lost there made the tab's minimum height change on every keystroke, and
    the window's splitter moved every map above by a line, relaid and repainted them (seen at 1360 × 860:
    12 px up, 12 px down, and the next key's trace 2× slower for it)."""
    from dataclasses import replace

    view, trace, complete = analysed.analysis_panel.view, analysed.trace, analysed.analysis_panel.analysis
    labels = [view.top_line, *view.importance_titles.values()]
    heights = []
    for analysis in (None, replace(complete, importance={}), complete):  # typed, statistics, all kinds
        view.show_analysis(trace, analysis)
        qtbot.wait(1)  # the layout's pending requests run
        heights.append([label.height() for label in labels])
    assert heights[0] == heights[1] == heights[2], heights


def test_nothing_is_computed_while_nobody_looks(window, qtbot):
    show(qtbot, window, TEXT)
    qtbot.wait(400)
    assert window.analysis_panel.analysis is None
    window.view_state.set_map_mode("value-norms")  # the head view now needs it
    wait_for_analysis(qtbot, window, complete=False)
    qtbot.wait(400)
    analysis = window.analysis_panel.analysis
    assert analysis.value_norms is not None and not analysis.importance  # no masking pass for the head view
    window.tabs.setCurrentWidget(window.analysis_panel.view)  # the table shows importance: now it is computed
    qtbot.waitUntil(lambda: window.analysis_panel.analysis.complete, timeout=TIMEOUT_MS)
    assert set(window.analysis_panel.analysis.importance) == set(window.trace.kinds)


def test_rollout_and_value_norms_replace_the_weights_in_the_head_view(window, qtbot):
    state, head_view = window.view_state, window.head_view
    show(qtbot, window, TEXT)
    state.select("enc_self", 0, 0)
    state.set_map_mode("rollout")
    assert head_view.map_mode.currentText() == "Rollout"
    wait_for_analysis(qtbot, window, complete=False)
    expected = attention_rollout(window.trace.enc_self)[0]  # after the first of the two encoder layers
    np.testing.assert_allclose(head_view.heatmap.image.image, expected, rtol=1e-9)
    assert head_view.stack.currentWidget() is head_view.heatmap
    state.set_kind("cross")  # no rollout for the decoder's kinds: the view says why
    assert head_view.stack.currentWidget() is head_view.unavailable
    assert head_view.unavailable.text() == NO_ROLLOUT
    head_view.map_mode.activated.emit(2)  # the user picks Value norms: the ViewState changes
    assert state.map_mode == "value-norms"
    norms = window.analysis_panel.analysis.value_norms["cross"][state.layer, state.head]
    np.testing.assert_allclose(head_view.heatmap.image.image, norms, rtol=1e-9)
    state.set_map_mode("weights")
    np.testing.assert_array_equal(head_view.heatmap.image.image, window.trace.cross[state.layer, state.head])


def test_the_export_menu_writes_an_importance_png(analysed, qtbot, tmp_path):
    analysed.update_export_actions()
    analysed.export_menu.aboutToShow.emit()
    assert analysed.export_actions["importance"].isEnabled()
    path = tmp_path / "importance.png"
    outcome: list[str] = []
    analysed.exporter.finished.connect(lambda job, error: outcome.append(error))
    analysed.export_actions["importance"].setData(None)
    analysed.export_to("importance", path)
    qtbot.waitUntil(lambda: bool(outcome), timeout=TIMEOUT_MS)
    assert outcome == [""]
    assert path.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_analysis_exports_are_disabled_before_an_analysis(window, qtbot):
    show(qtbot, window, TEXT)
    window.export_menu.aboutToShow.emit()
    assert window.export_actions["head"].isEnabled()
    assert not window.export_actions["importance"].isEnabled()
    assert not window.export_actions["rollout"].isEnabled()


def test_a_newer_request_stops_the_worker_between_stages_and_the_client_drops_the_rest(
    qtbot, tiny_model_dir, monkeypatch
):
    import engine.importance
    from gui.worker import TranslationClient

    client = TranslationClient()
    try:
        client.load_model(tiny_model_dir, "cpu")
        qtbot.waitUntil(lambda: client.model is not None, timeout=TIMEOUT_MS)
        shown: list = []
        client.resultShown.connect(lambda result: shown.append(result.trace))
        client.translate(TEXT)
        qtbot.waitUntil(lambda: bool(shown), timeout=TIMEOUT_MS)
        entered, release, passes = threading.Event(), threading.Event(), []
        original = engine.importance.head_importance

        def gated(*args, **kwargs):  # the first masking pass waits until a newer keystroke has come
            passes.append(args[-1])
            entered.set()
            release.wait(10)
            return original(*args, **kwargs)

        monkeypatch.setattr(engine.importance, "head_importance", gated)
        analyses: list = []
        client.analysisShown.connect(lambda trace, analysis: analyses.append(analysis))
        assert client.analyze_shown() is shown[0]
        assert entered.wait(30)  # the statistics stage is sent and waits in the queue: no events processed
        client.translate("le chat dort")
        release.set()
        qtbot.waitUntil(lambda: len(shown) == 2, timeout=TIMEOUT_MS)
        qtbot.wait(200)
        assert analyses == []  # the statistics of the old trace arrived after the keystroke: dropped
        assert passes == ["enc_self"]  # the other kinds' masking passes never ran
    finally:
        client.shutdown()
