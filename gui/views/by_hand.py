"""The by-hand example: an editable board-sized X, W^Q, W^K, W^V, with the exact results beside the
ones the classroom shortcuts give (÷ √d_k ≈ floor(x / n), eˣ ≈ 3ˣ). The arithmetic is engine.walkthrough's."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from engine.walkthrough import (
    ByHandExample,
    ByHandResult,
    default_by_hand_example,
    shortcut_divisor,
    work_by_hand,
)
from gui.views.tables import FitTable, fill_table, note, titled_grid


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
