"""The model view: a grid of small heatmaps, one row per layer, one column per head plus the average.

The grid is built once per model shape (layers × heads); each keystroke only calls setImage on the
existing items. Clicking a cell selects that layer and head in the ViewState, which opens it in
the head view.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, Qt
from PySide6.QtWidgets import QGraphicsRectItem, QLabel, QStackedWidget, QVBoxLayout, QWidget

from engine.render.labels import AVERAGE, KIND_LABELS, Head
from engine.render.shapes import missing_kind, step_row
from engine.trace import Trace
from gui.theme import COLOR_MAP, WEIGHT_LEVELS, plot_colors
from gui.view_state import ViewState

WAITING = "Every layer's and head's attention appears here as you type."


class _CellBox(pg.ViewBox):
    """One map of the grid; a left click anywhere in it selects its layer and head."""

    def __init__(self, layer: int, head: Head, on_click: Callable[[int, Head], None]) -> None:
        super().__init__(enableMouse=False, enableMenu=False, invertY=True, defaultPadding=0.0)
        self.layer, self.head = layer, head
        self._on_click = on_click
        self.image = pg.ImageItem(axisOrder="row-major", levels=WEIGHT_LEVELS)
        self.image.setColorMap(pg.colormap.get(COLOR_MAP))
        self.addItem(self.image)
        self.step_outline = QGraphicsRectItem()  # the decoder step in focus
        self.step_outline.setPen(pg.mkPen((255, 60, 60), width=1.5, cosmetic=True))
        self.step_outline.setZValue(10)
        self.step_outline.hide()
        self.addItem(self.step_outline)
        self.setToolTip(
            f"layer {layer + 1}, {'head average' if head == AVERAGE else f'head {head + 1}'}: click to open"
        )

    def mouseClickEvent(self, event) -> None:
        if event.button() == Qt.MouseButton.LeftButton:
            event.accept()
            self._on_click(self.layer, self.head)
        else:
            super().mouseClickEvent(event)


class ModelView(QWidget):
    def __init__(self, view_state: ViewState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.view_state = view_state
        self.trace: Trace | None = None
        self.title = QLabel()
        self.title.setObjectName("modelViewTitle")
        self.graphics = pg.GraphicsLayoutWidget()
        self.graphics.ci.setSpacing(3)
        self.placeholder = placeholder_label(WAITING)
        self.stack = QStackedWidget()
        self.stack.addWidget(self.graphics)
        self.stack.addWidget(self.placeholder)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.title)
        layout.addWidget(self.stack, 1)

        self.cells: list[list[_CellBox]] = []  # [layer][head], the average last
        self._labels: list[pg.LabelItem] = []
        self._shape = (0, 0)
        self._ranged: tuple[int, ...] | None = None  # (queries, keys) the cells' ranges were set for
        self._shown_kind: str | None = None
        self._highlight = pg.mkPen(color=(255, 80, 80), width=3)
        view_state.selectionChanged.connect(self._on_selection_changed)
        view_state.stepChanged.connect(self._update_step)
        self._apply_palette()
        self._update_title()

    # --- what tests and the window call ---

    def set_trace(self, trace: Trace | None) -> None:
        self.trace = trace
        self._render()

    def cell(self, layer: int, head: Head) -> _CellBox:
        return self.cells[layer][-1 if head == AVERAGE else head]

    @property
    def grid_shape(self) -> tuple[int, int]:
        """(layers, columns) of the grid, the average column included."""
        return len(self.cells), len(self.cells[0]) if self.cells else 0

    # --- drawing ---

    def _render(self) -> None:
        kind = self.view_state.kind
        self._shown_kind = kind
        self._update_title()
        missing = missing_kind(self.trace.shape, kind) if self.trace is not None else ""
        if self.trace is None or missing:  # nothing yet, or a kind this model lacks: one sentence why
            for row in self.cells:
                for cell in row:
                    cell.image.clear()
            self.placeholder.setText(missing or WAITING)
            self.stack.setCurrentWidget(self.placeholder)
            return
        self.stack.setCurrentWidget(self.graphics)
        maps = self.trace.attention(kind)  # (L, H, queries, keys)
        self._ensure_grid(maps.shape[0], maps.shape[1])
        average = maps.mean(axis=1)  # (L, queries, keys)
        for layer, row in enumerate(self.cells):
            for cell in row[:-1]:
                cell.image.setImage(maps[layer, cell.head], autoLevels=False)
            row[-1].image.setImage(average[layer], autoLevels=False)
        if self._ranged != maps.shape[2:]:  # most keystrokes keep the shape: 27 setRange calls are 2.6 ms
            for row in self.cells:
                for cell in row:
                    cell.setRange(xRange=(0, maps.shape[3]), yRange=(0, maps.shape[2]), padding=0)
            self._ranged = maps.shape[2:]
        self._update_step()

    def highlighted_step(self) -> int | None:
        """The row outlined in every cell: the step's query row, for the kinds whose rows choose outputs."""
        return focused_row(self.trace, self._shown_kind, self.view_state.step)

    def _update_step(self) -> None:
        step = self.highlighted_step()
        for row in self.cells:
            for cell in row:
                if step is None:
                    cell.step_outline.hide()
                    continue
                width = cell.image.image.shape[1] if cell.image.image is not None else 0
                cell.step_outline.setRect(0, step, width, 1)
                cell.step_outline.show()

    def _ensure_grid(self, n_layers: int, n_heads: int) -> None:
        """Build the cells when the shape changes (a new model or kind), never per keystroke."""
        if self._shape == (n_layers, n_heads):
            return
        self.graphics.ci.clear()
        self.cells, self._labels = [], []
        heads: list[Head] = [*range(n_heads), AVERAGE]
        for column, head in enumerate(heads, start=1):
            self._labels.append(self.graphics.ci.addLabel("avg" if head == AVERAGE else f"H{head + 1}", 0, column))
        for layer in range(n_layers):
            self._labels.append(self.graphics.ci.addLabel(f"L{layer + 1}", layer + 1, 0))
            row = []
            for column, head in enumerate(heads, start=1):
                cell = _CellBox(layer, head, self._on_cell_clicked)
                self.graphics.ci.addItem(cell, layer + 1, column)
                row.append(cell)
            self.cells.append(row)
        self._shape = (n_layers, n_heads)
        self._ranged = None
        self._update_highlight()
        self._apply_palette()

    def _update_highlight(self) -> None:
        state = self.view_state
        for row in self.cells:
            for cell in row:
                selected = (cell.layer, cell.head) == (state.layer, state.head)
                cell.setBorder(self._highlight if selected else None)

    def _update_title(self) -> None:
        self.title.setText(
            f"<b>{KIND_LABELS[self.view_state.kind].title}</b> — every layer and head; click a map to open it"
        )

    # --- events ---

    def _on_cell_clicked(self, layer: int, head: Head) -> None:
        self.view_state.select(layer=layer, head=head)

    def _on_selection_changed(self) -> None:
        if self.view_state.kind != self._shown_kind:
            self._render()
        self._update_highlight()  # the outline moves only when the selection does, not per keystroke

    def changeEvent(self, event: QEvent) -> None:
        if event.type() == QEvent.Type.PaletteChange and hasattr(self, "graphics"):
            self._apply_palette()
        super().changeEvent(event)

    def _apply_palette(self) -> None:
        background, foreground = plot_colors(self)
        self.graphics.setBackground(background)
        for label in self._labels:
            label.setAttr("color", foreground)
            label.setText(label.text)


def outlines_step(trace: Trace, kind: str | None) -> bool:
    """The rows of `kind` are where the outputs are chosen (decoder steps, GPT-2's positions, BERT's
    masks), so the step in focus is outlined; a translator's encoder rows are not."""
    return kind in trace.kinds and (kind != "enc_self" or trace.shape == "encoder-only")


def focused_row(trace: Trace | None, kind: str | None, step: int | None) -> int | None:
    """The row of `kind` to outline for output `step` (its query row), None when there is none."""
    if trace is None or step is None or not outlines_step(trace, kind) or not 0 <= step < len(trace.out_pieces):
        return None
    return step_row(trace, step)


def placeholder_label(text: str) -> QLabel:
    """The neutral state of a view before there is anything to show."""
    label = QLabel(text)
    label.setAlignment(Qt.AlignmentFlag.AlignCenter)
    label.setWordWrap(True)
    label.setEnabled(False)  # drawn in the palette's muted text colour, in light and dark mode
    return label


def cell_data(view: ModelView, layer: int, head: Head) -> np.ndarray:
    """The array a grid cell shows (for tests and exports)."""
    return view.cell(layer, head).image.image
