"""What the head view and the Analysis tab draw from a head analysis, as pure functions (numpy, no Qt).

The Analysis itself is engine.analysis' (computed in the worker); these only pick the map of the
selection and word what cannot be shown, so a test can check the numbers without a window.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.analysis import Analysis, HeadRow, rollout_kind_of
from engine.render.labels import AVERAGE, Head
from engine.render.shapes import missing_kind
from engine.trace import Trace

NO_ROLLOUT = (
    "Rollout is the encoder's: it multiplies self-attention maps over the same source pieces layer by layer, "
    "while decoder self-attention and cross-attention mix the output with the source, so it is only "
    "defined for encoder self-attention."
)
WAITING = "Computing the analysis of this sentence…"
MODE_TITLES = {"weights": "", "rollout": "rollout", "value-norms": "value norms ‖α·f(x)‖"}


@dataclass(frozen=True)
class ShownMap:
    """A map to draw in place of the raw weights, or the sentence that says why there is none."""

    matrix: np.ndarray | None
    levels: tuple[float, float] = (0.0, 1.0)
    message: str = ""


def analysis_map(trace: Trace, analysis: Analysis | None, mode: str, kind: str, layer: int, head: Head) -> ShownMap:
    """The rollout after encoder layer `layer` + 1, or the value norms of the selected head (the mean
    over heads for the average), for `trace`'s analysis; a message when there is none to draw."""
    missing = missing_kind(trace.shape, kind)
    if missing:
        return ShownMap(None, message=missing)
    if mode == "rollout" and kind != rollout_kind_of(trace):  # GPT-2 rolls out its own self-attention
        return ShownMap(None, message=NO_ROLLOUT)
    if analysis is None:
        return ShownMap(None, message=WAITING)
    if mode == "rollout":
        matrix = analysis.rollout[min(layer, analysis.rollout.shape[0] - 1)]
        return ShownMap(matrix, (0.0, max(float(matrix.max()), 1e-6)))
    if analysis.value_norms is None:
        return ShownMap(None, message="This analysis carries no value norms.")
    norms = analysis.value_norms[kind][layer]  # (H, Q, K)
    matrix = norms.mean(axis=0) if head == AVERAGE else norms[int(head)]
    return ShownMap(matrix, (0.0, max(float(matrix.max()), 1e-6)))


def head_name(row: HeadRow) -> str:
    """'cross L2 H3': layers and heads numbered from 1, as the table and the command line show them."""
    kind = {"enc_self": "enc self", "dec_self": "dec self"}.get(row.kind, row.kind)
    return f"{kind} L{row.layer + 1} H{row.head + 1}"


def top_heads_text(analysis: Analysis, n: int = 5) -> str:
    """The `n` most important heads with their drop in log-probability, or what is still missing."""
    top = analysis.top_heads(n)
    if not top and analysis.importance_note:
        return analysis.importance_note
    if not top:
        return "Most important heads: computing head importance by masking…"
    names = ", ".join(f"{head_name(row)} ({row.importance:+.2f})" for row in top)
    missing = "" if analysis.complete else " — more kinds to come"
    return f"Most important heads (log-probability lost when masked): {names}{missing}"


def flagged_pieces(trace: Trace, analysis: Analysis | None) -> list[str]:
    """The source pieces the coverage flags as possibly untranslated."""
    if analysis is None or not analysis.coverage.received.size:
        return []
    return [piece for piece, flag in zip(trace.src_pieces, analysis.coverage.flagged, strict=True) if flag]
