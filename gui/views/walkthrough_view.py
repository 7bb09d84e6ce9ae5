"""The attention walkthrough: one head's q, k, v arithmetic for one query token, as tables of numbers.

Two tabs. "Model" shows an `engine.walkthrough.Walkthrough` (the live model's numbers) in five
steps from top to bottom; long vectors are folded to their first and last values until "Show every
value" is ticked. "By hand" is a small editable example with the classroom shortcuts beside the
exact results (gui/views/by_hand.py). All arithmetic lives in engine/walkthrough.py; this module only
puts numbers in cells.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QStackedWidget,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from engine.render.labels import display_piece, format_number
from engine.render.walkthrough import key_labels, walkthrough_title
from engine.walkthrough import Walkthrough
from gui.views.by_hand import ByHandView
from gui.views.tables import FitTable, fill_table, heading, note, rich, scroll_page

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


# --- the panel ---


class WalkthroughView(QWidget):
    """The walkthrough view: set a Walkthrough with `set_walkthrough`; the by-hand tab works alone."""

    # the user picked another query token (index into the query pieces); the owner builds its walkthrough
    queryChosen = Signal(int)
    exportRequested = Signal(str)  # a file name the user chose in the Export… dialog

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
            f"<b>{rich(f'{w.model_name}: {walkthrough_title(w)}')}</b>"
            f"<br>{rich(f'd_model = {w.d_model}, d_k = {w.d_k}')}"
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

    def show_export_message(self, message: str) -> None:
        """What became of an export of this walkthrough (the window writes it, off the GUI thread)."""
        self.export_status.setText(message)
        self.export_status.show()

    def _ask_export(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self,
            "Export the walkthrough",
            "walkthrough.png",
            "Figure (*.png *.svg *.pdf);;Table (*.csv *.json)",
        )
        if path:
            self.exportRequested.emit(path)
