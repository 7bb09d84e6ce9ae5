"""Text in, Trace out: tokenize → encode once → decode, capturing the maps → numpy Trace.

`Translator` is the one object the command line and the GUI's worker ask: it picks the decoding
strategy (greedy from a draft, beam search with its tree, a forced prefix), builds the Trace, and
computes a head's walkthrough.

Greedy decoding keeps row t of each cached pass, which is the attention of step t, so its maps
come with the decode. Beam search, a forced prefix and q/k/v capture add one teacher-forced pass
over the output: row t of that pass equals the attention of incremental step t.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from engine.architecture import KIND_PARTS, cache_prefix, stack_of
from engine.beam import BeamResult, beam_search, beam_search_batch
from engine.beam_tree import BeamTree, beam_tree
from engine.checkpoint import LoadedModel
from engine.decoding import (
    DecodingOptions,
    RecordedSentence,
    greedy_decode,
    greedy_decode_recorded,
    greedy_from_draft,
    pad_batch,
    sentence_draft,
)
from engine.families import load_model
from engine.generation import suppressed_log_probs
from engine.model import ActivationCache, ModelConfig, MultiHeadAttention, Transformer, sentences_of
from engine.one_stack import continue_prompt, fill_masks, one_stack_trace, qkv_of, stack_maps, to_numpy, top_k
from engine.sentences import positions_within, split_sentences
from engine.tokenizer import TextTokenizer, encodable
from engine.trace import Trace
from engine.walkthrough import HeadParameters, Walkthrough, build_walkthrough

log = logging.getLogger(__name__)
MAX_CHARS_PER_PIECE = 16  # SentencePiece's default longest piece: text beyond max_positions × this is cut unread
REMEMBERED_SENTENCES = 256  # sentences (with their trace rows) a Translator keeps for texts of several


class EmptyInputError(ValueError):
    """Nothing to translate (empty or whitespace-only text)."""


@dataclass(frozen=True)
class TraceOptions:
    # decoding
    decoding: DecodingOptions = DecodingOptions()
    forced_prefix: tuple[int, ...] = ()  # target ids the output must start with (the user forced them)
    # capture
    top_k: int = 5
    with_qkv: bool = False


@dataclass(frozen=True)
class Translation:
    """What `Translator.run` gives: the Trace, and the search tree when the beam was wider than 1."""

    trace: Trace
    beam: BeamTree | None


@dataclass(frozen=True)
class _Decoded:
    tokens: list[int]  # y1 … yT
    log_probs: torch.Tensor | None  # (T, V) when decoding captured the output's rows, else None
    passes: int  # decoder forward calls spent
    label: str  # Trace.decoding: "greedy", "beam 4", "forced prefix of 2"
    tree: BeamTree | None


@dataclass(frozen=True)
class Captured:
    """A Trace's maps (kind → L×H×queries×keys), candidate fields (`top_k`) and q/k/v (or None)."""

    maps: dict[str, np.ndarray]
    candidates: dict
    qkv: dict[str, np.ndarray] | None


@dataclass(frozen=True)
class SentenceRecord:
    """One sentence's greedy translation and its part of a text's Trace, kept between keystrokes."""

    src_ids: list[int]
    out_ids: list[int]
    maps: dict[str, np.ndarray]  # kind → (L, H, queries, keys) over this sentence alone
    candidates: dict  # top_k's fields for its steps


def remembered_key(src_ids: Sequence[int], options: TraceOptions) -> tuple[tuple[int, ...], DecodingOptions, int]:
    """What a remembered sentence is looked up by: its source ids, the decoding and how many candidates."""
    return tuple(src_ids), options.decoding, options.top_k


def join_records(records: Sequence[SentenceRecord], src_sentence: np.ndarray, tgt_sentence: np.ndarray) -> Captured:
    """The sentences' maps as one block-diagonal map per layer and head (0 between sentences), and
    their candidates one after another."""
    axes = {"enc_self": (src_sentence, src_sentence), "dec_self": (tgt_sentence, tgt_sentence)}
    axes["cross"] = (tgt_sentence, src_sentence)
    maps = {}
    for kind, (rows, columns) in axes.items():
        L, H = records[0].maps[kind].shape[:2]
        joined = np.zeros((L, H, len(rows), len(columns)), dtype=np.float32)
        for s, record in enumerate(records):
            r, c = np.flatnonzero(rows == s), np.flatnonzero(columns == s)
            joined[:, :, r[0] : r[-1] + 1, c[0] : c[-1] + 1] = record.maps[kind]
        maps[kind] = joined
    candidates = {
        "topk_ids": np.concatenate([r.candidates["topk_ids"] for r in records]),
        "topk_probs": np.concatenate([r.candidates["topk_probs"] for r in records]),
        "topk_pieces": [row for r in records for row in r.candidates["topk_pieces"]],
    }
    return Captured(maps, candidates, None)


@dataclass(frozen=True)
class SourceIds:
    ids: list[int]  # ends with </s>
    truncated: bool


def encode_source(tokenizer: TextTokenizer, text: str, max_positions: int) -> SourceIds:
    """Source ids cut to the model's maximum length (keeping the final </s>)."""
    if not text.strip():
        raise EmptyInputError("nothing to translate: the text is empty")
    cut_text = text[: max_positions * MAX_CHARS_PER_PIECE]
    ids = tokenizer.encode_source(cut_text)
    truncated = len(cut_text) < len(text) or len(ids) > max_positions
    if len(ids) > max_positions:
        ids = ids[: max_positions - 1] + ids[-1:]
    return SourceIds(ids, truncated)


def encode_sentences(tokenizer: TextTokenizer, text: str, max_positions: int) -> list[SourceIds]:
    """Each sentence's source ids (engine/sentences.py), all together at most `max_positions` pieces:
    the sentence that crosses the limit is cut (keeping its </s>, marked truncated), later ones dropped."""
    whole = encode_source(tokenizer, text, max_positions)  # raises EmptyInputError for blank text
    sentences = split_sentences(text[: max_positions * MAX_CHARS_PER_PIECE])
    if len(sentences) == 1:
        return [whole]
    parts: list[SourceIds] = []
    room = max_positions
    for sentence in sentences:
        ids = tokenizer.encode_source(sentence)
        if len(ids) > room:
            if room >= 2:
                parts.append(SourceIds(ids[: room - 1] + ids[-1:], True))
            else:
                parts[-1] = SourceIds(parts[-1].ids, True)
            break
        parts.append(SourceIds(ids, False))
        room -= len(ids)
    if whole.truncated and not parts[-1].truncated:  # the text itself was cut before it was read
        parts[-1] = SourceIds(parts[-1].ids, True)
    return parts


def decode_batch(
    model: Transformer, sources: list[list[int]], options: DecodingOptions, batch_size: int = 64
) -> tuple[list[list[int]], int]:
    """Output ids of every source (in input order), and the decoder passes spent.

    Sources of similar length go through together: greedy decoding in batches of `batch_size`, beam
    search in batches of `batch_size` // beam size sentences (every hypothesis is a batch row)."""
    device = next(model.parameters()).device
    outputs: list[list[int]] = [[] for _ in sources]
    order = sorted(range(len(sources)), key=lambda i: len(sources[i]))
    per_batch = max(1, batch_size // options.beam_size)
    passes = 0
    for start in range(0, len(order), per_batch):
        chunk = order[start : start + per_batch]
        src = pad_batch([sources[i] for i in chunk], model.cfg.pad_id, device)
        if options.beam_size == 1:
            results = greedy_decode(model, src, options)
            passes += max(len(ids) for ids in results)
        else:
            beams = beam_search_batch(model, src, options)
            results = [beam.hypotheses[0].tokens for beam in beams]
            passes += max(len(beam.steps) for beam in beams)
        for i, ids in zip(chunk, results, strict=True):
            outputs[i] = ids
    return outputs, passes


def translate_batch(
    model: Transformer,
    tokenizer: TextTokenizer,
    texts: list[str],
    options: DecodingOptions = DecodingOptions(),
    batch_size: int = 64,
) -> list[str]:
    """Translations of many texts in input order; empty text gives empty output. A text of several
    sentences is translated sentence by sentence, as the app does, every sentence of every text in
    one `decode_batch`."""
    owners, sources = [], []  # the text of each sentence, and its source ids
    for i, text in enumerate(texts):
        if text.strip():
            for sentence in split_sentences(text):
                owners.append(i)
                sources.append(encode_source(tokenizer, sentence, model.cfg.max_positions).ids)
    outputs, _ = decode_batch(model, sources, options, batch_size)
    pieces: list[list[str]] = [[] for _ in texts]
    for i, ids in zip(owners, outputs, strict=True):
        pieces[i].append(tokenizer.decode_target(ids))
    return [" ".join(parts) for parts in pieces]


def by_sentence(ids: Sequence[int], sentence_of: np.ndarray) -> list[list[int]]:
    """`ids` cut into one list per sentence."""
    cuts = np.flatnonzero(np.diff(sentence_of)) + 1
    return [list(part) for part in np.split(np.asarray(ids, dtype=np.int64), cuts)]


def decoder_ids(tokens: list[int], tgt_sentence: np.ndarray, bos_id: int) -> list[int]:
    """The decoder's input for output `tokens`: each sentence's outputs shifted right behind its own <s>."""
    shifted = [bos_id] + tokens[:-1]
    return [bos_id if first else i for i, first in zip(shifted, positions_within(tgt_sentence) == 0, strict=True)]


def head_parameters(model: Transformer, kind: str, layer: int, head: int) -> HeadParameters:
    """The parameters of one head, as numpy. nn.Linear computes x Wᵀ + b, hence the transposes."""
    stack = model.encoder_layers if stack_of(kind) == "encoder" else model.decoder_layers
    if not 0 <= layer < len(stack):
        raise ValueError(f"layer index {layer} is out of range 0..{len(stack) - 1}")
    attn: MultiHeadAttention = getattr(stack[layer], KIND_PARTS[kind][1])
    if not 0 <= head < attn.n_heads:
        raise ValueError(f"head index {head} is out of range 0..{attn.n_heads - 1}")
    rows = slice(head * attn.d_k, (head + 1) * attn.d_k)  # this head's output features of w_q, w_k, w_v

    def array(tensor: torch.Tensor) -> np.ndarray:
        return tensor.detach().to("cpu").double().numpy()

    return HeadParameters(
        w_q=array(attn.w_q.weight[rows]).T,  # (d_model, d_k)
        b_q=array(attn.w_q.bias[rows]),
        w_k=array(attn.w_k.weight[rows]).T,
        b_k=array(attn.w_k.bias[rows]),
        w_v=array(attn.w_v.weight[rows]).T,
        b_v=array(attn.w_v.bias[rows]),
        w_o=array(attn.w_o.weight).T,  # (H·d_k, d_model)
        b_o=array(attn.w_o.bias),
        norm=model.cfg.norm,
        embedding_rows=embedding_rows(model.cfg),
    )


def embedding_rows(cfg: ModelConfig) -> str:
    """The first layer's input rows in words: the paper's sum, or what a BERT or GPT-2 adds instead."""
    rows = "embedding × √d_model" if cfg.scale_embedding else "embedding"
    rows += " + learned position embedding" if cfg.positions == "learned" else " + positional encoding"
    if cfg.type_vocab_size:
        rows += " + token-type embedding"
    return f"LayerNorm({rows})" if cfg.embed_norm else rows


class Translator:
    """A loaded model that turns text into Traces. Not thread-safe: one Translator per worker thread."""

    def __init__(self, loaded: LoadedModel) -> None:
        self.loaded = loaded
        self.model = loaded.model
        self.model.freeze_for_inference()
        self.tokenizer = loaded.tokenizer
        self.cfg = loaded.model.cfg
        # (source ids, decoding, top k) → a sentence's greedy translation and trace rows, so that typing
        # at the end of a paragraph decodes only the sentence being typed
        self.remembered: dict[tuple[tuple[int, ...], DecodingOptions, int], SentenceRecord] = {}

    @classmethod
    def from_directory(cls, directory: Path | str, device: str = "auto") -> Translator:
        return cls(load_model(directory, device))

    @property
    def name(self) -> str:
        return self.loaded.info.name

    @property
    def device(self) -> torch.device:
        return self.loaded.device

    @property
    def default_decoding(self) -> DecodingOptions:
        """The model's own decoding defaults (a Marian folder's num_beams, max_length, length_penalty)."""
        return self.loaded.decoding

    def source(self, text: str) -> SourceIds:
        return encode_source(self.tokenizer, text, self.cfg.max_positions)

    def translate(self, texts: list[str], options: DecodingOptions = DecodingOptions()) -> list[str]:
        """Translations (a BERT's filled-in text, a GPT-2's continuation) in input order; "" for blank text."""
        if self.cfg.shape != "encoder-decoder":
            trace_options = TraceOptions(decoding=options, top_k=1)
            return [self.trace(text, trace_options).translation if text.strip() else "" for text in texts]
        with torch.inference_mode():
            return translate_batch(self.model, self.tokenizer, texts, options)

    def beam(self, text: str, options: DecodingOptions) -> BeamResult:
        src = pad_batch([self.source(text).ids], self.cfg.pad_id, self.device)
        with torch.inference_mode():
            return beam_search(self.model, src, options)

    def trace(self, text: str, options: TraceOptions = TraceOptions(), draft: Sequence[int] | None = None) -> Trace:
        """Translate `text` and capture every attention map; raises EmptyInputError for blank text."""
        return self.run(text, options, draft).trace

    def run(self, text: str, options: TraceOptions = TraceOptions(), draft: Sequence[int] | None = None) -> Translation:
        """The Trace of `text` under `options`, and the beam search tree when the beam is wider than 1.

        The one place that picks a decoding strategy. `draft`, the previous output while the user
        types, lets greedy decoding confirm what is still right in one pass instead of one pass per
        token; the result is the same. Greedy decoding captures the maps row by row as it goes; beam
        search, a forced prefix and q/k/v take one more, teacher-forced pass over the output.
        """
        timings: dict[str, float] = {}
        start = time.perf_counter()
        text = encodable(text)  # the Trace keeps the text: no lone surrogates in what it exports
        if self.cfg.shape != "encoder-decoder":
            translation = self._run_one_stack(text, self.source(text), options)
            timings["total_ms"] = (time.perf_counter() - start) * 1000
            return replace(translation, trace=replace(translation.trace, timings=timings))
        parts = encode_sentences(self.tokenizer, text, self.cfg.max_positions)
        if len(parts) > 1:
            return self._run_sentences(text, parts, options, start, draft)
        source = parts[0]
        src = pad_batch([source.ids], self.cfg.pad_id, self.device)  # (1, S)
        timings["tokenize_ms"] = (time.perf_counter() - start) * 1000

        mark = time.perf_counter()
        capture = ActivationCache(with_qkv=options.with_qkv)
        with torch.inference_mode():
            memory = self.model.encode(src, capture)  # once: decoding and the forced pass share it
            decoded = self._decode(src, memory, options, draft, capture)
        timings["decode_ms"] = (time.perf_counter() - mark) * 1000

        mark = time.perf_counter()
        log_probs, passes = decoded.log_probs, decoded.passes
        if log_probs is None:  # decoding did not capture the output's rows: capture them in a forced pass
            decoder_input = pad_batch([[self.cfg.bos_id] + decoded.tokens[:-1]], self.cfg.pad_id, self.device)
            with torch.inference_mode():
                log_probs = self.model.decode(decoder_input, memory, src, capture)[0].log_softmax(dim=-1)  # (T, V)
            passes += 1
            timings["forced_pass_ms"] = (time.perf_counter() - mark) * 1000
        captured = self.captured(capture, log_probs, options)
        trace = self.build_trace(text, source, decoded.tokens, captured, decoded.label)
        if decoded.label == "greedy":  # a text that grows a second sentence finds this one remembered
            self._remember(options, SentenceRecord(source.ids, decoded.tokens, captured.maps, captured.candidates))
        timings["total_ms"] = (time.perf_counter() - start) * 1000
        return Translation(replace(trace, timings=timings, decoder_passes=passes), decoded.tree)

    def _remember(self, options: TraceOptions, record: SentenceRecord) -> None:
        """Keep `record` as the most recently used; forget the least recently used beyond REMEMBERED_SENTENCES."""
        key = remembered_key(record.src_ids, options)
        self.remembered.pop(key, None)
        self.remembered[key] = record
        while len(self.remembered) > REMEMBERED_SENTENCES:
            del self.remembered[next(iter(self.remembered))]

    def _run_sentences(
        self, text: str, parts: list[SourceIds], options: TraceOptions, start: float, draft: Sequence[int] | None
    ) -> Translation:
        """A text of several sentences, each translated on its own and traced attending only to itself.

        Greedy decoding records each sentence's rows as it goes and remembers them, so typing in a
        paragraph decodes only the sentence being typed, from its part of `draft` (the previous
        keystroke's output); several new sentences go side by side in one batch. Beam search, a
        forced prefix and q/k/v take one forced pass over all the sentences side by side
        (`engine.model.Sentences`)."""
        timings = {"tokenize_ms": (time.perf_counter() - start) * 1000}
        source = SourceIds([i for part in parts for i in part.ids], any(part.truncated for part in parts))
        src_sentence = np.repeat(np.arange(len(parts)), [len(part.ids) for part in parts])
        mark = time.perf_counter()
        if options.decoding.beam_size == 1 and not options.forced_prefix and not options.with_qkv:
            records, passes = self._sentence_records([part.ids for part in parts], options, draft)
            timings["decode_ms"] = (time.perf_counter() - mark) * 1000
            tokens = [i for record in records for i in record.out_ids]
            tgt_sentence = np.repeat(np.arange(len(parts)), [len(record.out_ids) for record in records])
            captured = join_records(records, src_sentence, tgt_sentence)
            label = f"greedy, {len(parts)} sentences"
        else:
            with torch.inference_mode():
                outputs, passes, label = self._decode_sentences([part.ids for part in parts], options)
            timings["decode_ms"] = (time.perf_counter() - mark) * 1000
            mark = time.perf_counter()
            tokens = [i for output in outputs for i in output]
            tgt_sentence = np.repeat(np.arange(len(parts)), [len(output) for output in outputs])
            captured = self._forced_sentences(source.ids, tokens, src_sentence, tgt_sentence, options)
            passes += 1
            timings["forced_pass_ms"] = (time.perf_counter() - mark) * 1000
        trace = self.build_trace(text, source, tokens, captured, label, src_sentence, tgt_sentence)
        timings["total_ms"] = (time.perf_counter() - start) * 1000
        return Translation(replace(trace, timings=timings, decoder_passes=passes), None)

    def _forced_sentences(
        self,
        src_ids: list[int],
        tokens: list[int],
        src_sentence: np.ndarray,
        tgt_sentence: np.ndarray,
        options: TraceOptions,
    ) -> Captured:
        """One forced pass over the sentences side by side, each attending only to itself."""
        sentences = sentences_of(src_sentence, tgt_sentence, self.device)
        src = pad_batch([src_ids], self.cfg.pad_id, self.device)
        tgt = pad_batch([decoder_ids(tokens, tgt_sentence, self.cfg.bos_id)], self.cfg.pad_id, self.device)
        capture = ActivationCache(with_qkv=options.with_qkv)
        with torch.inference_mode():
            memory = self.model.encode(src, capture, sentences)
            log_probs = self.model.decode(tgt, memory, src, capture, sentences=sentences)[0].log_softmax(dim=-1)
        return self.captured(capture, log_probs, options)

    def _sentence_records(
        self, sources: list[list[int]], options: TraceOptions, draft: Sequence[int] | None = None
    ) -> tuple[list[SentenceRecord], int]:
        """Each sentence's greedy translation and trace rows, remembered or decoded, and the decoder
        passes spent. One new sentence (typing in a paragraph) is decoded from its part of `draft`,
        the text's previous output (`sentence_draft`); several go in one batch, a repeated sentence
        once. The text's sentences become the most recently used."""
        keys = [remembered_key(ids, options) for ids in sources]
        unique = list(dict.fromkeys(keys))
        records = {key: self.remembered[key] for key in unique if key in self.remembered}
        new = [key for key in unique if key not in records]
        passes = 0
        with torch.inference_mode():
            if len(new) == 1:
                index = keys.index(new[0])
                before = [records[key].out_ids for key in keys[:index]]  # all remembered
                own = sentence_draft(list(draft or []), before, self.cfg.eos_id)
                records[new[0]], passes = self._greedy_record(sources[index], own, options)
            elif new:
                recorded, passes = greedy_decode_recorded(self.model, [list(key[0]) for key in new], options.decoding)
                for key, sentence in zip(new, recorded, strict=True):
                    records[key] = self._record(list(key[0]), sentence, options)
        for key in unique:
            self._remember(options, records[key])
        return [records[key] for key in keys], passes

    def _greedy_record(self, src_ids: list[int], draft: list[int], options: TraceOptions) -> tuple[SentenceRecord, int]:
        """One sentence decoded greedily from `draft` ([] for none), its rows captured as it goes."""
        src = pad_batch([src_ids], self.cfg.pad_id, self.device)
        capture = ActivationCache()
        memory = self.model.encode(src, capture)
        result = greedy_from_draft(self.model, src, draft, options.decoding, capture, memory)
        assert result.log_probs is not None  # a capture without q/k/v is filled as it goes
        captured = self.captured(capture, result.log_probs, options)
        return SentenceRecord(list(src_ids), result.tokens, captured.maps, captured.candidates), result.decoder_passes

    def _record(self, src_ids: list[int], sentence: RecordedSentence, options: TraceOptions) -> SentenceRecord:
        def maps(kind: str) -> np.ndarray:  # (L, H, queries, keys)
            layers = range(self.cfg.n_encoder_layers if kind == "enc_self" else self.cfg.n_decoder_layers)
            return to_numpy(torch.stack([sentence.maps[f"{cache_prefix(kind, layer)}.weights"] for layer in layers]))

        log_probs = suppressed_log_probs(self.model.rules, sentence.logits.log_softmax(dim=-1))
        return SentenceRecord(
            src_ids=list(src_ids),
            out_ids=list(sentence.tokens),
            maps={kind: maps(kind) for kind in ("enc_self", "dec_self", "cross")},
            candidates=top_k(log_probs, options.top_k, self.tokenizer),
        )

    def _decode_sentences(self, sources: list[list[int]], options: TraceOptions) -> tuple[list[list[int]], int, str]:
        """Output ids of each sentence, the decoder passes spent, and the Trace's decoding label.

        A forced prefix runs across sentences: a sentence's part of it ends with its </s> (or at its
        length limit), and the sentence it ends in continues greedily after it. The other sentences
        are decoded together (greedy ones remembered from an earlier keystroke are not)."""
        decoding, eos = options.decoding, self.cfg.eos_id
        outputs: list[list[int] | None] = [None] * len(sources)
        passes = 0
        prefix = list(options.forced_prefix)
        for i, source in enumerate(sources):
            if not prefix:
                break
            limit = decoding.max_length(len(source), self.cfg.max_positions)
            cut = min(prefix.index(eos) + 1 if eos in prefix else len(prefix), limit)
            forced, prefix = prefix[:cut], prefix[cut:]
            if forced[-1] == eos or len(forced) == limit:
                outputs[i] = forced
            else:
                src = pad_batch([source], self.cfg.pad_id, self.device)
                outputs[i] = greedy_decode(self.model, src, decoding, forced)[0]
                passes += len(outputs[i]) - len(forced)
        for i, output in enumerate(outputs):
            record = self.remembered.get(remembered_key(sources[i], options))
            if output is None and record is not None:
                outputs[i] = record.out_ids
        todo = [i for i, output in enumerate(outputs) if output is None]
        if todo:
            decoded, spent = decode_batch(self.model, [sources[i] for i in todo], decoding)
            passes += spent
            for i, output in zip(todo, decoded, strict=True):
                outputs[i] = output
        strategy = "greedy" if decoding.beam_size == 1 else f"beam {decoding.beam_size}"
        if options.forced_prefix:
            strategy = f"forced prefix of {len(options.forced_prefix)}"
        return [list(output or []) for output in outputs], passes, f"{strategy}, {len(sources)} sentences"

    def _run_one_stack(self, text: str, source: SourceIds, options: TraceOptions) -> Translation:
        """An encoder-only model fills the input's masks; a decoder-only one continues it (engine/one_stack.py)."""
        if self.cfg.shape == "encoder-only":
            fields = fill_masks(self.model, self.tokenizer, source.ids, options.top_k, options.with_qkv, self.device)
            beam = None
        else:
            fields, beam = continue_prompt(
                self.model,
                self.tokenizer,
                source.ids,
                options.decoding,
                options.top_k,
                options.with_qkv,
                self.device,
                list(options.forced_prefix),
            )
        trace = one_stack_trace(text, self.name, self.device, source.truncated, fields)
        tree = beam_tree(beam, options.decoding.beam_size, self.tokenizer.target_pieces) if beam is not None else None
        return Translation(trace, tree)

    def _decode(
        self,
        src: torch.Tensor,
        memory: torch.Tensor,
        options: TraceOptions,
        draft: Sequence[int] | None,
        capture: ActivationCache,
    ) -> _Decoded:
        """The output tokens by the strategy `options` asks for (inside inference mode)."""
        prefix = list(options.forced_prefix)
        tree = None
        if options.decoding.beam_size > 1:
            beam = beam_search(self.model, src, options.decoding, memory)
            tree = beam_tree(beam, options.decoding.beam_size, self.tokenizer.target_pieces)
            if not prefix:  # the best hypothesis; its maps come from the forced pass
                return _Decoded(
                    beam.hypotheses[0].tokens, None, len(beam.steps), f"beam {options.decoding.beam_size}", tree
                )
        if prefix:  # the user's tokens first, greedy after them
            tokens = greedy_decode(self.model, src, options.decoding, prefix, memory)[0]
            return _Decoded(tokens, None, len(tokens) - len(prefix), f"forced prefix of {len(prefix)}", tree)
        # no draft: an empty one, so the steps capture the trace
        result = greedy_from_draft(self.model, src, list(draft or []), options.decoding, capture, memory)
        return _Decoded(result.tokens, result.log_probs, result.decoder_passes, "greedy", None)

    def walkthrough(self, trace: Trace, kind: str, layer: int, head: int, query: int) -> Walkthrough:
        """One head's arithmetic for one query of `trace` (recorded by this model with q/k/v)."""
        return build_walkthrough(trace, head_parameters(self.model, kind, layer, head), kind, layer, head, query)

    def embedding_norms(self, input_ids: Sequence[int]) -> np.ndarray:
        """Length of each input piece's embedding × √d_model (× 1 without scale_embedding): what the
        positional row is added to. The input is the source, or a decoder-only model's sequence."""
        ids = torch.tensor([int(i) for i in input_ids], dtype=torch.long, device=self.device)  # (P,)
        table = self.model.tgt_embed if self.cfg.shape == "decoder-only" else self.model.src_embed
        with torch.inference_mode():
            rows = table(ids) * self.model.embed_scale  # (P, d)
        return rows.norm(dim=1).cpu().numpy().astype(np.float64)  # float32 on the device: MPS has no float64

    def captured(self, capture: ActivationCache, log_probs: torch.Tensor, options: TraceOptions) -> Captured:
        """What a forced pass recorded, as the Trace's arrays; log_probs (T, V) as the forced pass gave them."""
        cfg = self.cfg
        maps = {
            "enc_self": stack_maps(capture, "enc_self", cfg.n_encoder_layers),
            "dec_self": stack_maps(capture, "dec_self", cfg.n_decoder_layers),
            "cross": stack_maps(capture, "cross", cfg.n_decoder_layers),
        }
        candidates = top_k(suppressed_log_probs(self.model.rules, log_probs), options.top_k, self.tokenizer)
        return Captured(maps, candidates, qkv_of(capture) if options.with_qkv else None)

    def build_trace(
        self,
        text: str,
        source: SourceIds,
        tokens: list[int],
        captured: Captured,
        decoding: str,
        src_sentence: np.ndarray | None = None,
        tgt_sentence: np.ndarray | None = None,
    ) -> Trace:
        """The Trace of output `tokens` (y1 … yT) from its maps and candidates; the sentence arrays say
        which sentence each piece belongs to when the text had several."""
        if src_sentence is None or tgt_sentence is None:
            src_sentence, tgt_sentence = np.zeros(len(source.ids), np.int64), np.zeros(len(tokens), np.int64)
        decoder_input = decoder_ids(tokens, tgt_sentence, self.cfg.bos_id)
        return Trace(
            source_text=text,
            translation=" ".join(self.tokenizer.decode_target(ids) for ids in by_sentence(tokens, tgt_sentence)),
            model_name=self.name,
            src_ids=np.asarray(source.ids, dtype=np.int64),
            src_pieces=self.tokenizer.source_pieces(source.ids),
            tgt_ids=np.asarray(decoder_input, dtype=np.int64),
            tgt_pieces=self.tokenizer.target_pieces(decoder_input),
            out_ids=np.asarray(tokens, dtype=np.int64),
            out_pieces=self.tokenizer.target_pieces(tokens),
            **captured.maps,
            **captured.candidates,
            positional=to_numpy(self.model.position_table()[torch.from_numpy(positions_within(src_sentence))]),
            positions=self.cfg.positions,
            qkv=captured.qkv,
            timings={},
            device=str(self.device),
            decoding=decoding,
            loop_guard=self.model.rules.loop_guard is not None,
            truncated=source.truncated,
            src_sentence=src_sentence,
            tgt_sentence=tgt_sentence,
        )
