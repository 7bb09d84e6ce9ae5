"""The attention walkthrough: its arithmetic against the model's own, and the by-hand example worked out by hand."""

from __future__ import annotations

import csv
import io
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.architecture import cache_prefix
from engine.render.figures import ExportError
from engine.render.labels import format_number
from engine.render.walkthrough import all_whole, folded_indices, save_walkthrough
from engine.translator import TraceOptions, Translator, head_parameters
from engine.walkthrough import ByHandExample, build_walkthrough, default_by_hand_example, work_by_hand

SENTENCE = "Je suis étudiant."
TOLERANCE = dict(rtol=1e-5, atol=1e-5)


@pytest.fixture(scope="module")
def post(tiny_model_dir):
    translator = Translator.from_directory(tiny_model_dir, "cpu")
    return translator, translator.trace(SENTENCE, TraceOptions(with_qkv=True))


@pytest.fixture(scope="module")
def pre(tiny_prenorm_model_dir):
    # the shared pre-norm fixture (conftest.build_tiny_model(..., norm="pre")); importing conftest by name
    # would be ambiguous once tests/gui/conftest.py is collected too
    translator = Translator.from_directory(tiny_prenorm_model_dir, "cpu")
    assert translator.cfg.norm == "pre"
    return translator, translator.trace(SENTENCE, TraceOptions(with_qkv=True))


def selections(trace):
    """Every kind, its first and last layer, two heads, and the first, a middle and the last query."""
    for kind in ("enc_self", "dec_self", "cross"):
        n_queries = len(trace.axis_pieces(kind)[0])
        for layer in sorted({0, trace.n_layers[kind] - 1}):
            for head in (0, trace.n_heads - 1):
                for query in sorted({0, n_queries // 2, n_queries - 1}):
                    yield kind, layer, head, query


@pytest.mark.parametrize("model", ["post", "pre"])
def test_walkthrough_matches_the_models_own_attention(model, request):
    translator, trace = request.getfixturevalue(model)
    kinds = set()
    for kind, layer, head, query in selections(trace):
        w = translator.walkthrough(trace, kind, layer, head, query)
        prefix = cache_prefix(kind, layer)
        np.testing.assert_allclose(w.weights, trace.attention(kind)[layer, head, query], **TOLERANCE)
        np.testing.assert_allclose(w.z, trace.qkv[f"{prefix}.z"][head, query], **TOLERANCE)
        np.testing.assert_allclose(w.output, trace.qkv[f"{prefix}.output"][query], **TOLERANCE)
        # the intermediate steps agree with the model's recorded q, k, v and unscaled scores
        np.testing.assert_allclose(w.q, trace.qkv[f"{prefix}.q"][head, query], **TOLERANCE)
        np.testing.assert_allclose(w.k, trace.qkv[f"{prefix}.k"][head], **TOLERANCE)
        np.testing.assert_allclose(w.v, trace.qkv[f"{prefix}.v"][head], **TOLERANCE)
        np.testing.assert_allclose(w.scores, trace.qkv[f"{prefix}.scores"][head, query], **TOLERANCE)
        assert w.weights.sum() == pytest.approx(1.0)
        np.testing.assert_allclose(w.scaled, w.scores / math.sqrt(w.d_k))
        assert w.norm == model
        assert ("pre-norm" in w.query_note) == (model == "pre")
        kinds.add(kind)
    assert kinds == {"enc_self", "dec_self", "cross"}


def test_decoder_self_attention_masks_exactly_the_future(post):
    translator, trace = post
    query = 1
    w = translator.walkthrough(trace, "dec_self", 0, 0, query)
    assert list(w.visible) == [j <= query for j in range(len(trace.tgt_pieces))]
    assert np.all(np.isneginf(w.masked[query + 1 :]))
    assert np.all(w.weights[query + 1 :] == 0.0)
    np.testing.assert_allclose(w.masked[: query + 1], w.scaled[: query + 1])


def test_first_layer_reads_embedding_plus_position(post, pre):
    """Post-norm: the first encoder head reads embedding + PE; pre-norm: LayerNorm of it."""
    translator, trace = post
    w = translator.walkthrough(trace, "enc_self", 0, 0, 1)
    np.testing.assert_allclose(w.x_keys, trace.qkv["encoder.embed"], **TOLERANCE)
    assert "positional encoding" in w.query_note and "LayerNorm" not in w.query_note

    translator, trace = pre
    w = translator.walkthrough(trace, "enc_self", 0, 0, 1)
    norm = translator.model.encoder_layers[0].sub_attn.norm
    expected = norm(torch.tensor(trace.qkv["encoder.embed"])).detach().numpy()
    np.testing.assert_allclose(w.x_keys, expected, **TOLERANCE)
    assert w.query_note.startswith("LayerNorm(")


def test_head_parameters_are_the_heads_slice_of_the_linear_layers(post):
    translator, _ = post
    attn = translator.model.decoder_layers[1].cross_attn
    d_k = attn.d_k
    params = head_parameters(translator.model, "cross", 1, 2)
    x = torch.randn(5, translator.cfg.d_model)
    expected_q = attn.w_q(x)[:, 2 * d_k : 3 * d_k].detach().numpy()
    np.testing.assert_allclose(x.numpy() @ params.w_q + params.b_q, expected_q, **TOLERANCE)
    assert params.w_q.shape == (translator.cfg.d_model, d_k)
    assert params.w_o.shape == (translator.cfg.d_model, translator.cfg.d_model)


def test_bad_selections_raise(post):
    translator, trace = post
    with pytest.raises(ValueError, match="layer index"):
        translator.walkthrough(trace, "enc_self", 9, 0, 0)
    with pytest.raises(ValueError, match="head index"):
        translator.walkthrough(trace, "cross", 0, 99, 0)
    with pytest.raises(ValueError, match="query index"):
        translator.walkthrough(trace, "cross", 0, 0, 99)
    with pytest.raises(ValueError, match="attention kind"):
        translator.walkthrough(trace, "self", 0, 0, 0)
    plain = translator.trace(SENTENCE)
    with pytest.raises(ValueError, match="with_qkv"):
        build_walkthrough(plain, head_parameters(translator.model, "cross", 0, 0), "cross", 0, 0, 0)


# --- by hand ---


def matmul(a, b):
    return [[sum(a[i][t] * b[t][j] for t in range(len(b))) for j in range(len(b[0]))] for i in range(len(a))]


def worked_by_hand(example: ByHandExample, scale, power):
    """The example done on the board: plain loops, `scale(score)` and `power(scaled)` as given."""
    x, wq, wk, wv = (m.astype(int).tolist() for m in (example.x, example.w_q, example.w_k, example.w_v))
    q, k, v = matmul(x, wq), matmul(x, wk), matmul(x, wv)
    n = len(x)
    scores = [[sum(q[i][t] * k[j][t] for t in range(len(q[0]))) for j in range(n)] for i in range(n)]
    weights = []
    for i in range(n):
        visible = [j for j in range(n) if not example.causal or j <= i]
        exps = [power(scale(scores[i][j])) if j in visible else 0.0 for j in range(n)]
        weights.append([e / sum(exps) for e in exps])
    z = [[sum(weights[i][j] * v[j][c] for j in range(n)) for c in range(len(v[0]))] for i in range(n)]
    return q, k, v, scores, weights, z


def test_default_example_is_small_integers():
    example = default_by_hand_example()
    assert example.x.shape == (4, 3) and example.w_q.shape == example.w_k.shape == example.w_v.shape == (3, 3)
    for m in (example.x, example.w_q, example.w_k, example.w_v):
        assert np.array_equal(m, np.round(m))


@pytest.mark.parametrize("causal", [False, True])
def test_by_hand_exact_and_shortcuts_match_the_board(causal):
    d = default_by_hand_example()
    example = ByHandExample(d.x, d.w_q, d.w_k, d.w_v, causal=causal)
    q, k, v, scores, exact_w, exact_z = worked_by_hand(example, lambda s: s / math.sqrt(3), math.exp)
    _, _, _, _, board_w, board_z = worked_by_hand(example, lambda s: s // 2, lambda s: 3**s)

    result = work_by_hand(example, shortcut_scaling=True, shortcut_exp=True)
    assert result.q.tolist() == q and result.k.tolist() == k and result.v.tolist() == v
    assert result.scores.tolist() == scores
    assert result.shortcut_divisor == 2
    np.testing.assert_allclose(result.exact.weights, exact_w, rtol=1e-12)
    np.testing.assert_allclose(result.exact.z, exact_z, rtol=1e-12)
    np.testing.assert_allclose(result.shortcut.weights, board_w, rtol=1e-12)
    np.testing.assert_allclose(result.shortcut.z, board_z, rtol=1e-12)
    hidden = np.triu(np.ones((4, 4), dtype=bool), 1) if causal else np.zeros((4, 4), dtype=bool)
    expected_scaled = [
        [-math.inf if hidden[i, j] else s // 2 for j, s in enumerate(row)] for i, row in enumerate(scores)
    ]
    assert result.shortcut.scaled.tolist() == expected_scaled
    assert result.max_weight_error == pytest.approx(np.abs(np.array(board_w) - np.array(exact_w)).max())


def test_by_hand_each_shortcut_alone():
    example = default_by_hand_example()
    _, _, _, _, floor_only, _ = worked_by_hand(example, lambda s: s // 2, math.exp)
    _, _, _, _, three_only, _ = worked_by_hand(example, lambda s: s / math.sqrt(3), lambda s: 3**s)
    np.testing.assert_allclose(work_by_hand(example, True, False).shortcut.weights, floor_only, rtol=1e-12)
    np.testing.assert_allclose(work_by_hand(example, False, True).shortcut.weights, three_only, rtol=1e-12)
    neither = work_by_hand(example, False, False)
    np.testing.assert_allclose(neither.shortcut.weights, neither.exact.weights)
    assert neither.max_weight_error == 0.0


def test_by_hand_survives_huge_scores():
    example = ByHandExample(*(np.full((3, 3), 9.0) for _ in range(4)))  # scores of 59049
    result = work_by_hand(example)
    assert np.isfinite(result.exact.weights).all() and np.isfinite(result.shortcut.weights).all()
    np.testing.assert_allclose(result.exact.weights.sum(axis=1), 1.0)


# --- display and export ---


def test_folding_and_formatting():
    assert folded_indices(5, fold=True) == [0, 1, 2, 3, 4]
    assert folded_indices(32, fold=True) == [0, 1, 2, 3, None, 30, 31]
    assert folded_indices(32, fold=False) == list(range(32))
    assert format_number(-math.inf) == "−∞"
    assert format_number(3.0, whole=True) == "3"
    assert format_number(3.0) == "3.0000"
    assert format_number(0.123456) == "0.1235"
    assert format_number(-0.00001) == "0.0000"
    assert all_whole(np.array([1.0, -2.0, -np.inf])) and not all_whole(np.array([1.0, 0.5]))


def test_exports_write_figure_and_tables(post, tmp_path):
    translator, trace = post
    w = translator.walkthrough(trace, "dec_self", 1, 1, 2)
    for name in ("w.png", "w.svg", "w.pdf", "w.csv", "w.json"):
        path = save_walkthrough(w, tmp_path / name)
        assert path.stat().st_size > 0
    assert (tmp_path / "w.png").read_bytes().startswith(b"\x89PNG")
    rows = list(csv.DictReader(io.StringIO((tmp_path / "w.csv").read_text(encoding="utf-8"))))
    assert [r["key_piece"] for r in rows] == trace.tgt_pieces
    assert [float(r["weight"]) for r in rows] == pytest.approx(list(w.weights))
    assert rows[-1]["masked"] == "-inf"
    data = json.loads((tmp_path / "w.json").read_text(encoding="utf-8"))
    assert data["weights"] == pytest.approx(list(w.weights))
    assert data["masked (null = -inf)"][-1] is None
    assert data["z"] == pytest.approx(list(w.z))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.csv", "w.json", "w.pdf", "w.png", "w.svg"]


def test_export_errors_are_one_line(post, tmp_path):
    translator, trace = post
    w = translator.walkthrough(trace, "cross", 0, 0, 0)
    for name in ("missing/w.csv", "missing/w.png", "missing/w.json"):
        with pytest.raises(ExportError, match=r"cannot write .*w\.") as error:
            save_walkthrough(w, tmp_path / name)
        assert "\n" not in str(error.value)
    with pytest.raises(ExportError, match=".csv or .json"):
        save_walkthrough(w, tmp_path / "w.txt")
    assert not (tmp_path / "missing").exists()


def test_importing_the_walkthrough_loads_neither_torch_nor_matplotlib():
    """The GUI imports the Walkthrough type before torch and matplotlib load (fast start-up)."""
    code = "import sys, engine.walkthrough; print(sorted({'torch', 'matplotlib'} & set(sys.modules)))"
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True)
    assert result.stdout.strip() == "[]", result.stderr
