"""GPT-2 folders, as a Hugging Face download leaves them, converted into our decoder-only Transformer.

Files: config.json (``model_type: gpt2``), model.safetensors, vocab.json and merges.txt (byte-level
BPE, engine/families/gpt2_tokenizer.py). GPT-2 is a stack of pre-norm decoder layers without
cross-attention, with learned positions, a final LayerNorm and an output matrix tied to the token
embeddings; the engine's own modules express all of it, so every view, decoding strategy and export
works as for our models. transformers is never imported: its GPT-2 is the tests' reference.

The file stores each projection as a Conv1D, whose weight is (in, out), the transpose of an
nn.Linear's, and the attention's q, k and v side by side in one (d, 3d) ``c_attn``. The weights are
first read in the file's own layout (``FileLayout``, so that load_weights checks every name, shape
and value), then split and transposed into our modules.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import torch
from safetensors import safe_open

from engine.checkpoint import (
    MAX_POSITIONS_LIMIT,
    FileLayout,
    LoadedModel,
    ModelInfo,
    ModelLoadError,
    build_for_weights,
    hf_weights_file,
    load_weights,
    read_json,
    resolve_device,
    unique_state,
)
from engine.decoding import DecodingOptions
from engine.families.gpt2_tokenizer import Gpt2Tokenizer, parse_merges
from engine.model import Activation, ModelConfig, Transformer
from engine.tokenizer import TokenizerError

log = logging.getLogger(__name__)

FAMILY = "gpt2"
MAX_TOKENIZER_BYTES = 64 * 1024 * 1024  # GPT-2's vocab.json is about 1 MB, merges.txt 0.5 MB
PREFIX = "transformer."  # GPT2LMHeadModel's tensor names carry it, GPT2Model's do not
ACTIVATIONS: dict[str, Activation] = {
    "gelu_new": "gelu_tanh",
    "gelu_pytorch_tanh": "gelu_tanh",
    "gelu": "gelu",
    "relu": "relu",
    "silu": "silu",
    "swish": "silu",
}
# transformers' GPT2Config defaults, for keys a config.json leaves out
DEFAULTS: dict[str, object] = {
    "vocab_size": 50257,
    "n_positions": 1024,
    "n_embd": 768,
    "n_layer": 12,
    "n_head": 12,
    "n_inner": None,
    "activation_function": "gelu_new",
    "layer_norm_epsilon": 1e-5,
    "bos_token_id": 50256,
    "eos_token_id": 50256,
    "scale_attn_weights": True,
    "scale_attn_by_inverse_layer_idx": False,
    "reorder_and_upcast_attn": False,  # float32 attention arithmetic: what the engine does anyway
    "add_cross_attention": False,
    "tie_word_embeddings": True,
}
COUNTS = ("vocab_size", "n_positions", "n_embd", "n_layer", "n_head")
# flag → the value the engine reproduces, and why another one is refused
FLAGS = {
    "scale_attn_weights": (True, "attention without the 1/√d_k scale"),
    "scale_attn_by_inverse_layer_idx": (False, "attention scaled by 1/(layer index + 1)"),
    "reorder_and_upcast_attn": (None, ""),  # either value computes the same float32 weights here
    "add_cross_attention": (False, "cross-attention layers (an encoder-decoder use of GPT-2)"),
    "tie_word_embeddings": (True, "an output matrix separate from the token embeddings"),
}


def recognises(raw: dict) -> bool:
    return raw.get("model_type") == FAMILY


def _whole(raw: dict, name: str, minimum: int) -> int:
    value = raw.get(name, DEFAULTS[name])
    if name == "eos_token_id" and isinstance(value, list) and len(value) == 1:
        value = value[0]  # a list of one end token is that token
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        kind = "positive" if minimum else "non-negative"
        raise ModelLoadError(f"config.json: {name} must be a {kind} whole number, got {value!r}")
    return value


def _check_flags(raw: dict) -> None:
    for name, (supported, what) in FLAGS.items():
        value = raw.get(name, DEFAULTS[name])
        if not isinstance(value, bool):
            raise ModelLoadError(f"config.json: {name} must be true or false, got {value!r}")
        if supported is not None and value != supported:
            raise ModelLoadError(f"config.json: {name} {str(value).lower()} ({what}) is not supported")


def _feed_forward_size(raw: dict, d_model: int) -> int:
    n_inner = raw.get("n_inner", DEFAULTS["n_inner"])
    return 4 * d_model if n_inner is None else _whole(raw, "n_inner", 1)


def _epsilon(raw: dict) -> float:
    eps = raw.get("layer_norm_epsilon", DEFAULTS["layer_norm_epsilon"])
    if not isinstance(eps, (int, float)) or isinstance(eps, bool) or not math.isfinite(eps) or eps <= 0:
        raise ModelLoadError(f"config.json: layer_norm_epsilon must be a positive number, got {eps!r}")
    return float(eps)


def model_config(raw: dict) -> ModelConfig:
    """Our ModelConfig for a GPT-2 config.json; ModelLoadError for what we cannot run."""
    sizes = {name: _whole(raw, name, 1) for name in COUNTS}
    eos = _whole(raw, "eos_token_id", 0)
    bos = eos if raw.get("bos_token_id", 0) is None else _whole(raw, "bos_token_id", 0)  # GPT-2's are one token
    _check_flags(raw)
    activation = raw.get("activation_function", DEFAULTS["activation_function"])
    if activation not in ACTIVATIONS:
        raise ModelLoadError(
            f"config.json: activation_function {activation!r} is not supported ({', '.join(ACTIVATIONS)} are)"
        )
    if sizes["n_positions"] > MAX_POSITIONS_LIMIT:
        raise ModelLoadError(
            f"config.json: n_positions {sizes['n_positions']} is beyond the {MAX_POSITIONS_LIMIT} supported"
        )
    for name, value in (("bos_token_id", bos), ("eos_token_id", eos)):
        if value >= sizes["vocab_size"]:
            raise ModelLoadError(f"config.json: {name} {value} is outside the vocabulary of {sizes['vocab_size']}")
    try:
        return ModelConfig(
            src_vocab_size=sizes["vocab_size"],
            tgt_vocab_size=sizes["vocab_size"],
            share_embeddings=True,
            tie_output=True,
            pad_id=eos,  # GPT-2 has no padding token; generate() pads with the end token
            unk_id=eos,  # byte-level BPE has no unknown piece
            bos_id=bos,
            eos_id=eos,
            d_model=sizes["n_embd"],
            n_heads=sizes["n_head"],
            d_ff=_feed_forward_size(raw, sizes["n_embd"]),
            n_encoder_layers=0,
            n_decoder_layers=sizes["n_layer"],
            max_positions=sizes["n_positions"],
            positions="learned",
            dropout=0.0,
            norm="pre",
            activation=ACTIVATIONS[activation],
            scale_embedding=False,
            norm_eps=_epsilon(raw),
        )
    except ValueError as error:
        raise ModelLoadError(f"config.json: invalid model description ({error})") from None


# --- weights ---


def file_shapes(cfg: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Every tensor of a GPT-2 file (without the ``transformer.`` prefix), in the file's shapes."""
    d, ff = cfg.d_model, cfg.d_ff
    shapes: dict[str, tuple[int, ...]] = {
        "wte.weight": (cfg.tgt_vocab_size, d),
        "wpe.weight": (cfg.max_positions, d),
        "ln_f.weight": (d,),
        "ln_f.bias": (d,),
    }
    for i in range(cfg.n_decoder_layers):
        layer = {
            "ln_1.weight": (d,),
            "ln_1.bias": (d,),
            "attn.c_attn.weight": (d, 3 * d),  # Conv1D: (in, out), q | k | v side by side
            "attn.c_attn.bias": (3 * d,),
            "attn.c_proj.weight": (d, d),
            "attn.c_proj.bias": (d,),
            "ln_2.weight": (d,),
            "ln_2.bias": (d,),
            "mlp.c_fc.weight": (d, ff),
            "mlp.c_fc.bias": (ff,),
            "mlp.c_proj.weight": (ff, d),
            "mlp.c_proj.bias": (d,),
        }
        shapes.update({f"h.{i}.{name}": shape for name, shape in layer.items()})
    return shapes


def file_names(shapes: dict[str, tuple[int, ...]]) -> dict[str, tuple[str, ...]]:
    """The names each tensor may have in the file; the token embeddings may be saved as the LM head."""
    names = {name: (PREFIX + name, name) for name in shapes}
    names["wte.weight"] += ("lm_head.weight",)
    return names


def ignored_names(cfg: ModelConfig) -> frozenset[str]:
    """The causal-mask buffers that older files carry (``attn.bias``, ``attn.masked_bias``)."""
    buffers = (f"h.{i}.attn.{b}" for i in range(cfg.n_decoder_layers) for b in ("bias", "masked_bias"))
    return frozenset(name for buffer in buffers for name in (buffer, PREFIX + buffer))


LINEAR_PARTS = (("self_attn.w_o", "attn.c_proj"), ("feed_forward.w_1", "mlp.c_fc"), ("feed_forward.w_2", "mlp.c_proj"))
NORM_PARTS = (("sub_self.norm", "ln_1"), ("sub_ff.norm", "ln_2"))


def converted(layout: dict[str, torch.Tensor], cfg: ModelConfig) -> dict[str, torch.Tensor]:
    """The file's tensors under our names: Conv1D weights transposed to (out, in), c_attn split into q, k, v."""
    state = {
        "src_embed.weight": layout["wte.weight"],
        "position_embed.weight": layout["wpe.weight"],
        "decoder_norm.weight": layout["ln_f.weight"],
        "decoder_norm.bias": layout["ln_f.bias"],
    }
    for i in range(cfg.n_decoder_layers):
        theirs, ours = f"h.{i}", f"decoder_layers.{i}"
        weights = layout[f"{theirs}.attn.c_attn.weight"].t().chunk(3, dim=0)  # 3 × (d out, d in)
        biases = layout[f"{theirs}.attn.c_attn.bias"].chunk(3, dim=0)  # 3 × (d,)
        for letter, weight, bias in zip("qkv", weights, biases, strict=True):
            state[f"{ours}.self_attn.w_{letter}.weight"] = weight
            state[f"{ours}.self_attn.w_{letter}.bias"] = bias
        for target, source in LINEAR_PARTS:
            state[f"{ours}.{target}.weight"] = layout[f"{theirs}.{source}.weight"].t()  # (in, out) → (out, in)
            state[f"{ours}.{target}.bias"] = layout[f"{theirs}.{source}.bias"]
        for target, source in NORM_PARTS:
            for kind in ("weight", "bias"):
                state[f"{ours}.{target}.{kind}"] = layout[f"{theirs}.{source}.{kind}"]
    return state


def check_tied_head(weights: Path, embeddings: torch.Tensor) -> None:
    """An lm_head.weight saved beside the token embeddings must be the same matrix (GPT-2 ties them)."""
    with safe_open(str(weights), framework="pt") as handle:
        names = set(handle.keys())
        if "lm_head.weight" not in names or not names & {"wte.weight", PREFIX + "wte.weight"}:
            return
        head = handle.get_tensor("lm_head.weight")
    if head.shape != embeddings.shape or not torch.equal(head.to(embeddings.dtype), embeddings):
        raise ModelLoadError(
            f"{weights.name}: lm_head.weight differs from the token embeddings wte; "
            "only GPT-2 models with a tied output matrix are supported"
        )


def load_gpt2_weights(model: Transformer, weights: Path) -> None:
    """Read the file in its own layout (every name, shape and value checked), then convert it into `model`."""
    cfg = model.cfg
    shapes = file_shapes(cfg)
    layout = FileLayout(shapes)
    load_weights(layout, weights, file_names(shapes), ignored_names(cfg))
    state = converted(dict(layout.state_dict()), cfg)
    check_tied_head(weights, state["src_embed.weight"])
    # a pre-norm model without an encoder still builds encoder_norm; it is never run
    targets = {name: t for name, t in unique_state(model).items() if not name.startswith("encoder_norm.")}
    if set(targets) != set(state):  # the conversion covers the model exactly; anything else is a bug here
        raise RuntimeError(f"GPT-2 conversion mismatch: {sorted(set(targets) ^ set(state))}")
    with torch.no_grad():
        for name, target in targets.items():
            target.copy_(state[name])


# --- tokenizer and the whole folder ---


def tokenizer_for(directory: Path, eos_id: int) -> Gpt2Tokenizer:
    """The folder's byte-level BPE; ModelLoadError when a file is missing or unusable."""
    for file_name in ("vocab.json", "merges.txt"):
        if not (directory / file_name).is_file():
            raise ModelLoadError(f"{directory}: missing tokenizer file {file_name}")
    vocab = read_json(directory, "vocab.json", required=True, limit=MAX_TOKENIZER_BYTES) or {}
    for piece, index in vocab.items():
        if not isinstance(index, int) or isinstance(index, bool) or index < 0:
            raise ModelLoadError(f"vocab.json: piece {piece[:40]!r} has id {index!r}, not a non-negative whole number")
    if not vocab:
        raise ModelLoadError("vocab.json: no pieces")
    merges_path = directory / "merges.txt"
    if merges_path.stat().st_size > MAX_TOKENIZER_BYTES:
        raise ModelLoadError(f"merges.txt: {merges_path.stat().st_size} bytes, refused as oversized")
    try:
        merges = parse_merges(merges_path.read_text(encoding="utf-8"))
        return Gpt2Tokenizer(vocab, merges, eos_id)
    except UnicodeDecodeError as error:
        raise ModelLoadError(f"merges.txt: not UTF-8 text ({error})") from None
    except TokenizerError as error:
        raise ModelLoadError(str(error)) from None


def load(directory: Path, raw: dict, device: str = "auto", isolate_tokenizer: bool = True) -> LoadedModel:
    """A GPT-2 folder as a LoadedModel; every failure is a one-line ModelLoadError, raised before
    anything the size of the model is allocated. (`isolate_tokenizer`: the tokenizers package is
    not the SentencePiece library whose crashes the child process guards against.)"""
    weights = hf_weights_file(directory, "GPT2LMHeadModel")
    cfg = model_config(raw)
    tokenizer = tokenizer_for(directory, cfg.eos_id)
    if tokenizer.vocab_size > cfg.tgt_vocab_size:
        raise ModelLoadError(
            f"config.json: vocab_size {cfg.tgt_vocab_size} is smaller than the tokenizer's {tokenizer.vocab_size}"
        )
    model = build_for_weights(cfg, weights)
    load_gpt2_weights(model, weights)
    torch_device = resolve_device(device)
    model.to(torch_device).eval()
    info = ModelInfo(directory.resolve().name, "?", "?", "vocab.json", "merges.txt")
    log.info("loaded GPT-2 %s (%d parameters) on %s", info.name, model.num_parameters(), torch_device)
    return LoadedModel(model, tokenizer, info, directory, torch_device, FAMILY, DecodingOptions(length_penalty=1.0))
