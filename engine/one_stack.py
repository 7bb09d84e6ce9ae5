"""Traces of the two halves of the family tree: an encoder-only model (BERT) fills the [MASK]s of
its input, a decoder-only model (GPT-2) continues a prompt. The Trace contract for both is in
engine/trace.py; `Translator.run` sends a model here by its `cfg.shape`.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from engine.architecture import cache_prefix
from engine.beam import BeamResult, beam_search
from engine.decoding import DecodingOptions, greedy_decode
from engine.model import ActivationCache, Transformer
from engine.tokenizer import TextTokenizer
from engine.trace import Trace

DEFAULT_NEW_TOKENS = 20  # a GPT-2 continuation when the options do not say how long


def to_numpy(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().to("cpu", torch.float32).numpy()


def stack_maps(capture: ActivationCache, kind: str, n_layers: int) -> np.ndarray:
    """(L, H, queries, keys) of the first batch row, from every layer of `kind`."""
    layers = [capture[f"{cache_prefix(kind, i)}.weights"][0] for i in range(n_layers)]
    return to_numpy(torch.stack(layers))


def empty_maps(n_heads: int, queries: int, keys: int) -> np.ndarray:
    return np.zeros((0, n_heads, queries, keys), dtype=np.float32)


def qkv_of(capture: ActivationCache) -> dict[str, np.ndarray]:
    return {name: to_numpy(t[0]) for name, t in capture.tensors.items() if not name.endswith(".weights")}


def top_k(log_probs: torch.Tensor, k: int, tokenizer: TextTokenizer) -> dict:
    """The Trace's candidate fields from log-probabilities (G, V)."""
    k = min(k, log_probs.size(-1))
    top_log_probs, top_ids = log_probs.topk(k, dim=-1)  # (G, k)
    ids = top_ids.tolist()
    return {
        "topk_ids": np.asarray(ids, dtype=np.int64).reshape(len(ids), k),
        "topk_probs": to_numpy(top_log_probs.exp()).reshape(len(ids), k),
        "topk_pieces": [tokenizer.target_pieces(row) for row in ids],
    }


def fill_masks(
    model: Transformer,
    tokenizer: TextTokenizer,
    ids: list[int],
    top: int,
    with_qkv: bool,
    device: torch.device,
) -> dict:
    """Trace fields of an encoder-only pass over `ids`: every map, and for each [MASK] (when the
    model has its MLM head) the best filler and the `top` candidates."""
    cfg = model.cfg
    src = torch.tensor([ids], dtype=torch.long, device=device)  # (1, S)
    capture = ActivationCache(with_qkv=with_qkv)
    mask_id = tokenizer.mask_id
    masks = [i for i, t in enumerate(ids) if t == mask_id] if cfg.lm_head and mask_id is not None else []
    with torch.inference_mode():
        memory = model.encode(src, capture)  # (1, S, d)
        log_probs = model.mlm_logits(memory[:, masks])[0].log_softmax(dim=-1)  # (G, V)
    fillers = log_probs.argmax(dim=-1).tolist() if masks else []
    filled = list(ids)
    for position, token in zip(masks, fillers, strict=True):
        filled[position] = token
    S, H = len(ids), cfg.n_heads
    return {
        "translation": tokenizer.decode_target(filled),
        "src_ids": np.asarray(ids, dtype=np.int64),
        "src_pieces": tokenizer.source_pieces(ids),
        "tgt_ids": np.zeros(0, dtype=np.int64),
        "tgt_pieces": [],
        "out_ids": np.asarray(fillers, dtype=np.int64),
        "out_pieces": tokenizer.target_pieces(fillers),
        "out_positions": np.asarray(masks, dtype=np.int64),
        "enc_self": stack_maps(capture, "enc_self", cfg.n_encoder_layers),
        "dec_self": empty_maps(H, 0, 0),
        "cross": empty_maps(H, 0, S),
        **top_k(log_probs, top, tokenizer),
        "positional": to_numpy(model.position_table()[:S]),
        "positions": cfg.positions,
        "qkv": qkv_of(capture) if with_qkv else None,
        "decoding": f"fill {len(masks)} mask{'s' if len(masks) != 1 else ''}" if masks else "encode",
        "decoder_passes": 0,
    }


def continue_prompt(
    model: Transformer,
    tokenizer: TextTokenizer,
    prompt: list[int],
    options: DecodingOptions,
    top: int,
    with_qkv: bool,
    device: torch.device,
    forced: list[int] | None = None,
) -> tuple[dict, BeamResult | None]:
    """Trace fields of a decoder-only model continuing `prompt` greedily (or by beam search), and
    the beam result when there was one. The maps come from one pass over prompt + output.

    `forced` (new tokens the user chose) starts the continuation; greedy decoding goes on after it,
    as a translator does after a forced prefix. The new-token limit counts the forced ones."""
    cfg = model.cfg
    if options.max_new_tokens is None:
        options = replace(options, max_new_tokens=DEFAULT_NEW_TOKENS)
    forced = list(forced or [])
    src = torch.tensor([prompt], dtype=torch.long, device=device)  # only its length is read
    beam = None
    with torch.inference_mode():
        if options.beam_size > 1:  # the search tree is shown even when the user forced tokens
            beam = beam_search(model, src, options, None, start=prompt)
        if beam is None or forced:
            generated = greedy_decode(model, src, options, prefix=forced, start=prompt)[0]
        else:
            generated = beam.hypotheses[0].tokens
        sequence = prompt + generated[:-1]  # what the model read: the last output is never fed back
        capture = ActivationCache(with_qkv=with_qkv)
        logits = model.decode(torch.tensor([sequence], device=device), None, src, capture)[0]  # (T, V)
    T, G = len(sequence), len(generated)
    log_probs = logits[T - G :].log_softmax(dim=-1)  # (G, V): the rows that chose the outputs
    label = (
        f"forced prefix of {len(forced)}" if forced else f"beam {options.beam_size}" if beam is not None else "greedy"
    )
    searched = len(beam.steps) if beam is not None else 0  # decoder passes: the beam's steps, the greedy ones
    if beam is None or forced:
        searched += max(1, G - len(forced))  # one for the prompt and forced tokens, one per token after
    fields = {
        "translation": tokenizer.decode_target(generated),
        "src_ids": np.zeros(0, dtype=np.int64),
        "src_pieces": [],
        "tgt_ids": np.asarray(sequence, dtype=np.int64),
        "tgt_pieces": tokenizer.target_pieces(sequence),
        "out_ids": np.asarray(generated, dtype=np.int64),
        "out_pieces": tokenizer.target_pieces(generated),
        "out_positions": np.arange(T - G, T, dtype=np.int64),
        "enc_self": empty_maps(cfg.n_heads, 0, 0),
        "dec_self": stack_maps(capture, "dec_self", cfg.n_decoder_layers),
        "cross": empty_maps(cfg.n_heads, T, 0),
        **top_k(log_probs, top, tokenizer),
        "positional": to_numpy(model.position_table()[:T]),
        "positions": cfg.positions,
        "qkv": qkv_of(capture) if with_qkv else None,
        "decoding": f"{label}, {G} new token{'s' if G != 1 else ''}",
        "decoder_passes": searched + 1,  # and the pass that captured the maps
    }
    return fields, beam


def one_stack_trace(text: str, model_name: str, device: torch.device, truncated: bool, fields: dict) -> Trace:
    return Trace(source_text=text, model_name=model_name, device=str(device), truncated=truncated, **fields)
