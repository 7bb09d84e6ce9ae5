"""The views on BERT (encoder-only) and GPT-2 (decoder-only) traces: BERT's masks with their fillers,
GPT-2's continuation step by step, learned positions, and one sentence where a view does not apply."""

from __future__ import annotations

import numpy as np
import pytest
from one_stack_models import one_stack_translator
from PySide6.QtWidgets import QLayout, QVBoxLayout, QWidget

from engine.decoding import DecodingOptions
from engine.render.shapes import NO_BEAM, NO_MASK
from engine.translator import TraceOptions
from gui.view_state import ViewState
from gui.views.beam_view import BeamView
from gui.views.decoder_steps import DecoderStepsView
from gui.views.head_view import HeadView
from gui.views.model_view import ModelView
from gui.views.positional_view import PositionalView
from gui.views.selection_bar import SelectionBar

N_LAYERS = {
    "encoder-only": {"enc_self": 2, "dec_self": 0, "cross": 0},
    "decoder-only": {"enc_self": 0, "dec_self": 3, "cross": 0},
}


@pytest.fixture(scope="module")
def traces():
    options = TraceOptions(decoding=DecodingOptions(max_new_tokens=6))
    return {shape: one_stack_translator(shape).trace("ab?cd?e", options) for shape in N_LAYERS}


@pytest.fixture
def holder(qtbot):
    """One parent for a test's view state and widgets, so Qt deletes them together, in one tree; its
    layout sets no size constraint (the offscreen platform warns about size hints otherwise)."""
    widget = QWidget()
    layout = QVBoxLayout(widget)
    layout.setSizeConstraint(QLayout.SizeConstraint.SetNoConstraint)
    widget.resize(1100, 700)
    qtbot.addWidget(widget)
    return widget


def shown(holder, *widgets):
    """`widgets` put in the holder, on screen; the first one (or all of them) back."""
    for widget in widgets:
        holder.layout().addWidget(widget)
    holder.show()
    return widgets[0] if len(widgets) == 1 else widgets


def state_for(holder, shape: str | None = None) -> ViewState:
    """A ViewState owned by the holder: a model of `shape`, or (None) the translator's three kinds."""
    state = ViewState(holder)
    if shape is not None:
        state.set_model_shape(N_LAYERS[shape], 2)
    return state


@pytest.mark.parametrize("shape", list(N_LAYERS))
def test_only_the_kinds_the_model_has_are_offered(holder, shape):
    state = state_for(holder, shape)
    bar = shown(holder, SelectionBar(state))
    (kind,) = [k for k, n in N_LAYERS[shape].items() if n]
    assert state.kinds == (kind,) and state.kind == kind
    offered = [b.text() for b in bar.kind_buttons.buttons() if b.isVisible()]
    assert len(offered) == 1
    state.set_kind("cross")  # what Ctrl+3 asks for: ignored, the model has none
    assert state.kind == kind
    assert bar.new_tokens.isVisible() == (shape == "decoder-only")
    assert bar.beam_size.isEnabled() == (shape == "decoder-only")  # BERT has no decoding to search
    assert bar.new_tokens.minimum() == 1 and bar.new_tokens.maximum() == 200 and bar.new_tokens.value() == 20


def test_bert_lists_each_mask_with_its_fillers(holder, traces):
    trace = traces["encoder-only"]
    state = state_for(holder, "encoder-only")
    steps = shown(holder, DecoderStepsView(state))
    steps.set_trace(trace)
    masks = [i for i, p in enumerate(trace.src_pieces) if p == "[MASK]"]
    assert list(trace.out_positions) == masks and steps.slider.maximum() == 2
    for step, row in enumerate(masks):
        steps.slider.setValue(step + 1)
        assert steps.step_label.text() == f"mask {step + 1}/2"
        items = [steps.candidates.item(i).text() for i in range(steps.candidates.count())]
        assert [text.split()[0] for text in items] == trace.topk_pieces[step]
        assert "← chosen" in items[0]  # the best filler is the one put in
        np.testing.assert_array_equal(steps.topk_probs, trace.topk_probs[step])
        np.testing.assert_allclose(steps.self_row, trace.enc_self[0, 0, row])  # the mask's row over the whole text
        assert steps.visible.all() and steps.cross_plot.isHidden()
        assert f"[MASK→{trace.out_pieces[step]}]" in steps.output.text()
    forced = []
    steps.forceRequested.connect(lambda *args: forced.append(args))
    steps.force_candidate(1)
    assert forced == []  # a filler is shown, not forced


def test_bert_without_a_mask_says_how_to_use_it(holder):
    trace = one_stack_translator("encoder-only").trace("abcd")
    steps, beam = shown(holder, DecoderStepsView(state_for(holder, "encoder-only")), BeamView())
    steps.set_trace(trace)
    assert NO_MASK in steps.output.text() and steps.candidates.count() == 0
    beam.set_shape("encoder-only")
    assert NO_BEAM in beam.caption.text()


def test_gpt2_steps_through_its_continuation(holder, traces):
    trace = traces["decoder-only"]
    state = state_for(holder, "decoder-only")
    steps = shown(holder, DecoderStepsView(state))
    steps.set_trace(trace)
    G, T = len(trace.out_pieces), len(trace.tgt_pieces)
    assert G == 6 and steps.slider.maximum() == G
    for step in range(G):
        steps.slider.setValue(step + 1)
        row = T - G + step  # the position that chose new token `step`
        assert steps.step_label.text() == f"new token {step + 1}/{G}"
        np.testing.assert_array_equal(steps.topk_ids, trace.topk_ids[step])
        np.testing.assert_array_equal(steps.visible, np.arange(T) <= row)  # the prompt and the tokens so far
        np.testing.assert_allclose(steps.self_row, trace.dec_self[0, 0, row])  # layer 1, head 1
        assert steps.cross_plot.isHidden() and steps.cross_row.size == 0
        assert "prompt:" in steps.output.text() and f"[{trace.out_pieces[step]}]" in steps.output.text()
    forced = []
    steps.forceRequested.connect(lambda *args: forced.append(args))
    steps.slider.setValue(3)
    steps.force_candidate(1)
    assert forced == [(2, int(trace.topk_ids[2, 1]))]  # step 3's runner-up: decoding goes on from it
    assert "click to force" in steps.candidates_title.text()


@pytest.mark.parametrize("shape", list(N_LAYERS))
def test_the_maps_outline_the_row_that_chose_the_step(holder, traces, shape):
    trace = traces[shape]
    state = state_for(holder, shape)
    grid, head = shown(holder, ModelView(state), HeadView(state))
    for widget in (grid, head):
        widget.set_trace(trace)
    state.set_step(1)
    assert grid.highlighted_step() == int(trace.out_positions[1])
    assert head.heatmap.highlighted_row == int(trace.out_positions[1])
    assert grid.grid_shape == (trace.n_layers[trace.kinds[0]], 3)


@pytest.mark.parametrize("shape", list(N_LAYERS))
def test_a_kind_the_model_lacks_is_explained_not_drawn(holder, traces, shape):
    """A trace shown under a selection it cannot fill (the moment between a model switch and the
    clamp): one sentence, no empty axis."""
    state = state_for(holder)  # the translator's three kinds, still on "cross"
    grid, head = shown(holder, ModelView(state), HeadView(state))
    for widget in (grid, head):
        widget.set_trace(traces[shape])
    lacks = "GPT-2 has no encoder" if shape == "decoder-only" else "BERT has no decoder"
    assert grid.stack.currentWidget() is grid.placeholder
    assert grid.placeholder.text() == f"{lacks}, so there is no cross-attention."
    assert head.stack.currentWidget() is head.unavailable and head.unavailable.text().startswith(lacks)


@pytest.mark.parametrize("shape", list(N_LAYERS))
def test_learned_positions_hide_the_sinusoid_and_show_the_rows_used(holder, traces, shape):
    trace = traces[shape]
    view = shown(holder, PositionalView())
    view.set_model(16, 10000.0, "learned")
    norms = np.linalg.norm(trace.positional, axis=1)
    view.set_result(trace, np.ones(len(norms)), norms)
    assert not view.explore.isVisible() and not view.base.isVisible() and not view.width_box.isVisible()
    assert "learned" in view.caption.text() and "sin" not in view.caption.text()
    table, labels = view.current_table()
    np.testing.assert_allclose(table, trace.positional)
    assert labels == [f"{i} {p}" for i, p in enumerate(trace.input_pieces)]
    assert view.closed_form() is None  # no formula to export either
    levels = view.heatmap.colorbar.levels()
    assert levels[1] == pytest.approx(float(np.abs(trace.positional).max()), rel=1e-5)  # not the sinusoid's ±1
    view.set_model(16, 10000.0, "sinusoidal")  # back to a translator: the controls return
    assert view.explore.isVisible()


def test_the_analysis_tab_scores_the_one_kind_and_says_why_there_is_no_coverage(holder, traces):
    from engine.importance import analyze
    from gui.analysis_maps import analysis_map
    from gui.views.analysis_view import AnalysisView

    gpt2 = one_stack_translator("decoder-only")
    trace = gpt2.trace("ab?cd?e", TraceOptions(decoding=DecodingOptions(max_new_tokens=4)))
    analysis = analyze(gpt2, trace)
    view = shown(holder, AnalysisView(state_for(holder, "decoder-only")))
    view.show_analysis(trace, analysis)
    assert [k for k, heatmap in view.importance_maps.items() if not heatmap.isHidden()] == ["dec_self"]
    np.testing.assert_allclose(view.importance_maps["dec_self"].matrix, analysis.importance["dec_self"].drop, rtol=1e-6)
    assert view.table.rowCount() == 3 * 2  # 3 layers × 2 heads of the one kind
    assert view.coverage_plot.isHidden() and view.coverage_title.isHidden()
    assert view.coverage_line.text().endswith("GPT-2 has no encoder, so there is no cross-attention.")
    # the head view's rollout is GPT-2's own self-attention rolled out; cross-attention is explained
    rollout = analysis_map(trace, analysis, "rollout", "dec_self", 2, 0)
    np.testing.assert_allclose(rollout.matrix, analysis.rollout[2])
    assert analysis_map(trace, analysis, "rollout", "cross", 0, 0).message.startswith("GPT-2 has no encoder")


def test_bert_without_a_mask_says_why_no_head_is_scored(holder):
    from engine.importance import analyze
    from gui.views.analysis_view import AnalysisView

    bert = one_stack_translator("encoder-only")
    trace = bert.trace("abcd")
    analysis = analyze(bert, trace)
    view = shown(holder, AnalysisView(state_for(holder, "encoder-only")))
    view.show_analysis(trace, analysis)
    assert "type [MASK] in the text" in view.top_line.text()
    assert "type [MASK]" in view.importance_titles["enc_self"].text()
