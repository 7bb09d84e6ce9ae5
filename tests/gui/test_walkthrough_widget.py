"""The walkthrough panel: the numbers it shows are the model's, and the by-hand tab follows its shortcuts."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # before anything loads Qt

import math  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PySide6.QtCore import Qt  # noqa: E402

from engine.render.walkthrough import folded_indices  # noqa: E402
from engine.translator import TraceOptions, Translator  # noqa: E402
from gui.views.tables import table_values  # noqa: E402
from gui.views.walkthrough_view import WalkthroughView  # noqa: E402

KIND, LAYER, HEAD, QUERY = "dec_self", 1, 2, 2


@pytest.fixture(scope="module")
def traced(tiny_model_dir):
    translator = Translator.from_directory(tiny_model_dir, "cpu")
    return translator, translator.trace("Je suis étudiant.", TraceOptions(with_qkv=True))


@pytest.fixture
def walkthrough(traced):
    translator, trace = traced
    return translator.walkthrough(trace, KIND, LAYER, HEAD, QUERY)


@pytest.fixture
def panel(qtbot):
    widget = WalkthroughView()
    qtbot.addWidget(widget)
    # a top-level widget without an explicit minimum size makes the offscreen plugin warn
    # ("does not support propagateSizeHints"); in the app the main window hosts the panel
    widget.setMinimumSize(400, 300)
    widget.resize(1000, 800)
    widget.show()
    return widget


def numbers(row: list[str]) -> list[float]:
    """Cell texts back to numbers ('…' cells dropped, '−∞' read as -inf)."""
    return [-math.inf if text == "−∞" else float(text) for text in row if text != "…"]


def test_panel_shows_the_models_own_numbers(panel, walkthrough, traced):
    _, trace = traced
    prefix = f"decoder.{LAYER}.self_attn"
    panel.set_walkthrough(walkthrough)
    assert panel.stack.currentIndex() == 1
    tables = panel.steps.tables

    # step 2 and 4 against what the model recorded (4 decimals shown)
    recorded_scores = trace.qkv[f"{prefix}.scores"][HEAD, QUERY]
    np.testing.assert_allclose(numbers(table_values(tables["scores"])[0]), recorded_scores, atol=1e-4)
    masked, weights = (numbers(row) for row in table_values(tables["softmax"]))
    np.testing.assert_allclose(weights, trace.dec_self[LAYER, HEAD, QUERY], atol=1e-4)
    assert masked[QUERY + 1 :] == [-math.inf] * (len(trace.tgt_pieces) - QUERY - 1)
    assert tables["softmax"].horizontalHeaderItem(0).text() == "1 <s>"

    # step 5: the folded z row (last row of the weighted sum) is the model's per-head z
    z_row = numbers(table_values(tables["weighted_v"])[-1])
    shown = [c for c in folded_indices(walkthrough.d_k, fold=True) if c is not None]
    np.testing.assert_allclose(z_row, trace.qkv[f"{prefix}.z"][HEAD, QUERY][shown], atol=1e-4)
    output_row = numbers(table_values(tables["output"])[0])
    shown = [c for c in folded_indices(walkthrough.d_model, fold=True) if c is not None]
    np.testing.assert_allclose(output_row, trace.qkv[f"{prefix}.output"][QUERY][shown], atol=1e-4)
    assert f"query {QUERY + 1}/" in panel.title.text()
    assert "post-norm" in panel.steps.notes["inputs"].text()


def test_show_every_value_unfolds_the_vectors(panel, walkthrough):
    panel.set_walkthrough(walkthrough)
    q_table = panel.steps.tables["q"]
    assert "…" in table_values(q_table)[0]
    panel.show_all.setChecked(True)
    assert q_table.columnCount() == walkthrough.d_k
    np.testing.assert_allclose(numbers(table_values(q_table)[0]), walkthrough.q, atol=1e-4)
    assert panel.steps.tables["w_q"].rowCount() == walkthrough.d_model + 1  # every row, then b^Q
    panel.show_all.setChecked(False)
    assert q_table.columnCount() == len(folded_indices(walkthrough.d_k, fold=True))


def test_no_walkthrough_shows_the_placeholder_and_query_choice_is_signalled(panel, walkthrough, qtbot):
    assert panel.stack.currentIndex() == 0 and not panel.export_button.isEnabled()
    panel.set_walkthrough(walkthrough)
    assert panel.query.count() == len(walkthrough.query_pieces) and panel.query.currentIndex() == QUERY
    with qtbot.waitSignal(panel.queryChosen) as blocker:
        panel.query.activated.emit(0)
    assert blocker.args == [0]
    panel.set_walkthrough(None)
    assert panel.stack.currentIndex() == 0


def test_the_export_button_asks_the_owner_and_shows_its_answer(panel, walkthrough, qtbot, monkeypatch):
    """The panel writes nothing itself (the window's exporter does, off the GUI thread): it passes the
    chosen file on and shows what became of it."""
    from PySide6.QtWidgets import QFileDialog

    panel.set_walkthrough(walkthrough)
    assert panel.export_button.isEnabled() and not panel.export_status.isVisible()
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *args, **kwargs: ("/somewhere/w.csv", "Table"))
    with qtbot.waitSignal(panel.exportRequested) as blocker:
        panel.export_button.click()
    assert blocker.args == ["/somewhere/w.csv"]
    panel.show_export_message("cannot write /somewhere/w.csv: No such file or directory")
    assert panel.export_status.isVisible() and panel.export_status.text().startswith("cannot write")
    panel.set_walkthrough(walkthrough)  # a new walkthrough: the old message goes
    assert not panel.export_status.isVisible()


# --- by hand ---


def board(x, wq, wk, wv, scale, power):
    """Weights and Z worked by hand with plain loops."""
    n, d = len(x), len(wq[0])

    def mul(a, b):
        return [[sum(a[i][t] * b[t][j] for t in range(len(b))) for j in range(len(b[0]))] for i in range(len(a))]  # noqa: E731

    q, k, v = mul(x, wq), mul(x, wk), mul(x, wv)
    weights = []
    for i in range(n):
        exps = [power(scale(sum(q[i][t] * k[j][t] for t in range(d)))) for j in range(n)]
        weights.append([e / sum(exps) for e in exps])
    z = [[sum(weights[i][j] * v[j][c] for j in range(n)) for c in range(d)] for i in range(n)]
    return q, weights, z


def shown(by_hand, name) -> np.ndarray:
    return np.array([numbers(row) for row in table_values(by_hand.tables[name])])


def matrix(by_hand, name) -> list[list[int]]:
    table = by_hand.inputs[name]
    return [[int(table.item(r, c).text()) for c in range(table.columnCount())] for r in range(table.rowCount())]


def test_by_hand_toggles_show_the_shortcuts_values(panel):
    by_hand = panel.by_hand
    x, wq, wk, wv = (matrix(by_hand, name) for name in ("x", "w_q", "w_k", "w_v"))
    assert len(x) == 4 and len(wq) == len(wq[0]) == 3  # the default: 4 tokens, d_k = 3
    exact = lambda s: s / math.sqrt(3)  # noqa: E731
    floor2 = lambda s: s // 2  # noqa: E731
    _, exact_w, exact_z = board(x, wq, wk, wv, exact, math.exp)
    _, both_w, both_z = board(x, wq, wk, wv, floor2, lambda s: 3**s)
    _, floor_w, _ = board(x, wq, wk, wv, floor2, math.exp)

    np.testing.assert_allclose(shown(by_hand, "exact.weights"), exact_w, atol=1e-4)
    np.testing.assert_allclose(shown(by_hand, "exact.z"), exact_z, atol=1e-4)
    np.testing.assert_allclose(shown(by_hand, "shortcut.weights"), both_w, atol=1e-4)
    np.testing.assert_allclose(shown(by_hand, "shortcut.z"), both_z, atol=1e-4)
    assert table_values(by_hand.tables["shortcut.exps"])[0] == ["3", "9", "9", "3"]  # 3ˣ of whole numbers
    np.testing.assert_allclose(shown(by_hand, "error.weights"), np.array(both_w) - np.array(exact_w), atol=1e-4)

    by_hand.shortcut_exp.setChecked(False)  # floor(x / 2) kept, eˣ exact
    np.testing.assert_allclose(shown(by_hand, "shortcut.weights"), floor_w, atol=1e-4)
    assert "eˣ" in by_hand.side_boxes["shortcut"].title()
    by_hand.shortcut_scaling.setChecked(False)  # no shortcut left: both sides agree
    np.testing.assert_allclose(shown(by_hand, "shortcut.weights"), exact_w, atol=1e-4)
    np.testing.assert_allclose(shown(by_hand, "error.weights"), 0.0, atol=1e-12)


def test_by_hand_edits_and_causal_mask_recompute(panel):
    by_hand = panel.by_hand
    by_hand.inputs["x"].item(0, 0).setData(Qt.ItemDataRole.EditRole, 3)  # as if typed into the cell
    x, wq, wk, wv = (matrix(by_hand, name) for name in ("x", "w_q", "w_k", "w_v"))
    assert x[0][0] == 3
    q, exact_w, _ = board(x, wq, wk, wv, lambda s: s / math.sqrt(3), math.exp)
    np.testing.assert_allclose(shown(by_hand, "q"), q)
    np.testing.assert_allclose(shown(by_hand, "exact.weights"), exact_w, atol=1e-4)

    by_hand.causal.setChecked(True)
    weights = shown(by_hand, "exact.weights")
    assert np.all(np.triu(weights, 1) == 0) and np.allclose(weights.sum(axis=1), 1.0, atol=1e-3)
    assert table_values(by_hand.tables["exact.scaled"])[0][1] == "−∞"

    by_hand.tokens.setValue(3)
    by_hand.width_.setValue(2)
    assert shown(by_hand, "scores").shape == (3, 3) and shown(by_hand, "q").shape == (3, 2)
    assert matrix(by_hand, "x")[0][0] == 3  # numbers already typed survive a resize
    assert "floor(x / 1)" in by_hand.shortcut_scaling.text()  # √2 rounds to 1


def test_panel_renders_something(panel, walkthrough, qtbot):
    """A pixel probe: after a walkthrough the panel paints text on its background."""
    panel.set_walkthrough(walkthrough)
    qtbot.wait(50)
    image = panel.grab().toImage()
    assert image.width() > 500 and image.height() > 500
    colours = {image.pixel(x, y) for x in range(0, image.width(), 7) for y in range(0, image.height(), 7)}
    assert len(colours) > 5


def test_the_widget_module_imports_no_torch():
    code = "import sys, gui.views.walkthrough_view; print('torch' in sys.modules)"
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    result = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, env=env)
    assert result.stdout.strip() == "False", result.stderr
