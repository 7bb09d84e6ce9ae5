"""What every Trace of a text must satisfy, whatever the text: checks that the engine could fail
(Trace.__post_init__ already guarantees that the shapes agree with the token counts)."""

from __future__ import annotations

import numpy as np

from engine.decoding import DecodingOptions
from engine.sentences import split_sentences
from engine.tokenizer import encodable


def assert_trace_of(translator, text: str, trace, options: DecodingOptions = DecodingOptions()) -> None:
    """`trace` is what `translator` must make of `text`: its tokens, its text and well-formed maps.
    A text of several sentences is checked sentence by sentence (engine/sentences.py)."""
    cfg = translator.cfg
    assert trace.source_text == encodable(text)
    sentences = split_sentences(encodable(text)) if trace.sentences > 1 else [encodable(text)]
    assert trace.sentences <= len(sentences)
    if trace.truncated:  # cut to the model's length, in characters or in pieces
        assert len(trace.src_ids) <= cfg.max_positions and trace.src_ids[-1] == cfg.eos_id
    translations = []
    for s in range(trace.sentences):
        src = list(trace.src_ids[trace.src_sentence == s])
        out = list(trace.out_ids[trace.tgt_sentence == s])
        if not trace.truncated:  # the pieces shown are the pieces the model read
            assert src == translator.tokenizer.encode_source(sentences[s])
        limit = options.max_length(len(src), cfg.max_positions)
        assert len(out) <= limit and cfg.eos_id not in out[:-1]
        assert out[-1] == cfg.eos_id or len(out) == limit  # decoding stops at </s> or at the length limit only
        assert list(trace.tgt_ids[trace.tgt_sentence == s]) == [cfg.bos_id] + out[:-1]
        translations.append(translator.tokenizer.decode_target(out))
    assert trace.src_pieces == translator.tokenizer.source_pieces(trace.src_ids)
    assert trace.translation == " ".join(translations)
    for kind in ("enc_self", "dec_self", "cross"):
        maps = trace.attention(kind)
        assert np.isfinite(maps).all()
        np.testing.assert_allclose(maps.sum(-1), 1.0, atol=1e-5)
        assert np.all(maps[..., ~trace.same_sentence(kind)] == 0)  # a sentence attends only to itself
    assert np.all(np.triu(trace.dec_self, k=1) == 0)


def output_log_prob(trace) -> float:
    """Sum of the log-probabilities of the tokens the trace chose, read from its candidates (each chosen
    token must be among them: greedy takes the best one the loop guard allows)."""
    picks = [list(ids).index(token) for ids, token in zip(trace.topk_ids, trace.out_ids, strict=True)]
    return float(sum(np.log(probs[i]) for probs, i in zip(trace.topk_probs, picks, strict=True)))
