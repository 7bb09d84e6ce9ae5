"""The head view: one head's (or the head average's) map, as a heatmap or as BertViz-style lines.

Heatmap: queries down, keys across, a colour bar, and a readout of the exact weight and the two
tokens under the mouse. Lines: queries in the left column, keys in the right, one link per pair
whose opacity is the weight; pointing at a token highlights its links (ViewState.token).
"""

from __future__ import annotations

import math

import numpy as np
from PySide6.QtCore import QEvent, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QFont, QPainter, QPen
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QStackedWidget, QVBoxLayout, QWidget

from engine.render.labels import KIND_LABELS, head_label, select_map
from engine.render.shapes import missing_kind
from engine.trace import Trace
from gui.analysis_maps import MODE_TITLES, analysis_map
from gui.maps import TokenFocus, focus_text, hover_text, link_opacities
from gui.theme import is_dark
from gui.view_state import MAP_MODES, ViewState
from gui.views.heatmap import Heatmap
from gui.views.model_view import focused_row, placeholder_label

MODES = ("Heatmap", "Lines")
MAP_MODE_LABELS = {"weights": "Weights", "rollout": "Rollout", "value-norms": "Value norms"}


class AttentionLines(QWidget):
    """Two columns of tokens joined by links whose opacity is the attention weight."""

    MAX_ROW = 26.0  # pixels per token; a long sentence squeezes the rows to fit the widget

    def __init__(self, view_state: ViewState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.view_state = view_state
        self.queries: list[str] = []
        self.keys: list[str] = []
        self.weights = np.zeros((0, 0), dtype=np.float32)
        self.setMouseTracking(True)
        self.setMinimumSize(240, 160)
        view_state.tokenChanged.connect(self.update)

    def set_map(self, weights: np.ndarray, queries: list[str], keys: list[str]) -> None:
        self.weights, self.queries, self.keys = weights, list(queries), list(keys)
        self.update()

    def clear_map(self) -> None:
        self.set_map(np.zeros((0, 0), dtype=np.float32), [], [])

    # --- geometry ---

    def _row_height(self) -> float:
        rows = max(len(self.queries), len(self.keys), 1)
        return max(1.0, min(self.MAX_ROW, (self.height() - 40) / rows))

    def _column_width(self) -> float:
        return min(160.0, self.width() * 0.3)

    def token_rect(self, side: str, index: int) -> QRectF:
        row, width = self._row_height(), self._column_width()
        x = 10.0 if side == "query" else self.width() - 10.0 - width
        return QRectF(x, 30.0 + index * row, width, row)

    def token_at(self, pos: QPointF) -> TokenFocus | None:
        for side, pieces in (("query", self.queries), ("key", self.keys)):
            for index in range(len(pieces)):
                if self.token_rect(side, index).contains(pos):
                    return TokenFocus(side, index)
        return None

    # --- painting ---

    def paintEvent(self, event) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        text_color = self.palette().color(self.foregroundRole())
        painter.setPen(text_color)
        header = QFont(self.font())
        header.setBold(True)
        painter.setFont(header)
        painter.drawText(self.token_rect("query", 0).translated(0, -24), Qt.AlignmentFlag.AlignRight, "queries")
        painter.drawText(self.token_rect("key", 0).translated(0, -24), Qt.AlignmentFlag.AlignLeft, "keys")
        if not self.weights.size:
            return
        self._paint_links(painter)
        self._paint_tokens(painter, text_color)

    def _paint_links(self, painter: QPainter) -> None:
        link = QColor(255, 170, 60) if is_dark(self) else QColor(20, 90, 200)
        opacity = link_opacities(self.weights, self.view_state.token)
        pen = QPen(link)
        pen.setWidthF(2.0)
        for q, k in zip(*np.nonzero(opacity > 0.01), strict=True):  # invisible links cost time, skip them
            start = self.token_rect("query", int(q))
            end = self.token_rect("key", int(k))
            link.setAlphaF(float(opacity[q, k]))
            pen.setColor(link)
            painter.setPen(pen)
            painter.drawLine(QPointF(start.right() + 6, start.center().y()), QPointF(end.left() - 6, end.center().y()))

    def _paint_tokens(self, painter: QPainter, text_color: QColor) -> None:
        focus = self.view_state.token
        font = QFont(self.font())
        font.setPixelSize(int(max(8, min(15, self._row_height() * 0.62))))
        # rows thinner than the font: label every n-th token (and the focused one) so text never overlaps
        stride = max(1, math.ceil(font.pixelSize() * 1.1 / self._row_height()))
        for side, pieces, align in (
            ("query", self.queries, Qt.AlignmentFlag.AlignRight),
            ("key", self.keys, Qt.AlignmentFlag.AlignLeft),
        ):
            for index, piece in enumerate(pieces):
                rect = self.token_rect(side, index)
                focused = focus == TokenFocus(side, index)
                if index % stride and not focused:
                    continue
                font.setBold(focused)
                painter.setFont(font)
                if focused:
                    painter.fillRect(rect, self.palette().color(self.palette().ColorRole.Highlight).lighter(110))
                painter.setPen(text_color)
                text_rect = rect.adjusted(0, -font.pixelSize(), 0, font.pixelSize())  # room when rows are thin
                painter.drawText(text_rect, align | Qt.AlignmentFlag.AlignVCenter, piece)

    # --- hover ---

    def mouseMoveEvent(self, event) -> None:
        self.view_state.set_token(self.token_at(event.position()))
        super().mouseMoveEvent(event)

    def leaveEvent(self, event) -> None:
        self.view_state.set_token(None)
        super().leaveEvent(event)


class HeadView(QWidget):
    modeChanged = Signal(str)  # "Heatmap" or "Lines", whoever changed it

    def __init__(self, view_state: ViewState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.view_state = view_state
        self.trace: Trace | None = None
        self.analysis = None  # engine.analysis.Analysis of self.trace, once the worker has sent it
        self.weights = np.zeros((0, 0), dtype=np.float32)

        self.title = QLabel()
        self.map_mode = QComboBox()
        self.map_mode.setObjectName("mapMode")
        for mode in MAP_MODES:
            self.map_mode.addItem(MAP_MODE_LABELS[mode], mode)
        self.map_mode.setToolTip("Draw the head's weights, the encoder's attention rollout, or ‖α·f(x)‖")
        self.mode = QComboBox()
        self.mode.addItems(MODES)
        self.mode.setToolTip("Show the head as a heatmap or as links between tokens")
        self.heatmap = Heatmap()
        self.lines = AttentionLines(view_state)
        self.stack = QStackedWidget()
        self.stack.addWidget(self.heatmap)
        self.stack.addWidget(self.lines)
        self.placeholder = placeholder_label("The selected head appears here: click a map on the left.")
        self.stack.addWidget(self.placeholder)
        self.unavailable = placeholder_label("")
        self.unavailable.setWordWrap(True)
        self.stack.addWidget(self.unavailable)
        self.readout = QLabel(" ")
        self.readout.setObjectName("hoverReadout")
        self.readout.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        top = QHBoxLayout()
        top.addWidget(self.title, 1)
        top.addWidget(self.map_mode)
        top.addWidget(self.mode)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(top)
        layout.addWidget(self.stack, 1)
        layout.addWidget(self.readout)

        self.mode.currentIndexChanged.connect(self._render)  # not only the page: a map may be unavailable
        self.mode.currentIndexChanged.connect(lambda index: self.modeChanged.emit(MODES[index]))
        self.map_mode.activated.connect(lambda index: view_state.set_map_mode(self.map_mode.itemData(index)))
        self.heatmap.hovered.connect(self._on_heatmap_hovered)
        view_state.mapModeChanged.connect(self._render)
        view_state.selectionChanged.connect(self._render)
        view_state.tokenChanged.connect(self._on_token_changed)
        view_state.stepChanged.connect(self._update_step)
        self._render()

    def set_trace(self, trace: Trace | None) -> None:
        self.trace = trace
        self.analysis = None  # the analysis belongs to the trace it was computed for
        self._render()

    def set_analysis(self, analysis) -> None:
        """The analysis of the trace on screen (None: not computed yet); redraws in Rollout / Value norms."""
        self.analysis = analysis
        if self.view_state.map_mode != "weights":
            self._render()

    def set_mode(self, mode: str) -> None:
        self.mode.setCurrentIndex(MODES.index(mode))

    def current_mode(self) -> str:
        return MODES[self.mode.currentIndex()]

    def _show_page(self) -> None:
        if self.trace is None:
            self.stack.setCurrentWidget(self.placeholder)
        else:
            self.stack.setCurrentIndex(self.mode.currentIndex())  # pages in the order of MODES

    def _render(self) -> None:
        state = self.view_state
        self.map_mode.setCurrentIndex(MAP_MODES.index(state.map_mode))
        shown = f" · {MODE_TITLES[state.map_mode]}" if state.map_mode != "weights" else ""
        head = "all heads" if state.map_mode == "rollout" else head_label(state.head)  # rollout mixes them
        self.title.setText(
            f"<b>Layer {state.layer + 1} · {head}</b> — {KIND_LABELS[state.kind].title}{shown}"
            "<br><small>queries down, keys across</small>"
        )
        if self.trace is None:
            self.weights = np.zeros((0, 0), dtype=np.float32)
            self.heatmap.clear_matrix()
            self.lines.clear_map()
            self.readout.setText(" ")
            self._show_page()
            return
        self._show_page()
        missing = missing_kind(self.trace.shape, state.kind)
        if missing:  # a kind this model lacks: say why instead of an empty axis
            self.unavailable.setText(missing)
            self.stack.setCurrentWidget(self.unavailable)
            return
        queries, keys = self.trace.axis_pieces(state.kind)
        levels = (0.0, 1.0)
        if state.map_mode == "weights":
            self.weights = select_map(self.trace, state.kind, state.layer, state.head)
        else:
            shown = analysis_map(self.trace, self.analysis, state.map_mode, state.kind, state.layer, state.head)
            if shown.matrix is None:
                self.unavailable.setText(shown.message)
                self.stack.setCurrentWidget(self.unavailable)
                return
            self.weights, levels = shown.matrix, shown.levels
        self.heatmap.set_matrix(self.weights, queries, keys, levels)
        self.lines.set_map(self.weights / max(levels[1], 1e-6), queries, keys)
        self._update_step()

    def _update_step(self) -> None:
        """Outline the decoder step's row when the rows are decoder steps."""
        self.heatmap.set_highlight_row(focused_row(self.trace, self.view_state.kind, self.view_state.step))

    def _on_heatmap_hovered(self, row: int, column: int) -> None:
        text = hover_text(self.trace, self.view_state.kind, self.weights, row, column) if self.trace else ""
        self.readout.setText(text or " ")
        self.heatmap.setToolTip(text)

    def _on_token_changed(self) -> None:
        text = ""
        if self.trace is not None and self.weights.size:
            text = focus_text(self.trace, self.view_state.kind, self.weights, self.view_state.token)
        self.readout.setText(text or " ")

    def changeEvent(self, event: QEvent) -> None:
        if event.type() == QEvent.Type.PaletteChange:
            self.lines.update()
        super().changeEvent(event)
