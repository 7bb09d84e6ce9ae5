"""A tiny random-weight GPT-2 folder built on the spot with transformers and tokenizers, offline:
the reference the GPT-2 loader is compared against.

`build_gpt2` trains a byte-level BPE with the tokenizers package on a few hundred English sentences
(every byte in its alphabet, so accents and emoji encode as in GPT-2), writes vocab.json and
merges.txt from it, and saves a GPT2LMHeadModel (2 layers, 4 heads, 32 wide, 64 positions, random
weights) with save_pretrained. The reference tokenizer is transformers' GPT2TokenizerFast built
over a tokenizers object read back from those two files.
"""

from __future__ import annotations

import itertools
import os
import random
from dataclasses import dataclass
from pathlib import Path

from model_fixtures import ENGLISH

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

END = "<|endoftext|>"
EXTRA = [
    "The cat has been sleeping on the couch since this morning.",
    "Zoë's café serves crème brûlée and naïve jalapeño soup 🙂",
    "  Two spaces lead here,\tand a tab\nand a new line.",
]


@dataclass
class GPT2Folder:
    directory: Path
    reference: object  # transformers' GPT2LMHeadModel, eval mode, eager attention
    tokenizer: object  # transformers' GPT2TokenizerFast of the folder's files


def corpus(seed: int = 0) -> list[str]:
    """A few hundred English sentences recombined from the tiny lists, plus accents, emoji, tabs."""
    rng = random.Random(seed)
    lines = [f"{a.capitalize()} and {b}{rng.choice('.?!')}" for a, b in itertools.product(ENGLISH, repeat=2)]
    lines += [f"{a.capitalize()}, but {b}." for a, b in itertools.product(ENGLISH[:6], ENGLISH[4:])]
    return lines + EXTRA


def write_tokenizer(directory: Path, vocab_size: int = 400) -> object:
    """vocab.json and merges.txt of a byte-level BPE trained here; returns transformers' tokenizer of them."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[END],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(corpus(), trainer)
    bpe.model.save(str(directory))  # vocab.json, merges.txt
    return reference_tokenizer(directory)


def reference_tokenizer(directory: Path) -> object:
    """transformers' GPT2TokenizerFast over the folder's vocab.json and merges.txt, read by tokenizers."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import GPT2TokenizerFast

    backend = Tokenizer(models.BPE.from_file(str(directory / "vocab.json"), str(directory / "merges.txt")))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    return GPT2TokenizerFast(tokenizer_object=backend, eos_token=END, bos_token=END, unk_token=END)


def randomise(model, seed: int, scale: float = 0.4) -> None:
    """Weights large enough that attention maps and outputs are far from uniform and from each other."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            noise = torch.randn(parameter.shape, generator=generator) * scale
            is_gain = (".ln_" in name or "ln_f" in name) and name.endswith("weight")
            parameter.copy_(1.0 + 0.2 * noise if is_gain else noise)


def build_gpt2(directory: Path, seed: int = 0, **config) -> GPT2Folder:
    """A random-weight GPT2LMHeadModel folder as save_pretrained writes it; the reference loaded back from disk."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    directory.mkdir(parents=True, exist_ok=True)
    tokenizer = write_tokenizer(directory)
    end = tokenizer.convert_tokens_to_ids(END)
    settings = dict(n_layer=2, n_head=4, n_embd=32, n_positions=64, bos_token_id=end, eos_token_id=end)
    gpt2_config = GPT2Config(vocab_size=len(tokenizer), **{**settings, **config})
    torch.manual_seed(seed)
    model = GPT2LMHeadModel(gpt2_config)
    randomise(model, seed)
    model.save_pretrained(str(directory), safe_serialization=True)
    reference = GPT2LMHeadModel.from_pretrained(str(directory), attn_implementation="eager").eval()
    return GPT2Folder(directory, reference, tokenizer)
