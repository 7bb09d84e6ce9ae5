"""The selection the views show: attention kind, layer, head, focused token, decoder step, and the
decoding the user steered (a forced prefix or a chosen beam node).

Widgets never keep their own copy of these; they read the ViewState and listen to its signals
(napari's Dims / QtDims split), so a test can drive every view through this object alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, get_args

from PySide6.QtCore import QObject, Signal

from engine.architecture import ATTENTION_KINDS
from engine.render.labels import AVERAGE, Head
from engine.render.shapes import step_row
from engine.trace import Trace
from gui.maps import TokenFocus

MapMode = Literal["weights", "rollout", "value-norms"]
MAP_MODES: tuple[MapMode, ...] = get_args(MapMode)


@dataclass(frozen=True)
class WalkthroughSelection:
    """The one head and query token the walkthrough works through."""

    kind: str
    layer: int
    head: int  # a real head: the walkthrough of the average shows head 1
    query: int


class ViewState(QObject):
    # kind, layer or head changed: the maps to draw are different
    selectionChanged = Signal()
    # the token under the mouse in the lines view changed (TokenFocus or None)
    tokenChanged = Signal()
    # the decoder step in focus changed (the Decoder steps tab; the maps outline its row)
    stepChanged = Signal()
    # the forced prefix or the chosen beam node changed: the output to decode is different
    forcingChanged = Signal()
    # what the head view draws for the selected head: its weights, the encoder rollout or value norms
    mapModeChanged = Signal()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.kind = "cross"
        self.layer = 0
        self.head: Head = 0
        self.token: TokenFocus | None = None
        self.step: int | None = None
        self.forced_prefix: tuple[int, ...] = ()  # target ids the output must start with
        self.beam_selection: tuple[int, ...] | None = None  # the beam node whose path is shown (it is forced too)
        self.map_mode: MapMode = "weights"
        # sizes of the model on screen, so that stepping stops at the last layer or head
        self._n_layers = {kind: 1 for kind in ATTENTION_KINDS}
        self._n_heads = 1
        self.shape_known = False  # no model yet: the counts above are placeholders

    # --- sizes ---

    def set_model_shape(self, n_layers: dict[str, int], n_heads: int) -> None:
        """Clamp the selection to a (new) model's layer and head counts (announced even if it stays).
        A kind the model lacks (0 layers: BERT's decoder, GPT-2's encoder) is no longer offered; the
        selection moves to one it has."""
        if self.shape_known and (dict(n_layers), n_heads) == (self._n_layers, self._n_heads):
            return
        self.shape_known = True
        self._n_layers = dict(n_layers)
        self._n_heads = n_heads
        before = (self.kind, self.layer, self.head)
        self.select(self.kind, self.layer, self.head)
        if (self.kind, self.layer, self.head) == before:  # select() stayed silent; the counts changed
            self.selectionChanged.emit()

    @property
    def kinds(self) -> tuple[str, ...]:
        """The attention kinds the model on screen has (every kind before a model is known)."""
        present = tuple(kind for kind in ATTENTION_KINDS if self._n_layers[kind] > 0)
        return present or ATTENTION_KINDS

    @property
    def model_shape(self) -> str:
        """'encoder-decoder', 'encoder-only' (BERT) or 'decoder-only' (GPT-2), from the kinds offered."""
        return {("enc_self",): "encoder-only", ("dec_self",): "decoder-only"}.get(self.kinds, "encoder-decoder")

    def n_layers(self, kind: str | None = None) -> int:
        return self._n_layers[kind or self.kind]

    @property
    def n_heads(self) -> int:
        return self._n_heads

    # --- selection ---

    def select(self, kind: str | None = None, layer: int | None = None, head: Head | None = None) -> None:
        """Change any of kind, layer, head; out-of-range values are clamped, a kind the model lacks is
        ignored (the selection stays on, or moves to, one it has); one signal at most."""
        kind = self.kind if kind is None else kind
        if kind not in ATTENTION_KINDS:
            raise ValueError(f"unknown attention kind {kind!r}")
        if kind not in self.kinds:
            kind = self.kind if self.kind in self.kinds else self.kinds[0]
        layer = min(max(self.layer if layer is None else layer, 0), max(self._n_layers[kind] - 1, 0))
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

    def set_map_mode(self, mode: MapMode) -> None:
        """Draw the selected head's weights, the encoder rollout, or the value-weighted norms."""
        if mode not in MAP_MODES:
            raise ValueError(f"unknown map mode {mode!r}; choose one of {', '.join(MAP_MODES)}")
        if mode != self.map_mode:
            self.map_mode = mode
            self.mapModeChanged.emit()

    # --- steering the decoder ---

    def force_prefix(self, prefix: Sequence[int]) -> None:
        """The output must start with `prefix` (the user chose a candidate); greedy after it."""
        self._set_forcing(tuple(int(t) for t in prefix), None)

    def choose_beam_node(self, tokens: Sequence[int]) -> None:
        """Show a beam node's path: its tokens forced, greedy after them."""
        path = tuple(int(t) for t in tokens)
        self._set_forcing(path, path)

    def clear_forcing(self) -> None:
        """Back to the model's own choices (a new sentence or beam size forgets the forced tokens)."""
        self._set_forcing((), None)

    def _set_forcing(self, prefix: tuple[int, ...], beam_selection: tuple[int, ...] | None) -> None:
        if (prefix, beam_selection) != (self.forced_prefix, self.beam_selection):
            self.forced_prefix, self.beam_selection = prefix, beam_selection
            self.forcingChanged.emit()

    # --- the walkthrough ---

    def walkthrough_selection(self, trace: Trace | None) -> WalkthroughSelection | None:
        """The head and query the walkthrough shows for `trace`: the selected kind, layer and head (head 1
        for the average); the query is the focused query token, else the decoder step, else the first
        piece. None when the trace carries no q/k/v."""
        if trace is None or trace.qkv is None or self.kind not in trace.kinds:
            return None
        queries, _ = trace.axis_pieces(self.kind)
        token = self.token
        if token is not None and token.side == "query":
            query = token.index
        elif self.step is not None and (self.kind != "enc_self" or trace.shape == "encoder-only"):
            query = step_row(trace, self.step) if self.step < len(trace.out_pieces) else 0  # a decoder step, a [MASK]
        else:
            query = 0
        head = 0 if self.head == AVERAGE else int(self.head)
        layer = min(self.layer, trace.n_layers[self.kind] - 1)
        return WalkthroughSelection(self.kind, layer, head, min(max(query, 0), len(queries) - 1))
