"""Publication figures of a Trace, drawn with matplotlib and saved as PNG, SVG or PDF.

Headless and Qt-free: every figure is a `matplotlib.figure.Figure` built directly (never pyplot,
whose global state is not thread-safe and may pick a GUI backend), so the GUI's export menu and
the command line share this code.

Numbering: the functions take 0-based `layer`, `head` and `step` indices, like the Trace's arrays;
titles show them 1-based as "layer 2/3", "head 5/8", "step 4/12" (the "/total" makes the
convention visible). `head="average"` is the mean over the heads of a layer.

Sizes grow with the number of pieces (a fixed size per cell), so labels never overlap and long
sentences stay readable, up to a map of MAX_MAP inches: a paragraph's cells shrink instead, its
labels with them down to MIN_LABEL_FONT, and past that every second (third, …) piece is labelled
(`cells`). Text stays text in SVG and PDF (`svg.fonttype = 'none'`, TrueType in PDF).
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import Colormap
from matplotlib.figure import Figure
from matplotlib.image import AxesImage

from engine.files import write_atomic
from engine.positional import sinusoidal_table
from engine.render.labels import (
    AVERAGE,
    KIND_LABELS,
    Head,
    check_selection,
    curve_dimensions,
    display_piece,
    display_pieces,
    head_label,
    select_map,
    selection_title,
    visible_text,
)
from engine.render.request import ANALYSIS_FIGURES, FIGURES, FigureRequest, PositionalParams
from engine.render.shapes import check_kind_present, of_sentence, step_kind
from engine.render.text_fit import FONT_FAMILY, wrap_text
from engine.trace import Trace

if TYPE_CHECKING:
    from matplotlib.typing import RcKeyType

    from engine.analysis import Analysis

# what the rows and columns of each kind are, for axis labels
AXIS_NAMES = {
    "enc_self": ("source piece (query)", "source piece (key)"),
    "dec_self": ("decoder input (query)", "decoder input (key)"),
    "cross": ("decoder input (query)", "source piece (key)"),
}
FORMATS = (".png", ".svg", ".pdf")

LABEL_FONT = 8
TITLE_FONT = 10
# Read at drawing and at saving time, so both happen inside `rc_context(STYLE)`.
STYLE: dict[RcKeyType, Any] = {
    "svg.fonttype": "none",  # labels stay <text> elements, searchable and editable
    "pdf.fonttype": 42,  # TrueType: text stays text in the PDF
    "svg.hashsalt": "attention-studio",  # the same figure gives the same SVG ids
    "font.family": FONT_FAMILY,  # ships with matplotlib and covers French and English pieces
    "font.size": LABEL_FONT,
    "axes.titlesize": 9,
    "figure.titlesize": TITLE_FONT,
    "image.interpolation": "none",  # vector formats store the map at its own resolution, drawn with hard edges
}
CELL = 0.2  # inches per piece: 14.4 pt, room for an 8 pt label
MIN_MAP = 1.6  # inches: short sentences still get a map large enough to read
MAX_MAP = 20.0  # inches: 100 pieces at CELL; a longer text's cells shrink (a 200 dpi PNG stays ≤ ~4,500 px a side)
MIN_LABEL_FONT = 5.0  # points: smaller labels would not be read; past this, labels are thinned
LABEL_ROOM = 1.3  # a label takes 1.3 × its font size across the cell it names
DEFAULT_PNG_DPI = 200
VECTOR_DPI = 300  # SVG and PDF embed each map at its own resolution; this only sizes any other raster
ATTENTION_CMAP = "Blues"  # white (no attention) to dark blue (all of it): prints well, perceptually ordered
MASKED_COLOUR = "#d9d9d9"  # cells the mask forbids (the future, another sentence), told apart from a weight of 0


class ExportError(Exception):
    """A figure that cannot be written; str() is one line naming the file and the reason."""


@dataclass(frozen=True)
class Cells:
    """How the pieces along a map's side are drawn: the size of a cell and of the labels."""

    inches: float  # per piece
    font: float  # points
    every: int  # 1: every piece is labelled; 2: every second one; …

    def side(self, n: int) -> float:
        """Inches along a side of n pieces (short ones still MIN_MAP)."""
        return max(MIN_MAP, n * self.inches)


def cells(n: int) -> Cells:
    """Cells for a map whose longer side has n pieces: CELL each up to MAX_MAP inches, smaller past
    it, with the largest label font that fits a cell, but not below MIN_LABEL_FONT: then labels skip pieces."""
    inches = min(CELL, MAX_MAP / max(n, 1))
    room = inches * 72 / LABEL_ROOM  # points: the largest label that fits one cell
    font = min(LABEL_FONT, max(MIN_LABEL_FONT, room))
    return Cells(inches, font, 1 if font <= room else math.ceil(font / room))


# --- drawing helpers ---


def _attention_cmap() -> Colormap:
    return matplotlib.colormaps[ATTENTION_CMAP].with_extremes(bad=MASKED_COLOUR)


def hidden_cells(trace: Trace, kind: str) -> np.ndarray:
    """queries × keys, True where the model's mask forbids the cell: a later target position in
    decoder self-attention, or another sentence of a text (see engine/sentences.py)."""
    hidden = ~trace.same_sentence(kind)
    if kind == "dec_self":
        hidden |= np.triu(np.ones(hidden.shape, dtype=bool), k=1)
    return hidden


def _heatmap(ax: Axes, weights: np.ndarray, hidden: np.ndarray) -> AxesImage:
    """The map with its forbidden cells grey rather than 'weight 0'."""
    shown = np.ma.masked_array(weights, mask=hidden)
    return ax.imshow(shown, cmap=_attention_cmap(), vmin=0.0, vmax=1.0, aspect="equal", origin="upper")


def _label_axes(ax: Axes, rows: Sequence[str], cols: Sequence[str], cell: Cells) -> None:
    """Every row and column labelled, or every `cell.every`-th of a long text's (matplotlib would
    otherwise thin the ticks its own way)."""
    _label_rows(ax, display_pieces(rows), cell)
    _label_columns(ax, display_pieces(cols), cell)
    ax.tick_params(length=2, pad=2)
    ax.xaxis.tick_top()  # keys read across the top, like a table's header
    ax.xaxis.set_label_position("top")


def _label_rows(ax: Axes, labels: Sequence[str], cell: Cells) -> None:
    """The rows' labels as given (every `cell.every`-th of a long text's)."""
    ax.set_yticks(range(0, len(labels), cell.every), labels[:: cell.every], fontsize=cell.font, parse_math=False)


def _label_columns(ax: Axes, labels: Sequence[str], cell: Cells) -> None:
    """The columns' labels as given, standing up (every `cell.every`-th of a long text's)."""
    every = cell.every
    ax.set_xticks(range(0, len(labels), every), labels[::every], fontsize=cell.font, parse_math=False, rotation=90)


def _label_width(pieces: Sequence[str], fontsize: float = LABEL_FONT) -> float:
    """Inches taken by the longest label (an upper bound: 0.65 em per character)."""
    longest = max((len(display_piece(p)) for p in pieces), default=1)
    return longest * fontsize * 0.65 / 72 + 0.15


def _sentence_line(trace: Trace) -> str:
    return f"“{visible_text(trace.source_text)}” → “{visible_text(trace.translation)}”"


def suptitle(fig: Figure, text: str, width_inches: float) -> None:
    fig.suptitle(wrap_text(text, width_inches, TITLE_FONT), parse_math=False)


def title_height(text: str, width_inches: float) -> float:
    lines = wrap_text(text, width_inches, TITLE_FONT).count("\n") + 1
    return 0.25 + lines * TITLE_FONT * 1.3 / 72


# --- figures ---


def head_figure(trace: Trace, kind: str, layer: int, head: Head) -> Figure:
    """One attention map: queries down the rows, keys across the columns, with a colour bar."""
    check_kind_present(trace, kind)
    with matplotlib.rc_context(STYLE):
        weights = select_map(trace, kind, layer, head)
        rows, cols = trace.axis_pieces(kind)
        cell = cells(max(len(rows), len(cols)))
        map_w, map_h = cell.side(len(cols)), cell.side(len(rows))
        width = max(5.5, map_w + _label_width(rows, cell.font) + 1.4)  # + y label, colour bar
        title = f"{trace.model_name}: {selection_title(trace, kind, layer, head)}\n{_sentence_line(trace)}"
        height = map_h + _label_width(cols, cell.font) + 0.5 + title_height(title, width)
        fig = Figure(figsize=(width, height), layout="constrained")
        ax = fig.add_subplot()
        image = _heatmap(ax, weights, hidden_cells(trace, kind))
        _label_axes(ax, rows, cols, cell)
        ax.set_ylabel(AXIS_NAMES[kind][0])
        ax.set_xlabel(AXIS_NAMES[kind][1])
        fig.colorbar(image, ax=ax, label="attention weight", shrink=min(1.0, 3.0 / map_h), aspect=25)
        suptitle(fig, title, width)
        return fig


def grid_figure(trace: Trace, kind: str) -> Figure:
    """Every layer (rows) and head (columns) of one kind, plus a column with each layer's head average."""
    check_kind_present(trace, kind)
    with matplotlib.rc_context(STYLE):
        attention = trace.attention(kind)  # (L, H, queries, keys)
        n_layers, n_heads, n_rows, n_cols = attention.shape
        longest = max(n_rows, n_cols)
        # inches per cell: small maps, but at least 0.9 in, and the whole grid at most ~16 in wide
        scale = max(0.9 / longest, min(0.06, 2.0 / longest, (15.0 / (n_heads + 1) - 0.15) / n_cols))
        map_w, map_h = n_cols * scale, n_rows * scale
        width = max(5.0, (n_heads + 1) * (map_w + 0.15) + 1.6)
        query_name, key_name = AXIS_NAMES[kind]
        title = (
            f"{trace.model_name}: {KIND_LABELS[kind].name}, every layer and head (numbered from 1)\n"
            f"rows: {query_name}, columns: {key_name}\n{_sentence_line(trace)}"
        )
        height = n_layers * (map_h + 0.2) + 0.6 + title_height(title, width)
        fig = Figure(figsize=(width, height), layout="constrained")
        axes = fig.subplots(n_layers, n_heads + 1, squeeze=False)
        hidden = hidden_cells(trace, kind)
        for layer in range(n_layers):
            for column in range(n_heads + 1):
                head: Head = AVERAGE if column == n_heads else column
                ax = axes[layer, column]
                image = _heatmap(ax, select_map(trace, kind, layer, head), hidden)
                ax.set_xticks([])
                ax.set_yticks([])
                if layer == 0:
                    ax.set_title(head_label(head))
                if column == 0:
                    ax.set_ylabel(f"layer {layer + 1}")
        fig.colorbar(image, ax=axes, label="attention weight", shrink=min(1.0, 2.5 / (n_layers * map_h + 0.1)))
        suptitle(fig, title, width)
        return fig


def positional_figure(
    trace: Trace | None = None, *, d_model: int = 64, n_positions: int = 50, base: float = 10000.0
) -> Figure:
    """The positional encodings as positions × dimensions, and a few dimensions as curves.

    With a trace: the rows the model added to its source pieces (labelled by piece). Without one:
    the sinusoidal table for `n_positions` positions of width `d_model`. A BERT's or GPT-2's learned
    table: the rows its input used (engine.render.one_stack_figures).
    """
    if trace is not None and trace.positions == "learned":
        from engine.render.one_stack_figures import learned_positional_figure  # it draws with this module

        return learned_positional_figure(trace)
    with matplotlib.rc_context(STYLE):
        if trace is not None:
            table = np.asarray(trace.positional, dtype=np.float64)
            labels = [
                f"{pos} {p}" for pos, p in zip(trace.input_positions, display_pieces(trace.src_pieces), strict=True)
            ]
            title = f"{trace.model_name}: positional encodings of the source pieces (position, piece)\n{_sentence_line(trace)}"
        else:
            table = sinusoidal_table(n_positions, d_model, base)
            labels = None
            title = f"sinusoidal positional encodings, d_model = {d_model}, base = {base:g}"
        n_pos = table.shape[0]
        cell = cells(n_pos)
        map_h = cell.side(n_pos) if labels else max(2.5, min(6.0, n_pos * 0.08))
        width = 8.0
        height = map_h + 2.6 + title_height(title, width)
        fig = Figure(figsize=(width, height), layout="constrained")
        heat_ax, curve_ax = fig.subplots(2, 1, height_ratios=[map_h, 2.0])
        _positional_heatmap(fig, heat_ax, table, labels, map_h, cell)
        _positional_curves(curve_ax, table)
        suptitle(fig, title, width)
        return fig


def _positional_heatmap(
    fig: Figure, ax: Axes, table: np.ndarray, labels: list[str] | None, map_h: float, cell: Cells
) -> None:
    image = ax.imshow(table, cmap="RdBu_r", vmin=-1.0, vmax=1.0, aspect="auto")  # diverging: sin and cos span -1..1
    ax.set_xlabel("dimension")
    if labels is not None:
        _label_rows(ax, [f"{i} {p}" for i, p in enumerate(labels)], cell)
        ax.set_ylabel("position and source piece")
    else:
        ax.set_ylabel("position")
    fig.colorbar(image, ax=ax, label="value", shrink=min(1.0, 3.0 / map_h), aspect=25)


def _positional_curves(ax: Axes, table: np.ndarray) -> None:
    positions = np.arange(table.shape[0])
    marker = "o" if table.shape[0] <= 40 else None  # dots show the sampled positions of a short sentence
    for dim in curve_dimensions(table.shape[1]):
        ax.plot(positions, table[:, dim], marker=marker, markersize=3, linewidth=1.2, label=f"dimension {dim}")
    ax.set_xlabel("position")
    ax.set_ylabel("value")
    ax.set_ylim(-1.1, 1.1)
    ax.set_xlim(-0.5, max(0.5, table.shape[0] - 0.5))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)


def step_figure(trace: Trace, step: int, layer: int, head: Head) -> Figure:
    """Decoder step `step`: its top-k candidates, and what it attended to over the source and its own input.
    BERT's mask `step` or GPT-2's new token `step`: engine.render.one_stack_figures."""
    if trace.shape != "encoder-decoder":
        from engine.render.one_stack_figures import output_step_figure  # it draws with this module

        return output_step_figure(trace, step, layer, head)
    with matplotlib.rc_context(STYLE):
        n_steps = len(trace.tgt_pieces)
        if not 0 <= step < n_steps:
            raise ValueError(f"step index {step} is out of range 0..{n_steps - 1}")
        check_selection(trace, "cross", layer, head)
        # the step's own sentence: a text of several sentences translates each on its own
        sources = trace.sentence_keys("cross", step)
        inputs = [i for i in trace.sentence_keys("dec_self", step) if i <= step]  # later keys are masked
        src_pieces, tgt_pieces = [trace.src_pieces[i] for i in sources], [trace.tgt_pieces[i] for i in inputs]
        n_cols = max(len(src_pieces), len(tgt_pieces))
        width = max(6.5, n_cols * 0.26 + 1.5)
        chosen = display_piece(trace.out_pieces[step])
        title = (
            f"{trace.model_name}: decoder step {step + 1}/{n_steps} chose “{chosen}”; "
            f"attention in layer {layer + 1}/{trace.n_layers['cross']}, {head_label(head, trace.n_heads)}\n"
            f"{_sentence_line(trace)}"
        )
        k = trace.topk_probs.shape[1]
        bars_h = 1.6 + _label_width(src_pieces + tgt_pieces)
        height = k * 0.25 + 0.8 + 2 * bars_h + title_height(title, width)
        fig = Figure(figsize=(width, height), layout="constrained")
        top_ax, cross_ax, self_ax = fig.subplots(3, 1, height_ratios=[k * 0.25 + 0.8, bars_h, bars_h])
        topk_bars(top_ax, trace, step)
        sentence = of_sentence(trace, step)
        cross_row = select_map(trace, "cross", layer, head)[step, sources]
        cross_title = f"{KIND_LABELS['cross'].name} of step {step + 1} over the source{sentence}"
        row_bars(cross_ax, cross_row, src_pieces, cross_title)
        self_row = select_map(trace, "dec_self", layer, head)[step, inputs]
        self_title = f"{KIND_LABELS['dec_self'].name} of step {step + 1} over the decoder input so far{sentence}"
        row_bars(self_ax, self_row, tgt_pieces, self_title)
        suptitle(fig, title, width)
        return fig


def topk_bars(ax: Axes, trace: Trace, step: int) -> None:
    probs = trace.topk_probs[step]
    pieces = display_pieces(trace.topk_pieces[step])
    chosen = int(trace.out_ids[step])
    colours = ["#08519c" if int(i) == chosen else "#9ecae1" for i in trace.topk_ids[step]]
    positions = np.arange(len(probs))
    ax.barh(positions, probs, color=colours)
    ax.set_yticks(positions, pieces, fontsize=LABEL_FONT, parse_math=False)
    ax.invert_yaxis()  # best candidate on top
    ax.set_xlim(0, 1.12)
    ax.set_xlabel("probability")
    for y, p in zip(positions, probs, strict=True):
        ax.text(float(p) + 0.01, float(y), f"{p:.3f}", va="center", fontsize=7)
    ax.set_title(f"the {len(probs)} most probable next pieces (dark: the one chosen)")


def row_bars(ax: Axes, weights: np.ndarray, pieces: Sequence[str], title: str) -> None:
    positions = np.arange(len(weights))
    ax.bar(positions, weights, color="#2171b5", width=0.8)
    ax.set_xticks(positions, display_pieces(pieces), fontsize=LABEL_FONT, parse_math=False, rotation=90)
    ax.set_xlim(-0.6, max(len(weights), 8) - 0.4)  # a short row keeps bars of the usual width
    ax.set_ylim(0, 1)
    ax.set_ylabel("weight")
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)  # grid lines behind the bars, not across them
    ax.set_title(title)


# --- one dispatcher for the command line and the GUI ---


def build_figure(
    trace: Trace | None,
    request: FigureRequest,
    explore: PositionalParams | None = None,
    analysis: Analysis | None = None,
) -> Figure:
    """The figure `request` asks for. A positional figure draws `explore`'s table when given (or when
    there is no trace); every other figure needs a trace, and the analysis figures its `analysis`.
    Raises ExportError or ValueError."""
    if request.what not in FIGURES:
        raise ValueError(f"unknown figure {request.what!r}; choose one of {', '.join(FIGURES)}")
    if request.what == "positional" and (explore is not None or trace is None):
        params = explore or PositionalParams()
        return positional_figure(d_model=params.d_model, n_positions=params.n_positions, base=params.base)
    if trace is None:
        raise ExportError("nothing to export yet: type a sentence first")
    if request.what == "positional":
        return positional_figure(trace)
    if request.what in ANALYSIS_FIGURES:
        from engine.render.analysis_figures import analysis_figure  # it draws with this module's helpers

        return analysis_figure(trace, analysis, request)
    kind = step_kind(trace.shape) if request.what == "step" else request.kind
    check_kind_present(trace, kind)
    last = trace.n_layers[kind] - 1
    layer = last if request.layer is None else request.layer
    if request.what == "step":  # the selection may be an encoder layer the decoder does not have
        layer = min(layer, last)
    if request.what == "head":
        return head_figure(trace, kind, layer, request.head)
    if request.what == "grid":
        return grid_figure(trace, kind)
    return step_figure(trace, request.step, layer, request.head)


# --- saving ---


def render_figure(fig: Figure, fmt: str, dpi: float | None = None, size_px: tuple[int, int] | None = None) -> bytes:
    """The bytes of `fig` as 'png', 'svg' or 'pdf'; `size_px` (PNG only) gives exact pixel dimensions."""
    if fmt not in ("png", "svg", "pdf"):
        raise ExportError(f"cannot export as {fmt!r}: choose png, svg or pdf")
    if size_px is not None:
        if fmt != "png":
            raise ExportError("a size in pixels applies to PNG only; SVG and PDF are vector formats")
        dpi = _fit_to_pixels(fig, size_px)
    elif dpi is None:
        dpi = DEFAULT_PNG_DPI if fmt == "png" else VECTOR_DPI
    if dpi <= 0:
        raise ExportError(f"the resolution must be positive, got {dpi} dpi")
    metadata = {"Software": "Attention Studio"} if fmt == "png" else {"Creator": "Attention Studio", "Date": None}
    buffer = io.BytesIO()
    with matplotlib.rc_context(STYLE):
        fig.savefig(buffer, format=fmt, dpi=dpi, metadata=metadata)
    return buffer.getvalue()


def _fit_to_pixels(fig: Figure, size_px: tuple[int, int]) -> float:
    """Resize `fig` to exactly `size_px` and return the dpi that keeps its text in proportion.

    Everything scales with one dpi chosen so the figure's natural layout fits; the other
    dimension gains blank room rather than squeezing labels into each other.
    """
    width_px, height_px = size_px
    if width_px < 1 or height_px < 1:
        raise ExportError(f"the size must be at least 1×1 pixels, got {width_px}×{height_px}")
    natural_w, natural_h = fig.get_size_inches()
    dpi = min(width_px / natural_w, height_px / natural_h)
    # A hair over the exact quotient: Agg truncates width × dpi, and 799.9999 would lose a pixel.
    fig.set_size_inches((width_px + 1e-3) / dpi, (height_px + 1e-3) / dpi)
    return dpi


def save_figure(
    fig: Figure, path: Path | str, dpi: float | None = None, size_px: tuple[int, int] | None = None
) -> Path:
    """Write `fig` to `path` as PNG, SVG or PDF (by suffix), atomically.

    The figure is rendered to bytes first, then written through a temporary file renamed into
    place, so a failure never leaves a half-written file. Raises ExportError with a one-line message.
    PNG is written at `dpi` (default 200), or at exactly `size_px` (width, height), which resizes `fig`.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise ExportError(f"cannot write {path}: the name must end with .png, .svg or .pdf")
    data = render_figure(fig, suffix[1:], dpi=dpi, size_px=size_px)
    try:
        write_atomic(path, data)
    except OSError as error:
        raise ExportError(f"cannot write {path}: {error.strerror or error}") from error
    return path
