"""How the window adapts to the shape of the model it loads: a translator, BERT or GPT-2.

When a model loads, the window asks `adapt_window` to offer only the attention kinds the model has
(the selection bar and the View menu), to name the steps tab after what the model outputs (decoder
steps, masks, a continuation), to tell the beam and positional views the model's shape and positions,
and to say in the sentence box what to type. The previous model's trace is cleared before this, so
no view ever shows it beside the new model's name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.render.shapes import STEPS_TAB
from gui.worker import ModelSummary

if TYPE_CHECKING:
    from gui.main_window import MainWindow

LANGUAGES = {"fr": "French", "en": "English", "de": "German", "es": "Spanish"}
NO_MODEL = (
    "No model is loaded: choose one in the Model menu, open one with File → Open model…, "
    "or drop a model folder on this window."
)


def language_name(code: str) -> str:
    return LANGUAGES.get(code, code)


def placeholder(shape: str, language: str) -> str:
    """The sentence box's grey text before anything is typed."""
    if shape == "encoder-only":
        return "Type a sentence with [MASK] in it…"
    if shape == "decoder-only":
        return "Type a prompt for the model to continue…"
    return f"Type a {language} sentence to translate…"


def hint_text(shape: str, language: str, has_model: bool) -> str:
    """What the window says under the sentence box while there is nothing to show."""
    if not has_model:
        return NO_MODEL
    if shape == "encoder-only":
        return (
            "Type a sentence with [MASK] in it: BERT's best fillers for each mask, and every layer's and "
            "head's attention, follow as you type."
        )
    if shape == "decoder-only":
        return (
            "Type a prompt: GPT-2 continues it (New tokens sets how far; Beam size above 1 searches), and "
            "every layer's and head's attention follows as you type."
        )
    language = f"{language} " if language else ""
    return (
        f"Type a {language}sentence above: the translation and every layer's and head's attention follow as you type."
    )


def adapt_window(window: MainWindow, summary: ModelSummary) -> None:
    """Offer what `summary`'s model has and name what it outputs (see the module docstring)."""
    window.view_state.set_model_shape(summary.n_layers, summary.n_heads)
    for kind, action in window.kind_actions.items():
        action.setVisible(kind in summary.kinds)
    window.positional_view.set_model(summary.d_model, summary.pe_base, summary.positions)
    window.beam_view.set_shape(summary.shape)
    window.tabs.setTabText(window.tabs.indexOf(window.decoder_steps), STEPS_TAB[summary.shape])
    language = language_name(summary.source_language)
    window.source.setPlaceholderText(placeholder(summary.shape, language))
