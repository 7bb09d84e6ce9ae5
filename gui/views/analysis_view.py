"""The Analysis tab: which heads matter and what they do, for the sentence on screen.

A sortable table of every head (statistics from engine.analysis, importance by masking from
engine.importance), one importance map per kind (layers × heads), the five most important heads,
and how much cross-attention each source piece received, with the possibly untranslated ones in red.
Clicking a row selects that head in the ViewState, so the head view opens it. The widget only
draws an Analysis the worker computed; partial analyses (no importance yet) are drawn as they come.
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QLabel,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from engine.analysis import Analysis, HeadRow
from engine.architecture import ATTENTION_KINDS
from engine.render.labels import KIND_LABELS
from engine.render.shapes import missing_kind
from engine.trace import Trace
from gui.analysis_maps import flagged_pieces, top_heads_text
from gui.theme import plot_colors
from gui.view_state import ViewState
from gui.views.heatmap import Heatmap, label_bars

COLUMNS = (
    "kind",
    "layer",
    "head",
    "importance",
    "entropy",
    "mean distance",
    "diagonal",
    "previous",
    "sink",
    "max weight",
)
FIELDS = (
    "importance",
    "entropy",
    "mean_distance",
    "diagonal",
    "previous",
    "sink",
    "max_weight",
)  # the sort comes first
SHORT_KIND = {"enc_self": "enc self", "dec_self": "dec self", "cross": "cross"}
IMPORTANCE_MAP = pg.colormap.get("CET-D1")  # diverging: red helps the output, blue hurts it
FLAGGED, COVERED = (220, 50, 50), (70, 130, 200)


class SortItem(QTableWidgetItem):
    """A cell shown as text and sorted by its number (None, shown as '—', sorts first)."""

    def __init__(self, text: str, value: float) -> None:
        super().__init__(text)
        self.value = value
        self.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)

    def __lt__(self, other: QTableWidgetItem) -> bool:
        return self.value < getattr(other, "value", -math.inf)


def row_cells(row: HeadRow) -> list[QTableWidgetItem]:
    """The table cells of one head, layer and head numbered from 1."""
    kind = QTableWidgetItem(SHORT_KIND[row.kind])
    kind.setData(Qt.ItemDataRole.UserRole, (row.kind, row.layer, row.head))
    cells: list[QTableWidgetItem] = [
        kind,
        SortItem(str(row.layer + 1), row.layer),
        SortItem(str(row.head + 1), row.head),
    ]
    for name in FIELDS:
        value = getattr(row, name)
        text = "—" if value is None else f"{value:+.3f}" if name == "importance" else f"{value:.3f}"
        cells.append(SortItem(text, -math.inf if value is None else value))
    return cells


class AnalysisView(QWidget):
    """The Analysis tab: the head table, and beside it the importance maps and the coverage bars.
    Those plots cost a tenth of the window's start-up and the tab opens hidden: they are built, and
    kept drawn, only while it is on screen (`stale` marks what changed meanwhile)."""

    def __init__(self, view_state: ViewState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.view_state = view_state
        self.trace: Trace | None = None
        self.analysis: Analysis | None = None
        self.stale = False  # an analysis arrived while hidden: its plots are drawn when the tab is shown
        self.built = False  # the plots exist (from the first time the tab was shown)
        self.top_line = QLabel()
        self.top_line.setObjectName("topHeads")
        self.top_line.setWordWrap(True)
        # two lines reserved: a text that wraps on one key and not the next would move every map above
        self.top_line.setMinimumHeight(2 * self.top_line.fontMetrics().lineSpacing())
        self.table = self._build_table()
        self.right = QWidget()  # the plots go here when first shown
        right_layout = QVBoxLayout(self.right)
        right_layout.setContentsMargins(0, 0, 0, 0)
        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(self.table)
        splitter.addWidget(self.right)
        splitter.setSizes([640, 640])
        layout = QVBoxLayout(self)
        layout.addWidget(self.top_line)
        layout.addWidget(splitter, 1)
        self.table.cellClicked.connect(self._on_cell_clicked)
        self.show_analysis(None, None)

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if self.stale:
            self._show_plots()

    def _build_table(self) -> QTableWidget:
        table = QTableWidget(0, len(COLUMNS))
        table.setObjectName("headTable")
        table.setHorizontalHeaderLabels(list(COLUMNS))
        table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        table.verticalHeader().hide()
        table.setSortingEnabled(True)
        table.sortByColumn(COLUMNS.index("importance"), Qt.SortOrder.DescendingOrder)
        table.setToolTip("Click a head to open it in the head view; click a column header to sort")
        return table

    def _build_plots(self) -> None:
        self.built = True
        self.importance_maps = {kind: Heatmap() for kind in ATTENTION_KINDS}
        self.importance_titles = {kind: QLabel() for kind in ATTENTION_KINDS}
        maps = QHBoxLayout()
        for kind in ATTENTION_KINDS:
            column = QVBoxLayout()
            column.addWidget(self.importance_titles[kind])
            self.importance_maps[kind].colorbar.setColorMap(IMPORTANCE_MAP)
            self.importance_maps[kind].setMinimumSize(150, 120)
            column.addWidget(self.importance_maps[kind], 1)
            maps.addLayout(column, 1)
        plots = QWidget()
        plots_layout = QVBoxLayout(plots)
        plots_layout.setContentsMargins(0, 0, 0, 0)
        plots_layout.addLayout(maps, 3)
        self.coverage_title = QLabel("<b>Coverage</b>: cross-attention each source piece received over the output")
        self.coverage_plot = pg.PlotWidget(enableMenu=False)
        self.coverage_line = QLabel()
        self.coverage_line.setObjectName("coverageFlags")
        self.coverage_line.setWordWrap(True)
        plots_layout.addWidget(self.coverage_title)
        plots_layout.addWidget(self.coverage_plot, 2)
        plots_layout.addWidget(self.coverage_line)
        self.coverage_plot.setMinimumHeight(90)
        self._coverage_labels: tuple[list[str], np.ndarray] = ([], np.zeros(0))
        self.coverage_plot.getViewBox().sigResized.connect(
            lambda _box: label_bars(self.coverage_plot, *self._coverage_labels)
        )
        self.coverage_plot.setMouseEnabled(x=False, y=False)
        self.coverage_plot.hideButtons()
        self.right.layout().addWidget(plots)
        plots.show()  # now: a widget added to a shown one would otherwise appear only after the event loop ran

    # --- showing an analysis ---

    def show_analysis(self, trace: Trace | None, analysis: Analysis | None) -> None:
        """Draw `analysis` of `trace`; None: nothing yet (the table empties: no rows of an older sentence)."""
        self.trace, self.analysis = trace, analysis
        self._fill_table(analysis)
        self._show_plots()
        if analysis is None:
            self.top_line.setText(
                "Type a sentence: the analysis of its heads appears here."
                if trace is None
                else "Computing the analysis of this sentence…"
            )
        else:
            self.top_line.setText(top_heads_text(analysis))

    def _show_plots(self) -> None:
        if not self.isVisible():  # nobody sees a hidden tab's plots: drawn when it is shown
            self.stale = True
            return
        if not self.built:
            self._build_plots()
        self.stale = False
        self._show_importance(self.analysis)
        self._show_coverage(self.trace, self.analysis)

    def _fill_table(self, analysis: Analysis | None) -> None:
        rows = analysis.rows() if analysis is not None else []
        self.table.setSortingEnabled(False)  # filling a sorted table moves rows under the loop
        self.table.setRowCount(len(rows))
        for index, row in enumerate(rows):
            for column, cell in enumerate(row_cells(row)):
                self.table.setItem(index, column, cell)
        self.table.setSortingEnabled(True)  # sorts again by the column the user chose
        self.table.resizeColumnsToContents()

    def _show_importance(self, analysis: Analysis | None) -> None:
        for kind in ATTENTION_KINDS:
            heatmap, title = self.importance_maps[kind], self.importance_titles[kind]
            present = self.trace is None or kind in self.trace.kinds  # BERT and GPT-2 have one kind each
            heatmap.setVisible(present)
            title.setVisible(present)
            importance = analysis.importance.get(kind) if analysis is not None else None
            name = KIND_LABELS[kind].title
            # Two short lines in every state, unwrapped: a title that grew a line as the analysis came
            # in would move every map above, once per keystroke. BERT without a [MASK] says why in a
            # sentence (wrapped), the same on every key.
            note = importance is None and analysis is not None and analysis.importance_note
            title.setWordWrap(bool(note))
            if note:
                heatmap.clear_matrix()
                title.setText(f"<b>{name}</b><br><small>{analysis.importance_note}</small>")
                continue
            if importance is None:
                heatmap.clear_matrix()
                title.setText(f"<b>{name}</b><br><small>{'importance: computing…' if analysis else '&nbsp;'}</small>")
                continue
            drop = importance.drop  # (L, H) log-probability lost when the head is zeroed
            bound = max(float(np.abs(drop).max()), 1e-6)
            layers, heads = drop.shape
            rows, columns = [f"L{i + 1}" for i in range(layers)], [f"H{i + 1}" for i in range(heads)]
            heatmap.set_matrix(drop.astype(np.float32), rows, columns, (-bound, bound))
            title.setText(f"<b>{name}</b><br><small>importance, ±{bound:.2f} nats</small>")

    def _show_coverage(self, trace: Trace | None, analysis: Analysis | None) -> None:
        plot = self.coverage_plot
        plot.clear()
        self._coverage_labels = ([], np.zeros(0))  # a resize must not bring back an older sentence's labels
        background, foreground = plot_colors(self)
        plot.setBackground(background)
        missing = missing_kind(trace.shape, "cross") if trace is not None else ""
        plot.setVisible(not missing)
        self.coverage_title.setVisible(not missing)
        if missing:  # coverage counts cross-attention, which BERT and GPT-2 do not have
            self.coverage_line.setText(f"Coverage measures cross-attention: {missing}")
            return
        if trace is None or analysis is None:
            label_bars(plot, *self._coverage_labels)
            self.coverage_line.setText(" ")
            return
        received, flagged = analysis.coverage.received, analysis.coverage.flagged
        brushes = [pg.mkBrush(FLAGGED if flag else COVERED) for flag in flagged]
        plot.addItem(pg.BarGraphItem(x=np.arange(len(received)), height=received, width=0.8, brushes=brushes))
        pieces = [f"⚠{piece}" if flag else piece for piece, flag in zip(trace.src_pieces, flagged, strict=True)]
        plot.setXRange(-0.6, max(len(pieces), 4) - 0.4, padding=0)
        # a flagged piece keeps its label first, then the pieces that received most
        self._coverage_labels = (pieces, np.where(flagged, np.inf, received))
        label_bars(plot, *self._coverage_labels)
        for side in ("left", "bottom"):
            plot.getAxis(side).setTextPen(foreground)
        flags = flagged_pieces(trace, analysis)
        self.coverage_line.setText(
            f"<span style='color:#dc3232'>⚠ Possibly untranslated: {', '.join(flags)}</span>"
            if flags
            else "No source piece is far below the others."
        )

    def _on_cell_clicked(self, row: int, _column: int) -> None:
        item = self.table.item(row, 0)
        if item is not None:
            kind, layer, head = item.data(Qt.ItemDataRole.UserRole)
            self.view_state.select(kind, layer, head)
