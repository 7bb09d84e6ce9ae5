"""Issue 5 in the window: positional encodings, the decoder steps, forcing a token, beam search."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt

from engine.decoding import DecodingOptions
from engine.positional import sinusoidal_table
from engine.render.labels import AVERAGE
from engine.translator import TraceOptions
from gui.maps import TokenFocus
from gui.views.beam_view import best_path_nodes
from gui.views.decoder_steps import BLOCKED_COLOR, MASKED_TEXT, ROW_PLOT_MIN_HEIGHT, loop_blocked
from gui.views.model_view import cell_data
from gui.views.positional_view import parse_dimensions

TIMEOUT_MS = 60_000
TEXT = "je suis étudiant et tu es mon ami"


def show_sentence(qtbot, window, text: str = TEXT) -> None:
    window.source.setText(text)
    qtbot.waitUntil(lambda: window.trace is not None and window.trace.source_text == text, timeout=TIMEOUT_MS)


def wait_for_new_trace(qtbot, window, before) -> None:
    qtbot.waitUntil(lambda: window.trace is not None and window.trace is not before, timeout=TIMEOUT_MS)


# --- the decoder steps ---


def test_the_steps_attention_rows_keep_a_readable_height_in_the_default_window(window, qtbot):
    """The maps above take most of the window, but not the step's two attention rows: squeezed to the
    tab's old minimum they were 69 px, their title and piece labels leaving 15 px of bars."""
    show_sentence(qtbot, window)
    qtbot.wait(1)  # the layout's pending requests run
    steps = window.decoder_steps
    assert steps.cross_plot.height() >= ROW_PLOT_MIN_HEIGHT and steps.self_plot.height() >= ROW_PLOT_MIN_HEIGHT


@pytest.mark.parametrize("head", [1, AVERAGE])
def test_the_decoder_steps_at_step_t_show_row_t_and_the_steps_top_k(window, qtbot, head):
    show_sentence(qtbot, window)
    trace, state, steps = window.trace, window.view_state, window.decoder_steps
    state.select(layer=2, head=head)
    n = len(trace.tgt_pieces)
    assert steps.slider.maximum() == n
    for step in range(n):
        steps.slider.setValue(step + 1)  # what dragging the slider to t = step + 1 does
        assert state.step == step
        maps = {kind: trace.attention(kind)[2] for kind in ("cross", "dec_self")}
        expected = {k: (m.mean(axis=0) if head == AVERAGE else m[head])[step] for k, m in maps.items()}
        np.testing.assert_allclose(steps.cross_row, expected["cross"])
        np.testing.assert_allclose(steps.self_row, expected["dec_self"])
        np.testing.assert_array_equal(steps.topk_ids, trace.topk_ids[step])
        np.testing.assert_array_equal(steps.topk_probs, trace.topk_probs[step])
        assert steps.candidates.count() == trace.topk_ids.shape[1]
        # the future is masked: shown as such, not as weight 0
        np.testing.assert_array_equal(steps.visible, np.arange(n) <= step)
        assert f"step {step + 1}/{n}" == steps.step_label.text()
        assert f"[{trace.out_pieces[step]}]" in steps.output.text()

    def masked_labels() -> list[str]:
        items = steps.self_plot.items()
        return [item.textItem.toPlainText() for item in items if hasattr(item, "textItem") and item.isVisible()]

    assert not masked_labels()  # the last step sees every position: nothing is masked
    steps.slider.setValue(1)
    assert any(MASKED_TEXT in text for text in masked_labels())
    assert len(steps.masked_bars.opts["x"]) == n - 1  # every future position is hatched


def test_a_candidate_the_loop_guard_ruled_out_is_marked_so(window, qtbot):
    """The tiny random model loops: at a step where its best candidate would complete a loop, the
    list and the bars say why the second one was chosen."""
    show_sentence(qtbot, window)
    trace, steps = window.trace, window.decoder_steps
    guarded = [t for t in range(len(trace.out_ids)) if trace.topk_ids[t, 0] != trace.out_ids[t]]
    assert trace.loop_guard and guarded
    step = guarded[0]
    window.view_state.set_step(step)
    chosen = list(trace.topk_ids[step]).index(trace.out_ids[step])
    texts = [steps.candidates.item(i).text() for i in range(steps.candidates.count())]
    assert texts[0].endswith("✗ would complete a loop") and texts[chosen].endswith("← chosen")
    brushes = steps.topk_bars.opts["brushes"]
    assert brushes[0] == BLOCKED_COLOR and brushes[chosen] == "#d62728"
    assert "grey: would loop" in steps.topk_plot.plotItem.titleLabel.text
    window.view_state.set_step(next(t for t in range(len(trace.out_ids)) if t not in guarded))
    assert not any("loop" in steps.candidates.item(i).text() for i in range(steps.candidates.count()))


def test_a_candidate_the_text_rule_ruled_out_is_found_from_the_trace():
    """The shipped fr-en model writes "9 h 00" here as "9" ":" "00" "00" and ranks a third "00" among
    its candidates: the letters would loop ("000000") though the pieces do not; the view finds it
    from the trace alone."""
    from pathlib import Path

    from engine.translator import Translator

    model = Path(__file__).resolve().parents[2] / "resources" / "models" / "fr-en"
    trace = Translator.from_directory(model, "cpu").trace(
        "On était tellement crevés qu'on s'est couchés à 9 h 00 hier soir."
    )
    step = next(t for t in range(2, len(trace.out_pieces)) if trace.out_pieces[t - 2 : t] == ["00", "00"])
    blocked = loop_blocked(trace, step)
    candidates = list(trace.topk_pieces[step])
    assert "00" in candidates and int(trace.topk_ids[step][candidates.index("00")]) in blocked
    assert trace.out_pieces[step] != "00" and int(trace.out_ids[step]) not in blocked
    assert loop_blocked(trace, step - 1) == []


def test_the_step_buttons_and_play_move_through_the_steps(window, qtbot):
    show_sentence(qtbot, window)
    steps, state = window.decoder_steps, window.view_state
    state.set_step(0)
    qtbot.mouseClick(steps.forward, Qt.MouseButton.LeftButton)
    assert state.step == 1
    qtbot.mouseClick(steps.back, Qt.MouseButton.LeftButton)
    qtbot.mouseClick(steps.back, Qt.MouseButton.LeftButton)
    assert state.step == 0
    steps.timer.setInterval(10)
    steps.play.setChecked(True)
    last = len(window.trace.tgt_pieces) - 1
    qtbot.waitUntil(lambda: state.step == last and not steps.play.isChecked(), timeout=TIMEOUT_MS)


def test_the_head_view_and_the_grid_outline_the_selected_step(window, qtbot):
    show_sentence(qtbot, window)
    window.view_state.set_step(2)
    assert window.head_view.heatmap.highlighted_row == 2
    assert window.head_view.heatmap.row_outline.isVisible()
    assert window.model_view.highlighted_step() == 2
    assert window.model_view.cell(0, 0).step_outline.isVisible()
    window.view_state.set_kind("enc_self")  # encoder rows are source pieces, not steps
    assert window.head_view.heatmap.highlighted_row is None
    assert not window.model_view.cell(0, 0).step_outline.isVisible()


# --- forcing a token ---


def test_forcing_a_candidate_decodes_on_from_the_forced_prefix(window, qtbot, reference):
    show_sentence(qtbot, window)
    before = window.trace
    step = 1
    window.view_state.set_step(step)
    rank = next(r for r, t in enumerate(before.topk_ids[step]) if t != before.out_ids[step])
    chosen = int(before.topk_ids[step][rank])
    window.decoder_steps.force_candidate(rank)  # what clicking the candidate does
    wait_for_new_trace(qtbot, window, before)
    after = window.trace
    prefix = (*before.out_ids[:step].tolist(), chosen)
    assert tuple(after.out_ids[: step + 1].tolist()) == prefix
    assert window.view_state.forced_prefix == prefix
    expected = reference.trace(TEXT, TraceOptions(forced_prefix=prefix))
    assert after.translation == expected.translation
    np.testing.assert_allclose(after.cross, expected.cross, atol=1e-6)
    # the attention was recomputed for the new path: every view shows it
    assert not np.array_equal(after.dec_self[:, :, : step + 2], before.dec_self[:, :, : step + 2])
    np.testing.assert_array_equal(cell_data(window.model_view, 0, 0), after.cross[0, 0])
    np.testing.assert_array_equal(window.head_view.heatmap.image.image, after.cross[0, 0])
    assert window.decoder_steps.trace is after and window.decoder_steps.forced_length == step + 1
    assert window.selection_bar.unforce_button.isVisible() and window.decoder_steps.reset.isVisible()

    qtbot.mouseClick(window.decoder_steps.reset, Qt.MouseButton.LeftButton)
    wait_for_new_trace(qtbot, window, after)
    assert window.view_state.forced_prefix == ()
    assert window.trace.translation == before.translation
    assert not window.selection_bar.unforce_button.isVisible()


def test_typing_forgets_the_forced_tokens(window, qtbot):
    show_sentence(qtbot, window)
    before = window.trace
    window.force_token(0, int(before.topk_ids[0][1]))
    wait_for_new_trace(qtbot, window, before)
    assert window.view_state.forced_prefix
    show_sentence(qtbot, window, "le chien dort")
    assert window.view_state.forced_prefix == ()
    assert window.trace.decoding == "greedy"


# --- beam search ---


def test_the_beam_trees_best_path_is_the_engines_beam_output(window, qtbot, reference):
    show_sentence(qtbot, window)
    before = window.trace
    assert window.beam_view.plot.isHidden()  # greedy: one sentence says why, over no empty axes
    window.selection_bar.beam_size.setValue(3)
    qtbot.waitUntil(lambda: window.result is not None and window.result.beam is not None, timeout=TIMEOUT_MS)
    assert not window.beam_view.plot.isHidden()
    tree = window.beam_view.tree
    expected = reference.beam(TEXT, DecodingOptions(beam_size=3))
    assert window.beam_view.best_path_tokens() == tuple(expected.hypotheses[0].tokens)
    assert tree.best == tuple(expected.hypotheses[0].tokens)
    assert [h for h, _ in tree.hypotheses] == [tuple(h.tokens) for h in expected.hypotheses]
    assert tuple(window.trace.out_ids.tolist()) == tuple(expected.hypotheses[0].tokens)
    assert window.trace is not before and window.trace.decoding == "beam 3"
    # the tree: one node per kept beam per step, parents one step up, pruned nodes off every final path
    nodes = tree.nodes
    for node in nodes:
        if node.parent >= 0:
            assert nodes[node.parent].tokens == node.tokens[:-1]
            assert nodes[node.parent].depth == node.depth - 1
    path = best_path_nodes(tree)
    assert [nodes[i].tokens[-1] for i in path] == list(expected.hypotheses[0].tokens)
    finals = [h for h, _ in tree.hypotheses]
    for node in nodes:  # kept exactly when it lies on the path of a final hypothesis
        assert node.survived == any(h[: len(node.tokens)] == node.tokens for h in finals), node
    for depth, step in enumerate(expected.steps, start=1):  # each step's beams, in rank order
        beams = [n for n in nodes if n.depth == depth and n.rank < len(step.tokens)]
        assert [n.tokens[-1] for n in beams] == [int(t) for t in step.tokens]

    # choosing a node shows the attention of its path
    pruned = [i for i, n in enumerate(nodes) if not n.survived and n.depth >= 2]
    node = pruned[0] if pruned else path[1]
    shown = window.trace
    window.beam_view.choose(node)
    wait_for_new_trace(qtbot, window, shown)
    prefix = nodes[node].tokens
    assert tuple(window.trace.out_ids[: len(prefix)].tolist()) == prefix
    assert window.beam_view.tree is not None and window.beam_view.selected == node

    window.selection_bar.beam_size.setValue(1)
    qtbot.waitUntil(lambda: window.result is not None and window.result.beam is None, timeout=TIMEOUT_MS)
    assert window.beam_view.tree is None


# --- positional encodings ---


def test_the_positional_view_shows_the_sentences_rows_and_their_norms(window, qtbot, reference):
    show_sentence(qtbot, window)
    view = window.positional_view
    trace = window.trace
    assert view.stale  # its tab is hidden: drawn only once shown
    window.tabs.setCurrentWidget(view)
    assert not view.stale
    np.testing.assert_array_equal(view.heatmap.matrix, trace.positional.astype(np.float32))
    np.testing.assert_allclose(view.similarity.matrix, trace.positional @ trace.positional.T, rtol=1e-5)
    scale = float(np.abs(view.similarity.matrix).max())  # dot products, not weights: the scale is theirs
    np.testing.assert_allclose(view.similarity.colorbar.levels(), (-scale, scale), rtol=1e-5)
    assert view.curves.minimumHeight() >= 150 and view.norms.minimumHeight() >= 150  # short windows scroll instead
    assert view.heatmap.row_labels[0] == f"0 {trace.src_pieces[0]}"
    qkv = reference.trace(TEXT, TraceOptions(with_qkv=True)).qkv
    embeddings = qkv["encoder.embed"] - trace.positional
    np.testing.assert_allclose(view.embedding_norms, np.linalg.norm(embeddings, axis=1), rtol=1e-5)
    np.testing.assert_allclose(view.positional_norms, np.linalg.norm(trace.positional, axis=1), rtol=1e-5)
    view.dimensions.setText("3, 0, 99, x")
    view.dimensions.editingFinished.emit()
    assert view.shown_dimensions == [3, 0]  # the model is 32 wide: 99 does not exist


@pytest.mark.parametrize(("base", "d_model"), [(10000.0, 16), (100.0, 6), (10.0, 4)])
def test_the_explore_table_equals_the_closed_form(window, qtbot, base, d_model):
    view = window.positional_view
    window.tabs.setCurrentWidget(view)  # a hidden tab draws nothing until it is shown
    view.set_explore(True)
    view.set_parameters(base, d_model, 12)
    table = view.table_values()
    assert table.shape == (4, 4)
    pos = np.arange(4)[:, None]
    closed = np.empty((4, 4))
    for dim in range(4):
        angle = pos[:, 0] / base ** (2 * (dim // 2) / d_model)
        closed[:, dim] = np.sin(angle) if dim % 2 == 0 else np.cos(angle)
    np.testing.assert_allclose(table, np.round(closed, 3), atol=1e-9)
    np.testing.assert_allclose(view.heatmap.matrix, sinusoidal_table(12, d_model, base), atol=1e-6)
    if base == 10000.0:
        assert view.values.item(1, 0).text() == "0.841" and view.values.item(1, 1).text() == "0.540"
    view.set_explore(False)


def test_parse_dimensions_keeps_valid_distinct_entries():
    assert parse_dimensions("0, 1; 8 8 70", 64) == [0, 1, 8]
    assert parse_dimensions("", 64) == []


# --- the walkthrough tab ---


def test_the_walkthrough_tab_follows_the_selection_and_the_query_token(window, qtbot, reference):
    show_sentence(qtbot, window)
    window.view_state.select(kind="dec_self", layer=1, head=2)
    window.tabs.setCurrentWidget(window.walkthrough_view)
    window.view_state.set_token(TokenFocus("query", 2))
    qtbot.waitUntil(
        lambda: (
            window.walkthrough is not None
            and (window.walkthrough.kind, window.walkthrough.layer, window.walkthrough.head, window.walkthrough.query)
            == ("dec_self", 1, 2, 2)
        ),
        timeout=TIMEOUT_MS,
    )
    w = window.walkthrough
    np.testing.assert_allclose(w.weights, window.trace.dec_self[1, 2, 2], atol=1e-5)
    assert window.walkthrough_view.walkthrough is w
    assert window.walkthrough_view.query.currentIndex() == 2


def test_the_step_rows_label_every_piece_on_one_line_then_two_then_thin_the_rest(window, qtbot):
    window.resize(1200, 800)
    show_sentence(qtbot, window, "je suis étudiant")
    steps = window.decoder_steps
    axis = steps.cross_plot.getAxis("bottom")
    one_line_height = axis.fixedHeight  # what the labels ask for, set at once (the layout follows)
    assert [label for _, label in axis._tickLevels[0]] == window.trace.src_pieces  # short: all of them, one line

    show_sentence(qtbot, window, "je suis étudiant et tu es mon ami")
    pieces = window.trace.src_pieces
    shown = axis._tickLevels[0]
    assert [i for i, _ in shown] == list(range(len(pieces)))  # every bar keeps its label ...
    assert all(label == ("\n" if i % 2 else "") + pieces[i] for i, label in shown)  # ... every other one lower
    assert axis.fixedHeight > one_line_height  # the axis makes room for the second line

    show_sentence(qtbot, window, " ".join(["je suis étudiant et tu es mon ami"] * 12))
    pieces = window.trace.src_pieces
    shown = axis._tickLevels[0]
    assert 1 < len(shown) < len(pieces)  # thinned instead of piled on each other
    assert all(pieces[i] == label.lstrip("\n") for i, label in shown)  # each label still sits under its own bar
    assert int(np.argmax(steps.cross_row)) in [i for i, _ in shown]  # the most attended piece keeps its label

    show_sentence(qtbot, window, "je suis étudiant")
    assert axis.fixedHeight == one_line_height  # one line again
    assert not any("\n" in label for _, label in axis._tickLevels[0])


# --- a text of several sentences ---

PARAGRAPH = "Je suis étudiant. Le chien dort ! Tu es mon ami."


def test_a_step_of_a_text_is_drawn_over_its_own_sentence_and_can_be_forced(window, qtbot):
    show_sentence(qtbot, window, PARAGRAPH)
    trace, state, steps = window.trace, window.view_state, window.decoder_steps
    assert trace.sentences == 3
    state.select(layer=1, head=0)
    step = int(np.flatnonzero(trace.tgt_sentence == 1)[1])  # the second step of the second sentence
    steps.slider.setValue(step + 1)
    src, tgt = np.flatnonzero(trace.src_sentence == 1), np.flatnonzero(trace.tgt_sentence == 1)
    np.testing.assert_allclose(steps.cross_row, trace.cross[1, 0, step, src])
    np.testing.assert_allclose(steps.self_row, trace.dec_self[1, 0, step, tgt])
    np.testing.assert_array_equal(steps.visible, tgt <= step)  # its own <s> and itself; the rest is future
    assert "of sentence 2/3" in steps.cross_plot.getPlotItem().titleLabel.text
    assert steps.output.text().startswith(f"sentence 2/3, output so far: {trace.out_pieces[tgt[0]]} <b")
    # forcing a candidate there keeps the first sentence and changes the second from that step on
    wanted = int(trace.topk_ids[step, 1])
    window.force_token(step, wanted)
    wait_for_new_trace(qtbot, window, trace)
    forced = window.trace
    assert forced.sentences == 3 and int(forced.out_ids[step]) == wanted
    np.testing.assert_array_equal(forced.out_ids[forced.tgt_sentence == 0], trace.out_ids[trace.tgt_sentence == 0])


def test_a_beam_search_over_a_text_says_where_its_trees_went(window, qtbot):
    show_sentence(qtbot, window, PARAGRAPH)
    window.selection_bar.beam_size.setValue(2)
    qtbot.waitUntil(lambda: window.trace.decoding == "beam 2, 3 sentences", timeout=TIMEOUT_MS)
    assert window.beam_view.plot.isHidden()
    assert "3 sentences had a beam search of its own" in window.beam_view.caption.text()


def test_the_positional_view_of_a_text_counts_positions_from_each_sentence(window, qtbot):
    show_sentence(qtbot, window, PARAGRAPH)
    view, trace = window.positional_view, window.trace
    window.tabs.setCurrentWidget(view)
    second = int(np.flatnonzero(trace.src_sentence == 1)[0])
    assert view.heatmap.row_labels[second] == f"0 {trace.src_pieces[second]}"  # the encoding of position 0 again
    np.testing.assert_array_equal(view.heatmap.matrix[second], trace.positional[0])
    assert "3 sentences is translated on its own" in view.caption.text()
