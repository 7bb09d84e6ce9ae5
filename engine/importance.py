"""Head importance by masking, and the one call that analyses a Trace with its model.

Michel, Levy & Neubig 2019 ("Are Sixteen Heads Really Better than One?", who masked the heads of a
6+6 WMT En→Fr Transformer) score a head by what the model loses when that head's output is zeroed.
Here the loss is the log-probability of the output the user sees, teacher-forced:

    importance(l, h) = log p(y | x) − log p(y | x; head h of layer l zeroed)     (nats, Σ over y's pieces)

Positive: the head helps the model say what it said; near 0: the translation does not need it.

A head's output is zeroed by a forward pre-hook on its attention's output projection W^O (an
nn.Linear whose input is the H heads' z side by side, H·d_k wide): batch row b multiplies head h's
d_k features by keep[b, l, h]. The hooks live in a context manager and are removed in `finally`.

All heads of one kind go through *one* batched forced pass, heads on the batch axis (row 0 masks
nothing, row 1 + l·H + h masks head h of layer l), which branches layer by layer: zeroing a head of
layer l changes nothing below it, so layer l's H rows join the batch as copies of row 0 right
before layer l (`branching_layers`; 3 layers: 51 rows of layer work instead of 75). Encoder heads
change the encoder's output, so the decoder runs on every row; decoder heads (self and cross) share
one encoder output, whose cross-attention keys and values are computed once. `output_log_probs`
is the plain version (every row through every layer, any heads masked together) that the slow
reference uses. What it costs: `benchmarks/analysis_latency.py`.

`analysis_stages` is what the GUI's worker iterates after a trace is painted: first the numpy
analysis (a few ms), then the same with each kind's importance added; stop iterating when a newer
keystroke arrives and nothing more is computed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from engine.analysis import Analysis, KindImportance, analyze_trace, trace_values
from engine.architecture import KIND_PARTS, SHAPE_KINDS, AttentionKind, cache_prefix, stack_of
from engine.model import ActivationCache, MultiHeadAttention, Sentences, Transformer, sentences_of
from engine.trace import Trace
from engine.translator import Translator, head_parameters

NO_OUTPUT = {
    "encoder-only": "Importance scores the [MASK] fillers: type [MASK] in the text to see which heads matter.",
    "decoder-only": "Importance scores the continuation: ask for at least one new token.",
}
LOGITS_PER_CHUNK = 1 << 20  # (row, step) pairs × vocabulary scored at once: 4 MB of float32 logits, which
# stay in a core's cache between the matrix product and the log-softmax (350 × 8000 logits in one piece:
# 10.2 ms; in pieces of 131 rows: 5.9 ms, on 2 cores of this project's machine)


@dataclass(frozen=True)
class ForcedInput:
    """A trace's tokens as the teacher-forced pass reads them, each (1, length) on the model's device.

    A translator scores every decoder row; BERT the rows of its [MASK]s (`rows`, over src); GPT-2 the
    rows that chose the continuation (over decoder_input, which is the prompt and the output but its last).
    """

    src: Tensor  # (1, S) source ids, ending with </s> (GPT-2: its input again, read for its length only)
    decoder_input: Tensor  # (1, T) <s> y1 … y(T-1) (BERT: empty)
    output: Tensor  # (1, G) the pieces whose log-probability is scored
    rows: Tensor  # (G,) the query rows that predicted them
    sentences: Sentences | None  # a text of several sentences: each attends only to itself


def id_row(array: np.ndarray, device: torch.device) -> Tensor:
    """(1, length) ids on the device; a copy: trace arrays are read-only."""
    return torch.tensor(np.array(array, dtype=np.int64), device=device)[None]


def forced_input(model: Transformer, trace: Trace) -> ForcedInput:
    device = next(model.parameters()).device
    src = trace.input_ids  # GPT-2 has no source: its input stands in (decode reads only its length)
    sentences = sentences_of(trace.src_sentence, trace.tgt_sentence, device)
    rows = id_row(trace.out_positions, device)[0]
    return ForcedInput(
        id_row(src, device), id_row(trace.tgt_ids, device), id_row(trace.out_ids, device), rows, sentences
    )


def attention_modules(model: Transformer, kind: str) -> list[MultiHeadAttention]:
    """The attention module of `kind` in every layer of its stack, first layer first."""
    stack = model.encoder_layers if stack_of(kind) == "encoder" else model.decoder_layers
    return [getattr(layer, KIND_PARTS[kind][1]) for layer in stack]


@contextmanager
def masked_heads(modules: Sequence[MultiHeadAttention], keep: Tensor) -> Iterator[None]:
    """Within the block, batch row b of module m's heads is scaled by keep[b, m] ((B, M, H), 1 keeps
    a head, 0 zeroes it) on its way into W^O. The batch of every pass must have B rows."""
    handles = []
    try:
        for index, module in enumerate(modules):
            scale = keep[:, index].repeat_interleave(module.d_k, dim=-1)[:, None, :]  # (B, 1, H·d_k)
            handles.append(module.w_o.register_forward_pre_hook(_scaling_hook(scale)))
        yield
    finally:
        for handle in handles:
            handle.remove()


def _scaling_hook(scale: Tensor):
    def hook(module: nn.Module, args: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        (heads,) = args  # (B, Tq, H·d_k): every head's z side by side
        return (heads * scale,)

    return hook


def single_head_masks(n_layers: int, n_heads: int, device: torch.device | str = "cpu") -> Tensor:
    """keep (1 + L·H, L, H): row 0 keeps every head, row 1 + l·H + h zeroes head h of layer l."""
    keep = torch.ones(1 + n_layers * n_heads, n_layers * n_heads, device=device)
    keep[1:] -= torch.eye(n_layers * n_heads, device=device)
    return keep.view(-1, n_layers, n_heads)


def output_log_probs(model: Transformer, forced: ForcedInput, kind: str, keep: Tensor) -> Tensor:
    """log p(y | x) of the forced output for every row of `keep` ((B, L, H) over `kind`'s heads) → (B,):
    whole forced passes, any heads masked together (the slow reference uses it one head at a time)."""
    modules = attention_modules(model, kind)
    rows = keep.size(0)
    src = forced.src.expand(rows, -1)  # (B, S)
    shape = model.cfg.shape
    with torch.inference_mode(), masked_heads(modules, keep):
        if shape == "decoder-only":
            hidden = model.decode_hidden(forced.decoder_input.expand(rows, -1), None, src)  # (B, T, d_model)
        else:
            memory = model.encode(src, None, forced.sentences)  # (B, S, d_model)
            hidden = memory
            if shape == "encoder-decoder":
                decoder_input = forced.decoder_input.expand(rows, -1)
                hidden = model.decode_hidden(decoder_input, memory, src, sentences=forced.sentences)
        scores = scored(model, hidden, forced)
        assert scores is not None  # nothing cancels the reference
        return scores


def single_head_log_probs(
    model: Transformer, forced: ForcedInput, kind: str, cancelled: Callable[[], bool] = lambda: False
) -> Tensor | None:
    """log p(y | x) with nothing masked (row 0) and with each head of `kind` zeroed alone (row
    1 + l·H + h) → (1 + L·H,), as output_log_probs(single_head_masks(L, H)) gives it, with less work:
    the rows branch off layer by layer (`branching_layers`), and decoder heads of a translator share
    one encoder output. None when `cancelled` says stop (asked before every layer and every piece of
    the scoring, so that a newer keystroke waits for one of those at most)."""
    modules = attention_modules(model, kind)
    shape = model.cfg.shape
    with torch.inference_mode():
        if stack_of(kind) == "encoder":
            x, mask = model.encoder_input(forced.src, forced.sentences)
            hidden = branching_layers(
                model.encoder_layers, modules, x, lambda layer, h: layer(h, mask, "", None), cancelled
            )
            if hidden is None:
                return None
            hidden = memory = model.encoder_norm(hidden)  # (1 + L·H, S, d_model): one memory per row
            if shape == "encoder-decoder":  # decode_hidden, layer by layer, to be asked to stop between them
                decoder_input = forced.decoder_input.expand(len(memory), -1)
                src = forced.src.expand(len(memory), -1)
                x, self_mask, memory_mask = model.decoder_input(decoder_input, True, src, sentences=forced.sentences)
                for layer in model.decoder_layers:
                    if cancelled():
                        return None
                    x = layer(x, memory, self_mask, memory_mask, "", None, None, 0)
                hidden = model.decoder_norm(x)
        else:
            memory = model.encode(forced.src, None, forced.sentences)  # (1, S, d_model), None for GPT-2
            x, self_mask, memory_mask = model.decoder_input(
                forced.decoder_input, memory is not None, forced.src, sentences=forced.sentences
            )

            def decoder_layer(layer: nn.Module, h: Tensor) -> Tensor:
                # memory keeps one row: the cross-attention's keys and values are computed once, broadcast
                return layer(h, memory, self_mask, memory_mask, "", None, None, 0)

            hidden = branching_layers(model.decoder_layers, modules, x, decoder_layer, cancelled)
            if hidden is None:
                return None
            hidden = model.decoder_norm(hidden)
        return scored(model, hidden, forced, cancelled)


def branching_layers(
    layers: Sequence[nn.Module],
    modules: Sequence[MultiHeadAttention],
    x: Tensor,
    run: Callable[[nn.Module, Tensor], Tensor],
    cancelled: Callable[[], bool],
) -> Tensor | None:
    """x (1, T, d_model), the unmasked input of the first layer, through `layers` (module m is layer
    m's attention of the kind scored) with a growing batch: before layer l, H copies of row 0 join
    it, copy h with head h of layer l zeroed. A head's masking changes nothing below its layer, so
    the layers below run once for all its rows: L·(L + 1)/2·H + L rows of layer work instead of
    L·(1 + L·H). Returns (1 + L·H, T, d_model) in single_head_masks's row order, or None when
    `cancelled` says stop before a layer."""
    n_heads = modules[0].n_heads
    zero_one = 1.0 - torch.eye(n_heads, device=x.device)  # row h zeroes head h
    for layer, module in zip(layers, modules, strict=True):
        if cancelled():
            return None
        keep = torch.cat([torch.ones(len(x), n_heads, device=x.device), zero_one])[:, None]  # (B, 1, H)
        x = torch.cat([x, x[:1].expand(n_heads, -1, -1)])
        with masked_heads([module], keep):
            x = run(layer, x)
    return x


def scored(
    model: Transformer, hidden: Tensor, forced: ForcedInput, cancelled: Callable[[], bool] = lambda: False
) -> Tensor | None:
    """log p(y | x) of the forced output (B,) from each row's last hidden states (B, T, d_model):
    a translator's and GPT-2's decoder output, BERT's encoder output. The logits go in cache-sized
    pieces of (row, step) pairs, never all at once; None when `cancelled` says stop before a piece."""
    hidden = hidden[:, forced.rows]  # (B, G, d_model): the positions that predicted the output
    B, G = hidden.shape[:2]
    flat = hidden.reshape(B * G, -1)  # (B·G, d_model)
    targets = forced.output.expand(B, -1).reshape(-1)  # (B·G,)
    chunk = max(1, LOGITS_PER_CHUNK // model.cfg.tgt_vocab_size)
    nll = torch.empty(B * G, device=hidden.device)
    for i in range(0, B * G, chunk):
        if cancelled():
            return None
        part = flat[i : i + chunk]
        logits = (model.mlm_logits(part) if model.cfg.shape == "encoder-only" else model.logits(part)).float()
        # − log p(y_t) = cross-entropy: one fused log-softmax and gather instead of max, exp, sum, log
        nll[i : i + chunk] = F.cross_entropy(logits, targets[i : i + chunk], reduction="none")
    return -nll.view(B, G).sum(dim=-1)  # (B,)


def sentence_inputs(model: Transformer, trace: Trace) -> list[ForcedInput]:
    """One ForcedInput per sentence of the trace's text (one for a single sentence, BERT and GPT-2)."""
    if trace.sentences == 1:
        return [forced_input(model, trace)]
    device = next(model.parameters()).device
    inputs = []
    for s in range(trace.sentences):
        src, tgt = trace.src_sentence == s, trace.tgt_sentence == s
        rows = torch.arange(int(tgt.sum()), device=device)
        ids = (
            id_row(trace.src_ids[src], device),
            id_row(trace.tgt_ids[tgt], device),
            id_row(trace.out_ids[tgt], device),
        )
        inputs.append(ForcedInput(*ids, rows, None))
    return inputs


def head_importance(
    model: Transformer, trace: Trace, kind: AttentionKind, cancelled: Callable[[], bool] = lambda: False
) -> KindImportance | None:
    """Every head of `kind` scored by masking, in one batched forced pass (see the module docstring).

    The sentences of a text are independent, so the text's log-probability and drops are the sums of
    its sentences': each sentence takes its own batched pass, and `cancelled` is asked between them
    (None when it says stop: a paragraph's passes take seconds, a newer keystroke must not wait)."""
    start = time.perf_counter()
    n_layers, n_heads = trace.n_layers[kind], trace.n_heads
    log_probs = np.zeros(1 + n_layers * n_heads)
    for forced in sentence_inputs(model, trace):
        scores = single_head_log_probs(model, forced, kind, cancelled)
        if scores is None:
            return None
        log_probs += scores.cpu().double().numpy()  # float64 off the device
    return KindImportance(
        kind=kind,
        log_prob=float(log_probs[0]),
        drop=(log_probs[0] - log_probs[1:]).reshape(n_layers, n_heads),
        milliseconds=(time.perf_counter() - start) * 1000,
    )


def head_importance_one_at_a_time(model: Transformer, trace: Trace, kind: AttentionKind) -> np.ndarray:
    """The slow reference: one forced pass of batch 1 per head, (L, H). Tests hold the batch to it."""
    n_layers, n_heads = trace.n_layers[kind], trace.n_heads
    forced = forced_input(model, trace)
    device = forced.src.device
    base = float(output_log_probs(model, forced, kind, torch.ones(1, n_layers, n_heads, device=device))[0])
    drop = np.zeros((n_layers, n_heads))
    for layer in range(n_layers):
        for head in range(n_heads):
            keep = torch.ones(1, n_layers, n_heads, device=device)
            keep[0, layer, head] = 0.0
            drop[layer, head] = base - float(output_log_probs(model, forced, kind, keep)[0])
    return drop


# --- the inputs of value norms ---


def output_projections(model: Transformer) -> dict[str, np.ndarray]:
    """Cache prefix → W^O (H·d_k, d_model) of every attention, as `head_parameters` gives it."""
    out = {}
    for kind in SHAPE_KINDS[model.cfg.shape]:
        for layer in range(len(attention_modules(model, kind))):
            out[cache_prefix(kind, layer)] = head_parameters(model, kind, layer, 0).w_o
    return out


def recorded_values(model: Transformer, trace: Trace) -> dict[str, np.ndarray]:
    """Cache prefix → v (H, K, d_k): from the trace's q/k/v when it has them, else from one forced
    capture pass over its tokens (a trace recorded without q/k/v)."""
    values = trace_values(trace)
    if values is not None:
        return values
    forced = forced_input(model, trace)
    capture = ActivationCache(with_qkv=True)
    with torch.inference_mode():
        memory = model.encode(forced.src, capture, forced.sentences)  # None for GPT-2
        if model.cfg.shape != "encoder-only":
            model.decode(forced.decoder_input, memory, forced.src, capture, sentences=forced.sentences)
    names = [name[: -len(".v")] for name in capture.tensors if name.endswith(".v")]
    return {name: capture[f"{name}.v"][0].float().cpu().numpy() for name in names}


# --- the whole analysis ---


def analysis_stages(
    translator: Translator,
    trace: Trace,
    kinds: Sequence[AttentionKind] | None = None,
    cancelled: Callable[[], bool] = lambda: False,
) -> Iterator[Analysis]:
    """The analysis of `trace` (made by `translator`'s model), growing: first everything but
    importance, then once more after each kind's batched masking pass (every kind the model has,
    unless `kinds` says). Stop iterating to drop it; `cancelled` also stops it after the values'
    pass, between layers and between the sentences of a text. BERT without a [MASK] has no output
    to score."""
    if trace.model_name != translator.name:
        raise ValueError(f"the trace was made by {trace.model_name!r}, not by {translator.name!r}")
    model = translator.model
    values = recorded_values(model, trace)  # a forced pass over the text: 65 ms for 200 pieces on 1 thread
    if cancelled():
        return
    analysis = analyze_trace(trace, output_projections(model), values)
    if not len(trace.out_ids):
        yield replace(analysis, importance_note=NO_OUTPUT.get(trace.shape, NO_OUTPUT["encoder-only"]))
        return
    yield analysis
    for kind in trace.kinds if kinds is None else kinds:
        of_kind = head_importance(model, trace, kind, cancelled=cancelled)
        if of_kind is None:
            return
        importance = {**analysis.importance, kind: of_kind}
        analysis = replace(analysis, importance=importance)
        yield analysis


def analyze(translator: Translator, trace: Trace) -> Analysis:
    """Everything, importance of every kind included (what `python main.py analyze` prints)."""
    *_, complete = analysis_stages(translator, trace)
    return complete
