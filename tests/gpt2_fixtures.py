"""A tiny random-weight GPT-2 folder built on the spot with transformers and tokenizers, offline:
the reference the GPT-2 loader is compared against.

`build_gpt2` trains a byte-level BPE with the tokenizers package on a few hundred English sentences
(every byte in its alphabet, so accents and emoji encode as in GPT-2), writes vocab.json and
merges.txt from it, and saves a GPT2LMHeadModel (2 layers, 4 heads, 32 wide, 64 positions, random
weights) with save_pretrained. The reference tokenizer is transformers' GPT2TokenizerFast built
over a tokenizers object read back from those two files.

`BREAKERS` damage a copy of a good folder, each in one way, and name a fragment of the one-line
ModelLoadError it must give (tests/engine/test_gpt2.py).
"""

from __future__ import annotations

import itertools
import json
import os
import random
from dataclasses import dataclass
from pathlib import Path

from broken_hf_weights import (  # noqa: F401 (collected into BREAKERS)
    break_bin_only,
    break_missing_weights,
    break_sharded,
    break_truncated_weights,
)
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


# --- broken folders: each `break_*` damages a copy of a good folder in place and returns a fragment
# of the one-line ModelLoadError it must give ---

WEIGHTS = "model.safetensors"


def _config(d: Path, **changes) -> None:
    config = json.loads((d / "config.json").read_text())
    config.update(changes)
    (d / "config.json").write_text(json.dumps(config))


def _tensors(d: Path, edit) -> None:
    from safetensors.torch import load_file, save_file

    tensors = load_file(d / WEIGHTS)
    edit(tensors)
    save_file(tensors, d / WEIGHTS)


def _vocab(d: Path, edit) -> None:
    vocab = json.loads((d / "vocab.json").read_text())
    edit(vocab)
    (d / "vocab.json").write_text(json.dumps(vocab))


def break_a_config_that_lies_about_size(d: Path) -> str:
    _config(d, n_layer=100_000)  # would allocate gigabytes before any shape is compared
    return "but model.safetensors holds only"


def break_missing_merges(d: Path) -> str:
    (d / "merges.txt").unlink()
    return "missing tokenizer file merges.txt"


def break_missing_vocab(d: Path) -> str:
    (d / "vocab.json").unlink()
    return "missing tokenizer file vocab.json"


def break_vocab_not_json(d: Path) -> str:
    (d / "vocab.json").write_text('{"a": 1,')
    return "vocab.json: not valid JSON"


def break_vocab_a_list(d: Path) -> str:
    (d / "vocab.json").write_text('["a", "b"]')
    return "vocab.json: not a JSON object"


def break_vocab_bad_id(d: Path) -> str:
    _vocab(d, lambda v: v.update({"Ġthe": "seven"}))
    return "vocab.json: piece 'Ġthe' has id 'seven'"


def break_vocab_without_end_token(d: Path) -> str:
    _vocab(d, lambda v: v.pop(END))
    return "vocab.json: no piece has the end-of-text id 0"


def break_merges_line(d: Path) -> str:
    with (d / "merges.txt").open("a") as handle:
        handle.write("onlyonepiece\n")
    return "is not two pieces separated by a space: 'onlyonepiece'"


def break_merges_unknown_piece(d: Path) -> str:
    (d / "merges.txt").write_text("#version: 0.2\nzz qq\n")
    return "vocab.json and merges.txt do not agree"


def break_merges_not_utf8(d: Path) -> str:
    (d / "merges.txt").write_bytes(b"#version: 0.2\n\xff\xfe a\n")
    return "merges.txt: not UTF-8 text"


def break_no_attention_scale(d: Path) -> str:
    _config(d, scale_attn_weights=False)
    return "scale_attn_weights false (attention without the 1/√d_k scale) is not supported"


def break_inverse_layer_scale(d: Path) -> str:
    _config(d, scale_attn_by_inverse_layer_idx=True)
    return "scale_attn_by_inverse_layer_idx true"


def break_cross_attention(d: Path) -> str:
    _config(d, add_cross_attention=True)
    return "add_cross_attention true"


def break_untied_head(d: Path) -> str:
    _config(d, tie_word_embeddings=False)
    return "tie_word_embeddings false"


def break_activation(d: Path) -> str:
    _config(d, activation_function="quick_gelu")
    return "activation_function 'quick_gelu' is not supported"


def break_heads(d: Path) -> str:
    _config(d, n_head=5)
    return "config.json: invalid model description (d_model 32 is not divisible by n_heads 5)"


def break_layer_count(d: Path) -> str:
    _config(d, n_layer=3)
    return "missing tensor(s) transformer.h.2."


def break_width(d: Path) -> str:
    _config(d, n_embd=48, n_head=4)
    return "has shape [400, 32], the config implies [400, 48]"


def break_a_float_count(d: Path) -> str:
    _config(d, n_layer=2.0)
    return "config.json: n_layer must be a positive whole number, got 2.0"


def break_small_vocab(d: Path) -> str:
    _config(d, vocab_size=300, eos_token_id=0, bos_token_id=0)
    return "vocab_size 300 is smaller than the tokenizer's 400"


def break_end_token_outside(d: Path) -> str:
    _config(d, eos_token_id=400)
    return "eos_token_id 400 is outside the vocabulary of 400"


def break_positions(d: Path) -> str:
    _config(d, n_positions=100_000)
    return "n_positions 100000 is beyond the 16384 supported"


def break_untied_head_tensor(d: Path) -> str:
    _tensors(d, lambda t: t.update({"lm_head.weight": t["transformer.wte.weight"] + 1.0}))
    return "lm_head.weight differs from the token embeddings wte"


def break_unknown_tensor(d: Path) -> str:
    _tensors(d, lambda t: t.update({"transformer.h.0.attn.rotary": t["transformer.ln_f.bias"].clone()}))
    return "unexpected tensor(s) transformer.h.0.attn.rotary"


def break_nan(d: Path) -> str:
    def poison(tensors: dict) -> None:
        tensors["transformer.h.1.mlp.c_fc.weight"][0, 0] = float("nan")

    _tensors(d, poison)
    return "tensor transformer.h.1.mlp.c_fc.weight contains NaN"


BREAKERS = {name.removeprefix("break_"): f for name, f in globals().items() if name.startswith("break_")}
