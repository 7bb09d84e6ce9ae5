"""The selection model and the pure map functions the views draw from (no window needed)."""

from __future__ import annotations

import numpy as np
import pytest

from engine.render.labels import AVERAGE
from gui.maps import TokenFocus, hover_text, link_opacities
from gui.view_state import ViewState, WalkthroughSelection

SHAPE = {"enc_self": 2, "dec_self": 3, "cross": 3}


@pytest.fixture
def state(qapp):
    state = ViewState()
    state.set_model_shape(SHAPE, 4)
    return state


def test_select_clamps_to_the_model_and_signals_once(state, qtbot):
    with qtbot.waitSignal(state.selectionChanged):
        state.select(kind="dec_self", layer=10, head=99)
    assert (state.kind, state.layer, state.head) == ("dec_self", 2, 3)
    state.set_kind("enc_self")  # two encoder layers only
    assert state.layer == 1
    with pytest.raises(ValueError):
        state.select(kind="nonsense")


def test_unchanged_selection_emits_nothing(state, qtbot):
    state.select(layer=1, head=2)
    with qtbot.assertNotEmitted(state.selectionChanged):
        state.select(layer=1, head=2)


def test_step_head_runs_through_the_heads_then_the_average(state):
    state.select(head=2)
    state.step_head(1)
    assert state.head == 3
    state.step_head(1)
    assert state.head == AVERAGE
    state.step_head(1)
    assert state.head == AVERAGE  # stops at the end
    state.step_head(-1)
    assert state.head == 3
    state.select(head=0)
    state.step_head(-1)
    assert state.head == 0


def test_step_layer_stops_at_both_ends(state):
    state.set_kind("dec_self")
    for _ in range(5):
        state.step_layer(1)
    assert state.layer == 2
    for _ in range(5):
        state.step_layer(-1)
    assert state.layer == 0


def test_changing_kind_forgets_the_focused_token(state, qtbot):
    state.set_token(TokenFocus("query", 1))
    with qtbot.waitSignal(state.tokenChanged):
        state.set_kind("enc_self")
    assert state.token is None


def test_new_model_shape_is_announced_even_if_the_selection_stays(state, qtbot):
    with qtbot.waitSignal(state.selectionChanged):
        state.set_model_shape({"enc_self": 6, "dec_self": 6, "cross": 6}, 8)
    assert state.n_heads == 8 and state.n_layers("enc_self") == 6


def test_step_field_signals(state, qtbot):
    with qtbot.waitSignal(state.stepChanged):
        state.set_step(3)
    assert state.step == 3


def test_hover_text_names_both_tokens_and_the_exact_weight(reference):
    trace = reference.trace("le chien dort")
    weights = trace.cross[0, 0]
    queries, keys = trace.axis_pieces("cross")
    assert hover_text(trace, "cross", weights, 1, 2) == f"{queries[1]} → {keys[2]}: {weights[1, 2]:.4f}"
    assert hover_text(trace, "cross", weights, -1, 0) == ""
    assert hover_text(trace, "cross", weights, 0, len(keys)) == ""


def test_link_opacities_follow_the_weights_and_dim_other_tokens_links():
    weights = np.array([[0.7, 0.3], [0.2, 0.8]], dtype=np.float32)
    np.testing.assert_allclose(link_opacities(weights, None), weights)
    focused = link_opacities(weights, TokenFocus("query", 1), dim=0.1)
    np.testing.assert_allclose(focused, [[0.07, 0.03], [0.2, 0.8]], rtol=1e-6)
    focused = link_opacities(weights, TokenFocus("key", 0), dim=0.1)
    np.testing.assert_allclose(focused, [[0.7, 0.03], [0.2, 0.08]], rtol=1e-6)


def test_visible_labels_skip_the_ones_that_would_overlap():
    from gui.views.heatmap import visible_labels

    assert visible_labels([10, 10, 10], cell=20, gap=0) == [0, 1, 2]  # all fit
    assert visible_labels([30, 30, 30, 30], cell=20, gap=0) == [0, 2]  # each covers its neighbours
    assert visible_labels([10, 50, 10, 10], cell=20, gap=4) == [0, 2, 3]
    assert visible_labels([], cell=20) == []
    # by priority: the heaviest label first, then whatever still fits around it
    assert visible_labels([30, 30, 30, 30], cell=20, gap=0, priority=[0.1, 0.7, 0.1, 0.1]) == [1, 3]
    assert visible_labels([30, 30, 30, 30], cell=20, gap=0, priority=[0, 0, 0, 0]) == [0, 2]  # ties: in order
    assert visible_labels([10, 50, 10, 10], cell=20, gap=4, priority=[0, 1, 0, 0]) == [1, 3]


def test_focus_text_names_the_strongest_link(reference):
    from gui.maps import focus_text

    trace = reference.trace("le chien dort")
    weights = trace.cross[1, 0]
    queries, keys = trace.axis_pieces("cross")
    best_key = int(np.argmax(weights[2]))
    assert focus_text(trace, "cross", weights, TokenFocus("query", 2)) == (
        f"{queries[2]} attends most to {keys[best_key]} ({weights[2, best_key]:.3f})"
    )
    best_query = int(np.argmax(weights[:, 0]))
    assert focus_text(trace, "cross", weights, TokenFocus("key", 0)).startswith(
        f"{keys[0]} is attended most by {queries[best_query]}"
    )
    assert focus_text(trace, "cross", weights, None) == ""
    assert focus_text(trace, "cross", weights, TokenFocus("key", 999)) == ""


def test_the_heatmap_keeps_the_labels_of_the_keys_the_outlined_row_attends_to(qtbot):
    from gui.views.heatmap import Heatmap

    heatmap = Heatmap()
    qtbot.addWidget(heatmap)
    heatmap.resize(500, 400)
    heatmap.show()
    columns = 60  # far more long labels than fit across 500 pixels
    matrix = np.full((4, columns), 1.0 / columns, dtype=np.float32)
    matrix[1, 37] = matrix[2, 51] = 0.9
    heatmap.set_matrix(matrix, [f"q{i}" for i in range(4)], [f"_piece{i}" for i in range(columns)])

    def labelled() -> list[int]:
        return [i for i, _ in heatmap.plot.getAxis("top")._tickLevels[0]]

    assert 1 < len(labelled()) < columns
    heatmap.set_highlight_row(1)
    assert 37 in labelled()
    heatmap.set_highlight_row(2)
    assert 51 in labelled()


def test_forcing_is_announced_once_and_a_beam_node_is_forced_too(state, qtbot):
    with qtbot.waitSignal(state.forcingChanged):
        state.force_prefix([5, 7])
    assert (state.forced_prefix, state.beam_selection) == ((5, 7), None)
    with qtbot.assertNotEmitted(state.forcingChanged):
        state.force_prefix((5, 7))
    state.choose_beam_node([5, 9, 2])
    assert state.forced_prefix == state.beam_selection == (5, 9, 2)
    state.force_prefix([5])  # a candidate chosen after a beam node: no longer a beam node's path
    assert state.beam_selection is None
    with qtbot.waitSignal(state.forcingChanged):
        state.clear_forcing()
    assert (state.forced_prefix, state.beam_selection) == ((), None)
    with qtbot.assertNotEmitted(state.forcingChanged):
        state.clear_forcing()


def test_the_walkthrough_follows_the_query_token_then_the_step(state, reference):
    from engine.translator import TraceOptions

    assert state.walkthrough_selection(reference.trace("le chien dort")) is None  # no q/k/v recorded
    trace = reference.trace("le chien dort", TraceOptions(with_qkv=True))
    state.select(kind="dec_self", layer=2, head=AVERAGE)
    selection = state.walkthrough_selection(trace)
    assert (selection.kind, selection.layer, selection.head, selection.query) == ("dec_self", 2, 0, 0)
    state.set_step(2)
    assert state.walkthrough_selection(trace).query == 2
    state.set_token(TokenFocus("key", 1))  # a key is not a query: the step stays
    assert state.walkthrough_selection(trace).query == 2
    state.set_token(TokenFocus("query", 99))  # clamped to the last query
    assert state.walkthrough_selection(trace).query == len(trace.tgt_pieces) - 1
    state.select(kind="enc_self", head=1)  # encoder rows are source pieces: the step does not apply
    assert state.walkthrough_selection(trace) == WalkthroughSelection("enc_self", 1, 1, 0)
