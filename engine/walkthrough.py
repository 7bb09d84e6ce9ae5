"""One head's attention arithmetic for one query token, step by step, with the model's real numbers.

A teacher works self-attention on the board: q, k and v from three weight matrices, the scores,
the scaling, the mask and softmax, the weighted sum, then W^O. `build_walkthrough` does the same
from a Trace recorded with ``TraceOptions(with_qkv=True)`` and the head's parameters: it recomputes
every step with numpy from the recorded inputs, so comparing its weights and z with the model's own
(in the tests) checks the arithmetic shown to the user.

`work_by_hand` is the classroom version: a small integer example, exact next to the board
shortcuts (÷√3 taken as floor(x / 2), eˣ taken as 3ˣ), so the shortcut's error is visible.

Numpy only (the GUI and the figures import it; `Translator.walkthrough` reads the head's parameters
from the model). How it is shown and exported is engine/render/walkthrough.py's.
Indices (layer, head, query) are 0-based like the Trace's arrays; labels show them 1-based.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from engine.architecture import NormPlacement, cache_prefix, stack_of
from engine.trace import Trace

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
    norm: NormPlacement  # where the model puts LayerNorm: it decides what the head's input rows are
    embedding_rows: str = "embedding × √d_model + positional encoding"  # what the first layer reads, in words


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
    norm: NormPlacement
    model_name: str
    source_text: str
    query_pieces: list[str]  # every query position's piece; the walked one is query_pieces[query]
    query_predicts: str | None  # decoder queries: the piece the model output at that step
    key_pieces: list[str]  # the keys the query may see: every key, or its own sentence's in a text of several
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
    key_indices: np.ndarray | None = None  # (Tk,) each key's column in the trace's map (None: 0 … Tk − 1)

    def __post_init__(self) -> None:
        if self.key_indices is None:
            object.__setattr__(self, "key_indices", np.arange(len(self.key_pieces)))

    @property
    def query_piece(self) -> str:
        return self.query_pieces[self.query]


def input_notes(
    kind: str, layer: int, norm: NormPlacement, embedding_rows: str = "embedding × √d_model + positional encoding"
) -> tuple[str, str]:
    """(query rows, key rows) in words: which vectors the head reads in this layer and norm placement."""
    stack = stack_of(kind)
    if kind == "cross":
        sublayer = f"the masked self-attention sublayer of decoder layer {layer + 1}"
        if norm == "pre":
            return (
                f"LayerNorm of the residual stream after {sublayer} (pre-norm: the head reads normalised rows)",
                "the encoder's output (after its final LayerNorm)",
            )
        return f"the output of {sublayer} (after its Add & Norm)", "the encoder's output (the last encoder layer)"
    if layer == 0:
        rows = embedding_rows
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
    prefix = cache_prefix(kind, layer)
    n_layers, n_heads = trace.n_layers[kind], trace.n_heads
    if not 0 <= layer < n_layers:
        raise ValueError(f"layer index {layer} is out of range 0..{n_layers - 1}")
    if not 0 <= head < n_heads:
        raise ValueError(f"head index {head} is out of range 0..{n_heads - 1}")
    query_pieces, key_pieces = trace.axis_pieces(kind)
    if not 0 <= query < len(query_pieces):
        raise ValueError(f"query index {query} is out of range 0..{len(query_pieces) - 1}")

    keys = trace.sentence_keys(kind, query)  # a text of several sentences: the query's own sentence
    key_pieces = [key_pieces[j] for j in keys]
    x_query = trace.qkv[f"{prefix}.query_input"][query].astype(np.float64)  # (d_model,)
    x_keys = trace.qkv[f"{prefix}.key_input"][keys].astype(np.float64)  # (Tk, d_model)
    q = x_query @ params.w_q + params.b_q  # (d_k,)
    k = x_keys @ params.w_k + params.b_k  # (Tk, d_k)
    v = x_keys @ params.w_v + params.b_v  # (Tk, d_k)
    d_k = q.shape[0]

    scores = k @ q  # (Tk,) Kq: one dot product per key
    scale = math.sqrt(d_k)
    scaled = scores / scale
    # only decoder self-attention hides keys: a query may not see later target positions
    visible = keys <= query if kind == "dec_self" else np.ones(len(keys), dtype=bool)
    masked = np.where(visible, scaled, -np.inf)
    weights = softmax(masked)
    weighted_v = weights[:, None] * v  # (Tk, d_k)
    z = weighted_v.sum(axis=0)

    # the other heads' z come from the trace; this head's is the one computed above
    all_z = trace.qkv[f"{prefix}.z"][:, query].astype(np.float64)  # (H, d_k)
    all_z[head] = z
    concat = all_z.reshape(-1)  # (H·d_k,)
    output = concat @ params.w_o + params.b_o  # (d_model,)
    query_note, key_note = input_notes(kind, layer, params.norm, params.embedding_rows)
    if trace.sentences > 1:  # the other sentences' keys are masked out: the walk leaves them aside
        key_note += f"; only its own sentence's {len(keys)} of the text's {len(trace.axis_pieces(kind)[1])} keys"
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
        query_predicts=trace.prediction_at(kind, query),
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
        key_indices=keys,
    )


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
