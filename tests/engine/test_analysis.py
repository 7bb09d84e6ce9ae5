"""Head analysis: statistics and rollout worked out by hand on 3×3 maps, importance by one batched
masking pass against masking one head at a time, value norms against the walkthrough's numbers."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from one_stack_models import one_stack_translator
from PIL import Image
from trace_checks import output_log_prob

from engine import importance
from engine.analysis import (
    analysis_json,
    analyze_trace,
    attention_rollout,
    kind_statistics,
    source_coverage,
)
from engine.architecture import ATTENTION_KINDS, cache_prefix
from engine.decoding import DecodingOptions
from engine.importance import (
    analysis_stages,
    analyze,
    attention_modules,
    head_importance,
    head_importance_one_at_a_time,
    masked_heads,
    output_projections,
    recorded_values,
    single_head_masks,
)
from engine.model import ActivationCache
from engine.render.figures import ExportError, build_figure, save_figure
from engine.render.request import ANALYSIS_FIGURES, FigureRequest
from engine.translator import TraceOptions, Translator, head_parameters
from engine.walkthrough import build_walkthrough

ROOT = Path(__file__).resolve().parents[2]
SENTENCE = "Je suis étudiant et tu es mon ami."
LN2 = math.log(2)

# A: one encoder self-attention map, rows sum to 1.
A = np.array(
    [
        [0.50, 0.25, 0.25],
        [0.50, 0.50, 0.00],
        [0.00, 0.25, 0.75],
    ]
)


@pytest.fixture(scope="module")
def translator(tiny_model_dir):
    return Translator.from_directory(tiny_model_dir, "cpu")


@pytest.fixture(scope="module")
def trace(translator):
    options = TraceOptions(decoding=DecodingOptions(max_len_a=0.0, max_len_b=7), with_qkv=True)
    return translator.trace(SENTENCE, options)


def one_head(matrix: np.ndarray) -> np.ndarray:
    return matrix[None, None]  # (L=1, H=1, Q, K)


# --- statistics, by hand ---


def test_encoder_statistics_of_a_3x3_map_by_hand():
    stats = kind_statistics(one_head(A), "enc_self")
    # entropy, nats, row by row:
    #   row 0: −(½ ln ½ + 2 · ¼ ln ¼) = ½ ln 2 + ln 2 = 1.5 ln 2
    #   row 1: −(2 · ½ ln ½)          = ln 2
    #   row 2: −(¼ ln ¼ + ¾ ln ¾)     = ½ ln 2 + ¾ ln 4/3
    #   mean = (3 ln 2 + ¾ ln 4/3) / 3 = ln 2 + ¼ ln 4/3 ≈ 0.7651
    assert stats.entropy[0, 0] == pytest.approx(LN2 + 0.25 * math.log(4 / 3))
    # distance Σ_j a_ij |i − j|: row 0: ¼·1 + ¼·2 = ¾; row 1: ½·1 = ½; row 2: ¼·1 = ¼; mean = 1.5 / 3 = ½
    assert stats.mean_distance[0, 0] == pytest.approx(0.5)
    # diagonal a_ii: ½, ½, ¾ → 7/12
    assert stats.diagonal[0, 0] == pytest.approx(7 / 12)
    # previous a_{i,i−1} over rows 1 and 2 (row 0 has none): ½, ¼ → 3/8
    assert stats.previous[0, 0] == pytest.approx(3 / 8)
    # sink, keys 0 (first piece) and 2 (</s>): row 0: ½ + ¼ = ¾; row 1: ½ + 0; row 2: 0 + ¾ → 2/3
    assert stats.sink[0, 0] == pytest.approx(2 / 3)
    # max weight: ½, ½, ¾ → 7/12
    assert stats.max_weight[0, 0] == pytest.approx(7 / 12)


def test_masked_decoder_statistics_leave_out_row_0_which_has_no_choice():
    causal = np.array(
        [
            [1.00, 0.00, 0.00],  # <s> sees only itself: weight 1 whatever the head does
            [0.50, 0.50, 0.00],
            [0.25, 0.25, 0.50],
        ]
    )
    stats = kind_statistics(one_head(causal), "dec_self")
    # rows 1 and 2 only: entropy ln 2 and −(2·¼ ln ¼ + ½ ln ½) = 1.5 ln 2 → 1.25 ln 2
    assert stats.entropy[0, 0] == pytest.approx(1.25 * LN2)
    # distance: row 1: ½·1; row 2: ¼·2 + ¼·1 = ¾ → 5/8
    assert stats.mean_distance[0, 0] == pytest.approx(5 / 8)
    assert stats.diagonal[0, 0] == pytest.approx(0.5)  # ½, ½
    assert stats.previous[0, 0] == pytest.approx(3 / 8)  # a_10 = ½ (that is <s>), a_21 = ¼
    assert stats.sink[0, 0] == pytest.approx(3 / 8)  # <s> only: ½, ¼
    assert stats.max_weight[0, 0] == pytest.approx(0.5)


def test_cross_attention_diagonal_is_the_stretched_monotone_alignment():
    # T = 3 steps over S = 5 source pieces: j*(t) = ⌊t · 4/2 + ½⌋ = 0, 2, 4
    cross = np.array(
        [
            [0.6, 0.4, 0.0, 0.0, 0.0],
            [0.0, 0.2, 0.7, 0.1, 0.0],
            [0.0, 0.0, 0.0, 0.5, 0.5],
        ]
    )
    stats = kind_statistics(one_head(cross), "cross")
    assert stats.diagonal[0, 0] == pytest.approx((0.6 + 0.7 + 0.5) / 3)
    # distance from j*: row 0: 0.4·1; row 1: 0.2·1 + 0.1·1; row 2: 0.5·1 → 1.2 / 3
    assert stats.mean_distance[0, 0] == pytest.approx(0.4)
    assert stats.sink[0, 0] == pytest.approx((0.6 + 0.0 + 0.5) / 3)  # first piece and </s>
    assert np.isnan(stats.previous[0, 0])  # no "previous piece" across two sequences


def test_a_one_step_output_keeps_every_statistic_defined():
    """An output of </s> alone: decoder self-attention has one row and one key, cross-attention one row."""
    dec = kind_statistics(np.ones((1, 1, 1, 1)), "dec_self")
    assert dec.entropy[0, 0] == 0.0 and dec.diagonal[0, 0] == 1.0 and np.isnan(dec.previous[0, 0])
    cross = kind_statistics(np.array([0.2, 0.3, 0.5])[None, None, None], "cross")
    assert cross.diagonal[0, 0] == pytest.approx(0.2)  # j*(0) = 0
    assert cross.mean_distance[0, 0] == pytest.approx(0.3 + 2 * 0.5)


def test_rollout_of_two_layers_by_hand():
    # two heads whose mean is A: the identity and 2A − I (rows [0 ½ ½], [1 0 0], [0 ½ ½])
    heads = np.stack([np.eye(3), 2 * A - np.eye(3)])
    rollout = attention_rollout(np.stack([heads, heads]))  # (L=2, S, S)
    # Â = ½ A + ½ I = [[¾ ⅛ ⅛], [¼ ¾ 0], [0 ⅛ ⅞]] (rows already sum to 1)
    a_hat = np.array([[0.75, 0.125, 0.125], [0.25, 0.75, 0.0], [0.0, 0.125, 0.875]])
    np.testing.assert_allclose(rollout[0], a_hat)
    # Â Â, row 0: [¾·¾ + ⅛·¼, ¾·⅛ + ⅛·¾ + ⅛·⅛, ¾·⅛ + ⅛·⅞] = [0.59375, 0.203125, 0.203125]
    # row 1: [¼·¾ + ¾·¼, ¼·⅛ + ¾·¾, ¼·⅛] = [0.375, 0.59375, 0.03125]
    # row 2: [⅛·¼, ⅛·¾ + ⅞·⅛, ⅞·⅞] = [0.03125, 0.203125, 0.765625]
    by_hand = np.array(
        [
            [0.59375, 0.203125, 0.203125],
            [0.375, 0.59375, 0.03125],
            [0.03125, 0.203125, 0.765625],
        ]
    )
    np.testing.assert_allclose(rollout[1], by_hand)
    np.testing.assert_allclose(rollout.sum(axis=-1), 1.0)


def test_coverage_sums_steps_and_flags_a_piece_left_alone():
    # 1 layer, 2 heads, 3 steps over 4 pieces (the last is </s>); piece 2 gets almost nothing
    head = np.array([[0.9, 0.0, 0.0, 0.1], [0.1, 0.8, 0.02, 0.08], [0.0, 0.1, 0.0, 0.9]])
    other = np.array([[0.7, 0.2, 0.0, 0.1], [0.0, 0.9, 0.0, 0.1], [0.1, 0.0, 0.02, 0.88]])
    coverage = source_coverage(np.stack([head, other])[None])
    np.testing.assert_allclose(coverage.received, [0.9, 1.0, 0.02, 1.08])  # Σ_t mean_h
    assert coverage.received.sum() == pytest.approx(3.0)  # one unit per output step
    assert coverage.threshold == pytest.approx(0.25 * 0.9)  # a quarter of the median of the non-</s> pieces
    assert coverage.flagged.tolist() == [False, False, True, False]


# --- a real trace ---


def test_statistics_of_a_trace_follow_its_maps(trace):
    analysis = analyze_trace(trace)
    assert analysis.value_norms is None  # no W^O given
    for kind in ATTENTION_KINDS:
        maps = trace.attention(kind)
        stats = analysis.statistics[kind]
        assert stats.entropy.shape == maps.shape[:2]
        rows = slice(1, None) if kind == "dec_self" else slice(None)
        layer, head = maps.shape[0] - 1, 1
        row_maps = maps[layer, head, rows].astype(np.float64)
        entropy = -np.sum(row_maps * np.log(np.clip(row_maps, 1e-300, None)), axis=-1).mean()
        assert stats.entropy[layer, head] == pytest.approx(entropy, rel=1e-6)
    assert len(analysis.rows()) == sum(trace.n_layers.values()) * trace.n_heads
    np.testing.assert_allclose(analysis.rollout[-1].sum(axis=-1), 1.0)


def test_value_norms_match_the_walkthroughs_numbers(translator, trace):
    analysis = analyze_trace(trace, output_projections(translator.model))
    assert analysis.value_norms is not None
    for kind, layer, head, query in (("enc_self", 1, 2, 3), ("dec_self", 2, 0, 4), ("cross", 0, 3, 2)):
        params = head_parameters(translator.model, kind, layer, head)
        walk = build_walkthrough(trace, params, kind, layer, head, query)
        d_k = walk.d_k
        w_o_head = params.w_o[head * d_k : (head + 1) * d_k]  # (d_k, d_model): this head's rows of W^O
        direct = [np.linalg.norm(walk.weights[j] * (walk.v[j] @ w_o_head)) for j in range(len(walk.key_pieces))]
        np.testing.assert_allclose(analysis.value_norms[kind][layer, head, query], direct, rtol=1e-4, atol=1e-7)


def test_values_come_from_a_capture_pass_when_the_trace_has_none(translator, trace):
    plain = translator.trace(SENTENCE, TraceOptions(decoding=DecodingOptions(max_len_a=0.0, max_len_b=7)))
    captured = recorded_values(translator.model, plain)
    for name, v in recorded_values(translator.model, trace).items():
        np.testing.assert_allclose(captured[name], v, rtol=1e-5, atol=1e-6)


# --- importance by masking ---


@pytest.mark.parametrize("kind", ATTENTION_KINDS)
def test_one_batched_pass_agrees_with_masking_one_head_at_a_time(translator, trace, kind):
    batched = head_importance(translator.model, trace, kind)
    slow = head_importance_one_at_a_time(translator.model, trace, kind)
    torch.testing.assert_close(torch.from_numpy(batched.drop), torch.from_numpy(slow), rtol=1e-4, atol=1e-4)
    assert np.ptp(batched.drop) > 1e-3  # the heads do not all matter equally
    # the unmasked row is the log-probability of the greedy output the trace shows
    assert batched.log_prob == pytest.approx(output_log_prob(trace), abs=1e-3)


def test_scoring_in_pieces_that_split_rows_gives_the_same_log_probabilities(translator, trace, monkeypatch):
    whole = head_importance(translator.model, trace, "cross")
    vocabulary = translator.model.cfg.tgt_vocab_size
    monkeypatch.setattr(importance, "LOGITS_PER_CHUNK", 3 * vocabulary)  # 3 (row, step) pairs a piece
    pieces = head_importance(translator.model, trace, "cross")
    assert len(trace.out_ids) > 3  # so a row's steps are scored in several pieces
    np.testing.assert_allclose(pieces.drop, whole.drop, atol=1e-5)
    assert pieces.log_prob == pytest.approx(whole.log_prob, abs=1e-5)


def test_a_masked_head_adds_nothing_to_the_attention_output_and_the_hooks_go(translator, trace):
    model = translator.model
    modules = attention_modules(model, "cross")
    keep = torch.zeros(1, len(modules), model.cfg.n_heads)  # every head of every layer zeroed
    src = torch.tensor(trace.src_ids)[None]
    capture = ActivationCache(with_qkv=True)
    with torch.inference_mode(), masked_heads(modules, keep):
        model.decode(torch.tensor(trace.tgt_ids)[None], model.encode(src), src, capture)
    output = capture[f"{cache_prefix('cross', 1)}.output"][0]  # (T, d_model): W^O · 0 + b^O
    torch.testing.assert_close(output, modules[1].w_o.bias.detach().expand_as(output))
    assert all(not m.w_o._forward_pre_hooks for m in modules)
    with pytest.raises(RuntimeError), masked_heads(modules, keep):
        raise RuntimeError("a failure inside the block")
    assert all(not m.w_o._forward_pre_hooks for m in modules)


def test_single_head_masks_put_one_head_per_batch_row():
    keep = single_head_masks(2, 3)  # (1 + 6, 2, 3)
    assert keep.shape == (7, 2, 3)
    assert keep[0].min() == 1
    assert (keep[1 + 1 * 3 + 2] == 0).nonzero().tolist() == [[1, 2]]  # row 1 + l·H + h masks layer 1, head 2


def test_stages_grow_until_every_kind_has_its_importance(translator, trace):
    stages = list(analysis_stages(translator, trace))
    assert len(stages) == 1 + len(ATTENTION_KINDS)
    assert not stages[0].importance and stages[0].value_norms is not None
    assert stages[-1].complete
    top = stages[-1].top_heads(5)
    assert len(top) == 5
    assert [row.importance for row in top] == sorted((row.importance for row in top), reverse=True)
    assert all(row.importance is not None for row in stages[-1].rows())


# --- the command line and the figures ---


def run_cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "engine", *map(str, args)], cwd=ROOT, capture_output=True, text=True, timeout=300
    )


def test_analyze_json_has_the_documented_shape(tiny_model_dir, translator):
    result = run_cli("analyze", SENTENCE, "--model", tiny_model_dir, "--json", "--device", "cpu")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert list(data) == [
        "model", "source_pieces", "output_pieces", "heads", "rollout", "coverage", "input_pieces", "rollout_kind"
    ]  # fmt: skip
    trace = translator.trace(SENTENCE, TraceOptions(with_qkv=True))
    S, cfg = len(trace.src_pieces), translator.cfg
    assert data["source_pieces"] == trace.src_pieces and data["output_pieces"] == trace.out_pieces
    assert len(data["heads"]) == (cfg.n_encoder_layers + 2 * cfg.n_decoder_layers) * cfg.n_heads
    keys = ["kind", "layer", "head", "entropy", "mean_distance", "diagonal", "previous", "sink", "max_weight"]
    assert all(list(row) == [*keys, "importance"] for row in data["heads"])
    first = data["heads"][0]
    assert (first["kind"], first["layer"], first["head"]) == ("enc_self", 1, 1)  # numbered from 1
    assert {row["layer"] for row in data["heads"] if row["kind"] == "dec_self"} == {1, 2, 3}
    assert all(row["previous"] is None for row in data["heads"] if row["kind"] == "cross")
    assert np.asarray(data["rollout"]).shape == (S, S)
    np.testing.assert_allclose(np.asarray(data["rollout"]).sum(axis=1), 1.0, atol=1e-9)
    assert len(data["coverage"]) == S


def test_analyze_prints_a_table_and_refuses_empty_text(tiny_model_dir):
    result = run_cli("analyze", SENTENCE, "--model", tiny_model_dir, "--device", "cpu", "--top", "3")
    assert result.returncode == 0, result.stderr
    assert "the 3 most important heads" in result.stdout and "coverage" in result.stdout
    assert result.stdout.count("\nenc self ") == 2 * 4  # 2 encoder layers × 4 heads
    empty = run_cli("analyze", "  ", "--model", tiny_model_dir, "--device", "cpu")
    assert empty.returncode == 2 and "empty" in empty.stderr


@pytest.mark.parametrize("what", ANALYSIS_FIGURES)
def test_analysis_figures_are_not_blank(translator, trace, tmp_path, what):
    analysis = analyze(translator, trace)
    fig = build_figure(trace, FigureRequest(what=what, kind="dec_self", layer=1, head=2), analysis=analysis)
    path = save_figure(fig, tmp_path / f"{what}.png", dpi=60)
    assert len(np.unique(np.asarray(Image.open(path).convert("RGB")).reshape(-1, 3), axis=0)) > 30
    with pytest.raises(ExportError, match="analysis"):
        build_figure(trace, FigureRequest(what=what))


def test_export_draws_the_analysis_figures(tiny_model_dir, tmp_path):
    for what in ANALYSIS_FIGURES:
        out = tmp_path / f"{what}.svg"
        result = run_cli("export", SENTENCE, "--model", tiny_model_dir, "--device", "cpu", "--what", what, "--out", out)
        assert result.returncode == 0, result.stderr
        assert out.stat().st_size > 1000


# --- the other two shapes: BERT (encoder-only) and GPT-2 (decoder-only) ---


@pytest.fixture(scope="module", params=["encoder-only", "decoder-only"])
def one_stack(request):
    return one_stack_translator(request.param)


def test_one_stack_analysis_covers_only_the_kinds_the_model_has(one_stack):
    trace = one_stack.trace("ab?cd?e", TraceOptions(with_qkv=True, decoding=DecodingOptions(max_new_tokens=6)))
    analysis = analyze(one_stack, trace)
    (kind,) = trace.kinds
    assert list(analysis.statistics) == [kind] and set(analysis.importance) == {kind} and analysis.complete
    assert [row.kind for row in analysis.rows()] == [kind] * (trace.n_layers[kind] * trace.n_heads)
    # rollout multiplies the input's own self-attention: the encoder's, or GPT-2's causal one
    assert analysis.rollout_kind == kind
    np.testing.assert_allclose(analysis.rollout, attention_rollout(trace.attention(kind)))
    np.testing.assert_allclose(analysis.rollout[-1].sum(axis=-1), 1.0, rtol=1e-9)
    if kind == "dec_self":  # a position never draws on a later one
        assert not np.triu(analysis.rollout[-1], 1).any()
    assert analysis.coverage.received.size == 0  # no cross-attention to count
    np.testing.assert_allclose(
        analysis.importance[kind].drop, head_importance_one_at_a_time(one_stack.model, trace, kind), atol=1e-4
    )
    # value norms from a trace without q/k/v (one capture pass) equal those from the recorded values
    plain = one_stack.trace("ab?cd?e", TraceOptions(decoding=DecodingOptions(max_new_tokens=6)))
    again = next(analysis_stages(one_stack, plain))
    np.testing.assert_allclose(again.value_norms[kind], analysis.value_norms[kind], rtol=1e-5, atol=1e-7)
    assert json.loads(json.dumps(analysis_json(trace, analysis), allow_nan=False))["rollout_kind"] == kind


def test_importance_scores_the_fillers_of_the_masks_and_the_continuation(one_stack):
    """Nothing masked, the scored log-probability is the output's own: the best candidate at each mask
    (BERT) or new token (GPT-2, greedy), as the trace recorded it."""
    trace = one_stack.trace("ab?cd?e", TraceOptions(decoding=DecodingOptions(max_new_tokens=5)))
    assert len(trace.out_ids) == (2 if trace.shape == "encoder-only" else 5)
    np.testing.assert_array_equal(trace.topk_ids[:, 0], trace.out_ids)
    importance = head_importance(one_stack.model, trace, trace.kinds[0])
    assert importance.log_prob == pytest.approx(float(np.log(trace.topk_probs[:, 0]).sum()), abs=1e-4)


def test_bert_without_a_mask_says_why_heads_are_not_scored():
    bert = one_stack_translator("encoder-only")
    stages = list(analysis_stages(bert, bert.trace("abcd")))
    assert len(stages) == 1 and stages[0].importance == {} and stages[0].complete
    assert "[MASK]" in stages[0].importance_note
    assert set(stages[0].statistics) == {"enc_self"}
    with pytest.raises(ExportError, match=r"type \[MASK\]"):
        build_figure(bert.trace("abcd"), FigureRequest("importance"), analysis=stages[0])


def test_no_cross_attention_means_empty_coverage_without_warnings():
    coverage = source_coverage(np.zeros((0, 2, 7, 0), dtype=np.float32))  # GPT-2's empty cross maps
    assert coverage.received.shape == (0,) and coverage.flagged.shape == (0,)


def test_the_analyze_report_of_bert_and_gpt2_lists_their_heads_and_says_why_there_is_no_coverage(one_stack):
    from engine.cli.analyze import report_lines

    trace = one_stack.trace("ab?cd?e", TraceOptions(decoding=DecodingOptions(max_new_tokens=3)))
    lines = report_lines(trace, analyze(one_stack, trace), top=3)
    (kind,) = trace.kinds
    short = {"enc_self": "enc self", "dec_self": "dec self"}[kind]
    assert sum(line.startswith(short) for line in lines) == trace.n_layers[kind] * trace.n_heads
    who = "BERT has no decoder" if kind == "enc_self" else "GPT-2 has no encoder"
    assert f"coverage: {who}, so there is no cross-attention." in lines
