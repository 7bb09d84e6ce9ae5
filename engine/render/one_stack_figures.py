"""Figures that differ for the two halves of the family tree: an output step of BERT (one [MASK]'s
fillers) or GPT-2 (one new token of the continuation), and a learned positional table.

Drawn with engine.render.figures' helpers and reached through its `step_figure` and
`positional_figure`, so `build_figure`, the GUI's export menu and `export --what` get them unchanged.
Indices are 0-based; titles number from 1.
"""

from __future__ import annotations

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from engine.render.figures import (
    STYLE,
    _label_columns,
    _label_rows,
    _label_width,
    _sentence_line,
    cells,
    row_bars,
    suptitle,
    title_height,
    topk_bars,
)
from engine.render.labels import Head, check_selection, display_piece, display_pieces, head_label, select_map
from engine.render.shapes import NO_MASK, SHORT_KIND_NAMES, STEP_NAMES, input_kind, step_row
from engine.trace import Trace


def output_step_figure(trace: Trace, step: int, layer: int, head: Head) -> Figure:
    """Output `step`: its top-k candidates, and what its query row attended to over the input
    (GPT-2: the prompt and the tokens so far; BERT: the whole text, the mask included)."""
    n_steps = len(trace.out_pieces)
    if n_steps == 0:
        raise ValueError(NO_MASK if trace.shape == "encoder-only" else "the continuation has no new token")
    if not 0 <= step < n_steps:
        raise ValueError(f"{STEP_NAMES[trace.shape]} index {step} is out of range 0..{n_steps - 1}")
    kind = input_kind(trace.shape)
    check_selection(trace, kind, layer, head)
    row = step_row(trace, step)
    keys = row + 1 if kind == "dec_self" else len(trace.input_pieces)  # GPT-2 sees no later position
    pieces = trace.input_pieces[:keys]
    with matplotlib.rc_context(STYLE):
        width = max(6.5, keys * 0.26 + 1.5)
        title = (
            f"{trace.model_name}: {_step_words(trace, step, row)}; attention in layer "
            f"{layer + 1}/{trace.n_layers[kind]}, {head_label(head, trace.n_heads)}\n{_sentence_line(trace)}"
        )
        k = trace.topk_probs.shape[1]
        bars_h = 1.6 + _label_width(pieces)
        height = k * 0.25 + 0.8 + bars_h + title_height(title, width)
        fig = Figure(figsize=(width, height), layout="constrained")
        top_ax, row_ax = fig.subplots(2, 1, height_ratios=[k * 0.25 + 0.8, bars_h])
        topk_bars(top_ax, trace, step)
        weights = select_map(trace, kind, layer, head)[row, :keys]
        where = "the input so far" if kind == "dec_self" else "the whole input"
        row_bars(row_ax, weights, pieces, f"{SHORT_KIND_NAMES[kind]} of position {row + 1} over {where}")
        suptitle(fig, title, width)
        return fig


def _step_words(trace: Trace, step: int, row: int) -> str:
    chosen = display_piece(trace.out_pieces[step])
    n_steps = len(trace.out_pieces)
    if trace.shape == "encoder-only":
        return f"mask {step + 1}/{n_steps} (position {row + 1}) filled with “{chosen}”"
    return f"new token {step + 1}/{n_steps} “{chosen}”, chosen after reading position {row + 1}"


def learned_positional_figure(trace: Trace) -> Figure:
    """The rows of a learned positional table that the input used (positions × dimensions), and how
    alike those rows are (cosine similarity). No sinusoid: a BERT or GPT-2 learned these numbers."""
    table = np.asarray(trace.positional, dtype=np.float64)  # (P, d_model)
    labels = [f"{i} {p}" for i, p in zip(trace.input_positions, display_pieces(trace.input_pieces), strict=True)]
    with matplotlib.rc_context(STYLE):
        n_pos = table.shape[0]
        cell = cells(n_pos)
        map_h = side = cell.side(n_pos)
        width = 8.0
        title = (
            f"{trace.model_name}: learned positional embeddings, rows 0–{n_pos - 1} of the table "
            f"(one per input piece, d_model = {table.shape[1]})\n{_sentence_line(trace)}"
        )
        label = _label_width(labels, cell.font)
        height = map_h + side + 1.2 + label + title_height(title, width)
        fig = Figure(figsize=(width, height), layout="constrained")
        heat_ax, sim_ax = fig.subplots(2, 1, height_ratios=[map_h, side + label])
        bound = float(np.abs(table).max()) or 1.0
        image = heat_ax.imshow(table, cmap="RdBu_r", vmin=-bound, vmax=bound, aspect="auto")
        _label_rows(heat_ax, labels, cell)
        heat_ax.set_xlabel("dimension")
        heat_ax.set_ylabel("position and input piece")
        heat_ax.set_title("learned: the rows added to the input's embeddings")
        fig.colorbar(image, ax=heat_ax, label="value", shrink=min(1.0, 3.0 / map_h), aspect=25)
        norms = np.linalg.norm(table, axis=1, keepdims=True)
        cosine = (table / np.where(norms > 0, norms, 1.0)) @ (table / np.where(norms > 0, norms, 1.0)).T
        image = sim_ax.imshow(cosine, cmap="RdBu_r", vmin=-1.0, vmax=1.0, aspect="auto")  # fills its panel
        _label_rows(sim_ax, labels, cell)
        _label_columns(sim_ax, labels, cell)
        sim_ax.set_title("cosine similarity between the learned rows")
        fig.colorbar(image, ax=sim_ax, label="cosine", shrink=min(1.0, 3.0 / side), aspect=25)
        suptitle(fig, title, width)
        return fig
