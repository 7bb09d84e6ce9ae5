"""Property-based fuzzing of the engine with hostile text: it never raises anything but
EmptyInputError for blank text, and every trace shows the tokens the model read, the text it
translated and well-formed maps."""

import pytest
from hostile_text import HOSTILE_PIECES
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from trace_checks import assert_trace_of

from engine.translator import EmptyInputError, Translator

HOSTILE = st.sampled_from(HOSTILE_PIECES)
TEXT = st.lists(st.one_of(HOSTILE, st.text(max_size=12)), max_size=8).map("".join)


@pytest.fixture(scope="module")
def translator(tiny_model_dir):
    return Translator.from_directory(tiny_model_dir, "cpu")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=TEXT)
def test_any_text_gives_a_consistent_trace_or_a_clear_refusal(translator, text):
    try:
        trace = translator.trace(text)
    except EmptyInputError:
        assert not text.strip()
        return
    assert_trace_of(translator, text, trace)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(min_size=1, max_size=3).filter(str.strip), repeat=st.integers(3000, 6000))
def test_huge_text_is_cut_with_a_notice(translator, text, repeat):
    trace = translator.trace(text * repeat)
    assert trace.truncated
    assert_trace_of(translator, text * repeat, trace)


@pytest.mark.parametrize("text", ["\ud800", "caf\udce9", "\ud83d\ude42 le chat"])
def test_lone_surrogates_are_translated_not_refused_by_the_native_library(translator, text):
    """SentencePiece's binding raised RuntimeError ("Unable to cast Python instance") on them."""
    trace = translator.trace(text)
    assert_trace_of(translator, text, trace)
    trace.source_text.encode("utf-8")  # the Trace keeps the text: `cli --json` printed it and failed
