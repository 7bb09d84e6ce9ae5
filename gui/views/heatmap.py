"""A reusable heatmap: one matrix with labelled rows and columns, a colour bar, and a hover signal.

pyqtgraph's MatrixDisplayExample recipe: an ImageItem shifted by half a cell so cell (r, c) sits
on the integer point (c, r), an inverted y axis so row 0 is on top, labels through setTicks.
Updating is a setImage and two setTicks calls, cheap enough to follow every keystroke.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, QPointF, QRectF, Signal
from PySide6.QtGui import QFontMetricsF, QTransform
from PySide6.QtWidgets import QGraphicsRectItem

from gui.theme import COLOR_MAP, WEIGHT_LEVELS, plot_colors

FLAT_HEIGHT = 28  # pixels of the keys' axis with flat labels
MAX_UPRIGHT_HEIGHT = 110  # ... and with upright ones (a longer piece is cut at the top)


def visible_labels(
    sizes: list[float], cell: float, gap: float = 4.0, priority: Sequence[float] | None = None
) -> list[int]:
    """Indices of the labels to draw so that none overlaps another, in increasing order.

    Label i is centred on cell i (each `cell` pixels long) and is `sizes[i]` pixels long. Labels are
    taken first to last, or highest `priority` first (ties first to last), and one is kept when it
    stays `gap` pixels clear of every label kept before it.
    """
    order = range(len(sizes)) if priority is None else sorted(range(len(sizes)), key=lambda i: -priority[i])
    starts: list[float] = []  # the kept labels' spans, sorted by start
    ends: list[float] = []
    kept: list[int] = []
    for index in order:
        centre = (index + 0.5) * cell
        start, end = centre - sizes[index] / 2, centre + sizes[index] / 2
        at = bisect.bisect(starts, start)
        if (at > 0 and ends[at - 1] + gap > start) or (at < len(starts) and end + gap > starts[at]):
            continue
        starts.insert(at, start)
        ends.insert(at, end)
        kept.append(index)
    return sorted(kept)


def label_bars(plot: pg.PlotItem | pg.PlotWidget, pieces: Sequence[str], priority: Sequence[float]) -> None:
    """Label bar i (at x = i) of a bar chart with pieces[i] on its bottom axis: on one line while the
    labels fit, else every other one on a second line (twice the room each); where even that is too
    tight, the bars of highest `priority` keep theirs. Call it again when the plot is resized."""
    axis = plot.getAxis("bottom")
    width = plot.getViewBox().width()
    low, high = plot.getViewBox().viewRange()[0]
    shown, two_lines = list(range(len(pieces))), False
    if width > 0 and len(pieces) and high > low:
        metrics = QFontMetricsF(axis.font())
        sizes = [metrics.horizontalAdvance(p) for p in pieces]
        cell = width / (high - low)
        shown = visible_labels(sizes, cell, gap=4.0, priority=priority)
        if len(shown) < len(pieces):  # each line holds every other label, two cells apart
            two_lines = True
            shown = sorted(
                2 * j + line
                for line in (0, 1)
                for j in visible_labels(sizes[line::2], 2 * cell, gap=4.0, priority=priority[line::2])
            )
        lines = metrics.height() + (metrics.lineSpacing() if two_lines else 0)
        axis.setHeight(math.ceil(lines + axis.style["tickTextOffset"][1] + max(0, axis.style["tickLength"])))
    axis.setTicks([[(i, ("\n" if two_lines and i % 2 else "") + pieces[i]) for i in shown], []])


class ColumnAxis(pg.AxisItem):
    """The keys' axis along the top: labels lie flat while they fit; when a long sentence leaves
    too little room for that, they stand upright (a quarter turn, reading upwards), so every key
    keeps its label as long as a line of text fits in its column."""

    def __init__(self) -> None:
        super().__init__("top")
        self.upright = False

    def generateDrawSpecs(self, p):
        specs = super().generateDrawSpecs(p)
        if not self.upright or specs is None:
            return specs
        axis_spec, tick_specs, _ = specs
        bounds = self.mapRectFromParent(self.geometry())
        low, high = self.range
        scale = bounds.width() / ((high - low) or 1.0)
        bottom = bounds.bottom() - max(0, self.style["tickLength"]) - self.style["tickTextOffset"][1]
        labels = self._tickLevels[0] if self._tickLevels else []
        return axis_spec, tick_specs, [(bounds.left() + (v - low) * scale, bottom, text) for v, text in labels]

    def drawPicture(self, p, axisSpec, tickSpecs, textSpecs) -> None:
        if not self.upright:
            super().drawPicture(p, axisSpec, tickSpecs, textSpecs)
            return
        super().drawPicture(p, axisSpec, tickSpecs, [])  # the line and the ticks
        metrics = QFontMetricsF(p.font())
        for x, bottom, text in textSpecs:
            p.save()
            p.translate(x, bottom)
            p.rotate(-90)
            height = metrics.height()
            p.drawText(
                QRectF(0, -height / 2, metrics.horizontalAdvance(text) + 2, height), 0x0081, text
            )  # left, vcenter
            p.restore()


class Heatmap(pg.GraphicsLayoutWidget):
    hovered = Signal(int, int)  # row, column under the mouse; (-1, -1) outside the map

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        # no context menu (every plot of the app goes without: built, they cost start-up time)
        self.plot = self.addPlot(axisItems={"top": ColumnAxis()}, enableMenu=False)
        self.plot.setMouseEnabled(x=False, y=False)
        self.plot.hideButtons()
        self.plot.invertY(True)
        self.plot.setDefaultPadding(0.0)
        # keys along the top (read first, like a table header), queries down the left; no fixed
        # axis size, so the axes widen to fit the longest token instead of hiding it
        self.plot.showAxes(True, showValues=(True, True, False, False))
        self.plot.getAxis("top").setHeight(FLAT_HEIGHT)  # room for accents and dotted letters above the map

        self.image = pg.ImageItem(axisOrder="row-major")
        self.image.setTransform(QTransform().translate(-0.5, -0.5))
        self.plot.addItem(self.image)
        self.colorbar = pg.ColorBarItem(values=WEIGHT_LEVELS, colorMap=COLOR_MAP, width=14, interactive=False)
        self.colorbar.setImageItem(self.image, insert_in=self.plot)

        self.matrix = np.zeros((0, 0), dtype=np.float32)
        self.row_labels: list[str] = []
        self.column_labels: list[str] = []
        self.highlighted_row: int | None = None  # the decoder step in focus, outlined
        self.row_outline = QGraphicsRectItem()
        self.row_outline.setPen(pg.mkPen((255, 60, 60), width=2, cosmetic=True))
        self.row_outline.setZValue(10)
        self.row_outline.hide()
        self.plot.addItem(self.row_outline)
        self._hovered = (-1, -1)
        self.scene().sigMouseMoved.connect(self._on_mouse_moved)
        self.plot.vb.sigResized.connect(self._update_ticks)
        self._apply_palette()

    def set_matrix(
        self,
        matrix: np.ndarray,
        row_labels: list[str],
        column_labels: list[str],
        levels: tuple[float, float] = WEIGHT_LEVELS,
    ) -> None:
        """Show `matrix`; `levels` is the colour scale (attention weights: 0 to 1)."""
        self.matrix = matrix
        self.row_labels, self.column_labels = list(row_labels), list(column_labels)
        self.image.setImage(matrix, autoLevels=False)
        self.colorbar.setLevels(values=levels)
        rows, columns = matrix.shape
        self.plot.setRange(xRange=(-0.5, columns - 0.5), yRange=(-0.5, rows - 0.5), padding=0)
        self._update_ticks()
        self.set_highlight_row(self.highlighted_row)

    def set_highlight_row(self, row: int | None) -> None:
        """Outline row `row` (None: no outline)."""
        rows, columns = self.matrix.shape
        changed = row != self.highlighted_row
        self.highlighted_row = row
        if changed:
            self._update_ticks()  # the labels that stay follow the outlined row's weights
        if row is None or not 0 <= row < rows:
            self.row_outline.hide()
            return
        self.row_outline.setRect(-0.5, row - 0.5, columns, 1.0)
        self.row_outline.show()

    def _update_ticks(self) -> None:
        """Label every token that fits; on a long sentence, thin the labels instead of overlapping them.
        The keys (columns) the outlined row attends to most keep their labels first (without an
        outlined row, the keys with the most weight overall)."""
        rows, columns = self.matrix.shape
        size = self.plot.vb.boundingRect()
        metrics = QFontMetricsF(self.font())
        left = self.plot.getAxis("left")
        top = self.plot.getAxis("top")
        if not rows or size.height() <= 0:
            left.setTicks([[], []])
            top.setTicks([[], []])
            return
        shown_rows = visible_labels([metrics.height()] * rows, size.height() / rows, gap=0.0)
        widths = [metrics.horizontalAdvance(label) for label in self.column_labels]
        row = self.highlighted_row
        weight = self.matrix[row] if row is not None and 0 <= row < rows else self.matrix.sum(axis=0)
        cell = size.width() / columns
        shown_columns = visible_labels(widths, cell, gap=6.0, priority=weight)
        upright = len(shown_columns) < columns and cell >= metrics.height()  # standing up, more of them fit
        if upright:
            shown_columns = visible_labels([metrics.height()] * columns, cell, gap=1.0, priority=weight)
        height = min(MAX_UPRIGHT_HEIGHT, max(widths, default=0) + 12) if upright else FLAT_HEIGHT
        if (top.upright, top.height()) != (upright, height):
            top.upright = upright
            top.setHeight(height)
        left.setTicks([[(i, self.row_labels[i]) for i in shown_rows], []])
        top.setTicks([[(i, self.column_labels[i]) for i in shown_columns], []])

    def clear_matrix(self) -> None:
        self.matrix = np.zeros((0, 0), dtype=np.float32)
        self.row_labels, self.column_labels = [], []
        self.image.clear()
        self.row_outline.hide()
        self.plot.getAxis("left").setTicks([[], []])
        self.plot.getAxis("top").setTicks([[], []])

    def cell_at(self, scene_pos: QPointF) -> tuple[int, int]:
        """(row, column) of the cell at a scene position, or (-1, -1) off the map."""
        if not self.plot.vb.sceneBoundingRect().contains(scene_pos):
            return -1, -1
        point = self.plot.vb.mapSceneToView(scene_pos)
        row, column = math.floor(point.y() + 0.5), math.floor(point.x() + 0.5)
        rows, columns = self.matrix.shape
        if 0 <= row < rows and 0 <= column < columns:
            return row, column
        return -1, -1

    def _on_mouse_moved(self, scene_pos: QPointF) -> None:
        cell = self.cell_at(scene_pos)
        if cell != self._hovered:
            self._hovered = cell
            self.hovered.emit(*cell)

    def leaveEvent(self, event) -> None:
        if self._hovered != (-1, -1):
            self._hovered = (-1, -1)
            self.hovered.emit(-1, -1)
        super().leaveEvent(event)

    def changeEvent(self, event: QEvent) -> None:
        # pyqtgraph's constructor already changes the palette, before our items exist
        if event.type() == QEvent.Type.PaletteChange and hasattr(self, "colorbar"):
            self._apply_palette()
        super().changeEvent(event)

    def _apply_palette(self) -> None:
        background, foreground = plot_colors(self)
        self.setBackground(background)
        for side in ("left", "top", "right", "bottom"):
            axis = self.plot.getAxis(side)
            axis.setPen(foreground)
            axis.setTextPen(foreground)
        self.colorbar.axis.setPen(foreground)
        self.colorbar.axis.setTextPen(foreground)
