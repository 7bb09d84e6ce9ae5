"""Broken Marian folders: each `break_*` damages a copy of a good folder (tests/hf_fixtures.py) in
place and returns a fragment the one-line ModelLoadError must contain. Shared by
tests/engine/test_marian_broken.py and the report's table."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from broken_hf_weights import (  # noqa: F401 (collected into BREAKERS)
    break_bin_only,
    break_missing_weights,
    break_sharded,
    break_truncated_weights,
)

WEIGHTS = "model.safetensors"


def _config(d: Path, **changes) -> None:
    config = json.loads((d / "config.json").read_text())
    config.update(changes)
    (d / "config.json").write_text(json.dumps(config))


def _tensors(d: Path, edit: Callable[[dict], None]) -> None:
    from safetensors.torch import load_file, save_file

    tensors = load_file(d / WEIGHTS)
    edit(tensors)
    save_file(tensors, d / WEIGHTS)


def break_bert(d: Path) -> str:
    _config(d, model_type="bert")
    return "missing tokenizer file vocab.txt"  # read as a BERT folder now, which has no vocab.txt


def break_unknown_type(d: Path) -> str:
    _config(d, model_type="llama")
    return "model_type 'llama' is not a family this app runs"


def break_missing_source_spm(d: Path) -> str:
    (d / "source.spm").unlink()
    return "missing tokenizer file source.spm"


def break_missing_vocab(d: Path) -> str:
    (d / "vocab.json").unlink()
    return "missing tokenizer file vocab.json"


def break_wrong_shapes(d: Path) -> str:
    _config(d, encoder_ffn_dim=48, decoder_ffn_dim=48)
    return "has shape [64, 32], the config implies [48, 32]"


def break_billion_layers(d: Path) -> str:
    _config(d, encoder_layers=10**9)
    return "describes at least"


def break_huge_vocab(d: Path) -> str:
    _config(d, vocab_size=10**12, decoder_vocab_size=10**12)
    return "describes at least"


def break_activation(d: Path) -> str:
    _config(d, activation_function="mish")
    return "activation_function 'mish' is not supported"


def break_heads_differ(d: Path) -> str:
    _config(d, decoder_attention_heads=2)
    return "encoder and decoder attention heads differ"


def break_vocab_json(d: Path) -> str:
    (d / "vocab.json").write_text("{not json")
    return "vocab.json: not valid JSON"


def break_vocab_without_pad(d: Path) -> str:
    vocab = json.loads((d / "vocab.json").read_text())
    del vocab["<pad>"]
    (d / "vocab.json").write_text(json.dumps(vocab))
    return "vocab.json: has no '<pad>'"


def break_corrupt_spm(d: Path) -> str:
    (d / "target.spm").write_bytes(b"\x00\x01 not a sentencepiece model" * 10)
    return "target.spm: not a readable SentencePiece model"


def break_missing_tensor(d: Path) -> str:
    _tensors(d, lambda t: t.pop("model.decoder.layers.1.encoder_attn.q_proj.weight"))
    return "missing tensor(s) model.decoder.layers.1.encoder_attn.q_proj.weight"


def break_prenorm_without_final_norms(d: Path) -> str:
    _config(d, normalize_before=True)
    return "missing tensor(s) model.decoder.layer_norm.bias"


def break_boolean_size(d: Path) -> str:
    _config(d, d_model=True)
    return "d_model must be a positive whole number"


def break_nan_weights(d: Path) -> str:
    _tensors(d, lambda t: t["final_logits_bias"].fill_(float("nan")))
    return "final_logits_bias contains NaN"


BREAKERS: dict[str, Callable[[Path], str]] = {
    name.removeprefix("break_"): value for name, value in globals().items() if name.startswith("break_")
}
