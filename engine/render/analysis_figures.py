"""Figures of a head analysis (engine/analysis.py): importance per head, encoder rollout, value norms.

Matplotlib only, no torch: the Analysis is computed in the engine (engine/importance.py for the
masking) and drawn here, through `engine.render.figures.build_figure` like every other figure.
Indices are 0-based; titles number layers and heads from 1.
"""

from __future__ import annotations

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from engine.analysis import Analysis
from engine.architecture import ATTENTION_KINDS
from engine.render.figures import (
    AXIS_NAMES,
    STYLE,
    ExportError,
    _attention_cmap,
    _heatmap,
    _label_axes,
    _label_width,
    _sentence_line,
    cells,
    hidden_cells,
    suptitle,
    title_height,
)
from engine.render.labels import AVERAGE, KIND_LABELS, Head, check_selection, head_label, select_map
from engine.render.request import FigureRequest
from engine.render.shapes import check_kind_present
from engine.trace import Trace

IMPORTANCE_CMAP = "RdBu_r"  # diverging: red helps the output, blue hurts it, white does nothing
SHORT_KIND = {"enc_self": "enc self", "dec_self": "dec self", "cross": "cross"}  # as `analyze` prints them
HEAD_CELL = 0.42  # inches per head or layer in the importance grids: room for a number


def analysis_figure(trace: Trace, analysis: Analysis | None, request: FigureRequest) -> Figure:
    """The figure `request.what` asks for: 'importance', 'rollout' or 'value-norms'."""
    if analysis is None:
        raise ExportError(f"the {request.what} figure needs the head analysis: run it first")
    if request.what == "importance":
        if not analysis.importance and analysis.importance_note:
            raise ExportError(analysis.importance_note)
        return importance_figure(trace, analysis)
    if request.what == "rollout":
        return rollout_figure(trace, analysis)
    kind = request.kind
    check_kind_present(trace, kind)
    layer = trace.n_layers[kind] - 1 if request.layer is None else request.layer
    return value_norms_figure(trace, analysis, kind, layer, request.head)


def importance_figure(trace: Trace, analysis: Analysis) -> Figure:
    """One layers × heads grid per kind: log-probability the output loses when the head is zeroed."""
    if not analysis.importance:
        raise ExportError("the importance figure needs importance by masking: it has not been computed")
    kinds = [kind for kind in ATTENTION_KINDS if kind in analysis.importance]
    with matplotlib.rc_context(STYLE):
        drops = [analysis.importance[kind].drop for kind in kinds]  # each (L, H)
        bound = max(float(np.abs(d).max()) for d in drops) or 1.0
        n_heads = drops[0].shape[1]
        width = max(6.0, len(kinds) * (n_heads * HEAD_CELL + 0.6) + 1.2)
        top = ", ".join(
            f"{SHORT_KIND[r.kind]} L{r.layer + 1} H{r.head + 1}: {r.importance:.2f}" for r in analysis.top_heads(5)
        )
        title = (
            f"{trace.model_name}: head importance by masking (log-probability of the output lost, nats)\n"
            f"most important: {top}\n{_sentence_line(trace)}"
        )
        height = max(d.shape[0] for d in drops) * HEAD_CELL + 1.3 + title_height(title, width)
        fig = Figure(figsize=(width, height), layout="constrained")
        axes = fig.subplots(1, len(kinds), squeeze=False)[0]
        for ax, kind, drop in zip(axes, kinds, drops, strict=True):
            image = ax.imshow(drop, cmap=IMPORTANCE_CMAP, vmin=-bound, vmax=bound, aspect="equal")
            _annotate(ax, drop, bound)
            ax.set_xticks(range(drop.shape[1]), [str(h + 1) for h in range(drop.shape[1])])
            ax.set_yticks(range(drop.shape[0]), [str(layer + 1) for layer in range(drop.shape[0])])
            ax.set_xlabel("head")
            ax.set_ylabel("layer")
            ax.set_title(KIND_LABELS[kind].name)
        fig.colorbar(image, ax=list(axes), label="log-probability lost (nats)", shrink=0.8)
        suptitle(fig, title, width)
        return fig


def _annotate(ax: Axes, values: np.ndarray, bound: float) -> None:
    for (row, col), value in np.ndenumerate(values):
        colour = "white" if abs(value) > 0.6 * bound else "black"
        ax.text(col, row, f"{value:.2f}", ha="center", va="center", fontsize=6, color=colour)


def rollout_figure(trace: Trace, analysis: Analysis) -> Figure:
    """Attention rollout after each layer of the input's stack (the encoder; GPT-2's decoder); the last
    panel is the whole stack's."""
    pieces = trace.input_pieces
    stack = "decoder" if analysis.rollout_kind == "dec_self" else "encoder"
    with matplotlib.rc_context(STYLE):
        rollout = analysis.rollout  # (L, S, S)
        n_layers, n_pieces = rollout.shape[:2]
        cell = cells(n_layers * n_pieces)  # the panels side by side share MAX_MAP
        map_side = cell.side(n_pieces)
        label = _label_width(pieces, cell.font)
        width = n_layers * (map_side + 0.3) + label + 1.4
        title = (
            f"{trace.model_name}: attention rollout of the {stack} (Abnar & Zuidema 2020): "
            "½·head mean + ½·I per layer, multiplied up\n"
            f"row: a position after that layer, column: the input piece it draws on\n{_sentence_line(trace)}"
        )
        height = map_side + label + 0.8 + title_height(title, width)
        fig = Figure(figsize=(width, height), layout="constrained")
        axes = fig.subplots(1, n_layers, squeeze=False)[0]
        vmax = float(rollout.max())
        for layer, ax in enumerate(axes):
            image = ax.imshow(rollout[layer], cmap=_attention_cmap(), vmin=0.0, vmax=vmax, aspect="equal")
            _label_axes(ax, pieces if layer == 0 else [""] * n_pieces, pieces, cell)
            ax.set_title(f"after layer {layer + 1}/{n_layers}")
        axes[0].set_ylabel("input position")
        fig.colorbar(image, ax=list(axes), label="share of the input", shrink=min(1.0, 3.0 / map_side), aspect=25)
        suptitle(fig, title, width)
        return fig


def value_norms_figure(trace: Trace, analysis: Analysis, kind: str, layer: int, head: Head) -> Figure:
    """The attention weights α_ij beside the value-weighted norms ‖α_ij f(x_j)‖ (Kobayashi et al. 2020)."""
    if analysis.value_norms is None:
        raise ExportError("the value-norms figure needs each head's values and W^O: they were not given")
    check_selection(trace, kind, layer, head)
    with matplotlib.rc_context(STYLE):
        norms = analysis.value_norms[kind][layer]  # (H, Q, K)
        norm_map = norms.mean(axis=0) if head == AVERAGE else norms[int(head)]
        rows, cols = trace.axis_pieces(kind)
        cell = cells(2 * max(len(rows), len(cols)))  # two maps side by side share MAX_MAP
        map_w, map_h = cell.side(len(cols)), cell.side(len(rows))
        width = 2 * (map_w + 1.0) + _label_width(rows, cell.font) + 0.6
        title = (
            f"{trace.model_name}: {KIND_LABELS[kind].name}, layer {layer + 1}/{trace.n_layers[kind]}, "
            f"{head_label(head, trace.n_heads)}: weights α and value-weighted norms ‖α·f(x)‖\n{_sentence_line(trace)}"
        )
        height = map_h + _label_width(cols, cell.font) + 0.8 + title_height(title, width)
        fig = Figure(figsize=(width, height), layout="constrained")
        weights_ax, norms_ax = fig.subplots(1, 2)
        hidden = hidden_cells(trace, kind)
        image = _heatmap(weights_ax, select_map(trace, kind, layer, head), hidden)
        fig.colorbar(image, ax=weights_ax, label="attention weight α", shrink=min(1.0, 3.0 / map_h), aspect=25)
        shown = np.ma.masked_array(norm_map, mask=hidden)
        image = norms_ax.imshow(shown, cmap="Oranges", vmin=0.0, aspect="equal")
        fig.colorbar(image, ax=norms_ax, label="‖α f(x)‖", shrink=min(1.0, 3.0 / map_h), aspect=25)
        for ax, name in ((weights_ax, "weights α"), (norms_ax, "value norms ‖α f(x)‖")):
            _label_axes(ax, rows, cols, cell)
            ax.set_xlabel(AXIS_NAMES[kind][1])
            ax.set_title(name)
        weights_ax.set_ylabel(AXIS_NAMES[kind][0])
        suptitle(fig, title, width)
        return fig
