"""What a model of each shape has and lacks, in words the views and the figures share.

The family tree has three shapes (engine.architecture.SHAPE_KINDS): the translator has all three
attention kinds, BERT only encoder self-attention, GPT-2 only (masked) decoder self-attention. A view
or figure asked for a kind the model lacks says so in one sentence instead of drawing an empty axis.
Numpy-free and Qt-free: the GUI and the command line both import it.
"""

from __future__ import annotations

from engine.architecture import SHAPE_KINDS, check_kind
from engine.trace import Trace

# how the app calls a model of each shape in a sentence (BERT and GPT-2 are the families it opens)
SHAPE_NAMES = {"encoder-decoder": "The translation model", "encoder-only": "BERT", "decoder-only": "GPT-2"}
SHORT_KIND_NAMES = {
    "enc_self": "encoder self-attention",
    "dec_self": "decoder self-attention",
    "cross": "cross-attention",
}
# what one output of each shape is: a decoder step, a filled [MASK], a new token of the continuation
STEP_NAMES = {"encoder-decoder": "decoder step", "encoder-only": "mask", "decoder-only": "new token"}
STEPS_TAB = {"encoder-decoder": "Decoder steps", "encoder-only": "Masks", "decoder-only": "Continuation"}
NO_MASK = "Type [MASK] in the text to see what BERT would put there."
NO_BEAM = "BERT fills every [MASK] in one pass: there is no decoding, so there is no beam search."


def missing_kind(shape: str, kind: str) -> str:
    """One sentence: why a model of `shape` has no `kind` ('' when it has it); ValueError for no kind at all."""
    check_kind(kind)
    if kind in SHAPE_KINDS[shape]:
        return ""
    lacks = "encoder" if shape == "decoder-only" else "decoder"
    return f"{SHAPE_NAMES[shape]} has no {lacks}, so there is no {SHORT_KIND_NAMES[kind]}."


def input_kind(shape: str) -> str:
    """The self-attention over the model's input: the encoder's, or a decoder-only model's own."""
    return "dec_self" if shape == "decoder-only" else "enc_self"


def step_kind(shape: str) -> str:
    """The kind whose layers a step figure draws: cross-attention for a translator, else the input's."""
    return "cross" if shape == "encoder-decoder" else input_kind(shape)


def step_row(trace: Trace, step: int) -> int:
    """The query row of `trace` that chose output `step` (a decoder step, a mask's position, a prompt row)."""
    return int(trace.out_positions[step])


def of_sentence(trace: Trace, row: int) -> str:
    """' of sentence 2/5' for a decoder row of a text of several sentences; '' for one sentence."""
    if trace.sentences == 1:
        return ""
    return f" of sentence {int(trace.tgt_sentence[row]) + 1}/{trace.sentences}"


def check_kind_present(trace: Trace, kind: str) -> None:
    """Raise ValueError with the one sentence when `trace`'s model has no `kind`."""
    message = missing_kind(trace.shape, kind)
    if message:
        raise ValueError(message)
