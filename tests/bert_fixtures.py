"""Tiny random-weight BERT folders built on the spot with transformers and tokenizers, offline: the
reference the BERT loader is compared against.

`build_bert` trains a WordPiece vocabulary with the tokenizers package on a few hundred English
sentences (lower-cased, accents stripped, as bert-base-uncased), writes vocab.txt and
tokenizer_config.json, and saves a BertForMaskedLM (2 layers, 4 heads, 32 wide, 64 positions,
random weights) with save_pretrained; `head=False` saves a BertModel instead, which has no MLM head.
The reference tokenizer is transformers' BertTokenizerFast reading the folder itself.

`BREAKERS` damage a copy of a good folder, each in one way, and name a fragment of the one-line
ModelLoadError it must give (tests/engine/test_bert.py).
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

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
EXTRA = [
    "The cat has been sleeping on the couch since this morning.",
    "Zoë's café serves crème brûlée and naïve jalapeño soup!",
    "Playing, played, plays: the players play (again).",
    "Is it 3 o'clock? Yes -- it's 3:15; don't be late...",
]


@dataclass
class BertFolder:
    directory: Path
    reference: object  # transformers' BertForMaskedLM (or BertModel), eval mode, eager attention
    tokenizer: object  # transformers' BertTokenizerFast of the folder's files


def corpus(seed: int = 0) -> list[str]:
    """A few hundred English sentences recombined from the tiny lists, plus accents and punctuation."""
    rng = random.Random(seed)
    lines = [f"{a.capitalize()} and {b}{rng.choice('.?!')}" for a, b in itertools.product(ENGLISH, repeat=2)]
    lines += [f"{a.capitalize()}, but {b}." for a, b in itertools.product(ENGLISH[:6], ENGLISH[4:])]
    return lines + EXTRA * 3


def write_tokenizer(directory: Path, lowercase: bool = True, vocab_size: int = 300) -> object:
    """vocab.txt and tokenizer_config.json of a WordPiece trained here; returns transformers' tokenizer of them."""
    from tokenizers import BertWordPieceTokenizer

    wordpiece = BertWordPieceTokenizer(lowercase=lowercase, strip_accents=None)
    wordpiece.train_from_iterator(corpus(), vocab_size=vocab_size, special_tokens=SPECIALS, show_progress=False)
    wordpiece.save_model(str(directory))  # vocab.txt
    settings = {"do_lower_case": lowercase, "tokenizer_class": "BertTokenizer", "model_max_length": 64}
    (directory / "tokenizer_config.json").write_text(json.dumps(settings))
    return reference_tokenizer(directory)


def reference_tokenizer(directory: Path) -> object:
    """transformers' BertTokenizerFast reading vocab.txt and tokenizer_config.json itself."""
    from transformers import BertTokenizerFast

    return BertTokenizerFast.from_pretrained(str(directory))


def randomise(model, seed: int, scale: float = 0.4) -> None:
    """Weights large enough that attention maps and predictions are far from uniform and from each other."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            noise = torch.randn(parameter.shape, generator=generator) * scale
            is_gain = "LayerNorm" in name and name.endswith("weight")
            parameter.copy_(1.0 + 0.2 * noise if is_gain else noise)


def build_bert(directory: Path, seed: int = 0, head: bool = True, **config) -> BertFolder:
    """A random-weight BertForMaskedLM (or, without `head`, BertModel) folder as save_pretrained
    writes it; the reference loaded back from disk."""
    import torch
    from transformers import BertConfig, BertForMaskedLM, BertModel

    directory.mkdir(parents=True, exist_ok=True)
    tokenizer = write_tokenizer(directory)
    settings = dict(num_hidden_layers=2, num_attention_heads=4, hidden_size=32, intermediate_size=64)
    settings |= dict(max_position_embeddings=64, pad_token_id=tokenizer.pad_token_id)
    bert_config = BertConfig(vocab_size=len(tokenizer), **{**settings, **config})
    kind = BertForMaskedLM if head else BertModel
    torch.manual_seed(seed)
    model = kind(bert_config)
    randomise(model, seed)
    model.save_pretrained(str(directory), safe_serialization=True)
    reference = kind.from_pretrained(str(directory), attn_implementation="eager").eval()
    return BertFolder(directory, reference, tokenizer)


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


def _vocab_lines(d: Path, edit) -> None:
    lines = (d / "vocab.txt").read_text(encoding="utf-8").splitlines()
    (d / "vocab.txt").write_text("\n".join(edit(lines)) + "\n", encoding="utf-8")


def break_a_config_that_lies_about_size(d: Path) -> str:
    _config(d, num_hidden_layers=100_000)  # would allocate gigabytes before any shape is compared
    return "but model.safetensors holds only"


def break_missing_vocab(d: Path) -> str:
    (d / "vocab.txt").unlink()
    return "missing tokenizer file vocab.txt"


def break_vocab_not_utf8(d: Path) -> str:
    (d / "vocab.txt").write_bytes(b"[PAD]\n[UNK]\n\xff\xfe\n")
    return "vocab.txt: not UTF-8 text"


def break_empty_vocab(d: Path) -> str:
    (d / "vocab.txt").write_text("")
    return "vocab.txt: no pieces"


def break_vocab_without_cls(d: Path) -> str:
    _vocab_lines(d, lambda lines: ["[unused]" if line == "[CLS]" else line for line in lines])
    return "vocab.txt: has no '[CLS]' (cls_token)"


def break_tokenizer_config_flag(d: Path) -> str:
    (d / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": "yes"}))
    return "tokenizer_config.json: do_lower_case must be true, false or null, got 'yes'"


def break_relative_positions(d: Path) -> str:
    _config(d, position_embedding_type="relative_key_query")
    return "position_embedding_type 'relative_key_query' is not supported"


def break_decoder(d: Path) -> str:
    _config(d, is_decoder=True)
    return "is_decoder true (a causal BERT decoder) is not supported"


def break_cross_attention(d: Path) -> str:
    _config(d, add_cross_attention=True)
    return "add_cross_attention true"


def break_untied_output(d: Path) -> str:
    _config(d, tie_word_embeddings=False)
    return "tie_word_embeddings false"


def break_activation(d: Path) -> str:
    _config(d, hidden_act="quick_gelu")
    return "hidden_act 'quick_gelu' is not supported"


def break_heads(d: Path) -> str:
    _config(d, num_attention_heads=5)
    return "config.json: invalid model description (d_model 32 is not divisible by n_heads 5)"


def break_a_float_count(d: Path) -> str:
    _config(d, num_hidden_layers=2.0)
    return "config.json: num_hidden_layers must be a positive whole number, got 2.0"


def break_epsilon(d: Path) -> str:
    _config(d, layer_norm_eps=0)
    return "config.json: layer_norm_eps must be a positive number, got 0"


def break_positions(d: Path) -> str:
    _config(d, max_position_embeddings=100_000)
    return "max_position_embeddings 100000 is beyond the 16384 supported"


def break_small_vocab(d: Path) -> str:
    _config(d, vocab_size=50)
    return "vocab_size 50 is smaller than vocab.txt's"


def break_large_vocab(d: Path) -> str:
    config = json.loads((d / "config.json").read_text())
    _config(d, vocab_size=config["vocab_size"] + 7)
    return f"the config implies [{config['vocab_size'] + 7}"


def break_layer_count(d: Path) -> str:
    _config(d, num_hidden_layers=3)
    return "missing tensor(s) bert.encoder.layer.2."


def break_width(d: Path) -> str:
    _config(d, hidden_size=48, num_attention_heads=4)
    return ", 32], the config implies ["


def break_half_a_head(d: Path) -> str:
    _tensors(d, lambda t: t.pop("cls.predictions.transform.dense.weight"))
    return "missing tensor(s) cls.predictions.transform.dense.weight"


def break_untied_decoder_tensor(d: Path) -> str:
    embeddings = "bert.embeddings.word_embeddings.weight"
    _tensors(d, lambda t: t.update({"cls.predictions.decoder.weight": t[embeddings] + 1.0}))
    return "cls.predictions.decoder.weight differs from embeddings.word_embeddings.weight"


def break_unknown_tensor(d: Path) -> str:
    _tensors(
        d,
        lambda t: t.update(
            {"bert.encoder.layer.0.attention.self.distance_embedding.weight": t["cls.predictions.bias"].clone()}
        ),
    )
    return "unexpected tensor(s) bert.encoder.layer.0.attention.self.distance_embedding.weight"


def break_nan(d: Path) -> str:
    def poison(tensors: dict) -> None:
        tensors["bert.encoder.layer.1.intermediate.dense.weight"][0, 0] = float("nan")

    _tensors(d, poison)
    return "tensor bert.encoder.layer.1.intermediate.dense.weight contains NaN"


BREAKERS = {name.removeprefix("break_"): f for name, f in globals().items() if name.startswith("break_")}
