"""BERT folders, as a Hugging Face download leaves them, converted into our encoder-only Transformer.

Files: config.json (``model_type: bert``), model.safetensors, vocab.txt (WordPiece,
engine/families/bert_tokenizer.py) and optionally tokenizer_config.json. BERT is a stack of
post-norm encoder layers over learned absolute positions plus token-type embeddings (every token
here is of type 0) and a LayerNorm on the summed embeddings; a folder saved from BertForMaskedLM
(or BertForPreTraining) also has the MLM head, ``cls.predictions.*``: dense → activation →
LayerNorm, then the output matrix tied to the token embeddings and a bias. Typed text with [MASK]
in it then shows the best fillers of each mask; a folder without the head (BertModel) shows the
attention maps only. transformers is never imported: its BERT is the tests' reference.

The weights are first read in the file's own names and shapes (``FileLayout``, so that
load_weights checks every name, shape and value), with or without the ``bert.`` prefix and with
old LayerNorm names (gamma, beta), then copied into our modules.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open

from engine.checkpoint import (
    MAX_POSITIONS_LIMIT,
    FileLayout,
    LoadedModel,
    ModelInfo,
    ModelLoadError,
    build_for_weights,
    check_safetensors_header,
    hf_weights_file,
    load_weights,
    read_json,
    resolve_device,
    unique_state,
)
from engine.decoding import DecodingOptions
from engine.families.bert_tokenizer import BertTokenizer, Normalization, SpecialTokens, parse_vocab
from engine.model import Activation, ModelConfig, Transformer
from engine.tokenizer import TokenizerError

log = logging.getLogger(__name__)

FAMILY = "bert"
VOCAB_FILE = "vocab.txt"
MAX_VOCAB_BYTES = 64 * 1024 * 1024  # bert-base's vocab.txt is about 230 kB
PREFIX = "bert."  # BertForMaskedLM's encoder tensors carry it, BertModel's do not
HEAD = "cls.predictions."
ACTIVATIONS: dict[str, Activation] = {
    "gelu": "gelu",
    "gelu_new": "gelu_tanh",
    "gelu_pytorch_tanh": "gelu_tanh",
    "relu": "relu",
    "silu": "silu",
    "swish": "silu",
}
# transformers' BertConfig defaults, for keys a config.json leaves out
DEFAULTS: dict[str, object] = {
    "vocab_size": 30522,
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
    "hidden_act": "gelu",
    "max_position_embeddings": 512,
    "type_vocab_size": 2,
    "layer_norm_eps": 1e-12,
    "pad_token_id": 0,
    "position_embedding_type": "absolute",
    "is_decoder": False,
    "add_cross_attention": False,
    "tie_word_embeddings": True,
}
COUNTS = (
    "vocab_size",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "max_position_embeddings",
    "type_vocab_size",
)
# flag → the value the engine reproduces, and what another one would mean
FLAGS = {
    "is_decoder": (False, "a causal BERT decoder"),
    "add_cross_attention": (False, "cross-attention layers (an encoder-decoder use of BERT)"),
    "tie_word_embeddings": (True, "an MLM output matrix separate from the token embeddings"),
}
# our module → the file's, inside each encoder layer
LAYER_PARTS = {
    "self_attn.w_q": "attention.self.query",
    "self_attn.w_k": "attention.self.key",
    "self_attn.w_v": "attention.self.value",
    "self_attn.w_o": "attention.output.dense",
    "sub_attn.norm": "attention.output.LayerNorm",
    "feed_forward.w_1": "intermediate.dense",
    "feed_forward.w_2": "output.dense",
    "sub_ff.norm": "output.LayerNorm",
}
OUTER_PARTS = {
    "src_embed": "embeddings.word_embeddings",
    "position_embed": "embeddings.position_embeddings",
    "type_embed": "embeddings.token_type_embeddings",
    "embed_norm": "embeddings.LayerNorm",
    "mlm_transform.dense": HEAD + "transform.dense",
    "mlm_transform.norm": HEAD + "transform.LayerNorm",
}
# tensors other heads and older savers write, never read (the tied decoder copies are compared)
IGNORED = (
    "pooler.dense.weight",
    "pooler.dense.bias",
    "embeddings.position_ids",
    "embeddings.token_type_ids",
)
HEAD_EXTRAS = (
    "cls.seq_relationship.weight",
    "cls.seq_relationship.bias",
    HEAD + "decoder.weight",
    HEAD + "decoder.bias",
)


def recognises(raw: dict) -> bool:
    return raw.get("model_type") == FAMILY


# --- config.json ---


def _whole(raw: dict, name: str) -> int:
    value = raw.get(name, DEFAULTS[name])
    minimum = 0 if name == "pad_token_id" else 1
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        kind = "positive" if minimum else "non-negative"
        raise ModelLoadError(f"config.json: {name} must be a {kind} whole number, got {value!r}")
    return value


def _check_variant(raw: dict) -> None:
    """Refuse what BERT's config can describe that the engine does not compute."""
    kind = raw.get("position_embedding_type", DEFAULTS["position_embedding_type"])
    if kind != "absolute":
        raise ModelLoadError(
            f"config.json: position_embedding_type {str(kind)[:40]!r} is not supported (only 'absolute' positions are)"
        )
    for name, (supported, what) in FLAGS.items():
        value = raw.get(name, DEFAULTS[name])
        if not isinstance(value, bool):
            raise ModelLoadError(f"config.json: {name} must be true or false, got {value!r}")
        if value != supported:
            raise ModelLoadError(f"config.json: {name} {str(value).lower()} ({what}) is not supported")
    activation = raw.get("hidden_act", DEFAULTS["hidden_act"])
    if activation not in ACTIVATIONS:
        raise ModelLoadError(
            f"config.json: hidden_act {str(activation)[:40]!r} is not supported ({', '.join(ACTIVATIONS)} are)"
        )


def _epsilon(raw: dict) -> float:
    eps = raw.get("layer_norm_eps", DEFAULTS["layer_norm_eps"])
    if not isinstance(eps, (int, float)) or isinstance(eps, bool) or not math.isfinite(eps) or eps <= 0:
        raise ModelLoadError(f"config.json: layer_norm_eps must be a positive number, got {eps!r}")
    return float(eps)


def model_config(raw: dict, tokenizer: BertTokenizer, has_head: bool) -> ModelConfig:
    """Our ModelConfig for a BERT config.json (the special ids from vocab.txt); ModelLoadError for
    what we cannot run. `has_head`: the weights hold the MLM head."""
    _check_variant(raw)
    sizes = {name: _whole(raw, name) for name in COUNTS}
    pad = _whole(raw, "pad_token_id") if tokenizer.pad_id is None else tokenizer.pad_id
    if sizes["max_position_embeddings"] > MAX_POSITIONS_LIMIT:
        raise ModelLoadError(
            f"config.json: max_position_embeddings {sizes['max_position_embeddings']} is beyond the {MAX_POSITIONS_LIMIT} supported"
        )
    if tokenizer.vocab_size > sizes["vocab_size"]:
        raise ModelLoadError(
            f"config.json: vocab_size {sizes['vocab_size']} is smaller than {VOCAB_FILE}'s {tokenizer.vocab_size} pieces"
        )
    try:
        return ModelConfig(
            src_vocab_size=sizes["vocab_size"],
            tgt_vocab_size=sizes["vocab_size"],
            share_embeddings=True,
            tie_output=True,
            pad_id=pad,
            unk_id=tokenizer.unk_id,
            bos_id=tokenizer.cls_id,
            eos_id=tokenizer.sep_id,
            d_model=sizes["hidden_size"],
            n_heads=sizes["num_attention_heads"],
            d_ff=sizes["intermediate_size"],
            n_encoder_layers=sizes["num_hidden_layers"],
            n_decoder_layers=0,
            max_positions=sizes["max_position_embeddings"],
            positions="learned",
            dropout=0.0,
            norm="post",
            activation=ACTIVATIONS[str(raw.get("hidden_act", DEFAULTS["hidden_act"]))],
            scale_embedding=False,
            final_logits_bias=has_head,
            norm_eps=_epsilon(raw),
            type_vocab_size=sizes["type_vocab_size"],
            embed_norm=True,
            lm_head=has_head,
            mlm_transform=has_head,
        )
    except ValueError as error:
        raise ModelLoadError(f"config.json: invalid model description ({error})") from None


# --- the weights ---


def file_name(ours: str) -> str:
    """The file's name (without the bert. prefix) of one of our tensors."""
    if ours == "final_logits_bias":
        return HEAD + "bias"
    module, _, kind = ours.rpartition(".")
    if module.startswith("encoder_layers."):
        _, index, part = module.split(".", 2)
        return f"encoder.layer.{index}.{LAYER_PARTS[part]}.{kind}"
    return f"{OUTER_PARTS[module]}.{kind}"


def _spellings(name: str) -> tuple[str, ...]:
    """Where the file may keep `name`: under the bert. prefix or not, a LayerNorm's gain and shift
    also as gamma and beta (checkpoints converted from TensorFlow)."""
    names = [name] if name.startswith("cls.") else [PREFIX + name, name]
    if ".LayerNorm." in name:
        old = name.replace(".LayerNorm.weight", ".LayerNorm.gamma").replace(".LayerNorm.bias", ".LayerNorm.beta")
        names += [old] if name.startswith("cls.") else [PREFIX + old, old]
    return tuple(names)


def ignored_names() -> frozenset[str]:
    return frozenset([*(p + n for n in IGNORED for p in ("", PREFIX)), *HEAD_EXTRAS])


def tensor_names(weights: Path) -> set[str]:
    check_safetensors_header(weights)
    try:
        with safe_open(str(weights), framework="pt") as handle:
            return set(handle.keys())
    except SafetensorError as error:
        raise ModelLoadError(f"{weights.name}: corrupt safetensors file ({error})") from None


def has_mlm_head(names: set[str]) -> bool:
    """The folder was saved with the MLM head (BertForMaskedLM, BertForPreTraining)."""
    return any(name.startswith(HEAD) and name not in HEAD_EXTRAS for name in names)


def check_tied_copies(weights: Path, state: dict[str, torch.Tensor]) -> None:
    """A saved MLM decoder matrix and bias must be the token embeddings and the head's bias (BERT ties them)."""
    copies = {HEAD + "decoder.weight": "src_embed.weight", HEAD + "decoder.bias": "final_logits_bias"}
    with safe_open(str(weights), framework="pt") as handle:
        for theirs, ours in copies.items():
            if theirs not in handle.keys() or ours not in state:
                continue
            saved, tied = handle.get_tensor(theirs), state[ours]
            if saved.numel() != tied.numel() or not torch.equal(saved.to(tied.dtype).view_as(tied), tied):
                raise ModelLoadError(
                    f"{weights.name}: {theirs} differs from {file_name(ours)}; only BERT models with a tied MLM output are supported"
                )


def load_bert_weights(model: Transformer, weights: Path) -> None:
    """Read the file in its own names and shapes (every name, shape and value checked), then copy it into `model`."""
    targets = unique_state(model)
    shapes = {file_name(ours): tuple(t.shape) for ours, t in targets.items()}
    if "final_logits_bias" in targets:
        shapes[HEAD + "bias"] = (model.cfg.tgt_vocab_size,)  # (V,) in the file, (1, V) here
    layout = FileLayout(shapes)
    load_weights(layout, weights, {name: _spellings(name) for name in shapes}, ignored_names())
    read = dict(layout.state_dict())
    state = {ours: read[file_name(ours)].view_as(target) for ours, target in targets.items()}
    check_tied_copies(weights, state)
    with torch.no_grad():
        for ours, target in targets.items():
            target.copy_(state[ours])


# --- tokenizer and the whole folder ---


def _special_token(settings: dict, name: str, default: str) -> str:
    token = settings.get(name, default)
    return str(token.get("content", default)) if isinstance(token, dict) else str(token)


def _flag(settings: dict, name: str, default: bool | None) -> bool | None:
    value = settings.get(name, default)
    if value is not None and not isinstance(value, bool):
        raise ModelLoadError(f"tokenizer_config.json: {name} must be true, false or null, got {value!r}")
    return value


def tokenizer_for(directory: Path) -> BertTokenizer:
    """The folder's WordPiece; ModelLoadError when vocab.txt is missing or unusable."""
    path = directory / VOCAB_FILE
    if not path.is_file():
        raise ModelLoadError(f"{directory}: missing tokenizer file {VOCAB_FILE}")
    if path.stat().st_size > MAX_VOCAB_BYTES:
        raise ModelLoadError(f"{VOCAB_FILE}: {path.stat().st_size} bytes, refused as oversized")
    settings = read_json(directory, "tokenizer_config.json", required=False) or {}
    special = SpecialTokens(
        *(_special_token(settings, f"{name}_token", default) for name, default in zip(
            ("unk", "cls", "sep", "pad", "mask"), ("[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]"), strict=True
        ))
    )  # fmt: skip
    normalization = Normalization(
        lowercase=bool(_flag(settings, "do_lower_case", True)),
        strip_accents=_flag(settings, "strip_accents", None),
        chinese_chars=bool(_flag(settings, "tokenize_chinese_chars", True)),
    )
    try:
        return BertTokenizer(parse_vocab(path.read_text(encoding="utf-8")), special, normalization)
    except UnicodeDecodeError as error:
        raise ModelLoadError(f"{VOCAB_FILE}: not UTF-8 text ({error})") from None
    except TokenizerError as error:
        raise ModelLoadError(str(error)) from None


def load(directory: Path, raw: dict, device: str = "auto", isolate_tokenizer: bool = True) -> LoadedModel:
    """A BERT folder as a LoadedModel; every failure is a one-line ModelLoadError, raised before
    anything the size of the model is allocated. (`isolate_tokenizer`: the tokenizers package is
    not the SentencePiece library whose crashes the child process guards against.)"""
    weights = hf_weights_file(directory, "BertForMaskedLM")
    tokenizer = tokenizer_for(directory)
    cfg = model_config(raw, tokenizer, has_mlm_head(tensor_names(weights)))
    model = build_for_weights(cfg, weights)
    load_bert_weights(model, weights)
    torch_device = resolve_device(device)
    model.to(torch_device).eval()
    info = ModelInfo(directory.resolve().name, "?", "?", VOCAB_FILE, VOCAB_FILE)
    kind = "with its MLM head" if cfg.lm_head else "without an MLM head: attention maps only"
    log.info("loaded BERT %s (%d parameters, %s) on %s", info.name, model.num_parameters(), kind, torch_device)
    return LoadedModel(model, tokenizer, info, directory, torch_device, FAMILY, DecodingOptions(length_penalty=1.0))
