"""The attention walkthrough: one head's q, k, v arithmetic for one query token, as tables of numbers.

Two tabs. "Model" shows an `engine.walkthrough.Walkthrough` (the live model's numbers) in five
steps from top to bottom; long vectors are folded to their first and last values until "Show every
value" is ticked. "By hand" is a small editable example with the classroom shortcuts beside the
exact results. All arithmetic lives in engine/walkthrough.py; this module only puts numbers in cells.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QFileDialog,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QStackedWidget,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from engine.render.labels import display_piece, format_number
from engine.render.walkthrough import all_whole, folded_indices, walkthrough_title
from engine.walkthrough import (
    ByHandExample,
    ByHandResult,
    Walkthrough,
    default_by_hand_example,
    shortcut_divisor,
    work_by_hand,
)

MAX_TABLE_ROWS = 12  # taller tables scroll inside themselves, so one matrix never fills the page
ELLIPSIS = "…"


# --- tables ---


class FitTable(QTableWidget):
    """A read-only (or editable) table as wide as its numbers and as tall as its rows, up to MAX_TABLE_ROWS.

    It reserves room for a horizontal scroll bar only while the window is too narrow for it.
    """

    def __init__(self, editable: bool = False) -> None:
        super().__init__()
        if not editable:
            self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.verticalHeader().setDefaultSectionSize(22)
        self.horizontalHeader().setMinimumSectionSize(24)

    def content_width(self) -> int:
        width = self.verticalHeader().sizeHint().width() + self.horizontalHeader().length() + 2 * self.frameWidth()
        if self.rowCount() > MAX_TABLE_ROWS:
            width += self.verticalScrollBar().sizeHint().width()
        return width

    def fit(self) -> None:
        self.resizeColumnsToContents()
        self.setMaximumWidth(self.content_width())
        self._fit_height()

    def _fit_height(self) -> None:
        rows = sum(self.rowHeight(r) for r in range(min(self.rowCount(), MAX_TABLE_ROWS)))
        scroll = self.horizontalScrollBar().sizeHint().height() if self.content_width() > self.width() else 0
        self.setFixedHeight(self.horizontalHeader().sizeHint().height() + rows + scroll + 2 * self.frameWidth())

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._fit_height()


def fill_table(
    table: FitTable,
    values: np.ndarray,
    row_labels: Sequence[str],
    column_labels: Sequence[str] | None = None,
    fold_rows: bool = False,
    fold_columns: bool = False,
    bold_row: int | None = None,
) -> None:
    """Show a 2-D array; folded axes keep their first and last entries around a '…' row or column."""
    rows = folded_indices(values.shape[0], fold_rows)
    columns = folded_indices(values.shape[1], fold_columns)
    if column_labels is None:
        column_labels = [str(c + 1) for c in range(values.shape[1])]  # dimensions numbered from 1
    whole = all_whole(values)  # one table, one format: integers stay integers, decimals line up
    table.clear()
    table.setRowCount(len(rows))
    table.setColumnCount(len(columns))
    table.setVerticalHeaderLabels([ELLIPSIS if r is None else row_labels[r] for r in rows])
    table.setHorizontalHeaderLabels([ELLIPSIS if c is None else column_labels[c] for c in columns])
    bold = QFont(table.font())
    bold.setBold(True)
    for i, r in enumerate(rows):
        for j, c in enumerate(columns):
            text = ELLIPSIS if r is None or c is None else format_number(float(values[r, c]), whole)
            item = QTableWidgetItem(text)
            item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            if r is not None and r == bold_row:
                item.setFont(bold)
            table.setItem(i, j, item)
    table.fit()


def table_values(table: QTableWidget) -> list[list[str]]:
    """Every cell's text, row by row (what the user reads; used by the tests)."""
    return [[table.item(r, c).text() for c in range(table.columnCount())] for r in range(table.rowCount())]


def rich(text: str) -> str:
    """Plain text to Qt rich text: W^Q → W<sup>Q</sup>, d_model → d<sub>model</sub>, pieces escaped."""
    text = html.escape(text, quote=False)
    text = re.sub(r"\^(\w)", r"<sup>\1</sup>", text)
    return re.sub(r"(?<=[a-zA-ZΣ])_(model|k|j|i|1|H)\b", r"<sub>\1</sub>", text)


def note(text: str = "") -> QLabel:
    label = QLabel(text)
    label.setWordWrap(True)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    return label


def heading(text: str) -> QLabel:
    label = QLabel(rich(text))
    font = label.font()
    font.setBold(True)
    font.setPointSizeF(font.pointSizeF() * 1.15)
    label.setFont(font)
    label.setContentsMargins(0, 10, 0, 0)
    return label


def titled_grid(cells: list[tuple[str, QWidget]]) -> QGridLayout:
    """Widgets side by side, each under its title, packed to the top left."""
    grid = QGridLayout()
    top_left = Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop
    for column, (title, widget) in enumerate(cells):
        grid.addWidget(QLabel(rich(title)), 0, column, alignment=top_left)
        grid.addWidget(widget, 1, column, alignment=top_left)
    grid.setColumnStretch(len(cells), 1)
    return grid


def scroll_page(content: QWidget) -> QScrollArea:
    area = QScrollArea()
    area.setWidgetResizable(True)
    area.setWidget(content)
    return area


# --- the model's walkthrough ---


class ModelWalkthrough(QWidget):
    """The five steps of a Walkthrough, top to bottom."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.walkthrough: Walkthrough | None = None
        self.tables: dict[str, FitTable] = {}
        self.notes: dict[str, QLabel] = {}
        self.layout_ = QVBoxLayout(self)
        self._build()
        self.layout_.addStretch(1)

    def _table(self, name: str) -> FitTable:
        self.tables[name] = FitTable()
        self.layout_.addWidget(self.tables[name])
        return self.tables[name]

    def _note(self, name: str) -> QLabel:
        self.notes[name] = note()
        self.notes[name].setTextFormat(Qt.TextFormat.RichText)
        self.layout_.addWidget(self.notes[name])
        return self.notes[name]

    def _say(self, name: str, text: str) -> None:
        self.notes[name].setText(rich(text))

    def _build(self) -> None:
        add = self.layout_.addWidget
        add(heading("1. Inputs, and q, k, v from three weight matrices"))
        self._note("inputs")
        for name in ("x_query", "x_keys"):
            self._note(name)
            self._table(name)
        self._note("weights")
        for name in ("q", "k", "v"):
            self._note(f"w_{name}")
            self._table(f"w_{name}")
            self._note(name)
            self._table(name)
        add(heading("2. Scores: multiply Kᵀ and q"))
        self._note("scores")
        self._table("scores")
        add(heading("3. Scaling by √d_k"))
        self._note("scaled")
        self._table("scaled")
        add(heading("4. Mask and softmax"))
        self._note("softmax")
        self._table("softmax")
        add(heading("5. Output: the weighted sum of the values, then W^O"))
        self._note("weighted_v")
        self._table("weighted_v")
        self._note("heads_z")
        self._table("heads_z")
        for name in ("w_o", "output"):
            self._note(name)
            self._table(name)

    def show_walkthrough(self, w: Walkthrough, fold: bool) -> None:
        self.walkthrough = w
        self._show_inputs(w, fold)
        self._show_projections(w, fold)
        self._show_scores(w)
        self._show_output(w, fold)

    def _show_inputs(self, w: Walkthrough, fold: bool) -> None:
        keys = key_labels(w)
        query = f"x  ({w.query + 1} {display_piece(w.query_piece)})"
        self._say(
            "inputs",
            f"The head reads rows of d_model = {w.d_model} numbers. The query row is {w.query_note}; "
            f"the key and value rows are {w.key_note}. Model: {w.norm}-norm.",
        )
        self._say("x_query", "The query token's row x:")
        fill_table(self.tables["x_query"], w.x_query[None, :], [query], fold_columns=fold)
        self._say("x_keys", f"The rows x_j the {len(w.key_pieces)} keys and values are computed from:")
        bold = w.query if w.kind != "cross" else None  # in self-attention the query is one of the keys
        fill_table(self.tables["x_keys"], w.x_keys, [f"x_{label}" for label in keys], fold_columns=fold, bold_row=bold)

    def _show_projections(self, w: Walkthrough, fold: bool) -> None:
        h = w.head
        self._say(
            "weights",
            f"Head {h + 1}'s slices of the layer's projections: columns {h * w.d_k + 1}–{(h + 1) * w.d_k} of "
            f"W^Q, W^K and W^V (each d_model × d_k = {w.d_model} × {w.d_k}), and of their biases.",
        )
        dims = [str(r + 1) for r in range(w.d_model)]
        p = w.params
        for name, matrix, bias in (("q", p.w_q, p.b_q), ("k", p.w_k, p.b_k), ("v", p.w_v, p.b_v)):
            upper = name.upper()
            self._say(f"w_{name}", f"W^{upper} ({w.d_model} rows), with b^{upper} as its last row:")
            with_bias = np.vstack([matrix, bias[None, :]])  # (d_model + 1, d_k)
            labels = [*dims, f"b^{upper}"]
            fill_table(
                self.tables[f"w_{name}"], with_bias, labels, fold_rows=fold, fold_columns=fold, bold_row=w.d_model
            )
        keys = key_labels(w)
        self._say("q", f"q = x W^Q + b^Q  ({w.d_k} numbers):")
        fill_table(self.tables["q"], w.q[None, :], [f"q  ({display_piece(w.query_piece)})"], fold_columns=fold)
        self._say("k", "k_j = x_j W^K + b^K for every key:")
        fill_table(self.tables["k"], w.k, [f"k_{label}" for label in keys], fold_columns=fold)
        self._say("v", "v_j = x_j W^V + b^V for every key:")
        fill_table(self.tables["v"], w.v, [f"v_{label}" for label in keys], fold_columns=fold)

    def _show_scores(self, w: Walkthrough) -> None:
        keys = key_labels(w)
        self._say("scores", "One dot product q · k_j per key: how well the query matches each key.")
        fill_table(self.tables["scores"], w.scores[None, :], ["q · k_j"], keys)
        self._say(
            "scaled", f"Each score divided by √d_k = √{w.d_k} = {w.scale:.4f}, so that the softmax does not saturate."
        )
        fill_table(self.tables["scaled"], w.scaled[None, :], [f"÷ √{w.d_k}"], keys)
        if w.kind == "dec_self":
            mask = (
                f"Decoder self-attention: keys after position {w.query + 1} are future tokens, set to −∞ "
                "so that they get weight 0."
            )
        else:
            mask = "No key is masked here (only decoder self-attention hides future positions)."
        self._say(
            "softmax", f"{mask} Softmax: weight_j = exp(s_j) / Σ exp(s_i). The weights sum to {w.weights.sum():.4f}."
        )
        fill_table(self.tables["softmax"], np.vstack([w.masked, w.weights]), ["masked", "weight"], keys)

    def _show_output(self, w: Walkthrough, fold: bool) -> None:
        keys = key_labels(w)
        rows = [f"{format_number(w.weights[j])} · v_{label}" for j, label in enumerate(keys)]
        self._say("weighted_v", "z = Σ_j weight_j · v_j: each value row scaled by its weight, then summed.")
        values = np.vstack([w.weighted_v, w.z[None, :]])
        fill_table(self.tables["weighted_v"], values, [*rows, "z = Σ"], fold_columns=fold, bold_row=len(rows))
        self._say(
            "heads_z",
            f"Every head computes its own z for this token; the {w.n_heads} z vectors are concatenated "
            f"into one row of {w.n_heads} × {w.d_k} = {w.concat.size} numbers (head {w.head + 1} in bold):",
        )
        heads = [f"z head {h + 1}" for h in range(w.n_heads)]
        fill_table(self.tables["heads_z"], w.all_z, heads, fold_columns=fold, bold_row=w.head)
        self._say("w_o", f"W^O ({w.concat.size} rows, one per number of the concatenation), with b^O as its last row:")
        with_bias = np.vstack([w.params.w_o, w.params.b_o[None, :]])  # (H·d_k + 1, d_model)
        labels = [*(str(r + 1) for r in range(w.concat.size)), "b^O"]
        fill_table(self.tables["w_o"], with_bias, labels, fold_rows=fold, fold_columns=fold, bold_row=w.concat.size)
        self._say("output", "concat(z_1 … z_H) W^O + b^O: this token's row of the attention sublayer's output.")
        fill_table(self.tables["output"], w.output[None, :], ["output"], fold_columns=fold)


def key_labels(w: Walkthrough) -> list[str]:
    return [f"{j + 1} {display_piece(p)}" for j, p in enumerate(w.key_pieces)]


# --- the by-hand example ---


class ByHandView(QWidget):
    """An editable board example: X, W^Q, W^K, W^V in, exact and shortcut results side by side."""

    INPUTS = ("x", "w_q", "w_k", "w_v")

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.result: ByHandResult | None = None
        self.inputs: dict[str, FitTable] = {name: FitTable(editable=True) for name in self.INPUTS}
        self.tables: dict[str, FitTable] = {}
        self.side_boxes: dict[str, QGroupBox] = {}
        self.tokens = QSpinBox(minimum=2, maximum=6, value=4)
        self.width_ = QSpinBox(minimum=2, maximum=4, value=3)
        self.causal = QCheckBox("Causal mask (as in decoder self-attention)")
        self.shortcut_scaling = QCheckBox()
        self.shortcut_exp = QCheckBox("eˣ ≈ 3ˣ")
        for box in (self.shortcut_scaling, self.shortcut_exp):
            box.setChecked(True)
        self.error = note()
        layout = QVBoxLayout(self)
        layout.addWidget(
            note(
                "A board-sized example: each row of X is a token. Edit any number (double-click a cell); "
                "every result below follows. The shortcuts are the ones used when working by hand."
            )
        )
        layout.addLayout(self._controls())
        layout.addLayout(self._input_grid())
        layout.addLayout(self._products())
        layout.addLayout(self._sides())
        layout.addWidget(self.error)
        layout.addStretch(1)
        self._load(default_by_hand_example())
        for widget in (self.causal, self.shortcut_scaling, self.shortcut_exp):
            widget.toggled.connect(self.recompute)
        self.tokens.valueChanged.connect(self._resize)
        self.width_.valueChanged.connect(self._resize)
        for table in self.inputs.values():
            table.itemChanged.connect(self.recompute)
        self.recompute()

    def _controls(self) -> QHBoxLayout:
        row = QHBoxLayout()
        row.addWidget(QLabel("tokens"))
        row.addWidget(self.tokens)
        row.addWidget(QLabel("d_model = d_k"))
        row.addWidget(self.width_)
        for box in (self.causal, self.shortcut_scaling, self.shortcut_exp):
            row.addWidget(box)
        row.addStretch(1)
        return row

    def _input_grid(self) -> QGridLayout:
        titles = ("X (one row per token)", "W^Q", "W^K", "W^V")
        return titled_grid(list(zip(titles, (self.inputs[name] for name in self.INPUTS), strict=True)))

    def _products(self) -> QGridLayout:
        names, titles = (
            ("q", "k", "v", "scores"),
            ("Q = X W^Q", "K = X W^K", "V = X W^V", "scores Q Kᵀ (row: query, column: key)"),
        )
        for name in names:
            self.tables[name] = FitTable()
        return titled_grid([(title, self.tables[name]) for name, title in zip(names, titles, strict=True)])

    def _sides(self) -> QHBoxLayout:
        row = QHBoxLayout()
        steps = (
            ("scaled", "scaled scores"),
            ("exps", "powers"),
            ("weights", "weights (rows sum to 1)"),
            ("z", "Z = weights V"),
        )
        for side in ("exact", "shortcut"):
            box = QGroupBox()
            column = QVBoxLayout(box)
            for what, title in steps:
                self.tables[f"{side}.{what}"] = FitTable()
                column.addWidget(QLabel(title))
                column.addWidget(self.tables[f"{side}.{what}"])
            self.side_boxes[side] = box
            row.addWidget(box)
        box = QGroupBox("the shortcut's error: shortcut − exact")
        column = QVBoxLayout(box)
        for what, title in (("weights", "weights"), ("z", "Z")):
            self.tables[f"error.{what}"] = FitTable()
            column.addWidget(QLabel(title))
            column.addWidget(self.tables[f"error.{what}"])
        column.addStretch(1)
        row.addWidget(box)
        return row

    # --- reading and writing the inputs ---

    def _load(self, example: ByHandExample) -> None:
        for name in self.INPUTS:
            self._put_matrix(self.inputs[name], getattr(example, name))

    def _put_matrix(self, table: FitTable, values: np.ndarray) -> None:
        table.blockSignals(True)  # one recompute after the whole matrix, not one per cell
        table.setRowCount(values.shape[0])
        table.setColumnCount(values.shape[1])
        if table is self.inputs["x"]:
            table.setVerticalHeaderLabels([f"token {r + 1}" for r in range(values.shape[0])])
        for r in range(values.shape[0]):
            for c in range(values.shape[1]):
                item = QTableWidgetItem()
                item.setData(Qt.ItemDataRole.EditRole, int(values[r, c]))  # int data: Qt edits it in a spin box
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                table.setItem(r, c, item)
        table.fit()
        table.blockSignals(False)

    def _matrix(self, table: QTableWidget) -> np.ndarray:
        values = [
            [int(table.item(r, c).data(Qt.ItemDataRole.EditRole) or 0) for c in range(table.columnCount())]
            for r in range(table.rowCount())
        ]
        return np.array(values, dtype=np.float64)

    def example(self) -> ByHandExample:
        x, w_q, w_k, w_v = (self._matrix(self.inputs[name]) for name in self.INPUTS)
        return ByHandExample(x, w_q, w_k, w_v, causal=self.causal.isChecked())

    def _resize(self) -> None:
        """New sizes keep the numbers already typed where they still fit; new cells start at 0."""
        n, d = self.tokens.value(), self.width_.value()
        for name, shape in (("x", (n, d)), ("w_q", (d, d)), ("w_k", (d, d)), ("w_v", (d, d))):
            old = self._matrix(self.inputs[name])
            new = np.zeros(shape)
            rows, cols = min(shape[0], old.shape[0]), min(shape[1], old.shape[1])
            new[:rows, :cols] = old[:rows, :cols]
            self._put_matrix(self.inputs[name], new)
        self.recompute()

    # --- results ---

    def recompute(self) -> None:
        example = self.example()
        d = example.w_q.shape[1]
        self.shortcut_scaling.setText(f"÷ √{d} ≈ floor(x / {shortcut_divisor(d)})")
        result = work_by_hand(example, self.shortcut_scaling.isChecked(), self.shortcut_exp.isChecked())
        self.result = result
        tokens = [f"token {i + 1}" for i in range(example.x.shape[0])]
        for name in ("q", "k", "v", "scores"):
            fill_table(self.tables[name], getattr(result, name), tokens)
        for side_name, side in (("exact", result.exact), ("shortcut", result.shortcut)):
            self.side_boxes[side_name].setTitle(f"{side_name}: {side.label}")
            for what in ("scaled", "exps", "weights", "z"):
                fill_table(self.tables[f"{side_name}.{what}"], getattr(side, what), tokens)
        fill_table(self.tables["error.weights"], result.shortcut.weights - result.exact.weights, tokens)
        fill_table(self.tables["error.z"], result.shortcut.z - result.exact.z, tokens)
        self.error.setText(
            f"The shortcuts' error: largest weight difference {result.max_weight_error:.4f}, "
            f"largest difference in Z {result.max_z_error:.4f}."
        )


# --- the panel ---


class WalkthroughView(QWidget):
    """The walkthrough view: set a Walkthrough with `set_walkthrough`; the by-hand tab works alone."""

    # the user picked another query token (index into the query pieces); the owner builds its walkthrough
    queryChosen = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.walkthrough: Walkthrough | None = None
        self.title = note()
        self.title.setTextFormat(Qt.TextFormat.RichText)
        self.query = QComboBox()
        self.query.setToolTip("The query token whose attention is worked through")
        self.query.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.query.setMinimumContentsLength(14)  # a fixed width: long pieces do not resize the panel
        self.show_all = QCheckBox("Show every value")
        self.show_all.setToolTip("Long vectors and matrices are folded to their first and last values")
        self.export_button = QPushButton("Export…")
        self.export_button.setEnabled(False)
        self.export_status = note()
        self.export_status.hide()  # shown once there is a message, so it takes no room before
        self.steps = ModelWalkthrough()
        self.placeholder = note(
            "The walkthrough of one head appears here once a sentence is translated with q, k and v recorded."
        )
        self.placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.stack = QStackedWidget()
        self.stack.addWidget(self.placeholder)
        # the title and messages scroll with the steps: the panel's minimum size never depends on
        # its text, so a new walkthrough does not resize the window around it
        content = QWidget()
        column = QVBoxLayout(content)
        for widget in (self.title, self.export_status, self.steps):
            column.addWidget(widget)
        self.stack.addWidget(scroll_page(content))
        self.by_hand = ByHandView()
        self.tabs = QTabWidget()
        self.tabs.addTab(self._model_page(), "Model")
        self.tabs.addTab(scroll_page(self.by_hand), "By hand")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.tabs)
        self.show_all.toggled.connect(self._redraw)
        self.query.activated.connect(self.queryChosen.emit)
        self.export_button.clicked.connect(self._ask_export)

    def _model_page(self) -> QWidget:
        page = QWidget()
        bar = QHBoxLayout()
        bar.addWidget(QLabel("query token"))
        bar.addWidget(self.query)
        bar.addWidget(self.show_all)
        bar.addStretch(1)
        bar.addWidget(self.export_button)
        layout = QVBoxLayout(page)
        layout.addLayout(bar)
        layout.addWidget(self.stack, 1)
        return page

    def set_walkthrough(self, w: Walkthrough | None) -> None:
        """Show `w`, or the placeholder for None."""
        self.walkthrough = w
        self.export_button.setEnabled(w is not None)
        self.export_status.hide()
        if w is None:
            self.title.clear()
            self.query.clear()
            self.stack.setCurrentIndex(0)
            return
        self.title.setText(
            f"<b>{rich(f'{w.model_name}: {walkthrough_title(w)}')}</b><br>{rich(f'd_model = {w.d_model}, d_k = {w.d_k}')}"
        )
        self.query.blockSignals(True)
        self.query.clear()
        self.query.addItems([f"{i + 1} {display_piece(p)}" for i, p in enumerate(w.query_pieces)])
        self.query.setCurrentIndex(w.query)
        self.query.blockSignals(False)
        self._redraw()
        self.stack.setCurrentIndex(1)

    def _redraw(self) -> None:
        if self.walkthrough is not None:
            self.steps.show_walkthrough(self.walkthrough, fold=not self.show_all.isChecked())

    # --- export ---

    def export_to(self, path: Path | str) -> str:
        """Write the walkthrough (figure or table, by suffix); returns the message shown to the user."""
        from engine.render.figures import ExportError  # loads matplotlib: only when the user exports
        from engine.render.walkthrough import save_walkthrough

        if self.walkthrough is None:
            message = "Nothing to export yet."
        else:
            try:
                message = f"Saved {save_walkthrough(self.walkthrough, path)}"
            except ExportError as error:
                message = str(error)
        self.export_status.setText(message)
        self.export_status.show()
        return message

    def _ask_export(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self,
            "Export the walkthrough",
            "walkthrough.png",
            "Figure (*.png *.svg *.pdf);;Table (*.csv *.json)",
        )
        if path:
            self.export_to(path)
