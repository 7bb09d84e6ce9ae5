"""A Marian (opus-mt) folder opened by our loader behaves as transformers' own MarianMTModel on the
same folder: token ids, every attention map, logits, greedy and beam outputs, and the exported trace.

The folders are tiny random-weight models built offline by tests/hf_fixtures.py (one swish model
with shared, tied embeddings; one gelu model with separate embeddings and an untied output; one
normalize_before (pre-norm) relu model whose reference is transformers' Pegasus).
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from hf_fixtures import SENTENCES, build_marian, build_prenorm_marian

from engine.model import ActivationCache
from engine.translator import TraceOptions, Translator

ROOT = Path(__file__).resolve().parents[2]
ATOL = 1e-4
BUILDERS = {
    "swish-shared": lambda d: build_marian(d, seed=1, activation="swish"),
    "gelu-separate": lambda d: build_marian(d, seed=2, activation="gelu", shared=False, tied=False),
    "prenorm-relu": lambda d: build_prenorm_marian(d, seed=3, activation="relu"),
}


@pytest.fixture(scope="module", params=list(BUILDERS))
def hf(request, tmp_path_factory):
    model = BUILDERS[request.param](tmp_path_factory.mktemp(request.param) / "opus-mt-fr-en")
    model.reference.set_attn_implementation("eager")  # attention weights come back only from eager attention
    return model


@pytest.fixture(scope="module")
def translator(hf) -> Translator:
    return Translator.from_directory(hf.directory, "cpu")


def reference_pass(hf, src_ids, tgt_ids):
    with torch.no_grad():
        return hf.reference(
            input_ids=torch.tensor([src_ids]), decoder_input_ids=torch.tensor([tgt_ids]), output_attentions=True
        )


def test_the_folder_is_read_as_marian(hf, translator):
    assert translator.loaded.family == "marian"
    assert (translator.loaded.info.source_language, translator.loaded.info.target_language) == ("fr", "en")
    assert translator.cfg.bos_id == translator.cfg.pad_id == hf.tokenizer.pad_token_id
    assert hf.reference.final_logits_bias.abs().max() > 0.5  # so that dropping it fails the logits test


def test_token_ids_equal_marian_tokenizers(hf, translator):
    tokenizer = translator.tokenizer
    for text in [*SENTENCES, "Ωmega ünknown 漢字", ">>fr<< Le chat", "  deux  espaces "]:
        expected = hf.tokenizer(text).input_ids
        assert tokenizer.encode_source(text) == expected, text
        assert tokenizer.source_pieces(expected) == hf.tokenizer.convert_ids_to_tokens(expected)
        target = hf.tokenizer(text_target=text).input_ids
        assert tokenizer.encode_target(text) + [translator.cfg.eos_id] == target, text
        assert tokenizer.decode_target(target) == hf.tokenizer.decode(target, skip_special_tokens=True)


def test_maps_and_logits_equal_transformers(hf, translator):
    for text in SENTENCES:
        trace = translator.trace(text)
        out = reference_pass(hf, trace.src_ids.tolist(), trace.tgt_ids.tolist())
        for ours, theirs in (
            (trace.enc_self, out.encoder_attentions),
            (trace.dec_self, out.decoder_attentions),
            (trace.cross, out.cross_attentions),
        ):
            assert ours.shape[0] == len(theirs)
            for layer, maps in enumerate(theirs):
                np.testing.assert_allclose(ours[layer], maps[0].numpy(), atol=ATOL, rtol=0)
        capture = ActivationCache()
        with torch.no_grad():
            logits = translator.model(
                torch.tensor([trace.src_ids.tolist()]), torch.tensor([trace.tgt_ids.tolist()]), capture
            )
        torch.testing.assert_close(logits, out.logits, atol=ATOL, rtol=0)
        without_bias = logits - translator.model.final_logits_bias
        assert not torch.allclose(without_bias, out.logits, atol=ATOL)


def generate(hf, text: str, **settings) -> list[int]:
    ids = torch.tensor([hf.tokenizer(text).input_ids])
    with torch.no_grad():
        row = hf.reference.generate(ids, **settings)[0].tolist()[1:]  # after the decoder's start token
    return [t for t in row if t != hf.tokenizer.pad_token_id]


@pytest.mark.parametrize("beams, alpha", [(1, 1.0), (3, 1.0), (4, 0.6), (5, 1.5)])
def test_outputs_equal_generate(hf, translator, beams, alpha):
    options = replace(translator.default_decoding, beam_size=beams, length_penalty=alpha)
    for text in SENTENCES:
        expected = generate(hf, text, num_beams=beams, length_penalty=alpha)
        if beams == 1:
            ours = translator.trace(text, TraceOptions(decoding=options)).out_ids.tolist()
        else:
            ours = translator.beam(text, options).hypotheses[0].tokens
        assert ours == expected, text
        assert translator.translate([text], options)[0] == hf.tokenizer.decode(expected, skip_special_tokens=True)


def test_a_batch_of_sentences_through_beam_search_equals_generate(hf, translator):
    """translate --file --beam: every sentence's hypotheses are rows of one batch, as in generate()."""
    options = replace(translator.default_decoding, beam_size=3, length_penalty=1.0)
    expected = [
        hf.tokenizer.decode(generate(hf, t, num_beams=3, length_penalty=1.0), skip_special_tokens=True)
        for t in SENTENCES
    ]
    assert translator.translate(SENTENCES, options) == expected


def test_beam_with_early_stopping_equals_generate(hf, translator):
    model = translator.model
    saved = model.rules
    model.rules = replace(saved, early_stopping="yes")
    try:
        options = replace(translator.default_decoding, beam_size=4, length_penalty=0.8)
        for text in SENTENCES:
            expected = generate(hf, text, num_beams=4, length_penalty=0.8, early_stopping=True)
            assert translator.beam(text, options).hypotheses[0].tokens == expected, text
    finally:
        model.rules = saved


def test_incremental_retranslation_and_walkthrough_work_unchanged(translator):
    text = SENTENCES[1]
    fresh = translator.run(text).trace
    draft = fresh.out_ids.tolist()[:3] + [7, 8]  # right at first, then wrong
    again = translator.run(text, draft=draft).trace
    assert again.out_ids.tolist() == fresh.out_ids.tolist()
    np.testing.assert_allclose(again.cross, fresh.cross, atol=1e-6)
    with_qkv = translator.trace(text, TraceOptions(with_qkv=True))
    walk = translator.walkthrough(with_qkv, "cross", 1, 2, 1)
    np.testing.assert_allclose(walk.weights, with_qkv.cross[1, 2, 1], atol=ATOL)
    assert translator.cfg.pad_id not in fresh.out_ids.tolist()


def test_export_writes_a_figure_and_a_trace_that_agree_with_transformers(tmp_path_factory):
    """The issue's command on a folder whose generation_config.json asks for a beam of 3."""
    hf = build_marian(tmp_path_factory.mktemp("export") / "opus-mt-fr-en", seed=4, num_beams=3)
    out = hf.directory.parent
    command = [sys.executable, "main.py", "export", "Le chat dort.", "--model", str(hf.directory)]
    command += [
        "--kind",
        "cross",
        "--layer",
        "1",
        "--head",
        "1",
        "--out",
        str(out / "f.png"),
        "--trace",
        str(out / "t.npz"),
    ]
    subprocess.run(command, cwd=ROOT, check=True, capture_output=True, timeout=300)
    assert (out / "f.png").read_bytes().startswith(b"\x89PNG")
    with np.load(out / "t.npz", allow_pickle=False) as npz:
        saved = {name: npz[name] for name in npz.files}
    src = hf.tokenizer("Le chat dort.").input_ids
    expected = generate(hf, "Le chat dort.")  # generate()'s defaults: the folder's num_beams 3
    assert saved["src_ids"].tolist() == src
    assert saved["out_ids"].tolist() == expected
    assert saved["tgt_ids"].tolist() == [hf.tokenizer.pad_token_id, *expected[:-1]]
    reference = reference_pass(hf, src, saved["tgt_ids"].tolist())
    for name, maps in (
        ("enc_self", reference.encoder_attentions),
        ("dec_self", reference.decoder_attentions),
        ("cross", reference.cross_attentions),
    ):
        np.testing.assert_allclose(saved[name], torch.stack([m[0] for m in maps]).numpy(), atol=ATOL, rtol=0)
    logits = reference.logits[0].clone()
    logits[:, hf.tokenizer.pad_token_id] = float("-inf")  # never generated (bad_words_ids)
    probs = logits.softmax(dim=-1).topk(saved["topk_probs"].shape[1]).values.numpy()
    np.testing.assert_allclose(saved["topk_probs"], probs, atol=ATOL, rtol=0)
