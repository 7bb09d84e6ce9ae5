"""What every Trace of a text must satisfy, whatever the text: checks that the engine could fail
(Trace.__post_init__ already guarantees that the shapes agree with the token counts)."""

from __future__ import annotations

import numpy as np

from engine.decoding import DecodingOptions
from engine.tokenizer import encodable


def assert_trace_of(translator, text: str, trace, options: DecodingOptions = DecodingOptions()) -> None:
    """`trace` is what `translator` must make of `text`: its tokens, its text and well-formed maps."""
    cfg = translator.cfg
    assert trace.source_text == encodable(text)
    if trace.truncated:  # cut to the model's length, in characters or in pieces
        assert len(trace.src_ids) <= cfg.max_positions and trace.src_ids[-1] == cfg.eos_id
    else:  # the pieces shown are the pieces the model read
        assert list(trace.src_ids) == translator.tokenizer.encode_source(encodable(text))
    assert trace.src_pieces == translator.tokenizer.source_pieces(trace.src_ids)
    out = list(trace.out_ids)
    limit = options.max_length(len(trace.src_ids), cfg.max_positions)
    assert len(out) <= limit and cfg.eos_id not in out[:-1]
    assert out[-1] == cfg.eos_id or len(out) == limit  # decoding stops at </s> or at the length limit only
    assert list(trace.tgt_ids) == [cfg.bos_id] + out[:-1]
    assert trace.translation == translator.tokenizer.decode_target(out)
    for kind in ("enc_self", "dec_self", "cross"):
        maps = trace.attention(kind)
        assert np.isfinite(maps).all()
        np.testing.assert_allclose(maps.sum(-1), 1.0, atol=1e-5)
    assert np.all(np.triu(trace.dec_self, k=1) == 0)
