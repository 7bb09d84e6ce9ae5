"""Which heads matter, and why: statistics of every head, attention rollout, value norms and coverage.

Numpy only (no torch, no Qt), so the figures and the GUI import the results freely; head importance
by masking needs the model and lives in engine/importance.py, which fills `Analysis.importance`.

Every statistic is a function of a Trace's maps, shape L×H×Q×K (layers, heads, queries, keys), and
is reported per head as an L×H array (`KindStatistics`). A statistic is the mean over the query rows
*that have a choice*: masked decoder self-attention's row 0 sees one key only (<s>), so its weight
there is 1 whatever the head does; that row is left out (unless it is the only row).

- entropy: −Σ_j a_ij ln a_ij in nats (0 ln 0 = 0), a row's spread: 0 for one key, ln(n) for an even
  spread over n keys (row i of decoder self-attention has i+1 keys, so its ceiling is ln(i+1)).
  Clark et al. 2019, "What Does BERT Look At?", §3 and Fig. 4.
- mean_distance: Σ_j a_ij |j − j*(i)|, in pieces, where j*(i) is the row's diagonal key (below).
  For self-attention j*(i) = i: the weighted attention distance of Clark et al. 2019 and Vig &
  Belinkov 2019. For cross-attention it is the distance from the monotone alignment.
- diagonal: a_{i, j*(i)}, the share on the diagonal key. Self-attention: on the query itself.
  Cross-attention: on the source piece the *monotone, length-proportional alignment* picks, the
  diagonal of the T×S map stretched corner to corner,

      j*(t) = ⌊t · (S − 1) / (T − 1) + ½⌋   (j*(0) = 0 when T = 1),

  so the first output step looks at the first source piece, the last (normally the step that
  outputs </s>) at the source's </s>, and the steps between are spread evenly: what a word-for-word
  translation in the same order would attend to. A head that aligns scores high; a head fixed on
  one piece (</s>, the first piece, the full stop) cannot, since the pick moves along the source.
  It is a fixed reference, not fitted to the head, so a head that follows real word order (French
  adjectives after nouns) loses some mass to its neighbours; mean_distance shows by how much.
- previous: a_{i, i−1}, the share on the preceding piece, over rows i ≥ 1 (row 0 has no previous
  piece). Self-attention only (NaN for cross-attention, whose keys are another sequence): the
  "previous token" heads of Clark et al. 2019 and the positional heads of Voita et al. 2019.
- sink: the share on the first and last key, the pieces heads park attention on when they have
  nothing to do (Clark et al. 2019 on [CLS]/[SEP]; Xiao et al. 2023, "Efficient Streaming Language
  Models with Attention Sinks", on the initial token). Source keys (encoder self, cross): the first
  piece and </s>. Decoder self-attention: <s> only (row i's last key is the query itself).
- max_weight: the row's largest weight, Voita et al. 2019's "confidence" ("Analyzing Multi-Head
  Self-Attention: Specialized Heads Do the Heavy Lifting, the Rest Can Be Pruned", §4).

Shares may overlap (on row 0 the diagonal key is also the first key) and need not sum to 1.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from engine.architecture import AttentionKind, cache_prefix
from engine.trace import Trace

STATISTICS = ("entropy", "mean_distance", "diagonal", "previous", "sink", "max_weight")
COVERAGE_FLAG_FRACTION = 0.25  # a source piece below this fraction of the median coverage is flagged


@dataclass(frozen=True, eq=False)
class KindStatistics:
    """The statistics of every head of one kind, each an (L, H) array (see the module docstring)."""

    kind: AttentionKind
    entropy: np.ndarray  # (L, H) nats
    mean_distance: np.ndarray  # (L, H) pieces
    diagonal: np.ndarray  # (L, H) share
    previous: np.ndarray  # (L, H) share; NaN for cross-attention
    sink: np.ndarray  # (L, H) share
    max_weight: np.ndarray  # (L, H)

    def value(self, name: str) -> np.ndarray:
        if name not in STATISTICS:
            raise ValueError(f"unknown statistic {name!r}; choose one of {', '.join(STATISTICS)}")
        return getattr(self, name)


@dataclass(frozen=True, eq=False)
class KindImportance:
    """Head importance by masking (Michel et al. 2019) for one kind; see engine/importance.py.

    drop[l, h] = log p(output) − log p(output | head h of layer l zeroed), in nats summed over the
    output pieces, teacher-forced: positive when the head helps the model say what it said.
    """

    kind: AttentionKind
    log_prob: float  # log p(y | x) of the shown output, no head masked
    drop: np.ndarray  # (L, H)
    milliseconds: float = 0.0  # what the batched pass cost


@dataclass(frozen=True, eq=False)
class Coverage:
    """How much cross-attention each source piece received (Tu et al. 2016, "Modeling Coverage for
    Neural Machine Translation"): received[j] = Σ_t mean_{l,h} cross[l, h, t, j], so the pieces
    share T units, one per output step.

    Flag rule: a source piece other than </s> is possibly untranslated when it received less than
    COVERAGE_FLAG_FRACTION (a quarter) of the median of the pieces other than </s>. The median, not
    the mean, so one piece that soaks up attention (the full stop often does) does not flag the rest.
    """

    received: np.ndarray  # (S,)
    flagged: np.ndarray  # (S,) bool
    threshold: float  # received below this is flagged


@dataclass(frozen=True)
class HeadRow:
    """One head in the table, 0-based like the Trace; importance is None until it is computed."""

    kind: AttentionKind
    layer: int
    head: int
    entropy: float
    mean_distance: float
    diagonal: float
    previous: float | None  # None for cross-attention
    sink: float
    max_weight: float
    importance: float | None


@dataclass(frozen=True, eq=False)
class Analysis:
    """Everything the Analysis panel and `analyze` show about one Trace."""

    statistics: dict[str, KindStatistics]  # kind → (L, H) statistics, for the kinds the model has
    rollout: np.ndarray  # (L, N, N): rollout[l] is Â_{l+1} ⋯ Â_1 of `rollout_kind`; rollout[-1] the whole stack
    coverage: Coverage
    value_norms: dict[str, np.ndarray] | None  # kind → (L, H, Q, K) ‖α_ij f(x_j)‖; None without values
    importance: dict[str, KindImportance] = field(default_factory=dict)  # kinds computed so far
    milliseconds: float = 0.0  # the numpy part's cost (importance carries its own)
    rollout_kind: AttentionKind = "enc_self"  # the input's self-attention: the encoder's, or GPT-2's own
    importance_note: str = ""  # why importance is not computed (a BERT input without [MASK]); "" otherwise

    @property
    def complete(self) -> bool:
        return bool(self.importance_note) or all(kind in self.importance for kind in self.statistics)

    def rows(self) -> list[HeadRow]:
        """Every head of every kind, kind by kind, layer by layer, head by head."""
        out = []
        for kind, stats in self.statistics.items():
            n_layers, n_heads = stats.entropy.shape
            drop = self.importance[kind].drop if kind in self.importance else None
            for layer in range(n_layers):
                for head in range(n_heads):
                    previous = float(stats.previous[layer, head])
                    out.append(
                        HeadRow(
                            kind=stats.kind,
                            layer=layer,
                            head=head,
                            entropy=float(stats.entropy[layer, head]),
                            mean_distance=float(stats.mean_distance[layer, head]),
                            diagonal=float(stats.diagonal[layer, head]),
                            previous=None if np.isnan(previous) else previous,
                            sink=float(stats.sink[layer, head]),
                            max_weight=float(stats.max_weight[layer, head]),
                            importance=None if drop is None else float(drop[layer, head]),
                        )
                    )
        return out

    def top_heads(self, n: int = 5) -> list[HeadRow]:
        """The `n` heads whose masking costs the output most log-probability, most important first."""
        ranked = [row for row in self.rows() if row.importance is not None]
        return sorted(ranked, key=lambda row: -float(row.importance or 0.0))[:n]


# --- per-head statistics ---


def choice_rows(kind: str, n_queries: int, starts: np.ndarray | None = None) -> np.ndarray:
    """Query rows whose weights are the head's choice: all but decoder self-attention's row 0 (of
    each sentence: `starts` marks the rows that begin one)."""
    first = np.arange(n_queries) == 0 if starts is None else starts
    if kind == "dec_self" and not first.all():
        return np.flatnonzero(~first)
    return np.arange(n_queries)


def diagonal_keys(n_queries: int, n_keys: int) -> np.ndarray:
    """j*(i) for each query row: i for a square map, the stretched diagonal for a T×S one."""
    if n_queries == 1:
        return np.zeros(1, dtype=np.int64)
    rows = np.arange(n_queries)
    return np.floor(rows * (n_keys - 1) / (n_queries - 1) + 0.5).astype(np.int64)


def sink_keys(kind: str, n_keys: int) -> np.ndarray:
    """The keys counted as sinks: <s> for decoder self-attention; the first piece and </s> otherwise."""
    if kind == "dec_self":
        return np.zeros(1, dtype=np.int64)
    return np.unique([0, n_keys - 1])


@dataclass(frozen=True)
class RowKeys:
    """Per query row, the keys the statistics single out, each sentence of a text on its own."""

    starts: np.ndarray  # (Q,) bool: the row begins its sentence
    diagonal: np.ndarray  # (Q,) j*(i)
    sinks: np.ndarray  # (Q, 2) the row's sink keys (the same key twice where there is one)


def row_keys(kind: str, query_sentence: np.ndarray, key_sentence: np.ndarray) -> RowKeys:
    """`diagonal_keys` and `sink_keys` applied within each sentence (a single sentence: as they are)."""
    n_queries = len(query_sentence)
    starts = np.zeros(n_queries, dtype=bool)
    diagonal = np.zeros(n_queries, dtype=np.int64)
    sinks = np.zeros((n_queries, 2), dtype=np.int64)
    for sentence in np.unique(query_sentence):
        rows = np.flatnonzero(query_sentence == sentence)
        keys = np.flatnonzero(key_sentence == sentence)
        starts[rows[0]] = True
        diagonal[rows] = keys[0] + diagonal_keys(len(rows), len(keys))
        local = sink_keys(kind, len(keys))
        sinks[rows] = keys[0] + local[[0, -1]]
    return RowKeys(starts, diagonal, sinks)


def kind_statistics(
    weights: np.ndarray,
    kind: AttentionKind,
    query_sentence: np.ndarray | None = None,
    key_sentence: np.ndarray | None = None,
) -> KindStatistics:
    """Every statistic of every head of one kind from its maps, (L, H, Q, K) → (L, H) each. The
    sentence arrays say which sentence each query and key belongs to (`Trace.src_sentence`, …).

    A text's sentences are translated each on its own, so its maps are zero between them: each
    sentence's block is read alone (a paragraph's (L, H, 219, 219) maps: 69 → 8 ms for 3 kinds),
    and the statistics are means over the rows of all blocks."""
    weights = np.asarray(weights)
    n_layers, n_heads, n_queries, n_keys = weights.shape
    query_sentence = np.zeros(n_queries, np.int64) if query_sentence is None else query_sentence
    key_sentence = np.zeros(n_keys, np.int64) if key_sentence is None else key_sentence
    keys = row_keys(kind, query_sentence, key_sentence)
    rows = choice_rows(kind, n_queries, keys.starts)
    blocks = []  # per sentence (L, H, its rows, 5): each row's entropy, distance, diagonal, sink and max weight
    for sentence in np.unique(query_sentence[rows]):
        queries = rows[query_sentence[rows] == sentence]
        columns = np.flatnonzero(key_sentence == sentence)
        maps = weights[:, :, queries][..., columns].astype(np.float64)  # (L, H, R, K) of this sentence
        logs = np.log(np.where(maps > 0, maps, 1.0))  # 0 ln 0 = 0: masked keys add nothing
        distance = np.abs(columns[None, :] - keys.diagonal[queries][:, None])  # (R, K) |j − j*(i)|
        target = np.searchsorted(columns, keys.diagonal[queries])  # j*(i) within the block
        first, last = (np.searchsorted(columns, keys.sinks[queries, side]) for side in (0, 1))
        each = np.arange(len(queries))
        on_sinks = maps[:, :, each, first] + np.where(first != last, maps[:, :, each, last], 0.0)
        blocks.append(
            np.stack(
                [
                    -(maps * logs).sum(axis=-1),
                    (maps * distance).sum(axis=-1),
                    np.take_along_axis(maps, target[None, None, :, None], axis=-1)[..., 0],
                    on_sinks,
                    maps.max(axis=-1),
                ],
                axis=-1,
            )
        )
    if blocks:
        means = np.concatenate(blocks, axis=2).mean(axis=2)  # (L, H, 5)
    else:  # no query row (an empty output)
        means = np.full((n_layers, n_heads, 5), np.nan)
    entropy, mean_distance, diagonal, sink, max_weight = np.moveaxis(means, -1, 0)
    return KindStatistics(
        kind=kind,
        entropy=entropy,
        mean_distance=mean_distance,
        diagonal=diagonal,
        previous=previous_share(weights, kind, keys.starts),
        sink=sink,
        max_weight=max_weight,
    )


def previous_share(weights: np.ndarray, kind: str, starts: np.ndarray | None = None) -> np.ndarray:
    """Mean of a_{i, i−1} over rows i ≥ 1 of a self-attention map (rows that do not begin a sentence,
    `starts`), (L, H); NaN for cross-attention and for a map where no row has a previous piece."""
    n_layers, n_heads, n_queries, _ = weights.shape
    rows = np.arange(1, n_queries) if starts is None else np.flatnonzero(~starts)
    if kind == "cross" or not len(rows):
        return np.full((n_layers, n_heads), np.nan)
    return weights[:, :, rows, rows - 1].astype(np.float64).mean(axis=-1)  # (L, H)


# --- rollout, value norms, coverage ---


def attention_rollout(enc_self: np.ndarray) -> np.ndarray:
    """Attention rollout (Abnar & Zuidema 2020, "Quantifying Attention Flow in Transformers"), (L, H, S, S)
    → (L, S, S): Â_l = ½ mean_h A_l + ½ I (the residual connection), rows renormalised, and
    rollout[l] = Â_{l+1} Â_l ⋯ Â_1, how much input piece j reaches position i after layer l + 1."""
    maps = np.asarray(enc_self, dtype=np.float64)
    n_layers, _, n_pieces, _ = maps.shape
    identity = np.eye(n_pieces)
    out = np.empty((n_layers, n_pieces, n_pieces))
    flow = identity
    for layer in range(n_layers):
        mixed = 0.5 * maps[layer].mean(axis=0) + 0.5 * identity  # (S, S)
        mixed /= mixed.sum(axis=-1, keepdims=True)
        flow = mixed @ flow
        out[layer] = flow
    return out


def value_norms(weights: np.ndarray, values: list[np.ndarray], w_o: list[np.ndarray]) -> np.ndarray:
    """Value-weighted attention, ‖α_ij f_h(x_j)‖ (Kobayashi et al. 2020, "Attention is Not Only a Weight").

    f_h(x_j) = (x_j W^V_h + b^V_h) W^O_h is what key j adds to the layer's output through head h:
    v_j (recorded, `values[l]` (H, K, d_k)) times the head's d_k rows of W^O (`w_o[l]`, (H·d_k, d_model),
    as `head_parameters` gives it). b^O is added once per row, outside the sum, so it is no key's.
    Since α ≥ 0, ‖α_ij f_h(x_j)‖ = α_ij ‖f_h(x_j)‖. weights (L, H, Q, K) → (L, H, Q, K).
    """
    weights = np.asarray(weights, dtype=np.float64)
    out = np.empty_like(weights)
    for layer, (v, projection) in enumerate(zip(values, w_o, strict=True)):
        n_heads, _, d_k = v.shape
        per_head = np.asarray(projection, dtype=np.float64).reshape(n_heads, d_k, -1)  # (H, d_k, d_model)
        transformed = np.asarray(v, dtype=np.float64) @ per_head  # (H, K, d_model): batched over heads
        out[layer] = weights[layer] * np.linalg.norm(transformed, axis=-1)[:, None, :]  # (H, Q, K)
    return out


def source_coverage(cross: np.ndarray) -> Coverage:
    """Cross-attention received by each source piece over the whole output, and the flagged pieces
    (empty for a model without cross-attention: BERT, GPT-2)."""
    if cross.shape[0] == 0 or cross.shape[-1] == 0:
        return Coverage(received=np.zeros(0), flagged=np.zeros(0, dtype=bool), threshold=0.0)
    received = np.asarray(cross, dtype=np.float64).mean(axis=(0, 1)).sum(axis=0)  # (S,)
    content = received[:-1] if received.size > 1 else received  # every piece but </s>
    threshold = COVERAGE_FLAG_FRACTION * float(np.median(content))
    flagged = received < threshold
    if received.size > 1:
        flagged[-1] = False
    return Coverage(received=received, flagged=flagged, threshold=threshold)


# --- one call for a trace ---


def trace_values(trace: Trace) -> dict[str, np.ndarray] | None:
    """Cache prefix → v (H, K, d_k) of every attention, from a trace recorded with q/k/v; else None."""
    if trace.qkv is None:
        return None
    names = [cache_prefix(kind, layer) for kind in trace.kinds for layer in range(trace.n_layers[kind])]
    return {name: trace.qkv[f"{name}.v"] for name in names}


def kind_value_norms(
    trace: Trace, values: Mapping[str, np.ndarray], w_o: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """Value norms of every kind the model has; `values` and `w_o` keyed by cache prefix ('decoder.1.cross_attn')."""
    out = {}
    for kind in trace.kinds:
        names = [cache_prefix(kind, layer) for layer in range(trace.n_layers[kind])]
        out[kind] = value_norms(trace.attention(kind), [values[n] for n in names], [w_o[n] for n in names])
    return out


def analyze_trace(
    trace: Trace, w_o: Mapping[str, np.ndarray] | None = None, values: Mapping[str, np.ndarray] | None = None
) -> Analysis:
    """Statistics, rollout, coverage and (given each attention's W^O, and v from `values` or the
    trace's q/k/v) value norms: everything but importance, which needs the model. A few milliseconds."""
    start = time.perf_counter()
    statistics = {
        kind: kind_statistics(trace.attention(kind), kind, *sentence_axes(trace, kind)) for kind in trace.kinds
    }
    values = values if values is not None else trace_values(trace)
    norms = kind_value_norms(trace, values, w_o) if values is not None and w_o is not None else None
    rollout_kind = rollout_kind_of(trace)
    return Analysis(
        statistics=statistics,
        rollout=attention_rollout(trace.attention(rollout_kind)),
        coverage=source_coverage(trace.cross),
        value_norms=norms,
        milliseconds=(time.perf_counter() - start) * 1000,
        rollout_kind=rollout_kind,
    )


def sentence_axes(trace: Trace, kind: AttentionKind) -> tuple[np.ndarray, np.ndarray]:
    """(query sentence, key sentence) arrays of `kind`'s rows and columns."""
    queries = trace.src_sentence if kind == "enc_self" else trace.tgt_sentence
    return queries, trace.tgt_sentence if kind == "dec_self" else trace.src_sentence


def rollout_kind_of(trace: Trace) -> AttentionKind:
    """The self-attention over the model's input that rollout multiplies: the encoder's, else (GPT-2)
    the decoder's own, whose causal maps roll out the same way (a row only mixes earlier positions)."""
    return "dec_self" if trace.shape == "decoder-only" else "enc_self"


def analysis_json(trace: Trace, analysis: Analysis) -> dict:
    """The `analyze --json` object; layers and heads numbered from 1 as on the command line."""
    heads = []
    for row in analysis.rows():
        heads.append(
            {
                "kind": row.kind,
                "layer": row.layer + 1,
                "head": row.head + 1,
                **{name: getattr(row, name) for name in STATISTICS},
                "importance": row.importance,
            }
        )
    return {
        "model": trace.model_name,
        "source_pieces": list(trace.src_pieces),
        "output_pieces": list(trace.out_pieces),
        "heads": heads,
        "rollout": analysis.rollout[-1].tolist(),
        "coverage": analysis.coverage.received.tolist(),
        "input_pieces": list(trace.input_pieces),  # what rollout's rows and columns are (GPT-2: its input)
        "rollout_kind": analysis.rollout_kind,
    }
