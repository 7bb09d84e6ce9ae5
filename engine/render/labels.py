"""How the app names and numbers things: attention kinds, heads, pieces, numbers — one copy for the
GUI, the figures and the walkthrough. Numpy only (no Qt, no torch, no matplotlib).

Indices are 0-based like the Trace's arrays; what the user reads is numbered from 1.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from engine.architecture import check_kind
from engine.trace import Trace

AVERAGE = "average"  # the head-average column of the model view, and `--head average`
Head = int | Literal["average"]


@dataclass(frozen=True)
class KindLabel:
    name: str  # in a sentence or a figure title: "encoder self-attention"
    title: str  # a view's heading: "Encoder self-attention"
    button: str  # the kind's button and menu entry: "Encoder self"


KIND_LABELS = {
    "enc_self": KindLabel("encoder self-attention", "Encoder self-attention", "Encoder self"),
    "dec_self": KindLabel("masked decoder self-attention", "Decoder self-attention (masked)", "Decoder self (masked)"),
    "cross": KindLabel("encoder–decoder attention", "Encoder–decoder attention", "Encoder → decoder"),
}


def display_piece(piece: str) -> str:
    """A SentencePiece piece as a label: the word-start mark '▁' dropped, a bare '▁' shown as '␣'."""
    if piece == "▁":
        return "␣"
    return piece[1:] if piece.startswith("▁") else piece


def visible_text(text: str) -> str:
    """`text` with control characters shown, not dropped or drawn as a missing glyph: a GPT-2 continuation
    may decode to a NUL byte or a new line. '↵' for a new line, '⇥' for a tab, '<0x00>' for the others."""
    marks = {"\n": "↵", "\t": "⇥"}
    return "".join(marks.get(c, f"<0x{ord(c):02X}>") if unicodedata.category(c) == "Cc" else c for c in text)


def display_pieces(pieces: Sequence[str]) -> list[str]:
    return [display_piece(p) for p in pieces]


def head_label(head: Head, n_heads: int | None = None) -> str:
    """'head 3' or 'average'; with `n_heads`, 'head 3/8' or 'average of 8 heads' (figure titles)."""
    if n_heads is None:
        return AVERAGE if head == AVERAGE else f"head {int(head) + 1}"
    return f"average of {n_heads} heads" if head == AVERAGE else f"head {int(head) + 1}/{n_heads}"


def check_selection(trace: Trace, kind: str, layer: int, head: Head) -> None:
    """Raise ValueError (0-based message) unless kind, layer and head exist in `trace`."""
    check_kind(kind)
    n_layers = trace.n_layers[kind]
    if not 0 <= layer < n_layers:
        raise ValueError(f"layer index {layer} is out of range 0..{n_layers - 1}")
    is_index = isinstance(head, (int, np.integer)) and not isinstance(head, bool)
    if head != AVERAGE and not (is_index and 0 <= head < trace.n_heads):
        raise ValueError(f"head index {head!r} is out of range 0..{trace.n_heads - 1} (or 'average')")


def select_map(trace: Trace, kind: str, layer: int, head: Head) -> np.ndarray:
    """The queries × keys weights of one head, or their mean over the heads of the layer."""
    check_selection(trace, kind, layer, head)
    maps = trace.attention(kind)[layer]  # (H, queries, keys)
    return maps.mean(axis=0) if head == AVERAGE else maps[int(head)]


def selection_title(trace: Trace, kind: str, layer: int, head: Head) -> str:
    """'encoder–decoder attention, layer 2/3, head 5/8' (numbered from 1, with the totals)."""
    n_layers = trace.n_layers[kind]
    return f"{KIND_LABELS[kind].name}, layer {layer + 1}/{n_layers}, {head_label(head, trace.n_heads)}"


def curve_dimensions(d_model: int) -> list[int]:
    """Positional-encoding dimensions to draw as curves, fast to slow: the first sine and cosine,
    then sines a quarter and half way along."""
    return sorted({d for d in (0, 1, 2 * (d_model // 8), 2 * (d_model // 4)) if d < d_model})


def format_number(value: float, whole: bool = False, decimals: int = 4) -> str:
    """A number as shown in a table: `whole` numbers without decimals, others to `decimals` places."""
    if value == -math.inf:
        return "−∞"
    if math.isinf(value):
        return "∞"
    text = f"{value:.0f}" if whole else f"{value:.{decimals}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text  # no "-0.0000"
