"""What the views draw, as pure functions of a Trace and a selection (numpy only, no Qt).

Widgets call these and only push the results into pyqtgraph or QPainter, so every number the
user sees can be checked in a test without a window. The names of kinds and heads, and the map of
a selection (`select_map`), are engine.render.labels', shared with the figures.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from engine.trace import Trace


def hover_text(trace: Trace, kind: str, weights: np.ndarray, row: int, col: int) -> str:
    """'query → key: weight' for the cell under the mouse; empty outside the map."""
    queries, keys = trace.axis_pieces(kind)
    if not (0 <= row < weights.shape[0] and 0 <= col < weights.shape[1]):
        return ""
    return f"{queries[row]} → {keys[col]}: {weights[row, col]:.4f}"


@dataclass(frozen=True)
class TokenFocus:
    """The token the user points at in the lines view: a query (left column) or a key (right)."""

    side: Literal["query", "key"]
    index: int


def link_opacities(weights: np.ndarray, focus: TokenFocus | None, dim: float = 0.12) -> np.ndarray:
    """Opacity of each query → key link: its weight, dimmed for links not touching the focus."""
    opacity = np.clip(weights, 0.0, 1.0).astype(np.float32)
    if focus is None:
        return opacity
    keep = np.zeros_like(opacity, dtype=bool)
    if focus.side == "query" and focus.index < weights.shape[0]:
        keep[focus.index, :] = True
    elif focus.side == "key" and focus.index < weights.shape[1]:
        keep[:, focus.index] = True
    return np.where(keep, opacity, opacity * dim)


def focus_text(trace: Trace, kind: str, weights: np.ndarray, focus: TokenFocus | None) -> str:
    """What the token under the mouse in the lines view attends to most (or is attended by most)."""
    queries, keys = trace.axis_pieces(kind)
    if focus is None:
        return ""
    if focus.side == "query" and focus.index < len(queries):
        best = int(np.argmax(weights[focus.index]))
        return f"{queries[focus.index]} attends most to {keys[best]} ({weights[focus.index, best]:.3f})"
    if focus.side == "key" and focus.index < len(keys):
        best = int(np.argmax(weights[:, focus.index]))
        return f"{keys[focus.index]} is attended most by {queries[best]} ({weights[best, focus.index]:.3f})"
    return ""


def token_summary(trace: Trace) -> str:
    """The status bar's count of pieces, in the words of the model's shape."""
    G = len(trace.out_pieces)
    if trace.shape == "encoder-only":
        return f"{len(trace.src_pieces)} input pieces · {G} mask{'s' if G != 1 else ''}"
    if trace.shape == "decoder-only":
        return f"{len(trace.tgt_pieces) - G + 1} prompt pieces · {G} new token{'s' if G != 1 else ''}"
    return f"{len(trace.src_pieces)} source · {len(trace.tgt_pieces)} target tokens"


def latency_text(trace: Trace) -> str:
    total = trace.timings.get("total_ms")
    return "" if total is None else f"{total:.0f} ms"
