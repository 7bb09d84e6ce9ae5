"""The beam search tree: one column per decoding step, one node per hypothesis kept at that step.

Pruned branches are faded, finished hypotheses carry their score, and the best path is drawn bold.
Clicking a node asks for the trace of its prefix (the window forces it), so every view shows that path.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from engine.beam_tree import BeamTree
from engine.render.shapes import NO_BEAM
from gui.theme import plot_colors

BEST = "#d62728"
KEPT = "#1f77b4"
PRUNED = (170, 170, 170, 110)


def best_path_nodes(tree: BeamTree) -> list[int]:
    """Indices of the nodes on the best hypothesis, root side first."""
    index = next((i for i, n in enumerate(tree.nodes) if n.tokens == tree.best and n.finished), None)
    if index is None:
        index = next((i for i, n in enumerate(tree.nodes) if n.tokens == tree.best), None)
    path = []
    while index is not None and index >= 0:
        path.append(index)
        index = tree.nodes[index].parent
    return path[::-1]


class BeamView(QWidget):
    nodeChosen = Signal(object)  # tuple of token ids: the chosen node's prefix

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.tree: BeamTree | None = None
        self.selected: int | None = None
        self.shape = "encoder-decoder"  # the model's: BERT has no search, GPT-2's tree starts at its prompt
        self.caption = QLabel()
        self.caption.setWordWrap(True)
        self.caption.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.plot = pg.PlotWidget(enableMenu=False)
        self.plot.hideButtons()
        self.plot.getViewBox().invertY(True)
        self.plot.setLabel("bottom", "decoding step")
        self.plot.getAxis("left").setStyle(showValues=False)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.caption)
        layout.addWidget(self.plot, 1)
        self.plot.scene().sigMouseClicked.connect(self._on_clicked)
        background, foreground = plot_colors(self)
        self.plot.setBackground(background)
        self._foreground = foreground
        self.set_tree(None)

    def set_tree(
        self, tree: BeamTree | None, selected: tuple[int, ...] | None = None, searched_sentences: int = 0
    ) -> None:
        """Show `tree`; without one, `searched_sentences` > 1 says the text's sentences were each searched."""
        self.tree = tree
        self.searched_sentences = searched_sentences
        self.selected = None
        if tree is not None and selected is not None:
            self.selected = next((i for i, n in enumerate(tree.nodes) if n.tokens == tuple(selected)), None)
        self._render()

    def set_shape(self, shape: str) -> None:
        """The loaded model's shape (the tree of the trace on screen, if any, is dropped)."""
        self.shape = shape
        self.set_tree(None)

    def best_path_tokens(self) -> tuple[int, ...]:
        """The tokens along the highlighted path (the best hypothesis)."""
        if self.tree is None:
            return ()
        nodes = best_path_nodes(self.tree)
        return self.tree.nodes[nodes[-1]].tokens if nodes else ()

    def node_position(self, index: int) -> tuple[float, float]:
        node = self.tree.nodes[index]
        return float(node.depth), float(node.rank)

    def choose(self, index: int) -> None:
        """Select node `index` (what clicking it does)."""
        self.selected = index
        self._render()
        self.nodeChosen.emit(self.tree.nodes[index].tokens)

    def _render(self) -> None:
        self.plot.clear()
        tree = self.tree
        self.plot.setVisible(tree is not None)  # no tree: the sentence above says why, over no empty axes
        layout = self.layout()
        layout.setStretch(0, 0 if tree is not None else 1)  # the caption takes the room the plot leaves
        if tree is None and self.shape == "encoder-only":
            self.caption.setText(f"<i>{NO_BEAM}</i>")
            return
        if tree is None and self.searched_sentences > 1:
            self.caption.setText(
                f"<i>Each of the text's {self.searched_sentences} sentences had a beam search of its own; "
                "their best hypotheses are the translation above. Type one sentence to see its search tree.</i>"
            )
            return
        if tree is None:
            self.caption.setText(
                "<i>Set a beam size above 1 to see the search tree: every hypothesis kept at each step, "
                "pruned branches faded, the best path in red.</i>"
            )
            return
        best = set(best_path_nodes(tree))
        root_y = 0.0
        for index, node in enumerate(tree.nodes):
            x, y = self.node_position(index)
            px, py = (0.0, root_y) if node.parent < 0 else self.node_position(node.parent)
            on_best = index in best
            colour = BEST if on_best else (KEPT if node.survived else PRUNED)
            pen = pg.mkPen(colour, width=3 if on_best else 1.2)
            self.plot.plot([px, x], [py, y], pen=pen)
        xs = np.array([self.node_position(i)[0] for i in range(len(tree.nodes))] + [0.0])
        ys = np.array([self.node_position(i)[1] for i in range(len(tree.nodes))] + [root_y])
        brushes = [
            pg.mkBrush(BEST if i in best else (KEPT if n.survived else PRUNED)) for i, n in enumerate(tree.nodes)
        ] + [pg.mkBrush("#444")]
        sizes = [14 if n.finished else 9 for n in tree.nodes] + [10]
        symbols = ["s" if n.finished else "o" for n in tree.nodes] + ["d"]
        self.scatter = pg.ScatterPlotItem(x=xs, y=ys, brush=brushes, size=sizes, symbol=symbols, pen=None)
        self.plot.addItem(self.scatter)
        for index, node in enumerate(tree.nodes):
            piece = node.pieces[-1] if node.pieces else "?"
            score = f" {node.score:.2f}" if node.score is not None else f" {node.log_prob:.2f}"
            colour = self._foreground if (node.survived or index in best) else (150, 150, 150)
            text = pg.TextItem(f"{piece}{score}", anchor=(0.5, 1.15), color=colour)
            text.setPos(*self.node_position(index))
            self.plot.addItem(text)
        if self.selected is not None:
            x, y = self.node_position(self.selected)
            ring = pg.ScatterPlotItem([x], [y], size=24, symbol="o", brush=None, pen=pg.mkPen("#ff9900", width=3))
            self.plot.addItem(ring)
        label = self.plot.getAxis("bottom")
        depth = max(n.depth for n in tree.nodes) if tree.nodes else 0
        root = "prompt" if self.shape == "decoder-only" else "<s>"
        label.setTicks([[(0, root), *((d, str(d)) for d in range(1, depth + 1))]])
        self.plot.setXRange(-0.5, depth + 0.7)
        self.plot.setYRange(-0.8, max(n.rank for n in tree.nodes) + 0.6 if tree.nodes else 1)
        scores = ", ".join(f"{s:.3f}" for _, s in tree.hypotheses)
        self.caption.setText(
            f"<b>Beam search, beam size {tree.beam_size}</b>: {len(tree.hypotheses)} finished hypotheses "
            f"(scores {scores}); red: the best path, blue: kept on a final path, grey: pruned; squares end "
            "with &lt;/s&gt; and show their length-normalised score, circles their log-probability. "
            "Click a node to see its attention."
        )

    def _on_clicked(self, event) -> None:
        if self.tree is None or not self.tree.nodes:
            return
        point = self.plot.getViewBox().mapSceneToView(event.scenePos())
        distances = [
            (abs(self.node_position(i)[0] - point.x()) + abs(self.node_position(i)[1] - point.y()), i)
            for i in range(len(self.tree.nodes))
        ]
        distance, index = min(distances)
        if distance < 0.4:
            self.choose(index)
