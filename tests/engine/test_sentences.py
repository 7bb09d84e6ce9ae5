"""A text of several sentences: split, translated sentence by sentence, traced as one block-diagonal Trace."""

import numpy as np
import pytest
from trace_checks import assert_trace_of

from engine.analysis import analyze_trace
from engine.decoding import DecodingOptions
from engine.importance import head_importance, output_projections, recorded_values
from engine.sentences import positions_within, split_sentences
from engine.trace import Trace
from engine.translator import TraceOptions, Translator

PARTS = ["Je suis étudiant.", "Le chien dort !", "Nous aimons le chat, tu es mon ami ?"]
TEXT = " ".join(PARTS)


@pytest.fixture(scope="module")
def translator(tiny_model_dir):
    return Translator.from_directory(tiny_model_dir, "cpu")


@pytest.mark.parametrize(
    ("text", "sentences"),
    [
        (TEXT, PARTS),
        ("Mr. Smith arrived. He was late!", ["Mr. Smith arrived.", "He was late!"]),
        ("M. Dupont est là. Il attend.", ["M. Dupont est là.", "Il attend."]),
        ("J. K. Rowling wrote it.", ["J. K. Rowling wrote it."]),
        ("It costs 3.5 euros. Cheap.", ["It costs 3.5 euros.", "Cheap."]),
        ("« Viens ! » dit-il. Oui.", ["« Viens ! » dit-il.", "Oui."]),
        ("Wait... what? No.", ["Wait... what?", "No."]),
        ('He said "Stop." Then he left.', ['He said "Stop."', "Then he left."]),
        ("No full stop at the end", ["No full stop at the end"]),
        ("Give it to me. The answer is no. Then go.", ["Give it to me.", "The answer is no.", "Then go."]),
    ],
)
def test_sentences_are_split_where_a_reader_would(text, sentences):
    assert split_sentences(text) == sentences


def test_positions_count_from_each_sentences_start():
    assert positions_within(np.array([0, 0, 0, 1, 1, 2])).tolist() == [0, 1, 2, 0, 1, 0]


def test_each_sentence_of_a_text_is_traced_as_if_alone(translator):
    trace = translator.trace(TEXT)
    assert_trace_of(translator, TEXT, trace)
    assert trace.sentences == 3 and trace.decoding == "greedy, 3 sentences"
    alone = [translator.trace(part) for part in PARTS]
    assert trace.translation == " ".join(t.translation for t in alone)
    for s, single in enumerate(alone):
        src, tgt = trace.src_sentence == s, trace.tgt_sentence == s
        assert list(trace.out_ids[tgt]) == list(single.out_ids)
        np.testing.assert_allclose(trace.enc_self[:, :, src][..., src], single.enc_self, atol=1e-5)
        np.testing.assert_allclose(trace.dec_self[:, :, tgt][..., tgt], single.dec_self, atol=1e-5)
        np.testing.assert_allclose(trace.cross[:, :, tgt][..., src], single.cross, atol=1e-5)
        np.testing.assert_allclose(trace.topk_probs[tgt], single.topk_probs, atol=1e-5)
        np.testing.assert_allclose(trace.positional[src], single.positional)  # positions start again at 0
        assert trace.tgt_pieces[np.flatnonzero(tgt)[0]] == "<s>"


def test_the_remembered_path_and_the_forced_pass_agree(translator):
    """Greedy sentences are recorded while decoding; with q/k/v the same text takes one forced pass."""
    translator.remembered.clear()
    recorded = translator.trace(TEXT)
    forced = translator.trace(TEXT, TraceOptions(with_qkv=True))
    assert forced.decoder_passes == 1  # the remembered translations, then the forced pass
    for kind in ("enc_self", "dec_self", "cross"):
        np.testing.assert_allclose(recorded.attention(kind), forced.attention(kind), atol=1e-5)
    np.testing.assert_allclose(recorded.topk_probs, forced.topk_probs, atol=1e-5)


@pytest.mark.parametrize("suffix", [".npz", ".json"])
def test_a_text_of_sentences_saves_and_loads(translator, tmp_path, suffix):
    trace = translator.trace(TEXT)
    trace.save(tmp_path / f"t{suffix}")
    loaded = Trace.load(tmp_path / f"t{suffix}")
    assert loaded.equals(trace) and loaded.sentences == 3


def test_sentence_arrays_must_count_in_order(translator):
    from dataclasses import replace

    trace = translator.trace(TEXT)
    with pytest.raises(ValueError, match="src_sentence"):
        replace(trace, src_sentence=trace.src_sentence[::-1].copy())


def test_typing_at_the_end_decodes_only_the_last_sentence(translator):
    translator.remembered.clear()
    first = translator.trace(TEXT)
    again = translator.trace(TEXT)
    assert again.translation == first.translation
    np.testing.assert_allclose(again.cross, first.cross, atol=1e-6)
    assert again.decoder_passes == 0  # every sentence remembered with its trace rows
    longer = translator.trace(TEXT + " Il mange.")
    alone = translator.trace("Il mange.")
    assert longer.decoder_passes == len(alone.out_ids)  # the new sentence's steps only
    assert_trace_of(translator, TEXT + " Il mange.", longer)
    np.testing.assert_allclose(
        longer.cross[:, :, longer.tgt_sentence == 3][..., longer.src_sentence == 3], alone.cross, atol=1e-5
    )


def test_the_sentence_being_typed_in_a_text_is_decoded_from_its_draft(translator):
    """Each key at the end of a paragraph changes its last sentence: the previous key's output for
    it is the draft, so an unchanged translation costs one decoder pass, not one per token. A wrong
    draft costs passes, never a different result."""
    from engine.translator import remembered_key

    translator.remembered.clear()
    plain = translator.trace(TEXT)
    last_src, last = plain.src_sentence == 2, plain.tgt_sentence == 2
    assert plain.decoder_passes >= int(last.sum())  # from nothing: one pass per token of the last sentence
    key = remembered_key(list(plain.src_ids[last_src]), TraceOptions())
    for changed in (False, True):
        del translator.remembered[key]  # the last sentence is the one being typed: not remembered
        draft = list(plain.out_ids)
        if changed:
            draft[int(np.flatnonzero(last)[1])] += 1  # its second token was another one a key ago
        after = translator.trace(TEXT, draft=draft)
        assert list(after.out_ids) == list(plain.out_ids)
        for kind in ("enc_self", "dec_self", "cross"):
            np.testing.assert_allclose(after.attention(kind), plain.attention(kind), atol=1e-5)
        np.testing.assert_allclose(after.topk_probs, plain.topk_probs, atol=1e-5)
        assert_trace_of(translator, TEXT, after)
        if not changed:
            assert after.decoder_passes == 1  # the draft confirmed in one pass


def test_a_sentence_drafts_from_what_followed_the_sentences_before_it():
    from engine.decoding import sentence_draft

    assert sentence_draft([5, 6, 3, 7, 3, 8], [[5, 6, 3]], 3) == [7, 3]  # up to its </s>
    assert sentence_draft([5, 6, 3, 7, 3, 8], [[5, 6, 3], [7, 3]], 3) == [8]
    assert sentence_draft([5, 6, 7], [[5, 6]], 3) == [7]  # the previous output was cut by the length limit
    assert sentence_draft([5, 6, 3, 7, 3], [[5, 9, 3]], 3) == []  # an earlier sentence changed
    assert sentence_draft([], [], 3) == []


def test_beam_search_translates_every_sentence(translator):
    options = TraceOptions(decoding=DecodingOptions(beam_size=3))
    translation = translator.run(TEXT, options)
    assert translation.beam is None  # one search tree per sentence: the app shows none for a text
    assert translation.trace.decoding == "beam 3, 3 sentences"
    assert_trace_of(translator, TEXT, translation.trace, options.decoding)
    best = [translator.run(part, options).trace.translation for part in PARTS]
    assert translation.trace.translation == " ".join(best)


def test_a_forced_prefix_runs_across_sentences(translator):
    trace = translator.trace(TEXT)
    second = np.flatnonzero(trace.tgt_sentence == 1)
    step = int(second[1])  # the second step of the second sentence
    wanted = int(trace.topk_ids[step, 1])  # its runner-up
    prefix = tuple(int(i) for i in trace.out_ids[:step]) + (wanted,)
    forced = translator.trace(TEXT, TraceOptions(forced_prefix=prefix))
    assert list(forced.out_ids[: len(prefix)]) == list(prefix)
    assert forced.decoding == f"forced prefix of {len(prefix)}, 3 sentences"
    assert forced.sentences == 3
    np.testing.assert_array_equal(forced.out_ids[forced.tgt_sentence == 0], trace.out_ids[trace.tgt_sentence == 0])
    np.testing.assert_array_equal(forced.out_ids[forced.tgt_sentence == 2], trace.out_ids[trace.tgt_sentence == 2])


def test_a_long_text_of_sentences_is_cut_to_the_models_length(translator):
    text = " ".join([TEXT] * 40)
    trace = translator.trace(text)
    assert trace.truncated and len(trace.src_ids) <= translator.cfg.max_positions
    assert_trace_of(translator, text, trace)


def test_importance_of_a_text_is_the_sum_over_its_sentences(translator):
    """Sentences are independent: masking a head costs the text what it costs each sentence, summed."""
    trace = translator.trace(TEXT)
    for kind in ("enc_self", "cross"):
        whole = head_importance(translator.model, trace, kind).drop
        parts = sum(head_importance(translator.model, translator.trace(p), kind).drop for p in PARTS)
        np.testing.assert_allclose(whole, parts, atol=1e-3)


def test_walkthrough_of_a_text_walks_the_querys_own_sentence(translator):
    """The other sentences' keys are masked to weight 0: the walk leaves them aside, and numbers
    each key by its column in the map."""
    trace = translator.trace(TEXT, TraceOptions(with_qkv=True))
    query = int(np.flatnonzero(trace.tgt_sentence == 1)[2])
    for kind in ("dec_self", "cross"):
        walk = translator.walkthrough(trace, kind, 1, 2, query)
        columns = trace.sentence_keys(kind, query)
        np.testing.assert_array_equal(walk.key_indices, columns)
        assert walk.key_pieces == [trace.axis_pieces(kind)[1][j] for j in columns]
        np.testing.assert_allclose(walk.weights, trace.attention(kind)[1, 2, query, columns], atol=1e-5)
        assert "only its own sentence's" in walk.key_note
    single = translator.trace(PARTS[1], TraceOptions(with_qkv=True))
    walk = translator.walkthrough(single, "cross", 1, 2, 2)
    np.testing.assert_array_equal(walk.key_indices, np.arange(len(single.src_pieces)))  # one sentence: every key


def test_value_norms_of_a_text_come_from_its_own_pass(translator):
    """Without q/k/v the values come from a forced pass over the text, which must keep the sentences apart."""
    plain = translator.trace(TEXT)
    recorded = translator.trace(TEXT, TraceOptions(with_qkv=True))
    projections = output_projections(translator.model)
    a = analyze_trace(plain, projections, recorded_values(translator.model, plain))
    b = analyze_trace(recorded, projections, recorded_values(translator.model, recorded))
    for kind in ("enc_self", "dec_self", "cross"):
        np.testing.assert_allclose(a.value_norms[kind], b.value_norms[kind], atol=1e-4)


def test_head_statistics_of_a_text_weigh_its_sentences_by_their_rows(translator):
    """Each statistic is a mean over query rows, taken within each sentence (its own diagonal, its
    own sinks, its own <s> row left out): the text's is the row-weighted mean of its sentences'."""
    trace = translator.trace(TEXT)
    whole = analyze_trace(trace).statistics
    alone = [analyze_trace(translator.trace(p)).statistics for p in PARTS]
    for kind in ("enc_self", "dec_self", "cross"):
        queries = trace.src_sentence if kind == "enc_self" else trace.tgt_sentence
        rows = np.array([np.sum(queries == s) - (kind == "dec_self") for s in range(len(PARTS))], dtype=float)
        for name in ("entropy", "mean_distance", "diagonal", "sink", "max_weight"):
            expected = sum(w * a[kind].value(name) for w, a in zip(rows, alone, strict=True)) / rows.sum()
            np.testing.assert_allclose(whole[kind].value(name), expected, atol=1e-5, err_msg=f"{kind} {name}")


def test_recorded_decoding_drops_ended_sentences_and_keeps_forced_pass_rows(translator, monkeypatch):
    """Sentences that have ended leave the batch; what is left still records exactly the rows and
    logits of a forced pass over each output, and the tokens of plain greedy decoding."""
    import torch

    from engine.decoding import greedy_decode, greedy_decode_recorded, pad_batch
    from engine.kv_cache import DecoderCache
    from engine.model import ActivationCache

    kept = []
    reorder = DecoderCache.reorder
    monkeypatch.setattr(DecoderCache, "reorder", lambda cache, index: (kept.append(len(index)), reorder(cache, index)))
    texts = [
        "Il.",
        "Je suis étudiant et tu es mon ami, nous aimons le chat et le chien dort.",
        "Oui.",
        "Le chien dort.",
    ]
    sources = [translator.tokenizer.encode_source(t) for t in texts]
    model = translator.model
    with torch.inference_mode():
        recorded, passes = greedy_decode_recorded(model, sources, DecodingOptions(max_len_a=0.5, max_len_b=2))
        src = pad_batch(sources, model.cfg.pad_id, "cpu")
        plain = greedy_decode(model, src, DecodingOptions(max_len_a=0.5, max_len_b=2))
    assert kept and kept[-1] < len(texts)  # the batch shrank
    assert passes == max(len(r.tokens) for r in recorded)
    for source, sentence, tokens in zip(sources, recorded, plain, strict=True):
        assert sentence.tokens == tokens
        capture = ActivationCache()
        with torch.inference_mode():
            one = pad_batch([source], model.cfg.pad_id, "cpu")
            logits = model(one, pad_batch([[model.cfg.bos_id] + tokens[:-1]], model.cfg.pad_id, "cpu"), capture)[0]
        torch.testing.assert_close(sentence.logits, logits, atol=1e-4, rtol=1e-4)
        for name, weights in sentence.maps.items():
            torch.testing.assert_close(weights, capture[name][0], atol=1e-5, rtol=1e-5)


def test_remembered_sentences_are_forgotten_least_recently_used_first(translator, monkeypatch):
    import engine.translator as translator_module

    monkeypatch.setattr(translator_module, "REMEMBERED_SENTENCES", 3)
    translator.remembered.clear()
    translator.trace(TEXT)  # three sentences remembered
    text = "Il mange. Oui. " + TEXT  # two new ones push the oldest out while this text still needs them
    trace = translator.trace(text)
    assert_trace_of(translator, text, trace)
    assert len(translator.remembered) == 3
    assert [key[0] for key in translator.remembered] == [tuple(translator.source(p).ids) for p in PARTS]
    repeated = translator.trace("Oui. Oui. Oui.")  # one sentence three times: decoded once
    alone = translator.trace("Oui.")
    assert repeated.decoder_passes == len(alone.out_ids)
    assert repeated.translation == " ".join([alone.translation] * 3)


def stop_checks(model, trace, kind: str) -> list[int]:
    """How often each sentence's masking pass asks whether to stop: before every layer it runs and
    every cache-sized piece of its scoring (1 + L·H rows × that sentence's output pieces)."""
    from engine.importance import LOGITS_PER_CHUNK

    layers = len(model.decoder_layers) + (len(model.encoder_layers) if kind == "enc_self" else 0)
    rows = 1 + trace.n_layers[kind] * trace.n_heads
    per_piece = LOGITS_PER_CHUNK // model.cfg.tgt_vocab_size
    outputs = [int((trace.tgt_sentence == s).sum()) for s in range(trace.sentences)]
    return [layers + -(-rows * g // per_piece) for g in outputs]


@pytest.mark.parametrize("kind", ["enc_self", "dec_self", "cross"])
def test_importance_of_a_text_stops_at_the_next_layer_or_piece_when_cancelled(translator, kind):
    """A paragraph's masking passes take seconds: a newer keystroke stops them before the next layer or
    piece of the scoring (the longest wait in a pass), whichever sentence they are in."""
    from engine.importance import analysis_stages

    trace = translator.trace(TEXT)
    checks = stop_checks(translator.model, trace, kind)
    asked = []
    assert head_importance(translator.model, trace, kind, cancelled=lambda: bool(asked.append(True))) is not None
    assert len(asked) == sum(checks)

    asked.clear()

    def cancelled() -> bool:
        asked.append(True)
        return len(asked) > checks[0] + 1  # the first sentence and one step of the second ran, then the user typed on

    assert head_importance(translator.model, trace, kind, cancelled=cancelled) is None
    assert len(asked) == checks[0] + 2
    assert list(analysis_stages(translator, trace, cancelled=lambda: True)) == []  # stops after the values' pass
    answers = iter([False, True])  # go on after the values' pass, stop before the first masking layer
    stages = list(analysis_stages(translator, trace, cancelled=lambda: next(answers)))
    assert len(stages) == 1 and not stages[0].importance  # the statistics, then nothing


def test_a_long_output_is_scored_in_pieces_each_of_which_can_be_cancelled(translator, monkeypatch):
    """The scoring of a long output is the longest step of a pass: it stops between its pieces."""
    import engine.importance

    monkeypatch.setattr(engine.importance, "LOGITS_PER_CHUNK", 3 * translator.model.cfg.tgt_vocab_size)
    trace = translator.trace(PARTS[2])
    (checks,) = stop_checks(translator.model, trace, "cross")
    layers = len(translator.model.decoder_layers)
    assert checks - layers > 2  # several pieces
    full = head_importance(translator.model, trace, "cross")
    asked = []

    def cancelled() -> bool:
        asked.append(True)
        return len(asked) > layers + 1  # the layers and the first piece ran

    assert head_importance(translator.model, trace, "cross", cancelled=cancelled) is None
    assert len(asked) == layers + 2
    monkeypatch.setattr(engine.importance, "LOGITS_PER_CHUNK", 1 << 20)
    np.testing.assert_allclose(head_importance(translator.model, trace, "cross").drop, full.drop, atol=1e-4)


def test_a_sentence_traced_alone_is_remembered_for_the_text_it_grows_into(translator):
    """Typing on after a full stop: the first sentence was traced alone a key ago and is not decoded again."""
    translator.remembered.clear()
    first = translator.trace(PARTS[0])
    grown = translator.trace(PARTS[0] + " Il")
    alone = translator.trace("Il")
    assert grown.decoder_passes == len(alone.out_ids)  # only the new sentence's steps
    block = np.ix_(grown.tgt_sentence == 0, grown.src_sentence == 0)
    for layer in range(first.cross.shape[0]):
        for head in range(first.cross.shape[1]):
            np.testing.assert_array_equal(grown.cross[layer, head][block], first.cross[layer, head])
