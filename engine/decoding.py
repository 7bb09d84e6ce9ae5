"""Greedy decoding over the model's key/value cache: from scratch, after a forced prefix, or checking
a draft (the previous output while the user types). Beam search is in engine/beam.py.

Token lists returned here hold the generated target ids after <s>: they end with </s> unless the
length limit stopped them first.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from engine.generation import constrain
from engine.kv_cache import DecoderCache
from engine.model import ActivationCache, Transformer, sentences_of


@dataclass(frozen=True)
class DecodingOptions:
    # strategy: beam_size 1 is greedy decoding
    beam_size: int = 1
    length_penalty: float = 0.6  # alpha: score = log p / ((5 + length) / 6) ** alpha (GNMT; Marian: length ** alpha)
    # limits: at most max_len_a * source_length + max_len_b target pieces, capped by max_positions
    max_len_a: float = 1.5
    max_len_b: int = 10
    max_new_tokens: int | None = None  # instead: exactly this limit (a decoder-only model continuing a prompt)

    def __post_init__(self) -> None:
        if self.beam_size < 1:
            raise ValueError(f"beam_size must be at least 1, got {self.beam_size}")
        if self.length_penalty < 0:
            raise ValueError(f"length_penalty must be >= 0, got {self.length_penalty}")
        if self.max_new_tokens is not None and self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be at least 1, got {self.max_new_tokens}")

    def max_length(self, source_length: int, max_positions: int) -> int:
        """Most target pieces to generate for a source of `source_length` pieces; `max_positions` is
        what the decoder has room for (less a prompt's length for a decoder-only model)."""
        wanted = self.max_new_tokens or int(self.max_len_a * source_length) + self.max_len_b
        return max(1, min(max_positions - 1, wanted))


def pad_batch(rows: list[list[int]], pad_id: int, device: torch.device | str) -> Tensor:
    batch = torch.full((len(rows), max(len(r) for r in rows)), pad_id, dtype=torch.long)
    for i, row in enumerate(rows):
        batch[i, : len(row)] = torch.tensor(row, dtype=torch.long)
    return batch.to(device)  # (B, longest)


@torch.no_grad()
def greedy_decode(
    model: Transformer,
    src: Tensor,
    options: DecodingOptions = DecodingOptions(),
    prefix: list[int] | None = None,
    memory: Tensor | None = None,
    start: list[int] | None = None,
) -> list[list[int]]:
    """Greedy decoding of a batch src (B, S) → generated ids per sentence.

    `prefix` (ids after <s>) is forced onto every sentence before the greedy choices begin.
    `memory` is the encoder output of src when the caller has it already.
    `start` replaces <s> as the decoder's first inputs: a decoder-only model's prompt.
    """
    cfg = model.cfg
    B = src.size(0)
    start = list(start or [cfg.bos_id])
    lengths = (src != cfg.pad_id).sum(dim=1).tolist()
    room = cfg.max_positions - len(start) + 1
    limits = torch.tensor([options.max_length(n, room) for n in lengths], device=src.device)
    prefix = list(prefix or [])
    memory = model.encode(src) if memory is None else memory
    generated = torch.tensor(prefix, dtype=torch.long, device=src.device).view(1, -1).expand(B, -1)  # (B, P)
    inputs = torch.tensor([start + prefix], device=src.device).expand(B, -1)  # (B, len(start) + P)
    generated = _greedy_loop(model, src, memory, model.new_cache(), generated, inputs, limits)
    return [_strip(row, cfg.pad_id, cfg.eos_id) for row in generated.tolist()]


def _greedy_loop(
    model: Transformer,
    src: Tensor,
    memory: Tensor,
    cache: DecoderCache,
    generated: Tensor,
    inputs: Tensor,
    limits: Tensor,
) -> Tensor:
    """Extend `generated` (B, P) greedily; `inputs` are the positions the cache does not hold yet."""
    eos = model.cfg.eos_id
    finished = (generated.size(1) >= limits) | (generated == eos).any(dim=1)
    while not finished.all():
        logits = model.decode(inputs, memory, src, cache=cache)[:, -1]  # (B, V)
        positions = torch.full_like(limits, generated.size(1))
        logits = constrain(model.rules, logits, positions, limits, eos, generated.tolist())
        chosen = logits.argmax(dim=-1).masked_fill(finished, model.cfg.pad_id)
        generated = torch.cat([generated, chosen[:, None]], dim=1)  # (B, t + 1)
        finished |= (chosen == eos) | (generated.size(1) >= limits)
        inputs = chosen[:, None]  # the cache holds everything before
    return generated


@dataclass(frozen=True)
class RecordedSentence:
    """One sentence of a batch decoded by `greedy_decode_recorded`, with what a forced pass over its
    output would record."""

    tokens: list[int]  # y1 … yT, as greedy_decode gives them
    maps: dict[str, Tensor]  # capture name ('encoder.0.self_attn.weights', …) → (H, queries, keys)
    logits: Tensor  # (T, V) of each step


@torch.no_grad()
def greedy_decode_recorded(
    model: Transformer, sources: list[list[int]], options: DecodingOptions = DecodingOptions()
) -> tuple[list[RecordedSentence], int]:
    """Greedy decoding of several sentences of an encoder–decoder model (source ids, each ending
    with </s>) that keeps every sentence's attention rows and logits as it goes, and the decoder
    passes it spent.

    The encoder reads the sentences side by side, each attending only to itself (no padding to
    compute); the decoder runs them as a batch. Row t of step t is row t of a forced pass over the
    output (the cache guarantees it), so the maps need no second pass. A sentence leaves the batch
    when it ends (the cache keeps the others' rows): a long sentence does not carry short ones.
    """
    cfg = model.cfg
    device = next(model.parameters()).device
    lengths = [len(ids) for ids in sources]
    limits = [options.max_length(n, cfg.max_positions) for n in lengths]
    sentence_of = np.repeat(np.arange(len(sources)), lengths)
    packed = torch.tensor([[i for ids in sources for i in ids]], device=device)  # (1, ΣS)
    encoded = ActivationCache()
    packed_memory = model.encode(packed, encoded, sentences_of(sentence_of, sentence_of[:0], device))[0]  # (ΣS, d)
    starts = np.cumsum([0, *lengths[:-1]])
    src = pad_batch(sources, cfg.pad_id, device)  # (B, S) for the masks
    # the packed row of each position; a padded one repeats its sentence's last row (masked anyway)
    last = torch.tensor(lengths, device=device)[:, None] - 1
    rows = torch.tensor(starts, device=device)[:, None] + torch.minimum(torch.arange(src.size(1), device=device), last)
    memory = packed_memory[rows]  # (B, S, d)
    cache = model.new_cache()
    tokens: list[list[int]] = [[] for _ in lengths]
    active = list(range(len(lengths)))  # the sentence of each batch row
    steps: list[tuple[list[int], dict[str, Tensor], Tensor]] = []  # (active, name → (A, H, keys), logits (A, V))
    inputs = torch.full((len(lengths), 1), cfg.bos_id, dtype=torch.long, device=device)
    while True:
        recorded = ActivationCache()
        logits = model.decode(inputs, memory, src, recorded, cache)[:, -1]  # (A, V)
        step_limits = torch.tensor([limits[b] for b in active], device=device)
        positions = torch.full_like(step_limits, len(steps))
        histories = [tokens[b] for b in active]
        chosen = constrain(model.rules, logits, positions, step_limits, cfg.eos_id, histories).argmax(dim=-1)  # (A,)
        weights = {name: t[:, :, -1] for name, t in recorded.tensors.items() if name.endswith(".weights")}
        steps.append((active, weights, logits))
        open_rows = []
        for row, (b, token) in enumerate(zip(active, chosen.tolist(), strict=True)):
            tokens[b].append(token)
            if token != cfg.eos_id and len(tokens[b]) < limits[b]:
                open_rows.append(row)
        if not open_rows:
            break
        inputs = chosen[:, None]
        if len(open_rows) < len(active):  # the batch keeps only the sentences still open
            keep = torch.tensor(open_rows, device=device, dtype=torch.long)
            cache.reorder(keep)
            memory, src, inputs = memory.index_select(0, keep), src.index_select(0, keep), inputs.index_select(0, keep)
            active = [active[row] for row in open_rows]
    sentences = []
    for b, (n_src, out, start) in enumerate(zip(lengths, tokens, starts, strict=True)):
        block = slice(int(start), int(start) + n_src)
        maps = {name: t[0, :, block, block] for name, t in encoded.tensors.items() if name.endswith(".weights")}
        rows = [(names, step_logits, members.index(b)) for members, names, step_logits in steps[: len(out)]]
        for name in rows[0][0]:
            parts = [names[name][row] for names, _, row in rows]  # (H, keys) of each step
            if name.endswith("cross_attn.weights"):
                maps[name] = torch.stack([part[:, :n_src] for part in parts], dim=1)  # (H, T, S)
            else:  # step t saw t + 1 keys; the later ones are masked: weight 0
                maps[name] = torch.stack([F.pad(part, (0, len(out) - part.size(-1))) for part in parts], dim=1)
        logits = torch.stack([step_logits[row] for _, step_logits, row in rows])  # (T, V)
        sentences.append(RecordedSentence(out, maps, logits))
    return sentences, len(steps)


@dataclass(frozen=True)
class DraftResult:
    tokens: list[int]  # identical to greedy_decode's output
    accepted: int  # how many draft tokens the check pass confirmed
    decoder_passes: int  # decoder forward calls spent (a full greedy decode spends one per token)
    log_probs: Tensor | None  # (T, V) of the output when `capture` holds its maps, else None


class _ValidRows:
    """The decoder rows of several cached passes that were computed from the right inputs.

    Row t of a pass is valid when every input up to it was an output token; put together, the
    valid rows are the rows of a teacher-forced pass over the output (the cache guarantees it).
    """

    def __init__(self) -> None:
        self.passes: list[tuple[dict[str, Tensor], Tensor, int]] = []  # (maps, logits (n, V), valid rows)

    def add(self, capture: ActivationCache, logits: Tensor, rows: int) -> None:
        maps = {
            name: t for name, t in capture.tensors.items() if name.startswith("decoder.") and name.endswith("weights")
        }
        self.passes.append((maps, logits, rows))

    def into(self, capture: ActivationCache) -> Tensor:
        """Write the (1, H, T, keys) maps of all valid rows into `capture`; return log-probs (T, V)."""
        T = sum(rows for _, _, rows in self.passes)
        for name in self.passes[0][0]:
            parts = [maps[name][:, :, :rows] for maps, _, rows in self.passes]  # (1, H, rows, keys)
            if name.endswith("self_attn.weights"):  # keys past the output are masked: their weights are 0
                parts = [F.pad(part[..., :T], (0, max(0, T - part.size(-1)))) for part in parts]
            capture.record(name, torch.cat(parts, dim=2))
        return torch.cat([logits[:rows] for _, logits, rows in self.passes]).log_softmax(dim=-1)


@torch.no_grad()
def greedy_from_draft(
    model: Transformer,
    src: Tensor,
    draft: list[int],
    options: DecodingOptions = DecodingOptions(),
    capture: ActivationCache | None = None,
    memory: Tensor | None = None,
) -> DraftResult:
    """Greedy decoding of one sentence src (1, S), using a previous output as a draft.

    One teacher-forced pass over the draft gives the model's argmax at every position; the longest
    prefix where it agrees with the draft is kept, and greedy decoding resumes at the first
    disagreement from the cache of that pass.

    The passes also capture the trace: `capture` ends up holding the output's attention maps and
    `log_probs` its log-probabilities, as a forced pass over the output would give them. Only q/k/v
    (`capture.with_qkv`) cannot be put together from rows; then `log_probs` is None and the caller
    runs the forced pass.
    """
    cfg = model.cfg
    limit = options.max_length(int((src != cfg.pad_id).sum()), cfg.max_positions)
    draft = [int(t) for t in draft[:limit]]
    complete = bool(draft) and (draft[-1] == cfg.eos_id or len(draft) >= limit)
    # a complete draft needs no prediction after its last token; an open one needs one more
    inputs = ([cfg.bos_id] + draft)[: len(draft) if complete else len(draft) + 1]
    memory = model.encode(src, capture) if memory is None else memory
    cache = model.new_cache()
    logits = model.decode(torch.tensor([inputs], device=src.device), memory, src, capture, cache)[0]  # (n, V)
    positions = torch.arange(len(inputs), device=src.device)
    histories = [draft[:row] for row in range(len(inputs))]
    predicted = constrain(model.rules, logits, positions, limit, cfg.eos_id, histories).argmax(dim=-1).tolist()
    accepted = 0
    while accepted < len(draft) and accepted < len(predicted) and predicted[accepted] == draft[accepted]:
        accepted += 1
    if complete and accepted == len(draft):
        return DraftResult(draft, accepted, 1, logits.log_softmax(dim=-1))
    rows = _ValidRows() if capture is not None and not capture.with_qkv else None
    if rows is not None:
        rows.add(capture, logits, accepted + 1)
    tokens = draft[:accepted] + [predicted[accepted]]
    passes = 1
    cache.truncate(len(tokens))  # <s> and every token but the last, which is the next pass's input
    while tokens[-1] != cfg.eos_id and len(tokens) < limit:
        # the draft's tokens after the last one chosen, if it had them: often the sentence goes on
        # as before after a changed word, and one pass then confirms several tokens
        guess = lookup(draft, tokens, limit - len(tokens) - 1)
        pass_capture = ActivationCache() if rows is not None else None
        inputs = torch.tensor([tokens[-1:] + guess], device=src.device)
        logits = model.decode(inputs, memory, src, pass_capture, cache)[0]  # (1 + len(guess), V)
        passes += 1
        positions = torch.arange(len(tokens), len(tokens) + len(guess) + 1, device=src.device)
        histories = [tokens + guess[:row] for row in range(len(guess) + 1)]
        predicted = constrain(model.rules, logits, positions, limit, cfg.eos_id, histories).argmax(dim=-1).tolist()
        chosen = 0
        for i, token in enumerate(predicted):  # row i is right while every guess before it was
            tokens.append(token)
            chosen += 1
            if token == cfg.eos_id or len(tokens) >= limit or i == len(guess) or token != guess[i]:
                break
        cache.truncate(len(tokens))  # forget the inputs after the last confirmed guess
        if rows is not None and pass_capture is not None:
            rows.add(pass_capture, logits, chosen)
    log_probs = rows.into(capture) if rows is not None and capture is not None else None
    return DraftResult(tokens, accepted, passes, log_probs)


def sentence_draft(draft: list[int], before: list[list[int]], eos_id: int) -> list[int]:
    """One sentence's part of a text's previous output `draft`: what followed the outputs `before`
    of the sentences before it (when the draft still starts with them), up to its </s>."""
    start = sum(len(output) for output in before)
    if draft[:start] != [token for output in before for token in output]:
        return []  # an earlier sentence changed: the draft no longer lines up
    rest = draft[start:]
    return rest[: rest.index(eos_id) + 1] if eos_id in rest else rest


def lookup(draft: list[int], tokens: list[int], most: int, longest: int = 8) -> list[int]:
    """What followed the latest token chosen where it last appeared in the draft (matching the two
    latest when it can): a guess that one decoder pass checks, as in prompt-lookup decoding."""
    if most < 1 or not draft:
        return []
    for width in (2, 1):
        tail = tokens[-width:]
        if len(tail) < width:
            continue
        for j in range(len(draft) - width, -1, -1):
            if draft[j : j + width] == tail:
                return draft[j + width : j + width + min(most, longest)]
    return []


def _strip(ids: list[int], pad_id: int, eos_id: int) -> list[int]:
    """Cut a row after its first </s> and drop padding."""
    out = []
    for i in ids:
        if i == eos_id:  # first: GPT-2's pad id is its end token
            out.append(i)
            break
        if i == pad_id:
            break
        out.append(i)
    return out
