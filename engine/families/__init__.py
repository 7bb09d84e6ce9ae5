"""One registry of model families: a folder is recognised by its own config.json, and the family
that recognises it converts it into the engine's Transformer and a tokenizer (engine.tokenizer.TextTokenizer).

    attention-studio-model   ours: config.json with "format": "attention-studio-model"  (engine/checkpoint.py)
    marian                   Hugging Face opus-mt: config.json with "model_type": "marian" (engine/families/marian.py)
    gpt2                     Hugging Face GPT-2: config.json with "model_type": "gpt2" (engine/families/gpt2.py)
    bert                     Hugging Face BERT: config.json with "model_type": "bert" (engine/families/bert.py)

A new family (BERT, GPT-2 …) is one module with `recognises(raw_config) -> bool` and
`load(directory, raw_config, device, isolate_tokenizer) -> LoadedModel`, added to FAMILIES.
Every failure is a one-line ModelLoadError.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from engine import checkpoint
from engine.checkpoint import FORMAT_NAME, LoadedModel, ModelLoadError, read_config_json
from engine.families import bert, gpt2, marian


@dataclass(frozen=True)
class Family:
    name: str
    recognises: Callable[[dict], bool]  # from config.json's content
    load: Callable[[Path, dict, str, bool], LoadedModel]  # directory, config.json, device, isolate_tokenizer


def _load_ours(directory: Path, raw: dict, device: str, isolate_tokenizer: bool) -> LoadedModel:
    return checkpoint.load_model(directory, device, isolate_tokenizer)


FAMILIES: tuple[Family, ...] = (
    Family(FORMAT_NAME, lambda raw: raw.get("format") == FORMAT_NAME, _load_ours),
    Family(marian.FAMILY, marian.recognises, marian.load),
    Family(gpt2.FAMILY, gpt2.recognises, gpt2.load),
    Family(bert.FAMILY, bert.recognises, bert.load),
)
# what the app says for Hugging Face architectures it does not run (yet)
UNSUPPORTED = {
    "t5": "a T5 model (relative position buckets, no sinusoidal table); not supported",
    "bart": "a BART model (learned positions); not supported",
    "mbart": "an mBART model (learned positions, embedding LayerNorm); not supported",
    "m2m_100": "an M2M-100 model; not supported",
    "nllb-moe": "a mixture-of-experts model; not supported",
}


def family_of(raw: dict) -> Family:
    """The family that recognises config.json's content; ModelLoadError naming what it is otherwise."""
    for family in FAMILIES:
        if family.recognises(raw):
            return family
    model_type = raw.get("model_type")
    supported = "Marian (opus-mt) translation models, GPT-2 models, BERT models and Attention Studio models"
    if isinstance(model_type, str):
        why = UNSUPPORTED.get(model_type, "not a family this app runs")
        raise ModelLoadError(f"config.json: model_type {model_type[:40]!r} is {why}; this app opens {supported}")
    raise ModelLoadError(
        f"config.json: not an Attention Studio model config (format is not {FORMAT_NAME!r}) "
        f"nor a Hugging Face one (no model_type); this app opens {supported}"
    )


def load_model(directory: Path | str, device: str = "auto", isolate_tokenizer: bool = True) -> LoadedModel:
    """Load any supported model folder; every failure is a ModelLoadError with a one-line message."""
    directory = Path(directory)
    raw = read_config_json(directory)
    return family_of(raw).load(directory, raw, device, isolate_tokenizer)
