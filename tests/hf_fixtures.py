"""Tiny random-weight Hugging Face translation models built on the spot with transformers, offline:
the reference our Marian loader is compared against. Reused by tests and benchmarks.

`build_marian` trains a small SentencePiece model per side on a few hundred sentences, writes
vocab.json the way opus-mt folders number pieces (</s> 0, <unk> 1, every piece of both sides, <pad>
last), and saves a MarianMTModel with random weights (final_logits_bias non-zero) through
save_pretrained. `build_prenorm_marian` saves a Pegasus model, which is Marian's layout with
LayerNorm before each sublayer and at the end of each stack, and rewrites its config.json as a
Marian config with ``normalize_before: true``: transformers' Pegasus is then the reference.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path

from model_fixtures import ENGLISH, FRENCH

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

SENTENCES = ["Le chat dort.", "Je suis étudiant, tu es mon ami.", "Nous aimons le chien ?", "Zoë mange 3 pommes!"]


@dataclass
class HFModel:
    directory: Path
    reference: object  # a transformers model, in eval mode, eager attention
    tokenizer: object  # transformers' MarianTokenizer of the folder


def side_corpus(lines: list[str], seed: int) -> list[str]:
    """A few hundred sentences of one language, recombined from the short lines."""
    rng = random.Random(seed)
    out = [f"{a.capitalize()}, {b}{rng.choice('.?!')}" for a, b in itertools.product(lines, repeat=2)]
    return out + [line.capitalize() + "." for line in lines]


def train_spm(lines: list[str], prefix: Path, vocab_size: int) -> Path:
    import sentencepiece as spm

    spm.SentencePieceTrainer.Train(
        sentence_iterator=iter(lines),
        model_prefix=str(prefix),
        vocab_size=vocab_size,
        model_type="unigram",
        character_coverage=1.0,
        hard_vocab_limit=False,
        minloglevel=2,
    )
    return prefix.with_suffix(".model")


def write_tokenizer(
    directory: Path,
    spm_vocab: int = 80,
    lines: tuple[list[str], list[str]] | None = None,
    vocab_total: int | None = None,
) -> object:
    """source.spm, target.spm, vocab.json and tokenizer_config.json; returns transformers' tokenizer.

    `lines` (source, target) default to the tiny corpora; `vocab_total` pads vocab.json with unused
    pieces up to that size (a benchmark's model of a given vocabulary)."""
    import sentencepiece as spm
    from transformers import MarianTokenizer

    work = directory / "spm-work"
    work.mkdir(parents=True, exist_ok=True)
    source_lines, target_lines = lines or (side_corpus(FRENCH, 1), side_corpus(ENGLISH, 2))
    source = train_spm(source_lines, work / "source", spm_vocab)
    target = train_spm(target_lines, work / "target", spm_vocab)
    vocab = {"</s>": 0, "<unk>": 1}
    for path in (source, target):
        processor = spm.SentencePieceProcessor(model_file=str(path))
        for i in range(processor.GetPieceSize()):
            if not (processor.IsControl(i) or processor.IsUnknown(i)):
                vocab.setdefault(processor.IdToPiece(i), len(vocab))
    while vocab_total is not None and len(vocab) < vocab_total - 1:
        vocab[f"<unused{len(vocab)}>"] = len(vocab)
    vocab["<pad>"] = len(vocab)
    (work / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Recommended: pip install sacremoses" (only its normalize() uses it)
        tokenizer = MarianTokenizer(
            str(source), str(target), str(work / "vocab.json"), source_lang="fr", target_lang="en"
        )
        tokenizer.save_pretrained(str(directory))
        shutil.rmtree(work)
        return MarianTokenizer.from_pretrained(str(directory))


def randomise(model, seed: int, scale: float = 0.35) -> None:
    """Weights large enough that attention maps and outputs are far from uniform; a non-zero
    final_logits_bias, so that a loader that drops it fails."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "embed_positions" in name:
                continue
            noise = torch.randn(parameter.shape, generator=generator) * scale
            parameter.copy_(1.0 + 0.2 * noise if "layer_norm" in name and name.endswith("weight") else noise)
        model.final_logits_bias.copy_(torch.randn(model.final_logits_bias.shape, generator=generator))


def generation_settings(model, pad: int, max_length: int, num_beams: int) -> None:
    config = model.generation_config
    config.bad_words_ids = [[pad]]
    config.max_length = max_length
    config.num_beams = num_beams
    config.decoder_start_token_id = pad
    config.pad_token_id = pad
    config.eos_token_id = 0
    config.forced_eos_token_id = 0


def build_marian(
    directory: Path,
    seed: int = 0,
    activation: str = "swish",
    shared: bool = True,
    tied: bool = True,
    max_length: int = 24,
    num_beams: int = 1,
    sizes: dict | None = None,
    tokenizer_options: dict | None = None,
) -> HFModel:
    """A random-weight MarianMTModel folder as save_pretrained writes it; the reference loaded back from disk."""
    import torch
    from transformers import MarianConfig, MarianMTModel

    directory.mkdir(parents=True, exist_ok=True)
    tokenizer = write_tokenizer(directory, **(tokenizer_options or {}))
    pad = tokenizer.pad_token_id
    dims = {"d_model": 32, "heads": 4, "ffn": 64, "layers": 2, "positions": 64, **(sizes or {})}
    config = MarianConfig(
        vocab_size=len(tokenizer.encoder),
        decoder_vocab_size=len(tokenizer.encoder),
        d_model=dims["d_model"],
        encoder_layers=dims["layers"],
        decoder_layers=dims["layers"],
        encoder_attention_heads=dims["heads"],
        decoder_attention_heads=dims["heads"],
        encoder_ffn_dim=dims["ffn"],
        decoder_ffn_dim=dims["ffn"],
        max_position_embeddings=dims["positions"],
        activation_function=activation,
        scale_embedding=True,
        share_encoder_decoder_embeddings=shared,
        tie_word_embeddings=tied,
        pad_token_id=pad,
        decoder_start_token_id=pad,
        eos_token_id=0,
        forced_eos_token_id=0,
    )
    torch.manual_seed(seed)
    model = MarianMTModel(config)
    randomise(model, seed)
    generation_settings(model, pad, max_length, num_beams)
    model.save_pretrained(str(directory))
    reference = MarianMTModel.from_pretrained(str(directory), attn_implementation="eager").eval()
    return HFModel(directory, reference, tokenizer)


def build_prenorm_marian(directory: Path, seed: int = 0, activation: str = "relu", max_length: int = 24) -> HFModel:
    """A Marian folder with normalize_before: true, whose weights and reference are a Pegasus model's."""
    import torch
    from transformers import PegasusConfig, PegasusForConditionalGeneration

    directory.mkdir(parents=True, exist_ok=True)
    tokenizer = write_tokenizer(directory)
    pad = tokenizer.pad_token_id
    shared = dict(
        vocab_size=len(tokenizer.encoder),
        d_model=32,
        encoder_layers=2,
        decoder_layers=2,
        encoder_attention_heads=4,
        decoder_attention_heads=4,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        max_position_embeddings=64,
        activation_function=activation,
        scale_embedding=True,
        pad_token_id=pad,
        decoder_start_token_id=pad,
        eos_token_id=0,
        forced_eos_token_id=0,
    )
    torch.manual_seed(seed)
    model = PegasusForConditionalGeneration(PegasusConfig(**shared))
    model.config._attn_implementation = "eager"
    randomise(model, seed)
    generation_settings(model, pad, max_length, 1)
    model.save_pretrained(str(directory))
    marian = {"model_type": "marian", "architectures": ["MarianMTModel"], "normalize_before": True, **shared}
    (directory / "config.json").write_text(json.dumps(marian, indent=2))
    return HFModel(directory, model.eval(), tokenizer)
