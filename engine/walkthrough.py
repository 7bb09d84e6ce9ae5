"""One head's attention arithmetic for one query token, step by step, with the model's real numbers.

A teacher works self-attention on the board: q, k and v from three weight matrices, the scores,
the scaling, the mask and softmax, the weighted sum, then W^O. `build_walkthrough` does the same
from a Trace recorded with ``TraceOptions(with_qkv=True)`` and the head's parameters
(`head_parameters`): it recomputes every step with numpy from the recorded inputs, so comparing
its weights and z with the model's own (in the tests) checks the arithmetic shown to the user.

`work_by_hand` is the classroom version: a small integer example, exact next to the board
shortcuts (÷√3 taken as floor(x / 2), eˣ taken as 3ˣ), so the shortcut's error is visible.

Numpy only at import time (the GUI imports this module before torch loads); `head_parameters`
reads tensors it is given, and the figure export loads matplotlib when it is called.
Indices (layer, head, query) are 0-based like the Trace's arrays; labels show them 1-based.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from engine.files import write_atomic
from engine.trace import ATTENTION_KINDS, Trace

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from engine.model import MultiHeadAttention, Transformer

Norm = Literal["post", "pre"]

KIND_NAMES = {
    "enc_self": "encoder self-attention",
    "dec_self": "masked decoder self-attention",
    "cross": "encoder–decoder attention",
}
FOLD_HEAD, FOLD_TAIL = 4, 2  # a folded vector shows its first 4 and last 2 values
TABLE_FORMATS = (".csv", ".json")
FIGURE_FORMATS = (".png", ".svg", ".pdf")


# --- the model's walkthrough ---


@dataclass(frozen=True, eq=False)
class HeadParameters:
    """One head's slices of W^Q, W^K, W^V (d_model × d_k, so that q = x W^Q + b^Q) and the layer's W^O."""

    w_q: np.ndarray  # (d_model, d_k)
    b_q: np.ndarray  # (d_k,)
    w_k: np.ndarray
    b_k: np.ndarray
    w_v: np.ndarray
    b_v: np.ndarray
    w_o: np.ndarray  # (H·d_k, d_model): concat(z_1 … z_H) W^O + b^O is the sublayer's output row
    b_o: np.ndarray  # (d_model,)
    norm: Norm  # where the model puts LayerNorm: it decides what the head's input rows are


@dataclass(frozen=True, eq=False)
class Walkthrough:
    # what is walked through (0-based indices)
    kind: str
    layer: int
    head: int
    query: int
    n_layers: int
    n_heads: int
    d_model: int
    d_k: int
    norm: Norm
    model_name: str
    source_text: str
    query_pieces: list[str]  # every query position's piece; the walked one is query_pieces[query]
    query_predicts: str | None  # decoder queries: the piece the model output at that step
    key_pieces: list[str]
    query_note: str  # what the query and key rows are, in words
    key_note: str
    # step 1: inputs and projections
    x_query: np.ndarray  # (d_model,) the row the query is computed from
    x_keys: np.ndarray  # (Tk, d_model) the rows keys and values are computed from
    params: HeadParameters
    q: np.ndarray  # (d_k,)
    k: np.ndarray  # (Tk, d_k)
    v: np.ndarray  # (Tk, d_k)
    # steps 2-4: scores, scaling, mask, softmax
    scores: np.ndarray  # (Tk,) q · k_j
    scale: float  # √d_k
    scaled: np.ndarray  # (Tk,) scores / √d_k
    visible: np.ndarray  # (Tk,) bool: False where the causal mask hides a future position
    masked: np.ndarray  # (Tk,) scaled, with −∞ where hidden
    weights: np.ndarray  # (Tk,) softmax(masked); sums to 1
    # step 5: the weighted sum and the output projection
    weighted_v: np.ndarray  # (Tk, d_k) weight_j · v_j
    z: np.ndarray  # (d_k,) Σ_j weight_j · v_j
    all_z: np.ndarray  # (H, d_k) every head's z for this query (this head's row is `z`)
    concat: np.ndarray  # (H·d_k,) the heads' z side by side
    output: np.ndarray  # (d_model,) concat W^O + b^O

    @property
    def query_piece(self) -> str:
        return self.query_pieces[self.query]

    @property
    def title(self) -> str:
        # a decoder query is the step's input piece; naming what that step output avoids an off-by-one reading
        predicts = f" (step output “{display_piece(self.query_predicts)}”)" if self.query_predicts is not None else ""
        return (
            f"{KIND_NAMES[self.kind]}, layer {self.layer + 1}/{self.n_layers}, head {self.head + 1}/{self.n_heads}, "
            f"query {self.query + 1}/{len(self.query_pieces)} “{display_piece(self.query_piece)}”{predicts}"
        )


def qkv_prefix(kind: str, layer: int) -> str:
    """The ActivationCache name of one attention, e.g. 'decoder.1.cross_attn'."""
    if kind not in ATTENTION_KINDS:
        raise ValueError(f"unknown attention kind {kind!r}; choose one of {', '.join(ATTENTION_KINDS)}")
    return {
        "enc_self": f"encoder.{layer}.self_attn",
        "dec_self": f"decoder.{layer}.self_attn",
        "cross": f"decoder.{layer}.cross_attn",
    }[kind]


def attention_module(model: Transformer, kind: str, layer: int) -> MultiHeadAttention:
    prefix = qkv_prefix(kind, layer)
    stack = model.encoder_layers if kind == "enc_self" else model.decoder_layers
    if not 0 <= layer < len(stack):
        raise ValueError(f"layer index {layer} is out of range 0..{len(stack) - 1}")
    return getattr(stack[layer], prefix.rsplit(".", 1)[1])


def _array(tensor: Any) -> np.ndarray:
    return tensor.detach().to("cpu").double().numpy()


def head_parameters(model: Transformer, kind: str, layer: int, head: int) -> HeadParameters:
    """The parameters of one head, as numpy. nn.Linear computes x Wᵀ + b, hence the transposes."""
    attn = attention_module(model, kind, layer)
    if not 0 <= head < attn.n_heads:
        raise ValueError(f"head index {head} is out of range 0..{attn.n_heads - 1}")
    rows = slice(head * attn.d_k, (head + 1) * attn.d_k)  # this head's output features of w_q, w_k, w_v

    def weight(linear: Any) -> np.ndarray:
        return _array(linear.weight[rows]).T  # (d_model, d_k)

    def bias(linear: Any) -> np.ndarray:
        return _array(linear.bias[rows])

    return HeadParameters(
        w_q=weight(attn.w_q),
        b_q=bias(attn.w_q),
        w_k=weight(attn.w_k),
        b_k=bias(attn.w_k),
        w_v=weight(attn.w_v),
        b_v=bias(attn.w_v),
        w_o=_array(attn.w_o.weight).T,
        b_o=_array(attn.w_o.bias),
        norm=model.cfg.norm,
    )


def input_notes(kind: str, layer: int, norm: Norm) -> tuple[str, str]:
    """(query rows, key rows) in words: which vectors the head reads in this layer and norm placement."""
    stack = "encoder" if kind == "enc_self" else "decoder"
    if kind == "cross":
        sublayer = f"the masked self-attention sublayer of decoder layer {layer + 1}"
        if norm == "pre":
            return (
                f"LayerNorm of the residual stream after {sublayer} (pre-norm: the head reads normalised rows)",
                "the encoder's output (after its final LayerNorm)",
            )
        return f"the output of {sublayer} (after its Add & Norm)", "the encoder's output (the last encoder layer)"
    if layer == 0:
        rows = "embedding × √d_model + positional encoding"
        note = f"LayerNorm({rows}) (pre-norm: the head reads normalised rows)" if norm == "pre" else rows
    elif norm == "pre":
        note = (
            f"LayerNorm of the residual stream after {stack} layer {layer} (pre-norm: the head reads normalised rows)"
        )
    else:
        note = f"the output of {stack} layer {layer} (after its Add & Norm)"
    return note, note


def softmax(scores: np.ndarray, base: float = math.e) -> np.ndarray:
    """base^s / Σ base^s along the last axis, with −∞ giving 0; the row maximum is subtracted first."""
    top = np.max(scores, axis=-1, keepdims=True)
    exps = np.exp((scores - top) * math.log(base))
    return exps / exps.sum(axis=-1, keepdims=True)


def build_walkthrough(
    trace: Trace, params: HeadParameters, kind: str, layer: int, head: int, query: int
) -> Walkthrough:
    """Recompute one head's attention for one query token from the trace's recorded inputs."""
    if trace.qkv is None:
        raise ValueError("the trace has no q/k/v: record it with TraceOptions(with_qkv=True)")
    prefix = qkv_prefix(kind, layer)
    n_layers, n_heads = trace.n_layers[kind], trace.n_heads
    if not 0 <= layer < n_layers:
        raise ValueError(f"layer index {layer} is out of range 0..{n_layers - 1}")
    if not 0 <= head < n_heads:
        raise ValueError(f"head index {head} is out of range 0..{n_heads - 1}")
    query_pieces, key_pieces = trace.axis_pieces(kind)
    if not 0 <= query < len(query_pieces):
        raise ValueError(f"query index {query} is out of range 0..{len(query_pieces) - 1}")

    x_query = trace.qkv[f"{prefix}.query_input"][query].astype(np.float64)  # (d_model,)
    x_keys = trace.qkv[f"{prefix}.key_input"].astype(np.float64)  # (Tk, d_model)
    q = x_query @ params.w_q + params.b_q  # (d_k,)
    k = x_keys @ params.w_k + params.b_k  # (Tk, d_k)
    v = x_keys @ params.w_v + params.b_v  # (Tk, d_k)
    d_k = q.shape[0]

    scores = k @ q  # (Tk,) Kq: one dot product per key
    scale = math.sqrt(d_k)
    scaled = scores / scale
    positions = np.arange(len(key_pieces))
    # only decoder self-attention hides keys: a query may not see later target positions
    visible = positions <= query if kind == "dec_self" else np.ones(len(key_pieces), dtype=bool)
    masked = np.where(visible, scaled, -np.inf)
    weights = softmax(masked)
    weighted_v = weights[:, None] * v  # (Tk, d_k)
    z = weighted_v.sum(axis=0)

    # the other heads' z come from the trace; this head's is the one computed above
    all_z = trace.qkv[f"{prefix}.z"][:, query].astype(np.float64)  # (H, d_k)
    all_z[head] = z
    concat = all_z.reshape(-1)  # (H·d_k,)
    output = concat @ params.w_o + params.b_o  # (d_model,)
    query_note, key_note = input_notes(kind, layer, params.norm)
    return Walkthrough(
        kind=kind,
        layer=layer,
        head=head,
        query=query,
        n_layers=n_layers,
        n_heads=n_heads,
        d_model=x_query.shape[0],
        d_k=d_k,
        norm=params.norm,
        model_name=trace.model_name,
        source_text=trace.source_text,
        query_pieces=list(query_pieces),
        query_predicts=None if kind == "enc_self" else trace.out_pieces[query],
        key_pieces=list(key_pieces),
        query_note=query_note,
        key_note=key_note,
        x_query=x_query,
        x_keys=x_keys,
        params=params,
        q=q,
        k=k,
        v=v,
        scores=scores,
        scale=scale,
        scaled=scaled,
        visible=visible,
        masked=masked,
        weights=weights,
        weighted_v=weighted_v,
        z=z,
        all_z=all_z,
        concat=concat,
        output=output,
    )


def walkthrough_from_model(
    model: Transformer, trace: Trace, kind: str, layer: int, head: int, query: int
) -> Walkthrough:
    """The walkthrough of a trace that `model` produced (what the worker calls)."""
    return build_walkthrough(trace, head_parameters(model, kind, layer, head), kind, layer, head, query)


# --- the by-hand example ---


@dataclass(frozen=True, eq=False)
class ByHandExample:
    """A board-sized example: token rows X and the three projection matrices, small integers."""

    x: np.ndarray  # (n, d_model)
    w_q: np.ndarray  # (d_model, d_k)
    w_k: np.ndarray
    w_v: np.ndarray
    causal: bool = False  # hide later tokens, as in decoder self-attention


def default_by_hand_example() -> ByHandExample:
    """4 tokens, d_model = d_k = 3: scores stay small enough for 3ˣ on the board."""
    return ByHandExample(
        x=np.array([[1, 0, 1], [0, 2, 0], [1, 1, 0], [0, 1, 1]], dtype=np.float64),
        w_q=np.array([[1, 0, 1], [1, 0, 0], [0, 1, 1]], dtype=np.float64),
        w_k=np.array([[0, 0, 1], [1, 1, 0], [0, 1, 0]], dtype=np.float64),
        w_v=np.array([[0, 2, 0], [0, 3, 0], [1, 0, 3]], dtype=np.float64),
    )


@dataclass(frozen=True, eq=False)
class ByHandSide:
    """Steps 3-5 worked one way: exactly, or with the board shortcuts."""

    label: str  # e.g. "÷ √3, eˣ" or "floor(x / 2), 3ˣ"
    scaled: np.ndarray  # (n, n) with −∞ where masked
    exps: np.ndarray  # (n, n) e^scaled or 3^scaled, as written on the board (0 where masked)
    weights: np.ndarray  # (n, n) rows sum to 1
    z: np.ndarray  # (n, d_k)


@dataclass(frozen=True, eq=False)
class ByHandResult:
    q: np.ndarray  # (n, d_k) Q = X W^Q
    k: np.ndarray
    v: np.ndarray
    scores: np.ndarray  # (n, n) Q Kᵀ
    d_k: int
    shortcut_divisor: int  # the whole number standing in for √d_k (2 for √3)
    exact: ByHandSide
    shortcut: ByHandSide
    max_weight_error: float  # largest |shortcut weight − exact weight|
    max_z_error: float


def shortcut_divisor(d_k: int) -> int:
    """√d_k rounded to a whole number, so the board division is floor(x / that)."""
    return max(1, round(math.sqrt(d_k)))


def _side(label: str, scaled: np.ndarray, base: float, v: np.ndarray) -> ByHandSide:
    with np.errstate(over="ignore"):  # huge scores show as inf on the board; the weights stay finite
        exps = np.power(base, scaled)
    weights = softmax(scaled, base)
    return ByHandSide(label=label, scaled=scaled, exps=exps, weights=weights, z=weights @ v)


def work_by_hand(example: ByHandExample, shortcut_scaling: bool = True, shortcut_exp: bool = True) -> ByHandResult:
    """Exact attention of the example beside the same arithmetic with the chosen shortcuts."""
    q, k, v = example.x @ example.w_q, example.x @ example.w_k, example.x @ example.w_v  # (n, d_k) each
    n, d_k = q.shape
    scores = q @ k.T  # (n, n)
    hidden = np.triu(np.ones((n, n), dtype=bool), 1) if example.causal else np.zeros((n, n), dtype=bool)
    root = math.sqrt(d_k)
    divisor = shortcut_divisor(d_k)
    exact_scaled = np.where(hidden, -np.inf, scores / root)
    board_scaled = np.floor(scores / divisor) if shortcut_scaling else scores / root
    board_scaled = np.where(hidden, -np.inf, board_scaled)
    root_label = f"÷ √{d_k}"
    exact = _side(f"{root_label}, eˣ", exact_scaled, math.e, v)
    shortcut_label = (f"floor(x / {divisor})" if shortcut_scaling else root_label) + (
        ", 3ˣ" if shortcut_exp else ", eˣ"
    )
    shortcut = _side(shortcut_label, board_scaled, 3.0 if shortcut_exp else math.e, v)
    return ByHandResult(
        q=q,
        k=k,
        v=v,
        scores=scores,
        d_k=d_k,
        shortcut_divisor=divisor,
        exact=exact,
        shortcut=shortcut,
        max_weight_error=float(np.abs(shortcut.weights - exact.weights).max()),
        max_z_error=float(np.abs(shortcut.z - exact.z).max()),
    )


# --- how numbers are shown (shared by the widget and the exports) ---


def display_piece(piece: str) -> str:
    """A SentencePiece piece as a label: the word-start mark '▁' dropped, a bare '▁' shown as '␣'."""
    if piece == "▁":
        return "␣"
    return piece[1:] if piece.startswith("▁") else piece


def format_number(value: float, whole: bool = False, decimals: int = 4) -> str:
    """A number as shown in a table: `whole` numbers without decimals, others to `decimals` places."""
    if value == -math.inf:
        return "−∞"
    if math.isinf(value):
        return "∞"
    text = f"{value:.0f}" if whole else f"{value:.{decimals}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text  # no "-0.0000"


def all_whole(values: np.ndarray) -> bool:
    """True when every finite value is a whole number: a by-hand table then reads as written on the board."""
    finite = values[np.isfinite(values)]
    return bool(np.all(finite == np.round(finite))) and bool(np.all(np.abs(finite) < 1e15))


def folded_indices(n: int, fold: bool) -> list[int | None]:
    """The positions of an n-long vector to show; None marks the '…' standing for those left out."""
    if not fold or n <= FOLD_HEAD + FOLD_TAIL + 1:
        return list(range(n))
    return [*range(FOLD_HEAD), None, *range(n - FOLD_TAIL, n)]


# --- export ---


def walkthrough_rows(w: Walkthrough) -> list[dict[str, Any]]:
    """Steps 2-4 (and each key's share of z), one row per key: the CSV table."""
    rows = []
    for j, piece in enumerate(w.key_pieces):
        rows.append(
            {
                "key_index": j,
                "key_piece": piece,
                "score_q_dot_k": float(w.scores[j]),
                "scaled": float(w.scaled[j]),
                "visible": bool(w.visible[j]),
                "masked": float(w.masked[j]),
                "weight": float(w.weights[j]),
            }
        )
    return rows


def walkthrough_csv(w: Walkthrough) -> str:
    buffer = io.StringIO()
    header = ["kind", "layer", "head", "query_index", "query_piece", *walkthrough_rows(w)[0].keys()]
    writer = csv.DictWriter(buffer, fieldnames=header, lineterminator="\n")
    writer.writeheader()
    selection = {"kind": w.kind, "layer": w.layer, "head": w.head, "query_index": w.query, "query_piece": w.query_piece}
    for row in walkthrough_rows(w):
        writer.writerow({**selection, **{k: ("-inf" if v == -math.inf else v) for k, v in row.items()}})
    return buffer.getvalue()


def _listed(array: np.ndarray) -> Any:
    """Nested lists with −∞ as None (JSON has no infinity)."""
    if array.dtype.kind != "f":
        return array.tolist()
    values = array.astype(object)  # Python floats, and room for None
    values[np.isneginf(array)] = None
    return values.tolist()


def walkthrough_json_dict(w: Walkthrough) -> dict[str, Any]:
    p = w.params
    return {
        "schema": "attention-studio-walkthrough",
        "schema_version": 1,
        "indices": "0-based",
        "model_name": w.model_name,
        "source_text": w.source_text,
        "kind": w.kind,
        "layer": w.layer,
        "head": w.head,
        "query": w.query,
        "query_piece": w.query_piece,
        "query_pieces": w.query_pieces,
        "query_predicts": w.query_predicts,
        "key_pieces": w.key_pieces,
        "d_model": w.d_model,
        "d_k": w.d_k,
        "n_heads": w.n_heads,
        "norm": w.norm,
        "query_rows": w.query_note,
        "key_rows": w.key_note,
        "x_query": _listed(w.x_query),
        "x_keys": _listed(w.x_keys),
        "W_Q": _listed(p.w_q),
        "b_Q": _listed(p.b_q),
        "W_K": _listed(p.w_k),
        "b_K": _listed(p.b_k),
        "W_V": _listed(p.w_v),
        "b_V": _listed(p.b_v),
        "q": _listed(w.q),
        "k": _listed(w.k),
        "v": _listed(w.v),
        "scores": _listed(w.scores),
        "sqrt_d_k": w.scale,
        "scaled": _listed(w.scaled),
        "visible": _listed(w.visible),
        "masked (null = -inf)": _listed(w.masked),
        "weights": _listed(w.weights),
        "weighted_v": _listed(w.weighted_v),
        "z": _listed(w.z),
        "all_heads_z": _listed(w.all_z),
        "concat": _listed(w.concat),
        "W_O": _listed(p.w_o),
        "b_O": _listed(p.b_o),
        "output": _listed(w.output),
    }


def walkthrough_figure(w: Walkthrough) -> Figure:
    """The walkthrough as a figure: q, K, V as heatmaps; steps 2-4 as a table; z, the heads and the output."""
    import matplotlib  # imported here so the GUI starts without matplotlib
    from matplotlib.figure import Figure

    from engine.render.figures import STYLE

    n_keys = len(w.key_pieces)
    map_h = max(1.6, 0.17 * (n_keys + 1) + 0.9)
    table_h = 0.2 * (n_keys + 2)
    heads_h = max(1.4, 0.17 * w.n_heads + 0.9)
    sentence = w.source_text if len(w.source_text) <= 90 else w.source_text[:89] + "…"
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(10.0, map_h + table_h + heads_h + 1.0), layout="constrained")
        fig.suptitle(f"{w.model_name}: {w.title}\n“{sentence}”", fontsize=10)
        panels: Any = fig.subfigures(3, 1, height_ratios=[map_h, table_h, heads_h])
        _figure_vectors(panels[0], w)
        _figure_table(panels[1], w)
        _figure_output(panels[2], w)
    return fig


def _heatmap(ax: Any, values: np.ndarray, row_labels: list[str], title: str, limit: float) -> Any:
    """Rows of numbers as colours; columns numbered from 1 like the GUI's tables."""
    n_rows, n_cols = values.shape
    extent = (0.5, n_cols + 0.5, n_rows - 0.5, -0.5)  # x runs 1..n_cols, rows stay 0-based
    image = ax.imshow(
        values, cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto", interpolation="none", extent=extent
    )
    ax.set_yticks(range(n_rows), row_labels, parse_math=False)
    ax.set_title(title, loc="left")
    return image


def _limit(*arrays: np.ndarray) -> float:
    """One symmetric colour scale for maps drawn side by side."""
    return max(float(np.abs(a).max()) for a in arrays) or 1.0


def _figure_vectors(fig: Any, w: Walkthrough) -> None:
    keys = [f"{j + 1} {display_piece(p)}" for j, p in enumerate(w.key_pieces)]
    qk_ax, v_ax = fig.subplots(1, 2)
    qk = np.vstack([w.q[None, :], w.k])  # (1 + Tk, d_k)
    limit = _limit(qk, w.v)
    rows = [f"q  {display_piece(w.query_piece)}", *(f"k{label}" for label in keys)]
    _heatmap(qk_ax, qk, rows, "1. $q = xW^Q + b^Q$ and $k_j = x_jW^K + b^K$", limit)
    image = _heatmap(v_ax, w.v, [f"v{label}" for label in keys], "$v_j = x_jW^V + b^V$", limit)
    for ax in (qk_ax, v_ax):
        ax.set_xlabel(f"dimension (d_k = {w.d_k})")
    fig.colorbar(image, ax=[qk_ax, v_ax], label="value", shrink=0.9)


def _figure_table(fig: Any, w: Walkthrough) -> None:
    ax = fig.subplots()
    ax.axis("off")
    columns = ["key", "2. q · k_j", f"3. ÷ √{w.d_k} = {w.scale:.4f}", "4. masked", "softmax weight"]
    cells = [
        [f"{j + 1} {display_piece(p)}", *(format_number(x) for x in (w.scores[j], w.scaled[j], w.masked[j]))]
        + [format_number(w.weights[j])]
        for j, p in enumerate(w.key_pieces)
    ]
    cells.append(["sum", "", "", "", format_number(float(w.weights.sum()))])
    table = ax.table(cellText=cells, colLabels=columns, cellLoc="right", colLoc="right", bbox=(0.12, 0.0, 0.76, 1.0))
    table.auto_set_font_size(False)
    table.set_fontsize(8)
    top = int(np.argmax(w.weights))
    table[(top + 1, 4)].set_text_props(fontweight="bold")  # the key this head attends to most


def _figure_output(fig: Any, w: Walkthrough) -> None:
    z_ax, out_ax = fig.subplots(1, 2, width_ratios=[1, 2])
    heads = [f"z head {h + 1}" for h in range(w.n_heads)]
    z_image = _heatmap(z_ax, w.all_z, heads, "5. $z = \\sum_j$ weight$_j \\cdot v_j$, every head", _limit(w.all_z))
    z_ax.add_patch(_outline(w.head, w.d_k))
    z_ax.set_xlabel(f"dimension (head {w.head + 1} outlined)")
    fig.colorbar(z_image, ax=z_ax, shrink=0.9)
    title = "concat$(z_1 … z_H)\\, W^O + b^O$: the sublayer's output row"
    image = _heatmap(out_ax, w.output[None, :], ["output"], title, _limit(w.output))
    out_ax.set_xlabel(f"dimension (d_model = {w.d_model})")
    fig.colorbar(image, ax=out_ax, shrink=0.9)


def _outline(row: int, width: int) -> Any:
    from matplotlib.patches import Rectangle

    return Rectangle((0.5, row - 0.5), width, 1, fill=False, edgecolor="black", linewidth=1.5)


def save_walkthrough(w: Walkthrough, path: Path | str, dpi: float | None = None) -> Path:
    """Write the walkthrough as a figure (.png/.svg/.pdf) or a table (.csv/.json), atomically.

    Raises ExportError (one line, naming the file and the reason) for another suffix or an
    unwritable path.
    """
    from engine.render.figures import ExportError, save_figure  # matplotlib loads only when exporting

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in FIGURE_FORMATS:
        return save_figure(walkthrough_figure(w), path, dpi=dpi)
    if suffix == ".csv":
        data = walkthrough_csv(w).encode("utf-8")
    elif suffix == ".json":
        data = json.dumps(walkthrough_json_dict(w), ensure_ascii=False, indent=1).encode("utf-8")
    else:
        raise ExportError(f"cannot write {path}: the name must end with .png, .svg, .pdf, .csv or .json")
    try:
        write_atomic(path, data)
    except OSError as error:
        raise ExportError(f"cannot write {path}: {error.strerror or error}") from error
    return path
