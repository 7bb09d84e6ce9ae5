"""The decoder, step by step: a slider with play / pause / step over t = 1 … T, and at step t the
output so far, the top-k candidates (click one to force it; a grey one would have completed a loop,
which our models never do: engine/loops.py), the cross-attention row over the source and the masked
self-attention row with the future positions shown as masked.

The same timeline serves the other two shapes: GPT-2's continuation, one step per new token (the
prompt is context; the row is the position that chose the token, over the prompt and the tokens so
far), and BERT's [MASK]s, one step per mask with its fillers and the mask's row of encoder
self-attention over the whole text. Neither has cross-attention; GPT-2's candidates can be forced
(decoding goes on from them), BERT's fillers are only shown.

The step lives in ViewState.step (0-based output index; its query row is `step_row`); the layer and
head are the ViewState's.
"""

from __future__ import annotations

import html

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, Qt, QTimer, Signal
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from engine.loops import TAIL_PIECES, LoopGuard, looping_ids, written
from engine.render.labels import head_label, select_map
from engine.render.shapes import NO_MASK, STEP_NAMES, of_sentence, step_row
from engine.trace import Trace
from gui.theme import plot_colors, style_plot
from gui.view_state import ViewState
from gui.views.heatmap import label_bars

PLAY_MS = 700
BLOCKED_COLOR = "#b0b0b0"  # a candidate the loop guard ruled out
MASKED_TEXT = "−∞ → 0"
ROW_PLOT_MIN_HEIGHT = 100  # px: below this, a step's attention row under its title and piece labels was 15 px of bars
FORCE_TITLE = "<b>candidates</b> (click to force)"
SHOW_TITLE = "<b>candidates</b>"


def idle_text(trace: Trace | None) -> str:
    """What the tab says when there is no step to show: nothing translated yet, or BERT without [MASK]."""
    if trace is not None and trace.shape == "encoder-only":
        return NO_MASK
    if trace is not None:
        return "No new token: ask for at least one."
    return "The decoder's steps appear here once a sentence is translated."


def step_word(trace: Trace) -> str:
    """'step' on a translator's timeline; 'mask' (BERT) or 'new token' (GPT-2) on the others."""
    return "step" if trace.shape == "encoder-decoder" else STEP_NAMES[trace.shape]


def self_row_title(trace: Trace, step: int) -> str:
    row = step_row(trace, step) + 1  # titles stay short: a long one widens the plot past the window
    if trace.shape == "encoder-only":
        return f"mask {step + 1}: position {row} over the whole text"
    if trace.shape == "decoder-only":
        return f"new token {step + 1}: position {row} over the text so far"
    if trace.sentences > 1:  # as short as one sentence's title: a longer one is cut at the plot's edge
        return f"step {step + 1}: masked self-attention over the input{of_sentence(trace, row - 1)}"
    return f"step {step + 1}: masked self-attention over the decoder input"


def one_stack_output(trace: Trace, step: int) -> str:
    """GPT-2: the prompt, then the continuation so far with this step's token in brackets. BERT: the
    text with each [MASK] shown as its filler, this mask's in brackets."""
    chosen = f"<b style='color:#d62728'>[{html.escape(trace.out_pieces[step])}]</b>"
    if trace.shape == "decoder-only":
        prompt = trace.tgt_pieces[: len(trace.tgt_pieces) - len(trace.out_pieces) + 1]
        done = " ".join(html.escape(p) for p in trace.out_pieces[:step])
        return (
            f"prompt: <i>{html.escape(' '.join(prompt))}</i> &nbsp; continuation: {done} {chosen}"
            f" &nbsp; <small>(new token {step + 1} of {len(trace.out_pieces)})</small>"
        )
    fillers = {int(row): j for j, row in enumerate(trace.out_positions)}
    parts = []
    for i, piece in enumerate(trace.src_pieces):
        j = fillers.get(i)
        text = html.escape(piece) if j is None else f"[MASK→{html.escape(trace.out_pieces[j])}]"
        parts.append(chosen.replace("[", "[MASK→", 1) if j == step else text)
    return f"filled: {' '.join(parts)} &nbsp; <small>(mask {step + 1} of {len(trace.out_pieces)})</small>"


def loop_blocked(trace: Trace, step: int, forced_length: int = 0) -> list[int]:
    """The tokens the loop guard ruled out at `step` (none at a forced step: the user chose it)."""
    if not trace.loop_guard or trace.shape != "encoder-decoder" or step < forced_length:
        return []
    first = int(trace.sentence_keys("dec_self", step)[0])  # the step's sentence starts again at <s>
    ids = looping_ids(trace.out_ids[first:step].tolist())
    text = written(trace.out_pieces[max(first, step - TAIL_PIECES) : step])
    candidates = LoopGuard(trace.topk_pieces[step]).text_looping_ids(text)  # the text rule, for the shown ones
    return ids + [t for t in (int(trace.topk_ids[step][i]) for i in candidates) if t not in ids]


def self_kind(trace: Trace) -> str:
    """The self-attention a step's row is drawn from: the decoder's, or BERT's encoder."""
    return "enc_self" if trace.shape == "encoder-only" else "dec_self"


def step_rows(trace: Trace, layer: int, head, step: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(cross row over the source, self row over the input, visible mask) of output `step`, each over
    the step's own sentence (`Trace.sentence_keys`); the cross row is empty without cross-attention (BERT,
    GPT-2), and BERT's encoder row sees every position."""
    row = step_row(trace, step)
    cross = np.zeros(0)
    if "cross" in trace.kinds:
        cross = select_map(trace, "cross", layer, head)[row, trace.sentence_keys("cross", row)]
    kind = self_kind(trace)
    keys = trace.sentence_keys(kind, row)
    self_row = select_map(trace, kind, layer, head)[row, keys]
    visible = keys <= row if kind == "dec_self" else np.ones(len(keys), dtype=bool)
    return cross, self_row, visible


class DecoderStepsView(QWidget):
    forceRequested = Signal(int, int)  # step (0-based), token id
    resetRequested = Signal()  # back to the model's own choices

    def __init__(self, view_state: ViewState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.view_state = view_state
        self.trace: Trace | None = None
        self.forced_length = 0  # how many leading output tokens the user forced
        self.cross_row = np.zeros(0)
        self.self_row = np.zeros(0)
        self.visible = np.zeros(0, dtype=bool)
        self.topk_ids = np.zeros(0, dtype=np.int64)
        self.topk_probs = np.zeros(0)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(self._build_bar())
        self.output = QLabel()
        self.output.setWordWrap(True)
        self.output.setTextFormat(Qt.TextFormat.RichText)
        layout.addWidget(self.output)
        layout.addLayout(self._build_grid(), 1)

        self.timer = QTimer(self)
        self.timer.setInterval(PLAY_MS)
        self.timer.timeout.connect(self._advance)
        self.play.toggled.connect(self._on_play)
        self.back.clicked.connect(lambda: self.move(-1))
        self.forward.clicked.connect(lambda: self.move(1))
        self.slider.valueChanged.connect(lambda value: self.view_state.set_step(value - 1))
        self.candidates.itemClicked.connect(self._on_candidate_clicked)
        self.reset.clicked.connect(self.resetRequested.emit)
        view_state.stepChanged.connect(self._render)
        view_state.selectionChanged.connect(self._render)
        self._render()

    def _build_bar(self) -> QHBoxLayout:
        """◀ step, ▶ play, step ▶, the slider over the steps, and the way back from forced tokens."""
        self.back = QPushButton("◀ step")
        self.play = QPushButton("▶ play")
        self.play.setCheckable(True)
        self.forward = QPushButton("step ▶")
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setMinimum(1)
        self.slider.setPageStep(1)
        self.step_label = QLabel()
        self.step_label.setMinimumWidth(90)
        self.reset = QPushButton("Back to the model's choice")
        self.reset.setToolTip("Forget the forced tokens and decode freely again")
        self.reset.hide()
        bar = QHBoxLayout()
        for widget in (self.back, self.play, self.forward):
            bar.addWidget(widget)
        bar.addWidget(self.slider, 1)
        bar.addWidget(self.step_label)
        bar.addWidget(self.reset)
        return bar

    def _build_grid(self) -> QGridLayout:
        """The candidates list, the top-k bars, and the step's two attention rows."""
        self.candidates = QListWidget()
        self.candidates.setToolTip("Click a candidate to force it at this step; decoding continues from there")
        self.candidates.setMaximumWidth(230)
        self.topk_plot = self._plot("top-k candidates (probability)")
        self.cross_plot = self._plot("cross-attention over the source")
        self.self_plot = self._plot("masked self-attention over the output so far")
        self.topk_plot.scene().sigMouseClicked.connect(self._on_topk_clicked)
        self._build_plot_items()
        grid = QGridLayout()
        left = QVBoxLayout()
        self.candidates_title = QLabel(FORCE_TITLE)
        left.addWidget(self.candidates_title)
        left.addWidget(self.candidates, 1)
        grid.addLayout(left, 0, 0, 2, 1)
        grid.addWidget(self.topk_plot, 0, 1, 2, 1)
        grid.addWidget(self.cross_plot, 0, 2)
        grid.addWidget(self.self_plot, 1, 2)
        for row_plot in (self.cross_plot, self.self_plot):  # title, bars and piece labels stay readable
            row_plot.setMinimumHeight(ROW_PLOT_MIN_HEIGHT)
        grid.setColumnStretch(1, 2)
        grid.setColumnStretch(2, 3)
        return grid

    def _plot(self, title: str) -> pg.PlotWidget:
        plot = pg.PlotWidget(enableMenu=False)
        plot.setMouseEnabled(x=False, y=False)
        plot.hideButtons()
        plot.setTitle(title)
        return plot

    def _build_plot_items(self) -> None:
        """The plots' items, made once and updated in place: making them anew for every trace was
        two thirds of what showing a trace cost the GUI thread."""
        empty = np.zeros(0)
        self.topk_bars = pg.BarGraphItem(x0=0, y=empty, width=empty, height=0.7)
        self.topk_plot.addItem(self.topk_bars)
        self.topk_plot.getViewBox().invertY(True)
        self.topk_plot.setXRange(0, 1.3, padding=0)  # room for the probability after a bar of 1
        self.topk_labels: list[pg.TextItem] = []  # one per candidate, grown as needed
        self.cross_bars = pg.BarGraphItem(x=empty, height=empty, width=0.75, brush="#2171b5")
        self.cross_plot.addItem(self.cross_bars)
        self.self_bars = pg.BarGraphItem(x=empty, height=empty, width=0.75, brush="#2171b5")
        self.self_plot.addItem(self.self_bars)
        hatch = QBrush(QColor(150, 150, 150), Qt.BrushStyle.BDiagPattern)
        self.masked_bars = pg.BarGraphItem(x=empty, height=empty, width=0.75, brush=hatch, pen=pg.mkPen("#999"))
        self.self_plot.addItem(self.masked_bars)
        self.masked_label = pg.TextItem(
            f"masked (future): {MASKED_TEXT}", anchor=(0.5, 0.5), color=(40, 40, 40), fill=(255, 255, 255, 220)
        )
        self.self_plot.addItem(self.masked_label)
        self.row_labels: dict[pg.PlotWidget, tuple[list[str], np.ndarray]] = {}  # each row plot's pieces, weights
        for plot in (self.cross_plot, self.self_plot):
            plot.setYRange(0, 1.05, padding=0)
            # three fixed ticks: pyqtgraph's own crowd six labels into these short plots
            plot.getAxis("left").setTicks([[(0.0, "0"), (0.5, "0.5"), (1.0, "1")], []])
            plot.getViewBox().sigResized.connect(lambda _box, plot=plot: self._label_row(plot))
        self._apply_palette()

    def _apply_palette(self) -> None:
        for plot in (self.topk_plot, self.cross_plot, self.self_plot):
            style_plot(plot, self)
        for label in self.topk_labels:
            label.setColor(plot_colors(self)[1])

    def changeEvent(self, event: QEvent) -> None:
        if event.type() == QEvent.Type.PaletteChange and hasattr(self, "topk_labels"):
            self._apply_palette()
        super().changeEvent(event)

    # --- inputs ---

    def set_trace(self, trace: Trace | None, forced_length: int = 0) -> None:
        self.trace = trace
        self.forced_length = forced_length
        self.reset.setVisible(forced_length > 0)
        if trace is None:
            self.timer.stop()
            self.play.setChecked(False)
            self._render()
            return
        n = len(trace.out_pieces)
        step = self.view_state.step
        self.slider.blockSignals(True)
        self.slider.setMaximum(max(n, 1))
        self.slider.blockSignals(False)
        if n == 0:
            step = None  # BERT without a [MASK]: nothing to step through
        elif step is None or step >= n:
            step = min(max(forced_length - 1, 0), n - 1) if forced_length else min(n - 1, n // 2)
        self.view_state.set_step(step)
        self._render()

    def move(self, delta: int) -> None:
        if self.trace is None:
            return
        step = self.view_state.step or 0
        if self.trace.out_pieces:
            self.view_state.set_step(min(max(step + delta, 0), len(self.trace.out_pieces) - 1))

    def _advance(self) -> None:
        if self.trace is None or (self.view_state.step or 0) >= len(self.trace.out_pieces) - 1:
            self.play.setChecked(False)
            return
        self.move(1)

    def _on_play(self, on: bool) -> None:
        self.play.setText("❚❚ pause" if on else "▶ play")
        if on:
            if self.trace is not None and (self.view_state.step or 0) >= len(self.trace.out_pieces) - 1:
                self.view_state.set_step(0)  # play from the start once the end is reached
            self.timer.start()
        else:
            self.timer.stop()

    def _on_candidate_clicked(self, item: QListWidgetItem) -> None:
        if self.forcing_allowed and self.view_state.step is not None:
            self.forceRequested.emit(self.view_state.step, int(item.data(Qt.ItemDataRole.UserRole)))

    @property
    def forcing_allowed(self) -> bool:
        """A translator's and GPT-2's candidates can be forced (decoding goes on from them); BERT's
        fillers are only shown: nothing is decoded after them."""
        return self.trace is not None and self.trace.shape != "encoder-only"

    def _on_topk_clicked(self, event) -> None:
        if not self.forcing_allowed or not self.topk_probs.size:
            return
        point = self.topk_plot.plotItem.vb.mapSceneToView(event.scenePos())
        index = round(point.y())
        if 0 <= index < len(self.topk_ids) and 0 <= point.x() <= 1.2:
            self.forceRequested.emit(self.view_state.step, int(self.topk_ids[index]))

    def force_candidate(self, rank: int) -> None:
        """Force the step's `rank`-th candidate (what clicking it does)."""
        self._on_candidate_clicked(self.candidates.item(rank))

    # --- drawing ---

    def _render(self) -> None:
        trace, state = self.trace, self.view_state
        self.candidates_title.setText(FORCE_TITLE if trace is None or self.forcing_allowed else SHOW_TITLE)
        if trace is None or state.step is None or not trace.out_pieces:
            self.output.setText(f"<i>{html.escape(idle_text(trace))}</i>")
            self.candidates.clear()
            self.step_label.clear()
            self.cross_row = self.self_row = np.zeros(0)
            self.visible = np.zeros(0, dtype=bool)
            self.topk_ids, self.topk_probs = np.zeros(0, dtype=np.int64), np.zeros(0)
            for plot in (self.topk_plot, self.cross_plot, self.self_plot):
                plot.setVisible(False)
            return
        for plot in (self.topk_plot, self.cross_plot, self.self_plot):
            plot.setVisible(plot is not self.cross_plot or "cross" in trace.kinds)
        n_steps = len(trace.out_pieces)
        step = min(state.step, n_steps - 1)
        self.slider.blockSignals(True)
        self.slider.setValue(step + 1)
        self.slider.blockSignals(False)
        self.step_label.setText(f"{step_word(trace)} {step + 1}/{n_steps}")
        layer = min(state.layer, trace.n_layers[self_kind(trace)] - 1)
        self.cross_row, self.self_row, self.visible = step_rows(trace, layer, state.head, step)
        self.topk_ids = trace.topk_ids[step]
        self.topk_probs = trace.topk_probs[step]
        self._show_output(trace, step)
        blocked = loop_blocked(trace, step, self.forced_length)
        self._show_candidates(trace, step, blocked)
        self._draw_topk(trace, step, blocked)
        where = f"layer {layer + 1}, {head_label(state.head)}"
        row = step_row(trace, step)
        sources = []  # BERT has a source but no cross row
        if "cross" in trace.kinds:
            sources = [trace.src_pieces[i] for i in trace.sentence_keys("cross", row)]
        self._draw_row(self.cross_plot, self.cross_bars, self.cross_row, sources)
        self.cross_plot.setTitle(f"step {step + 1}: cross-attention over the source{of_sentence(trace, row)} ({where})")
        pieces = trace.input_pieces if trace.shape != "encoder-decoder" else trace.tgt_pieces
        pieces = [pieces[i] for i in trace.sentence_keys(self_kind(trace), row)]
        self._draw_row(self.self_plot, self.self_bars, np.where(self.visible, self.self_row, 0.0), pieces)
        self._draw_masked(self.visible)
        self.self_plot.setTitle(f"{self_row_title(trace, step)} ({where})")

    def _show_output(self, trace: Trace, step: int) -> None:
        if trace.shape != "encoder-decoder":
            self.output.setText(one_stack_output(trace, step))
            return
        first = int(trace.sentence_keys("dec_self", step)[0])  # a text of several: this step's sentence only
        done = [(i, html.escape(trace.out_pieces[i])) for i in range(first, step)]
        parts = [f"<u>{p}</u>" if i < self.forced_length else p for i, p in done]
        chosen = html.escape(trace.out_pieces[step])
        mark = " (forced)" if step < self.forced_length else ""
        sentence = f"sentence {int(trace.tgt_sentence[step]) + 1}/{trace.sentences}, " if trace.sentences > 1 else ""
        self.output.setText(
            f"{sentence}output so far: {' '.join(parts)} <b style='color:#d62728'>[{chosen}]</b>{mark}"
            f" &nbsp; <small>(underlined: forced; in brackets: chosen at step {step + 1})</small>"
        )

    def _show_candidates(self, trace: Trace, step: int, blocked: list[int]) -> None:
        self.candidates.clear()
        chosen = int(trace.out_ids[step])
        for token, piece, prob in zip(
            trace.topk_ids[step], trace.topk_pieces[step], trace.topk_probs[step], strict=True
        ):
            note = "   ← chosen" if int(token) == chosen else "   ✗ would complete a loop" if token in blocked else ""
            item = QListWidgetItem(f"{piece}   {prob:.3f}{note}")
            item.setData(Qt.ItemDataRole.UserRole, int(token))
            self.candidates.addItem(item)

    def _draw_topk(self, trace: Trace, step: int, blocked: list[int]) -> None:
        """The step's candidates as bars; `blocked`: those the loop guard ruled out."""
        chosen = int(trace.out_ids[step])
        k = len(self.topk_probs)
        brushes = ["#d62728" if t == chosen else BLOCKED_COLOR if t in blocked else "#9ecae1" for t in self.topk_ids]
        self.topk_bars.setOpts(y=np.arange(k), width=self.topk_probs, brushes=brushes)
        self.topk_plot.getAxis("left").setTicks([[(i, p) for i, p in enumerate(trace.topk_pieces[step])]])
        self.topk_plot.setYRange(-0.6, k - 0.4, padding=0)
        while len(self.topk_labels) < k:
            label = pg.TextItem(anchor=(0, 0.5), color=plot_colors(self)[1])
            self.topk_plot.addItem(label)
            self.topk_labels.append(label)
        for i, label in enumerate(self.topk_labels):
            label.setVisible(i < k)
            if i < k:
                label.setText(f"{self.topk_probs[i]:.3f}")
                label.setPos(float(self.topk_probs[i]) + 0.01, i)
        what = "fillers of this mask" if trace.shape == "encoder-only" else "next pieces"
        legend = "red: chosen" + (", grey: would loop" if set(blocked) & set(self.topk_ids.tolist()) else "")
        self.topk_plot.setTitle(f"{step_word(trace)} {step + 1}: top-{k} {what} ({legend})")

    def _draw_row(self, plot: pg.PlotWidget, bars: pg.BarGraphItem, row: np.ndarray, pieces: list[str]) -> None:
        bars.setOpts(x=np.arange(len(row)), height=row)
        plot.setXRange(-0.6, max(len(row), 4) - 0.4, padding=0)
        self.row_labels[plot] = (pieces, row)
        self._label_row(plot)

    def _label_row(self, plot: pg.PlotWidget) -> None:
        """Label each bar with its piece; where they do not all fit, the tallest bars keep theirs."""
        pieces, row = self.row_labels.get(plot, ([], np.zeros(0)))
        label_bars(plot, pieces, row)

    def _draw_masked(self, visible: np.ndarray) -> None:
        """Hatch the future positions of the self-attention row and say they are masked."""
        hidden = np.flatnonzero(~visible)
        self.masked_bars.setOpts(x=hidden, height=np.ones(len(hidden)))
        self.masked_label.setVisible(len(hidden) > 0)
        if len(hidden):
            few = len(hidden) < 4  # a few hatched bars at the right edge: the label ends there, not past it
            self.masked_label.setAnchor((1.0, 0.5) if few else (0.5, 0.5))
            self.masked_label.setPos(float(hidden.max()) + 0.4 if few else float(hidden.mean()), 0.5)
