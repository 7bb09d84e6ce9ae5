"""Tables of numbers for the walkthrough: fitted to their contents, folded around '…', and the
small rich-text helpers (W^Q → W<sup>Q</sup>) the walkthrough pages share."""

from __future__ import annotations

import html
import re
from collections.abc import Sequence

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QAbstractItemView,
    QGridLayout,
    QLabel,
    QScrollArea,
    QTableWidget,
    QTableWidgetItem,
    QWidget,
)

from engine.render.labels import format_number
from engine.render.walkthrough import all_whole, folded_indices

MAX_TABLE_ROWS = 12  # taller tables scroll inside themselves, so one matrix never fills the page
ELLIPSIS = "…"


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
