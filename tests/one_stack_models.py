"""Tiny BERT-like and GPT-2-like Translators on a character tokenizer, built in memory (no loader, no
download): traces of the two one-stack shapes for the engine's and the views' tests. Qt-free."""

from __future__ import annotations

from pathlib import Path

import torch

from engine.checkpoint import LoadedModel, ModelInfo
from engine.model import ModelConfig, Transformer
from engine.translator import Translator

MASK = "?"  # typed as '?', read as [MASK] (id 5)


class CharTokenizer:
    """One id per character; BERT's input is wrapped in [CLS] … [SEP] (ids 2, 3)."""

    src_vocab_size = tgt_vocab_size = 50

    def __init__(self, shape: str) -> None:
        self.specials = shape == "encoder-only"
        self.mask_id = 5 if self.specials else None

    def encode_source(self, text: str, alpha: float = 0.0) -> list[int]:
        ids = [5 if c == MASK else 6 + (ord(c) % 40) for c in text if not c.isspace()]
        return [2, *ids, 3] if self.specials else ids

    def encode_target(self, text: str, alpha: float = 0.0) -> list[int]:
        return self.encode_source(text)

    def source_pieces(self, ids) -> list[str]:
        return ["[MASK]" if i == 5 else f"p{i}" for i in ids]

    target_pieces = source_pieces

    def decode_target(self, ids) -> str:
        return " ".join(f"p{i}" for i in ids)


def one_stack_translator(shape: str, seed: int = 0) -> Translator:
    """A tiny random BERT-like (encoder-only, MLM head) or GPT-2-like (decoder-only, pre-norm)
    Translator with learned positions, on the character tokenizer above."""
    torch.manual_seed(seed)
    common = dict(
        src_vocab_size=50, tgt_vocab_size=50, d_model=16, n_heads=2, d_ff=32, max_positions=64,
        positions="learned", scale_embedding=False,
    )  # fmt: skip
    if shape == "encoder-only":
        cfg = ModelConfig(
            **common, n_encoder_layers=2, n_decoder_layers=0, type_vocab_size=2, embed_norm=True,
            mlm_transform=True, final_logits_bias=True, activation="gelu", norm_eps=1e-12,
        )  # fmt: skip
    else:
        cfg = ModelConfig(**common, n_encoder_layers=0, n_decoder_layers=3, norm="pre", activation="gelu_tanh")
    name = "tiny-bert" if shape == "encoder-only" else "tiny-gpt2"
    info = ModelInfo(name=name, source_language="en", target_language="en", source_tokenizer="-", target_tokenizer="-")
    loaded = LoadedModel(Transformer(cfg), CharTokenizer(shape), info, Path("."), torch.device("cpu"))
    return Translator(loaded)
