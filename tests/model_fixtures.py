"""Tiny models and corpora built on the spot, so the suite needs neither the training data
nor a shipped model. Imported by tests/conftest.py and by tests that build their own models."""

from __future__ import annotations

import itertools
import random
from pathlib import Path

FRENCH = [
    "je suis étudiant",
    "tu es mon ami",
    "il mange une pomme",
    "nous aimons le chat",
    "elle lit un livre",
    "le chien dort",
    "la maison est grande",
    "vous parlez français",
    "ils boivent du café",
    "je veux partir",
]
ENGLISH = [
    "i am a student",
    "you are my friend",
    "he eats an apple",
    "we love the cat",
    "she reads a book",
    "the dog sleeps",
    "the house is big",
    "you speak french",
    "they drink coffee",
    "i want to leave",
]


def tiny_corpus() -> list[str]:
    """A few hundred short lines mixing both languages, enough for a 100-piece vocabulary."""
    rng = random.Random(0)
    lines = []
    for a, b in itertools.product(FRENCH + ENGLISH, repeat=2):
        if rng.random() < 0.3:
            lines.append(f"{a.capitalize()}, {b}.")
    return lines + [s.capitalize() + "." for s in FRENCH + ENGLISH]


def tiny_pairs() -> list[tuple[str, str]]:
    """200 French–English pairs built from the lists above, for training tests."""
    pairs = [
        (f"{a.capitalize()} et {b}.", f"{x.capitalize()} and {y}.")
        for (a, x), (b, y) in itertools.product(zip(FRENCH, ENGLISH, strict=True), repeat=2)
    ]
    pairs += [
        (f"{a.capitalize()}, {b} ?", f"{x.capitalize()}, {y}?")
        for (a, x), (b, y) in itertools.product(zip(FRENCH, ENGLISH, strict=True), repeat=2)
    ]
    return pairs


def build_tiny_model(directory: Path, seed: int = 0, **overrides) -> Path:
    """Write a random-weight model directory (config.json, model.safetensors, spm.model)."""
    import torch

    from engine.checkpoint import ModelInfo, save_model
    from engine.model import ModelConfig, Transformer
    from engine.tokenizer import train_sentencepiece

    directory.mkdir(parents=True, exist_ok=True)
    spm_path = train_sentencepiece(tiny_corpus(), directory / "spm", vocab_size=100)
    sizes = dict(
        src_vocab_size=100,
        tgt_vocab_size=100,
        d_model=32,
        n_heads=4,
        d_ff=64,
        n_encoder_layers=2,
        n_decoder_layers=3,
        max_positions=64,
        dropout=0.0,
    )
    sizes.update(overrides)
    torch.manual_seed(seed)
    model = Transformer(ModelConfig(**sizes))
    info = ModelInfo(
        name=directory.name,
        source_language="fr",
        target_language="en",
        source_tokenizer=spm_path.name,
        target_tokenizer=spm_path.name,
    )
    save_model(model, directory, info)
    return directory
