"""Marian (opus-mt) folders, as a Hugging Face download leaves them, converted into our Transformer.

Files: config.json (``model_type: marian``), model.safetensors, source.spm, target.spm, vocab.json,
and optionally tokenizer_config.json and generation_config.json. The weights go into the engine's
own modules, so every view, decoding strategy and export works as for our models. transformers is
never imported: its Marian code is the reference the tests compare against.

Architecture read from config.json: sizes, ``activation_function`` (swish, gelu, gelu_new, relu),
``scale_embedding``, shared or separate embeddings, a tied or separate output matrix,
``final_logits_bias``, and ``normalize_before`` (pre-norm, with each stack ending in a LayerNorm,
as Pegasus lays it out). Generation defaults come from generation_config.json over config.json:
``num_beams``, ``max_length``, ``length_penalty``, ``early_stopping``, ``bad_words_ids``,
``forced_eos_token_id``, ``renormalize_logits``.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from engine.checkpoint import (
    MAX_POSITIONS_LIMIT,
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
from engine.families.marian_tokenizer import MarianTokenizer, MarianVocabulary
from engine.generation import EarlyStopping, GenerationRules
from engine.model import Activation, ModelConfig, Transformer
from engine.tokenizer import TokenizerError

log = logging.getLogger(__name__)

FAMILY = "marian"
TOKENIZER_FILES = ("source.spm", "target.spm", "vocab.json")
MAX_VOCAB_BYTES = 64 * 1024 * 1024  # opus-mt's vocab.json is about 1 MB
ACTIVATIONS: dict[str, Activation] = {
    "swish": "silu",
    "silu": "silu",
    "gelu": "gelu",
    "gelu_new": "gelu_tanh",
    "gelu_pytorch_tanh": "gelu_tanh",
    "relu": "relu",
}
# transformers' MarianConfig defaults, for keys a config.json leaves out
DEFAULTS = {
    "vocab_size": 58101,
    "max_position_embeddings": 1024,
    "encoder_layers": 12,
    "encoder_ffn_dim": 4096,
    "encoder_attention_heads": 16,
    "decoder_layers": 12,
    "decoder_ffn_dim": 4096,
    "decoder_attention_heads": 16,
    "activation_function": "gelu",
    "d_model": 1024,
    "decoder_start_token_id": 58100,
    "scale_embedding": False,
    "pad_token_id": 58100,
    "eos_token_id": 0,
    "forced_eos_token_id": 0,
    "share_encoder_decoder_embeddings": True,
    "tie_word_embeddings": True,
    "normalize_before": False,
    "normalize_embedding": False,
}
COUNTS = (
    "vocab_size",
    "max_position_embeddings",
    "encoder_layers",
    "decoder_layers",
    "encoder_ffn_dim",
    "decoder_ffn_dim",
    "encoder_attention_heads",
    "decoder_attention_heads",
    "d_model",
)
IDS = ("decoder_start_token_id", "pad_token_id", "eos_token_id")
FLAGS = ("scale_embedding", "share_encoder_decoder_embeddings", "tie_word_embeddings", "normalize_before")
ATTENTION_NAME = re.compile(r"(self_attn|cross_attn)\.w_([qkvo])\.(weight|bias)")
LAYER_PARTS = {
    "sub_attn.norm": "self_attn_layer_norm",
    "sub_self.norm": "self_attn_layer_norm",
    "sub_cross.norm": "encoder_attn_layer_norm",
    "sub_ff.norm": "final_layer_norm",
    "feed_forward.w_1": "fc1",
    "feed_forward.w_2": "fc2",
}
OPUS_NAME = re.compile(r"opus-mt-(?:tc-(?:big|base)-)?([A-Za-z_]+)-([A-Za-z_]+)$")


def recognises(raw: dict) -> bool:
    return raw.get("model_type") == FAMILY


def _setting(raw: dict, name: str):
    value = raw.get(name, DEFAULTS.get(name))
    if name == "eos_token_id" and isinstance(value, list) and len(value) == 1:
        value = value[0]  # a list of one end token is that token
    if name in COUNTS or name in IDS:
        if not isinstance(value, int) or isinstance(value, bool) or value < (1 if name in COUNTS else 0):
            raise ModelLoadError(
                f"config.json: {name} must be a {'positive' if name in COUNTS else 'non-negative'} whole number, got {value!r}"
            )
    if name in FLAGS and not isinstance(value, bool):
        raise ModelLoadError(f"config.json: {name} must be true or false, got {value!r}")
    return value


def model_config(raw: dict, unk_id: int) -> ModelConfig:
    """Our ModelConfig for a Marian config.json; ModelLoadError for what we cannot run."""
    get = lambda name: _setting(raw, name)  # noqa: E731
    for ours, theirs in (("attention heads", "attention_heads"), ("feed-forward sizes", "ffn_dim")):
        if get(f"encoder_{theirs}") != get(f"decoder_{theirs}"):
            raise ModelLoadError(
                f"config.json: encoder and decoder {ours} differ ({get(f'encoder_{theirs}')} and "
                f"{get(f'decoder_{theirs}')}); this app runs models where they are equal"
            )
    activation = get("activation_function")
    if activation not in ACTIVATIONS:
        raise ModelLoadError(
            f"config.json: activation_function {activation!r} is not supported ({', '.join(ACTIVATIONS)} are)"
        )
    if raw.get("normalize_embedding", False) is True:
        raise ModelLoadError("config.json: normalize_embedding (a LayerNorm on the embeddings) is not supported")
    if get("max_position_embeddings") > MAX_POSITIONS_LIMIT:
        raise ModelLoadError(
            f"config.json: max_position_embeddings {get('max_position_embeddings')} is beyond the {MAX_POSITIONS_LIMIT} supported"
        )
    shared = get("share_encoder_decoder_embeddings")
    decoder_vocab = raw.get("decoder_vocab_size") or get("vocab_size")
    if not isinstance(decoder_vocab, int) or isinstance(decoder_vocab, bool) or decoder_vocab < 1:
        raise ModelLoadError(f"config.json: decoder_vocab_size must be a positive whole number, got {decoder_vocab!r}")
    try:
        return ModelConfig(
            src_vocab_size=get("vocab_size"),
            tgt_vocab_size=get("vocab_size") if shared else decoder_vocab,
            share_embeddings=shared,
            tie_output=get("tie_word_embeddings"),
            pad_id=get("pad_token_id"),
            unk_id=unk_id,
            bos_id=get("decoder_start_token_id"),  # Marian starts the decoder with the pad id
            eos_id=get("eos_token_id"),
            d_model=get("d_model"),
            n_heads=get("encoder_attention_heads"),
            d_ff=get("encoder_ffn_dim"),
            n_encoder_layers=get("encoder_layers"),
            n_decoder_layers=get("decoder_layers"),
            max_positions=get("max_position_embeddings"),
            positional_layout="halves",
            dropout=0.0,
            norm="pre" if get("normalize_before") else "post",
            activation=ACTIVATIONS[activation],
            scale_embedding=get("scale_embedding"),
            final_logits_bias=True,
        )
    except ModelLoadError:
        raise  # a setting's own message already names config.json
    except ValueError as error:
        raise ModelLoadError(f"config.json: invalid model description ({error})") from None


def generation_defaults(
    raw: dict, generation: dict | None, cfg: ModelConfig
) -> tuple[GenerationRules, DecodingOptions]:
    """generate()'s settings for this folder: generation_config.json over config.json, then transformers' defaults."""
    settings = {**raw, **(generation or {})}
    suppressed = {cfg.pad_id}  # the decoder's start token is never an output
    for ids in settings.get("bad_words_ids") or []:
        if isinstance(ids, list) and len(ids) == 1 and isinstance(ids[0], int) and 0 <= ids[0] < cfg.tgt_vocab_size:
            suppressed.add(ids[0])
        else:
            log.warning("bad_words_ids entry %r ignored: only single tokens are suppressed", ids)
    early: EarlyStopping = {True: "yes", False: "no", "never": "never"}.get(settings.get("early_stopping", False), "no")
    rules = GenerationRules(
        suppressed_ids=tuple(sorted(suppressed)),
        force_eos_at_limit=settings.get("forced_eos_token_id", DEFAULTS["forced_eos_token_id"]) == cfg.eos_id,
        renormalize=settings.get("renormalize_logits") is True,
        penalty_form="length",
        beam="transformers",
        early_stopping=early,
    )
    max_length = settings.get("max_length", 20)  # transformers' GenerationConfig default
    if isinstance(settings.get("max_new_tokens"), int):
        max_length = settings["max_new_tokens"] + 1  # the decoder's start token counts towards max_length
    try:
        options = DecodingOptions(
            beam_size=int(settings.get("num_beams", 1)),
            length_penalty=float(settings.get("length_penalty", 1.0)),
            max_len_a=0.0,
            max_len_b=max(1, int(max_length) - 1),  # max_length counts the start token
        )
    except (TypeError, ValueError) as error:
        raise ModelLoadError(f"generation settings: {error}") from None
    return rules, options


def file_names(model: Transformer) -> dict[str, tuple[str, ...]]:
    """For each tensor of `model`, the names it may have in a Marian model.safetensors (tied ones: several)."""
    cfg = model.cfg
    names: dict[str, tuple[str, ...]] = {}
    for ours in unique_state(model):
        names[ours] = _file_names(ours, cfg)
    return names


def _file_names(ours: str, cfg: ModelConfig) -> tuple[str, ...]:
    output = ("lm_head.weight",) if cfg.tie_output else ()
    if ours == "src_embed.weight":
        if cfg.share_embeddings:
            shared = ("model.shared.weight", "model.encoder.embed_tokens.weight", "model.decoder.embed_tokens.weight")
            return shared + output
        return ("model.encoder.embed_tokens.weight",)
    if ours == "tgt_embed.weight":
        return ("model.decoder.embed_tokens.weight",) + output
    if ours == "output.weight":
        return ("lm_head.weight",)
    if ours == "final_logits_bias":
        return ("final_logits_bias",)
    stack, _, rest = ours.partition(".")
    if stack in ("encoder_norm", "decoder_norm"):
        return (f"model.{stack.removesuffix('_norm')}.layer_norm.{rest}",)
    index, _, part = rest.partition(".")
    side = "encoder" if stack == "encoder_layers" else "decoder"
    attention = ATTENTION_NAME.fullmatch(part)
    if attention is not None:  # self_attn.w_q.weight → self_attn.q_proj.weight, cross_attn.w_o → encoder_attn.out_proj
        module, letter, kind = attention.groups()
        part = f"{'self_attn' if module == 'self_attn' else 'encoder_attn'}.{'out' if letter == 'o' else letter}_proj.{kind}"
    else:
        module, _, kind = part.rpartition(".")
        part = f"{LAYER_PARTS.get(module, module)}.{kind}"
    return (f"model.{side}.layers.{index}.{part}",)


def _vocabulary(directory: Path, file_name: str) -> MarianVocabulary:
    mapping = read_json(directory, file_name, required=True, limit=MAX_VOCAB_BYTES) or {}
    for piece, index in mapping.items():
        if not isinstance(index, int) or isinstance(index, bool) or index < 0:
            raise ModelLoadError(f"{file_name}: piece {piece[:40]!r} has id {index!r}, not a non-negative whole number")
    return MarianVocabulary.from_mapping(mapping)


def _special_token(settings: dict, name: str, default: str) -> str:
    token = settings.get(name, default)
    return str(token.get("content", default)) if isinstance(token, dict) else str(token)


def tokenizer_for(directory: Path, tokenizer_config: dict, isolate: bool) -> MarianTokenizer:
    """The folder's tokenizer; ModelLoadError when a file is missing or unusable."""
    for file_name in TOKENIZER_FILES:
        if not (directory / file_name).is_file():
            raise ModelLoadError(f"{directory}: missing tokenizer file {file_name}")
    source_vocab = _vocabulary(directory, "vocab.json")
    target_vocab = source_vocab
    if tokenizer_config.get("separate_vocabs") is True:
        target_vocab = _vocabulary(directory, "target_vocab.json")
    special = {}
    for key, name, default in (
        ("unk", "unk_token", "<unk>"),
        ("eos", "eos_token", "</s>"),
        ("pad", "pad_token", "<pad>"),
    ):
        piece = _special_token(tokenizer_config, name, default)
        if piece not in source_vocab.ids:
            raise ModelLoadError(f"vocab.json: has no {piece!r} ({name})")
        special[key] = source_vocab.ids[piece]
    try:
        return MarianTokenizer(
            directory / "source.spm", directory / "target.spm", source_vocab, target_vocab, special, isolate
        )
    except TokenizerError as error:
        raise ModelLoadError(str(error)) from None


def languages(directory: Path, raw: dict, tokenizer_config: dict) -> tuple[str, str]:
    """(source, target) from tokenizer_config.json, else from an opus-mt-SRC-TGT name (the folder, one of
    its parents as in a Hugging Face cache, or config.json's _name_or_path); '?' when none says."""
    source, target = tokenizer_config.get("source_lang"), tokenizer_config.get("target_lang")
    if isinstance(source, str) and isinstance(target, str) and source and target:
        return source, target
    names = [*directory.resolve().parts[::-1], str(raw.get("_name_or_path", ""))]
    for name in names:
        match = OPUS_NAME.search(name.rstrip("/").rsplit("/", 1)[-1])  # also models--Helsinki-NLP--opus-mt-fr-en
        if match:
            return match.group(1), match.group(2)
    return "?", "?"


def load(directory: Path, raw: dict, device: str = "auto", isolate_tokenizer: bool = True) -> LoadedModel:
    """A Marian folder as a LoadedModel; every failure is a one-line ModelLoadError, raised before
    anything the size of the model is allocated."""
    tokenizer_config = read_json(directory, "tokenizer_config.json", required=False) or {}
    generation = read_json(directory, "generation_config.json", required=False)
    weights = hf_weights_file(directory, "MarianMTModel")
    tokenizer = tokenizer_for(directory, tokenizer_config, isolate_tokenizer)
    cfg = model_config(raw, tokenizer.unk_id)
    if (tokenizer.eos_id, tokenizer.pad_id) != (cfg.eos_id, cfg.pad_id):
        raise ModelLoadError(
            f"config.json: eos/pad ids {cfg.eos_id}/{cfg.pad_id} disagree with vocab.json's {tokenizer.eos_id}/{tokenizer.pad_id}"
        )
    if tokenizer.src_vocab_size > cfg.src_vocab_size or tokenizer.tgt_vocab_size > cfg.tgt_vocab_size:
        raise ModelLoadError(
            f"config.json: vocabulary sizes {cfg.src_vocab_size}/{cfg.tgt_vocab_size} are smaller than the "
            f"tokenizer's {tokenizer.src_vocab_size}/{tokenizer.tgt_vocab_size}"
        )
    rules, decoding = generation_defaults(raw, generation, cfg)
    model = build_for_weights(cfg, weights, rules)
    ignored = frozenset(f"model.{side}.embed_positions.weight" for side in ("encoder", "decoder"))
    load_weights(model, weights, file_names(model), ignored)
    torch_device = resolve_device(device)
    model.to(torch_device).eval()
    source, target = languages(directory, raw, tokenizer_config)
    info = ModelInfo(directory.resolve().name, source, target, "source.spm", "target.spm")
    log.info("loaded Marian %s (%d parameters) on %s", info.name, model.num_parameters(), torch_device)
    return LoadedModel(model, tokenizer, info, directory, torch_device, FAMILY, decoding)
