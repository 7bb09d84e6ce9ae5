"""The selection the views show: attention kind, layer, head, focused token and decoder step.

Widgets never keep their own copy of these; they read the ViewState and listen to its signals
(napari's Dims / QtDims split), so a test can drive every view through this object alone.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal

from engine.trace import ATTENTION_KINDS
from gui.maps import AVERAGE, Head, TokenFocus


class ViewState(QObject):
    # kind, layer or head changed: the maps to draw are different
    selectionChanged = Signal()
    # the token under the mouse in the lines view changed (TokenFocus or None)
    tokenChanged = Signal()
    # the decoder step in focus changed (used by the step-by-step views of later issues)
    stepChanged = Signal()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.kind = "cross"
        self.layer = 0
        self.head: Head = 0
        self.token: TokenFocus | None = None
        self.step: int | None = None
        # sizes of the model on screen, so that stepping stops at the last layer or head
        self._n_layers = {kind: 1 for kind in ATTENTION_KINDS}
        self._n_heads = 1

    # --- sizes ---

    def set_model_shape(self, n_layers: dict[str, int], n_heads: int) -> None:
        """Clamp the selection to a (new) model's layer and head counts."""
        if (dict(n_layers), n_heads) == (self._n_layers, self._n_heads):
            return
        self._n_layers = dict(n_layers)
        self._n_heads = n_heads
        before = (self.kind, self.layer, self.head)
        self.select(self.kind, self.layer, self.head)
        if (self.kind, self.layer, self.head) == before:  # select() stayed silent; the counts changed
            self.selectionChanged.emit()

    def n_layers(self, kind: str | None = None) -> int:
        return self._n_layers[kind or self.kind]

    @property
    def n_heads(self) -> int:
        return self._n_heads

    # --- selection ---

    def select(self, kind: str | None = None, layer: int | None = None, head: Head | None = None) -> None:
        """Change any of kind, layer, head; out-of-range values are clamped; one signal at most."""
        kind = self.kind if kind is None else kind
        if kind not in ATTENTION_KINDS:
            raise ValueError(f"unknown attention kind {kind!r}")
        layer = min(max(self.layer if layer is None else layer, 0), self._n_layers[kind] - 1)
        head = self.head if head is None else head
        if head != AVERAGE:
            head = min(max(int(head), 0), self._n_heads - 1)
        if (kind, layer, head) == (self.kind, self.layer, self.head):
            return
        kind_changed = kind != self.kind
        self.kind, self.layer, self.head = kind, layer, head
        if kind_changed and self.token is not None:  # the token belongs to the other kind's axes
            self.token = None
            self.tokenChanged.emit()
        self.selectionChanged.emit()

    def set_kind(self, kind: str) -> None:
        self.select(kind=kind)

    def step_layer(self, delta: int) -> None:
        self.select(layer=self.layer + delta)

    def step_head(self, delta: int) -> None:
        """Move through heads 0 … H-1 and then the average column, stopping at either end."""
        order: list[Head] = [*range(self._n_heads), AVERAGE]
        index = min(max(order.index(self.head) + delta, 0), len(order) - 1)
        self.select(head=order[index])

    def set_token(self, token: TokenFocus | None) -> None:
        if token != self.token:
            self.token = token
            self.tokenChanged.emit()

    def set_step(self, step: int | None) -> None:
        if step != self.step:
            self.step = step
            self.stepChanged.emit()
