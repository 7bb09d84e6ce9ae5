"""The row above the maps: the attention kind buttons (only the kinds the model has), the layer and
head on screen, the beam size, GPT-2's number of new tokens, and the notice of forced tokens with the
way back to the model's own choices.

It reads and writes the ViewState only; the window reads the beam size and new tokens from it.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QButtonGroup, QHBoxLayout, QLabel, QPushButton, QSpinBox, QWidget

from engine.architecture import ATTENTION_KINDS
from engine.render.labels import KIND_LABELS, head_label
from engine.render.shapes import NO_BEAM
from gui.view_state import ViewState
from gui.worker import DEFAULT_NEW_TOKENS

BEAM_TIP = "1 is greedy decoding; above 1, the Beam search tab shows the search tree"


def forced_notice(forced: int, beam_node: bool) -> str:
    if beam_node:
        return f"⚑ showing a beam node's path ({forced} tokens forced)"
    return f"⚑ {forced} token{'s' if forced > 1 else ''} forced by you"


class SelectionBar(QWidget):
    def __init__(self, view_state: ViewState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.view_state = view_state
        self.kind_buttons = QButtonGroup(self)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(QLabel("Attention:"))
        for index, kind in enumerate(ATTENTION_KINDS):
            button = QPushButton(KIND_LABELS[kind].button)
            button.setCheckable(True)
            button.setToolTip(f"Ctrl+{index + 1}")
            self.kind_buttons.addButton(button, index)
            row.addWidget(button)
        self._style_kind_buttons()
        self.selection_label = QLabel()
        self.beam_size = QSpinBox()
        self.beam_size.setRange(1, 16)
        self.beam_size.setToolTip(BEAM_TIP)
        self.beam_label = QLabel("Beam size:")
        self.new_tokens = QSpinBox()
        self.new_tokens.setObjectName("newTokens")
        self.new_tokens.setRange(1, 200)
        self.new_tokens.setValue(DEFAULT_NEW_TOKENS)
        self.new_tokens.setToolTip("How many tokens GPT-2 adds to the prompt (greedy, or by beam search)")
        self.new_tokens_label = QLabel("New tokens:")
        self.forced_label = QLabel()
        self.forced_label.setObjectName("forcedNotice")
        self.forced_label.setStyleSheet("QLabel { background: #ffd9a8; color: #222; padding: 2px 6px; }")
        self.forced_label.hide()
        self.unforce_button = QPushButton("Back to the model's choice")
        self.unforce_button.hide()
        keys = QLabel("PgUp/PgDn or Ctrl+↑/↓: layer · Ctrl+←/→ or Alt+←/→: head")
        keys.setEnabled(False)
        row.addSpacing(16)
        row.addWidget(self.selection_label)
        row.addSpacing(16)
        for widget in (self.beam_label, self.beam_size, self.new_tokens_label, self.new_tokens):
            row.addWidget(widget)
        for widget in (self.forced_label, self.unforce_button):
            row.addWidget(widget)
        row.addStretch(1)
        row.addWidget(keys)
        self.kind_buttons.idClicked.connect(lambda index: view_state.set_kind(ATTENTION_KINDS[index]))
        self.unforce_button.clicked.connect(view_state.clear_forcing)
        view_state.selectionChanged.connect(self._on_selection_changed)
        self._on_selection_changed()

    def show_forcing(self, forced: int, beam_node: bool) -> None:
        """The trace on screen starts with `forced` tokens the user (or a chosen beam node) forced."""
        self.forced_label.setText(forced_notice(forced, beam_node))
        self.forced_label.setVisible(bool(forced))
        self.unforce_button.setVisible(bool(forced))

    def _on_selection_changed(self) -> None:
        state = self.view_state
        self.kind_buttons.button(ATTENTION_KINDS.index(state.kind)).setChecked(True)
        for index, kind in enumerate(ATTENTION_KINDS):  # only the kinds the model has are offered
            self.kind_buttons.button(index).setVisible(kind in state.kinds)
        shape = state.model_shape
        for widget in (self.new_tokens_label, self.new_tokens):
            widget.setVisible(shape == "decoder-only")
        self.beam_size.setEnabled(shape != "encoder-only")
        self.beam_size.setToolTip(NO_BEAM if shape == "encoder-only" else BEAM_TIP)
        if not state.shape_known:
            self.selection_label.clear()  # no model yet: the layer and head counts are unknown
            return
        self.selection_label.setText(
            f"layer {state.layer + 1}/{state.n_layers()} · {head_label(state.head)} (of {state.n_heads})"
        )

    def _style_kind_buttons(self) -> None:
        """The chosen kind in the highlight colour: Fusion's pressed look is faint in a dark palette."""
        palette = self.palette()
        highlight = palette.color(QPalette.ColorRole.Highlight).name()
        text = palette.color(QPalette.ColorRole.HighlightedText).name()
        for button in self.kind_buttons.buttons():
            button.setStyleSheet(f"QPushButton:checked {{ background: {highlight}; color: {text}; }}")

    def changeEvent(self, event: QEvent) -> None:
        if event.type() == QEvent.Type.PaletteChange and hasattr(self, "kind_buttons"):
            self._style_kind_buttons()
        super().changeEvent(event)
