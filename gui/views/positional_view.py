"""The positional-encoding view: the table as a heatmap, chosen dimensions as curves, the rows added
to the sentence's pieces next to their embeddings' norms, and the positions' dot-product similarity.

"Explore" swaps the model's table for the closed form at an editable base and d_model, with a small
table of values to three decimals that a student can check against a table made by hand.

A BERT or GPT-2 learned its positions: the view says "learned", shows the rows of the learned table
that the input used, and hides the sinusoid's controls (there is no formula to explore).
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QDoubleSpinBox,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QScrollArea,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from engine.positional import sinusoidal_table
from engine.render.labels import curve_dimensions
from engine.render.request import PositionalParams
from gui.theme import style_plot
from gui.views.heatmap import Heatmap

CURVE_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf")
TABLE_SIZE = 4  # positions 0–3 × dimensions 0–3: small enough to work out by hand
EXPLORE_POSITIONS = 50


def parse_dimensions(text: str, d_model: int) -> list[int]:
    """'0, 1, 8' → [0, 1, 8]; out-of-range and unreadable entries are dropped, order and repeats kept once."""
    dims: list[int] = []
    for part in text.replace(";", ",").replace(" ", ",").split(","):
        if part.strip().isdigit() and int(part) < d_model and int(part) not in dims:
            dims.append(int(part))
    return dims


def similarity(table: np.ndarray) -> np.ndarray:
    """Dot products between the positions' encodings (positions × positions)."""
    return table @ table.T


def learned_caption(table: np.ndarray) -> str:
    return (
        f"<small><b>learned</b> positions: rows 0–{table.shape[0] - 1} of the model's trained position table, "
        f"one per input piece (d_model {table.shape[1]}).<br>No formula here: BERT and GPT-2 learn these numbers "
        "in training, so there is no base or d_model to explore.</small>"
    )


MIN_PLOT_HEIGHT = 150  # pixels: below this the curves flatten into a line and the bars into dots
MIN_CONTENT_HEIGHT = 560


class PositionalView(QWidget):
    """The Positional encodings tab. Its plots cost a tenth of the window's start-up and the tab
    opens hidden: they are built, and kept drawn, only while it is on screen (`stale` marks what
    changed meanwhile)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.trace = None
        self.stale = False  # something changed while hidden: drawn when the tab is shown
        self.built = False  # the plots exist (from the first time the tab was shown)
        self.d_model = 0  # the loaded model's
        self.model_base = 10000.0
        self.positions = "sinusoidal"  # or "learned": the model's table is trained, not a formula
        self.embedding_norms = np.zeros(0)
        self.positional_norms = np.zeros(0)
        self.row_labels: list[str] = []
        self.shown_dimensions: list[int] = []

        self.controls = self._build_controls()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)

        self.explore.toggled.connect(self._on_explore)
        self.width_box.valueChanged.connect(self.dimensions.clear)  # the default curves of the new width
        for spin in (self.base, self.width_box, self.positions_box):
            spin.valueChanged.connect(self._render)
        self.dimensions.editingFinished.connect(self._render)
        self._on_explore(False)

    def _build_content(self) -> None:
        self.built = True
        self._build_plots()
        left = QVBoxLayout()
        left.addWidget(self._titled("encodings (positions × dimensions)", self.heatmap), 1)
        left.addWidget(self._titled("similarity between positions (PE·PEᵀ)", self.similarity), 1)
        right = QVBoxLayout()
        right.addWidget(self.curves, 1)
        right.addWidget(self.norms, 1)
        table_row = QHBoxLayout()
        table_row.addWidget(self._titled("values (three decimals)", self.values))
        table_row.addWidget(self.caption, 1)
        right.addLayout(table_row)
        columns = QHBoxLayout()
        columns.addLayout(left, 1)
        columns.addLayout(right, 1)
        # the plots keep a readable height; a short window scrolls the tab instead of flattening them
        for plot in (self.curves, self.norms):
            plot.setMinimumHeight(MIN_PLOT_HEIGHT)
        content = QWidget()
        content.setMinimumHeight(MIN_CONTENT_HEIGHT)
        inner = QVBoxLayout(content)
        inner.setContentsMargins(0, 0, 0, 0)
        inner.addWidget(self.controls)
        inner.addLayout(columns, 1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setWidget(content)
        self.layout().addWidget(scroll)
        scroll.show()  # now: a widget added to a shown one would otherwise appear only after the event loop ran
        self._apply_palette()

    def _build_controls(self) -> QWidget:
        """The controls, in a box of their own: until the tab is first built, showing or hiding one of
        them (a model with learned positions hides them) must not make it a window of its own."""
        self.explore = QCheckBox("Explore (edit base and d_model)")
        self.base = QDoubleSpinBox()
        self.base.setRange(1.01, 1e9)
        self.base.setDecimals(1)
        self.base.setValue(10000.0)
        self.base.setPrefix("base ")
        self.width_box = QSpinBox()
        self.width_box.setRange(2, 2048)
        self.width_box.setValue(16)
        self.width_box.setPrefix("d_model ")
        self.positions_box = QSpinBox()
        self.positions_box.setRange(4, 1024)
        self.positions_box.setValue(EXPLORE_POSITIONS)
        self.positions_box.setPrefix("positions ")
        self.dimensions = QLineEdit()
        self.dimensions.setPlaceholderText("dimensions, e.g. 0, 1, 8")
        self.dimensions.setToolTip("Dimensions to draw as curves across positions (comma separated)")
        self.dimensions.setMaximumWidth(200)
        box = QWidget()
        controls = QHBoxLayout(box)
        controls.setContentsMargins(0, 0, 0, 0)
        controls.addWidget(self.explore)
        for widget in (self.base, self.width_box, self.positions_box):
            controls.addWidget(widget)
        controls.addSpacing(12)
        controls.addWidget(QLabel("curves of dimensions:"))
        controls.addWidget(self.dimensions)
        controls.addStretch(1)
        return box

    def _build_plots(self) -> None:
        self.heatmap = Heatmap()
        self.similarity = Heatmap()
        for heatmap in (self.heatmap, self.similarity):
            heatmap.colorbar.setLevels(low=-1.0, high=1.0)
            heatmap.colorbar.setColorMap(pg.colormap.get("CET-D1"))
        self.curves = pg.PlotWidget(enableMenu=False)
        self.curves.setLabel("bottom", "position")
        self.curves.setTitle("values of chosen dimensions across positions")
        self.norms = pg.PlotWidget(enableMenu=False)
        self.norms.setTitle("‖embedding × √d‖ (blue) and ‖positional row‖ (orange) per source piece")
        self.values = QTableWidget(TABLE_SIZE, TABLE_SIZE)
        self.values.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.values.setMaximumWidth(330)
        self.values.setMaximumHeight(160)
        self.caption = QLabel()
        self.caption.setWordWrap(True)

    @staticmethod
    def _titled(title: str, widget: QWidget) -> QWidget:
        box = QWidget()
        layout = QVBoxLayout(box)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(QLabel(f"<b>{title}</b>"))
        layout.addWidget(widget, 1)
        return box

    # --- inputs ---

    def set_model(self, d_model: int, base: float, positions: str = "sinusoidal") -> None:
        self.d_model, self.model_base = d_model, base
        self._set_positions(positions)
        self.dimensions.clear()  # the default curves of this width
        if not self.explore.isChecked():
            self.width_box.setValue(d_model)
            self.base.setValue(base)
        self._render()

    def _set_positions(self, positions: str) -> None:
        """Sinusoidal: the explore controls are offered. Learned: they hide (and explore mode ends)."""
        self.positions = positions
        learned = positions == "learned"
        if learned and self.explore.isChecked():
            self.explore.setChecked(False)
        for widget in (self.explore, self.base, self.width_box, self.positions_box):
            widget.setVisible(not learned)

    def set_result(self, trace, embedding_norms: np.ndarray | None, positional_norms: np.ndarray | None) -> None:
        self.trace = trace
        if trace is not None and trace.positions != self.positions:
            self._set_positions(trace.positions)
        self.embedding_norms = np.zeros(0) if embedding_norms is None else embedding_norms
        self.positional_norms = np.zeros(0) if positional_norms is None else positional_norms
        if trace is not None and not self.d_model:
            self.d_model = trace.positional.shape[1]
        self._render()

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if not self.built:
            self._build_content()
        if self.stale:
            self._render()

    def changeEvent(self, event: QEvent) -> None:
        if event.type() == QEvent.Type.PaletteChange and self.built:  # dark mode switched on or off
            self._apply_palette()
        super().changeEvent(event)

    def set_explore(self, on: bool) -> None:
        self.explore.setChecked(on)

    def set_parameters(self, base: float, d_model: int, n_positions: int | None = None) -> None:
        for spin in (self.base, self.width_box, self.positions_box):
            spin.blockSignals(True)
        self.base.setValue(base)
        if d_model != self.width_box.value():
            self.dimensions.clear()
        self.width_box.setValue(d_model)
        if n_positions is not None:
            self.positions_box.setValue(n_positions)
        for spin in (self.base, self.width_box, self.positions_box):
            spin.blockSignals(False)
        self._render()

    def _on_explore(self, on: bool) -> None:
        for spin in (self.base, self.width_box, self.positions_box):
            spin.setEnabled(on)
        self.dimensions.clear()
        if not on and self.d_model:
            self.set_parameters(self.model_base, self.d_model)
        self._render()

    # --- what is shown ---

    def exploring(self) -> bool:
        return self.explore.isChecked()

    def has_table(self) -> bool:
        """Something to draw (and to export): a sentence's rows, or a closed form."""
        return self.current_table()[0].size > 0

    def closed_form(self) -> PositionalParams | None:
        """The closed form on screen (explore mode, or no sentence yet), None while it shows a sentence's rows."""
        if self.positions == "learned":
            return None  # no formula: only the rows a sentence used
        if self.explore.isChecked():
            return PositionalParams(self.width_box.value(), self.positions_box.value(), self.base.value())
        if self.trace is None and self.d_model:
            return PositionalParams(self.d_model, EXPLORE_POSITIONS, self.model_base)
        return None

    def current_table(self) -> tuple[np.ndarray, list[str]]:
        """The table on screen and its row labels: the sentence's rows, or the closed form in explore mode."""
        closed = self.closed_form()
        if closed is not None:
            table = sinusoidal_table(closed.n_positions, closed.d_model, closed.base)
            return table, [str(i) for i in range(closed.n_positions)]
        if self.trace is not None:
            labels = [f"{i} {p}" for i, p in zip(self.trace.input_positions, self.trace.input_pieces, strict=True)]
            return np.asarray(self.trace.positional, dtype=np.float64), labels
        return np.zeros((0, 0)), []

    def table_values(self) -> np.ndarray:
        """The numbers of the small values table, read back from its cells."""
        rows, cols = self.values.rowCount(), self.values.columnCount()
        return np.array([[float(self.values.item(r, c).text()) for c in range(cols)] for r in range(rows)])

    def _render(self) -> None:
        if not self.isVisible():  # drawing costs more than the rest of a keystroke; nobody sees a hidden tab
            self.stale = True
            return
        if not self.built:
            self._build_content()
        self.stale = False
        table, self.row_labels = self.current_table()
        d = table.shape[1] if table.size else 0
        dims = parse_dimensions(self.dimensions.text(), d) or curve_dimensions(max(d, 1))
        if table.size and (not self.dimensions.text().strip() or not parse_dimensions(self.dimensions.text(), d)):
            self.dimensions.setText(", ".join(map(str, dims)))
        self.norms.setVisible(not self.explore.isChecked())
        if not table.size:
            self.heatmap.clear_matrix()
            self.similarity.clear_matrix()
            self.curves.clear()
            self.norms.clear()
            self.values.clearContents()
            return
        bound = (float(np.abs(table).max()) or 1.0) if self.positions == "learned" else 1.0  # sinusoids: ±1
        self.heatmap.set_matrix(table.astype(np.float32), self.row_labels, [str(i) for i in range(d)], (-bound, bound))
        sim = similarity(table)
        scale = float(np.abs(sim).max()) or 1.0
        self.similarity.colorbar.setLevels(low=-scale, high=scale)
        self.similarity.set_matrix(sim.astype(np.float32), self.row_labels, self.row_labels, (-scale, scale))
        self._draw_curves(table, dims)
        self._draw_norms()
        self._fill_values(table)
        if self.positions == "learned":
            self.caption.setText(learned_caption(table))
            return
        mode = (
            f"closed form, base {self.base.value():g}, d_model {self.width_box.value()}"
            if self.explore.isChecked()
            else f"the rows added to this sentence's {table.shape[0]} source pieces (d_model {d})"
        )
        if not self.explore.isChecked() and self.trace is not None and self.trace.sentences > 1:
            mode = (
                f"the rows added to this text's {table.shape[0]} source pieces (d_model {d}); each of its "
                f"{self.trace.sentences} sentences is translated on its own, so positions count from its start"
            )
        self.caption.setText(
            f"<small>{mode}.<br>PE(pos, 2i) = sin(pos / base<sup>2i/d</sup>), "
            "PE(pos, 2i+1) = cos(pos / base<sup>2i/d</sup>).<br>"
            "Check: PE(1, 0) = sin 1 = 0.841, PE(1, 1) = cos 1 = 0.540.</small>"
        )

    def _draw_curves(self, table: np.ndarray, dims: list[int]) -> None:
        self.curves.clear()
        positions = np.arange(table.shape[0])
        symbol = "o" if table.shape[0] <= 40 else None
        self.shown_dimensions = dims
        for index, dim in enumerate(dims):
            colour = CURVE_COLOURS[index % len(CURVE_COLOURS)]
            self.curves.plot(
                positions,
                table[:, dim],
                pen=pg.mkPen(colour, width=2),
                symbol=symbol,
                symbolSize=5,
                symbolBrush=colour,
                symbolPen=None,
                name=f"dim {dim}",
            )
        if self.positions == "learned":
            self.curves.enableAutoRange(axis="y")  # trained values have no fixed range
        else:
            self.curves.setYRange(-1.1, 1.1)
        names = " ".join(
            f"<span style='color:{CURVE_COLOURS[i % len(CURVE_COLOURS)]}'>■ dim {d}</span>" for i, d in enumerate(dims)
        )
        learned = "learned values of " if self.positions == "learned" else ""
        self.curves.setTitle(f"{learned}chosen dimensions across positions: {names}")

    def _draw_norms(self) -> None:
        self.norms.clear()
        n = len(self.embedding_norms)
        if self.explore.isChecked() or self.trace is None or not n:
            self.norms.getAxis("bottom").setTicks(None)
            self.norms.setTitle("norms appear for a translated sentence (not in explore mode)")
            return
        self.norms.setTitle("‖embedding × √d‖ (blue) and ‖positional row‖ (orange) per input piece")
        x = np.arange(n)
        self.norms.addItem(pg.BarGraphItem(x=x - 0.2, height=self.embedding_norms, width=0.38, brush="#1f77b4"))
        self.norms.addItem(pg.BarGraphItem(x=x + 0.2, height=self.positional_norms, width=0.38, brush="#ff7f0e"))
        self.norms.getAxis("bottom").setTicks([[(i, p) for i, p in enumerate(self.trace.input_pieces)]])

    def _fill_values(self, table: np.ndarray) -> None:
        rows, cols = min(TABLE_SIZE, table.shape[0]), min(TABLE_SIZE, table.shape[1])
        self.values.setRowCount(rows)
        self.values.setColumnCount(cols)
        self.values.setHorizontalHeaderLabels([f"dim {c}" for c in range(cols)])
        self.values.setVerticalHeaderLabels([f"pos {r}" for r in range(rows)])
        for r in range(rows):
            for c in range(cols):
                item = QTableWidgetItem(f"{table[r, c]:.3f}")
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.values.setItem(r, c, item)
        self.values.resizeColumnsToContents()

    def _apply_palette(self) -> None:
        for plot in (self.curves, self.norms):
            style_plot(plot, self)
