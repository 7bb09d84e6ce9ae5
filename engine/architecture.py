"""The names of the architecture's parts, shared by the model, the Trace, the walkthrough and the views.

No torch and no Qt: the GUI and the figures import this before (or without) the model.

An attention *kind* is what the user picks: encoder self-attention, masked decoder self-attention
or encoder–decoder (cross) attention. In the model each kind is a module of one stack of layers,
and the ActivationCache names what it records ``<stack>.<layer>.<module>.<what>``.
"""

from __future__ import annotations

from typing import Literal

AttentionKind = Literal["enc_self", "dec_self", "cross"]
ATTENTION_KINDS: tuple[AttentionKind, ...] = ("enc_self", "dec_self", "cross")
NormPlacement = Literal["post", "pre"]  # "post" as in the paper; "pre" puts LayerNorm before each sublayer
# the family tree: the paper's translator, the half BERT keeps, the half GPT keeps
ModelShape = Literal["encoder-decoder", "encoder-only", "decoder-only"]
SHAPE_KINDS: dict[str, tuple[AttentionKind, ...]] = {
    "encoder-decoder": ATTENTION_KINDS,
    "encoder-only": ("enc_self",),
    "decoder-only": ("dec_self",),
}

Stack = Literal["encoder", "decoder"]
Module = Literal["self_attn", "cross_attn"]
KIND_PARTS: dict[str, tuple[Stack, Module]] = {
    "enc_self": ("encoder", "self_attn"),
    "dec_self": ("decoder", "self_attn"),
    "cross": ("decoder", "cross_attn"),
}


def check_kind(kind: str) -> None:
    if kind not in KIND_PARTS:
        raise ValueError(f"unknown attention kind {kind!r}; choose one of {', '.join(ATTENTION_KINDS)}")


def stack_of(kind: str) -> Stack:
    """The stack of layers that computes `kind`: 'encoder' or 'decoder'."""
    check_kind(kind)
    return KIND_PARTS[kind][0]


def cache_prefix(kind: str, layer: int) -> str:
    """The ActivationCache name of one attention, e.g. 'decoder.1.cross_attn' (0-based layer)."""
    check_kind(kind)
    stack, module = KIND_PARTS[kind]
    return f"{stack}.{layer}.{module}"
