"""Property-based fuzzing of the app's text box: whatever is pasted, the window shows a consistent
trace or the blank-text hint, never a failure, and a cut text always carries the visible notice."""

from __future__ import annotations

import numpy as np
import pytest
from hostile_text import HOSTILE_PIECES
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.render.labels import AVERAGE, select_map
from gui.maps import token_summary
from gui.views.model_view import cell_data

TIMEOUT_MS = 60_000
HOSTILE = st.sampled_from(HOSTILE_PIECES)
PIECES = st.one_of(HOSTILE, st.text(max_size=10))
TEXT = st.one_of(
    st.lists(PIECES, max_size=8).map("".join),
    st.tuples(PIECES.filter(str.strip), st.integers(2_000, 12_000)).map(lambda pair: pair[0] * pair[1]),  # huge
)


def settled(window) -> bool:
    """The window shows the answer to the text in its box."""
    if not window.idle:
        return False
    if not window.source.text().strip():
        return window.trace is None
    return window.trace is not None and window.trace.source_text == window.source.text()


def assert_views_show(window, trace) -> None:
    """Every view shows the trace the window says is on screen (and not, say, the previous one)."""
    state = window.view_state
    maps = trace.attention(state.kind)
    np.testing.assert_array_equal(cell_data(window.model_view, maps.shape[0] - 1, 0), maps[-1, 0])
    np.testing.assert_allclose(cell_data(window.model_view, 0, AVERAGE), maps[0].mean(axis=0))
    np.testing.assert_array_equal(
        window.head_view.heatmap.matrix, select_map(trace, state.kind, state.layer, state.head)
    )
    assert window.head_view.heatmap.column_labels == trace.axis_pieces(state.kind)[1]
    assert window.decoder_steps.trace is trace and window.positional_view.trace is trace
    assert window.sentence.translation.text() == trace.translation
    assert window.tokens_label.text() == token_summary(trace)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=TEXT)
def test_any_pasted_text_shows_a_consistent_trace_or_the_hint(window, qtbot, text):
    window.source.setText(text)
    qtbot.waitUntil(lambda: settled(window), timeout=TIMEOUT_MS)
    assert not window.statusBar().currentMessage().startswith("Translation failed")
    trace = window.trace
    if trace is None:
        assert window.sentence.hint.isVisible() and not window.sentence.truncated_notice.isVisible()
        return
    assert_views_show(window, trace)
    assert window.sentence.truncated_notice.isVisible() == trace.truncated
    if len(text) > 10_000:
        assert trace.truncated


@pytest.mark.parametrize("text", ["\x00" * 3, "\u202eabc\u202c", "{0}%s<b>", "🙂" * 5000])
def test_hostile_text_examples(window, qtbot, text):
    """Fixed cases from the strategy above, so they run even where hypothesis draws others."""
    window.source.setText(text)
    qtbot.waitUntil(lambda: settled(window), timeout=TIMEOUT_MS)
    assert window.trace is not None and window.sentence.translation.isVisible()
    assert_views_show(window, window.trace)
    assert not window.statusBar().currentMessage().startswith("Translation failed")
