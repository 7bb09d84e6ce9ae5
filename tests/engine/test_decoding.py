"""Greedy, beam and forced decoding, and the Trace they produce."""

import numpy as np
import pytest
import torch
from trace_checks import assert_trace_of, output_log_prob

from engine.beam import beam_search, beam_search_batch
from engine.decoding import DecodingOptions, greedy_decode, pad_batch
from engine.loops import looping_ids
from engine.translator import EmptyInputError, TraceOptions, Translator

SENTENCES = ["Je suis étudiant.", "Le chien dort.", "Nous aimons le chat, tu es mon ami.", "Il mange."]


@pytest.fixture(scope="module")
def translator(tiny_model_dir):
    return Translator.from_directory(tiny_model_dir, "cpu")


@pytest.fixture(scope="module")
def prenorm_translator(tiny_prenorm_model_dir):
    return Translator.from_directory(tiny_prenorm_model_dir, "cpu")


def test_trace_has_the_models_layers_and_the_tokens_it_read(translator):
    trace = translator.trace("Je suis étudiant.")
    assert_trace_of(translator, "Je suis étudiant.", trace)
    assert trace.n_layers == {"enc_self": 2, "dec_self": 3, "cross": 3} and trace.n_heads == 4
    assert trace.positional.shape[1] == 32  # d_model
    np.testing.assert_allclose(trace.positional, translator.model.positional[: len(trace.src_ids)].numpy())
    assert trace.src_pieces[-1] == "</s>" and trace.tgt_pieces[0] == "<s>"
    assert trace.tgt_pieces[1:] == trace.out_pieces[:-1]  # step t's input is step t-1's choice
    assert np.all(trace.topk_probs > 0) and np.all(trace.topk_probs.sum(axis=1) <= 1 + 1e-5)  # k of V probabilities
    assert np.all(np.diff(trace.topk_probs, axis=1) <= 0)  # best first
    # greedy takes the best candidate that does not complete a loop; this random model needs the guard
    guarded = 0
    for step, (candidates, chosen) in enumerate(zip(trace.topk_ids.tolist(), trace.out_ids.tolist(), strict=True)):
        blocked = looping_ids(trace.out_ids[:step].tolist())
        assert chosen == next(c for c in candidates if c not in blocked)
        guarded += candidates[0] in blocked
    assert trace.loop_guard and guarded > 0


def test_incremental_step_attention_equals_forced_row(translator):
    """The property the Trace relies on: greedy step t with the cache = row t of one forced pass."""
    from engine.model import ActivationCache

    model = translator.model
    trace = translator.trace("Le chien dort.")
    src = pad_batch([list(trace.src_ids)], 0, torch.device("cpu"))
    memory, cache = model.encode(src), model.new_cache()
    for t, token in enumerate(trace.tgt_ids):
        capture = ActivationCache()
        with torch.no_grad():
            logits = model.decode(torch.tensor([[token]]), memory, src, capture, cache)
        allowed = logits[0, -1].index_fill(
            0, torch.tensor(looping_ids(trace.out_ids[:t].tolist()), dtype=torch.long), -torch.inf
        )
        assert int(allowed.argmax()) == trace.out_ids[t]
        for layer in range(3):
            np.testing.assert_allclose(
                capture[f"decoder.{layer}.cross_attn.weights"][0, :, 0].numpy(), trace.cross[layer, :, t], atol=1e-6
            )
            np.testing.assert_allclose(
                capture[f"decoder.{layer}.self_attn.weights"][0, :, 0].numpy(),
                trace.dec_self[layer, :, t, : t + 1],
                atol=1e-6,
            )


@pytest.mark.parametrize("fixture", ["translator", "prenorm_translator"])
def test_batched_translation_equals_one_by_one(fixture, request):
    translator = request.getfixturevalue(fixture)
    batched = translator.translate(SENTENCES)
    one_by_one = [translator.translate([s])[0] for s in SENTENCES]
    assert batched == one_by_one
    assert batched == [translator.trace(s).translation for s in SENTENCES]


def test_empty_lines_translate_to_empty_lines(translator):
    out = translator.translate(["Bonjour.", "", "   ", "Salut."])
    assert out[1] == out[2] == "" and len(out) == 4
    with pytest.raises(EmptyInputError):
        translator.trace("  \n ")


def test_beam_one_equals_greedy(translator):
    model = translator.model
    for sentence in SENTENCES:
        src = pad_batch([translator.source(sentence).ids], 0, torch.device("cpu"))
        greedy = greedy_decode(model, src)[0]
        beam = beam_search(model, src, DecodingOptions(beam_size=1))
        assert beam.hypotheses[0].tokens == greedy


def test_beam_hypotheses_are_ordered_by_score(translator):
    result = translator.beam("Nous aimons le chat.", DecodingOptions(beam_size=4))
    scores = [h.score for h in result.hypotheses]
    assert len(scores) >= 2 and scores == sorted(scores, reverse=True)
    assert len(result.steps) >= 1 and all(len(s.tokens) <= 4 for s in result.steps)


def test_beam_search_never_scores_below_greedy_on_log_probability(translator):
    """Beam 4 keeps the greedy path alive at every step, so its best raw log-probability is ≥ greedy's."""
    options = DecodingOptions(beam_size=4, length_penalty=0.0)
    for sentence in SENTENCES:
        greedy_trace = translator.trace(sentence)
        greedy_log_prob = output_log_prob(greedy_trace)
        assert translator.beam(sentence, options).hypotheses[0].log_prob >= greedy_log_prob - 1e-4


def test_forced_prefix_is_kept_and_decoding_continues(translator):
    free = translator.trace("Je suis étudiant.")
    forced_token = int(free.topk_ids[0, 1])  # the runner-up at the first step
    forced = translator.trace("Je suis étudiant.", TraceOptions(forced_prefix=(forced_token,)))
    assert forced.out_ids[0] == forced_token
    assert forced.tgt_ids[1] == forced_token
    assert not np.array_equal(forced.cross[:, :, 1:2], free.cross[:, :, 1:2])  # attention recomputed


def test_long_text_is_cut_not_refused(translator):
    trace = translator.trace("le chat " * 5000)
    assert trace.truncated
    assert len(trace.src_pieces) == translator.cfg.max_positions
    assert trace.src_pieces[-1] == "</s>"
    assert len(trace.tgt_pieces) <= translator.cfg.max_positions - 1


def test_hostile_characters_translate(translator):
    for text in ["\x00\x01", "🙂🙃", "שלום عالم", "e\u0301\u0301", "<b>{0}%s</b>", "a\nb\r\nc"]:
        assert_trace_of(translator, text, translator.trace(text))


def test_qkv_capture_is_optional(translator):
    assert translator.trace("Salut.").qkv is None
    trace = translator.trace("Salut.", TraceOptions(with_qkv=True))
    S = len(trace.src_pieces)
    assert trace.qkv["encoder.0.self_attn.q"].shape == (4, S, 8)
    assert trace.qkv["decoder.2.cross_attn.k"].shape == (4, S, 8)


def assert_same_trace(a, b) -> None:
    """Same tokens; maps and probabilities equal up to float rounding (rows may come from different passes)."""
    assert list(a.out_ids) == list(b.out_ids) and a.tgt_pieces == b.tgt_pieces
    for kind in ("enc_self", "dec_self", "cross"):
        np.testing.assert_allclose(a.attention(kind), b.attention(kind), atol=1e-5)
    np.testing.assert_array_equal(a.topk_ids, b.topk_ids)
    np.testing.assert_allclose(a.topk_probs, b.topk_probs, atol=1e-5)


def test_draft_decoding_equals_plain_greedy(translator):
    """Whatever the draft — right, wrong, short, long, empty — the output is plain greedy's."""
    eos = translator.cfg.eos_id
    for sentence in SENTENCES:
        plain = translator.trace(sentence)
        right = list(plain.out_ids)
        assert_same_trace(plain, translator.trace(sentence, TraceOptions(with_qkv=True)))  # one forced pass
        drafts = [right, right[:3], right[:3] + [7, 8, 9], [7] + right[1:], [], right[:-1], right + [5, eos], [eos]]
        for draft in drafts:
            incremental = translator.trace(sentence, draft=draft)
            assert list(incremental.out_ids) == right, (sentence, draft)
            assert_same_trace(incremental, plain)


def test_a_confirmed_draft_costs_one_decoder_pass(translator):
    """A draft that is complete (here: it reaches the length limit) and right needs one pass."""
    options = TraceOptions(decoding=DecodingOptions(max_len_a=0, max_len_b=6))
    sentence = SENTENCES[0]
    plain = translator.trace(sentence, options)
    assert len(plain.out_ids) == 6 and plain.decoder_passes == 6  # one step per token, each capturing its row
    again = translator.trace(sentence, options, draft=list(plain.out_ids))
    assert again.decoder_passes == 1
    assert_same_trace(again, plain)
    wrong = list(plain.out_ids)
    wrong[4] = 7 if wrong[4] != 7 else 8
    repaired = translator.trace(sentence, options, draft=wrong)
    assert list(repaired.out_ids) == list(plain.out_ids)
    # the check pass already yields token 5 (where the draft was wrong), so one greedy step is left;
    # the two passes' rows make the trace, with no forced pass after them
    assert repaired.decoder_passes == 1 + 1
    assert_same_trace(repaired, plain)


def test_qkv_after_a_wrong_draft_come_from_a_forced_pass(translator):
    sentence = SENTENCES[1]
    options = TraceOptions(with_qkv=True)
    plain = translator.trace(sentence, options)
    wrong = [7] + list(plain.out_ids)[1:]
    repaired = translator.trace(sentence, options, draft=wrong)
    assert repaired.qkv is not None and repaired.qkv.keys() == plain.qkv.keys()
    for name, value in plain.qkv.items():
        np.testing.assert_allclose(repaired.qkv[name], value, atol=1e-5, err_msg=name)


def test_embedding_norms_match_the_recorded_embeddings(translator):
    """From a Trace's read-only ids (a regression: torch warned on non-writable numpy input)."""
    trace = translator.trace("Le chien dort.", TraceOptions(with_qkv=True))
    assert not trace.src_ids.flags.writeable
    recorded = trace.qkv["encoder.embed"] - trace.positional  # (S, d): embedding × √d_model
    np.testing.assert_allclose(translator.embedding_norms(trace.src_ids), np.linalg.norm(recorded, axis=1), rtol=1e-5)


@pytest.mark.parametrize("beams", [2, 4])
def test_beam_search_over_a_batch_equals_one_sentence_at_a_time(translator, beams):
    """Sentences of different lengths share every decoder pass; each finds what it finds alone."""
    model, options = translator.model, DecodingOptions(beam_size=beams)
    rows = [translator.source(text).ids for text in SENTENCES]
    batch = beam_search_batch(model, pad_batch(rows, 0, torch.device("cpu")), options)
    for row, together in zip(rows, batch, strict=True):
        alone = beam_search(model, pad_batch([row], 0, torch.device("cpu")), options)
        assert [h.tokens for h in together.hypotheses] == [h.tokens for h in alone.hypotheses]
        np.testing.assert_allclose(
            [h.score for h in together.hypotheses], [h.score for h in alone.hypotheses], atol=1e-4
        )
        assert together.steps == alone.steps or all(
            a.tokens == b.tokens and a.parents == b.parents for a, b in zip(together.steps, alone.steps, strict=True)
        )
    assert translator.translate(SENTENCES, options) == [
        translator.tokenizer.decode_target(
            beam_search(model, pad_batch([r], 0, torch.device("cpu")), options).hypotheses[0].tokens
        )
        for r in rows
    ]
