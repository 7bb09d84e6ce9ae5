"""The model against the paper's definitions and against torch's reference modules."""

import math

import numpy as np
import pytest
import torch

from engine.kv_cache import MIN_CAPACITY
from engine.model import ActivationCache, ModelConfig, MultiHeadAttention, Transformer, attention
from engine.positional import sinusoidal_table

TINY = dict(
    src_vocab_size=50,
    tgt_vocab_size=50,
    d_model=32,
    n_heads=4,
    d_ff=64,
    n_encoder_layers=2,
    n_decoder_layers=2,
    max_positions=40,
    dropout=0.0,
)


def tiny_model(seed: int = 0, **overrides) -> Transformer:
    torch.manual_seed(seed)
    return Transformer(ModelConfig(**{**TINY, **overrides})).eval()


def test_defaults_are_the_papers_base_model():
    cfg = ModelConfig()
    assert (cfg.n_encoder_layers, cfg.n_decoder_layers, cfg.n_heads, cfg.d_model, cfg.d_ff, cfg.d_k) == (
        6,
        6,
        8,
        512,
        2048,
        64,
    )
    assert cfg.pe_base == 10000.0 and cfg.norm == "post"


def test_config_rejects_inconsistent_sizes():
    with pytest.raises(ValueError, match="divisible"):
        ModelConfig(d_model=30, n_heads=4)
    with pytest.raises(ValueError, match="share_embeddings"):
        ModelConfig(src_vocab_size=10, tgt_vocab_size=11)
    with pytest.raises(ValueError, match="unknown config keys"):
        ModelConfig.from_dict({"d_model": 8, "bogus": 1})


def test_positional_encoding_closed_form():
    table = sinusoidal_table(50, 16)
    assert table[1, 0] == pytest.approx(math.sin(1), abs=1e-12)  # 0.841
    assert table[1, 1] == pytest.approx(math.cos(1), abs=1e-12)  # 0.540
    pos, i = 7, 3
    assert table[pos, 2 * i] == pytest.approx(math.sin(pos / 10000 ** (2 * i / 16)))
    assert table[pos, 2 * i + 1] == pytest.approx(math.cos(pos / 10000 ** (2 * i / 16)))
    assert np.allclose(sinusoidal_table(3, 4, base=100.0)[2, 2], math.sin(2 / 100 ** (2 / 4)))
    assert sinusoidal_table(4, 5).shape == (4, 5)  # odd widths work too


def test_model_adds_the_positional_rows_to_scaled_embeddings():
    model = tiny_model()
    ids = torch.tensor([[5, 6, 7]])
    capture = ActivationCache()
    model.encode(ids, capture)
    expected = model.src_embed(ids) * math.sqrt(32) + torch.tensor(sinusoidal_table(3, 32), dtype=torch.float32)
    torch.testing.assert_close(capture["encoder.embed"], expected)


def test_multi_head_attention_equals_torch_reference():
    torch.manual_seed(0)
    cfg = ModelConfig(**TINY)
    ours = MultiHeadAttention(cfg)
    ref = torch.nn.MultiheadAttention(32, 4, batch_first=True)
    with torch.no_grad():
        ref.in_proj_weight.copy_(torch.cat([ours.w_q.weight, ours.w_k.weight, ours.w_v.weight]))
        ref.in_proj_bias.copy_(torch.cat([ours.w_q.bias, ours.w_k.bias, ours.w_v.bias]))
        ref.out_proj.weight.copy_(ours.w_o.weight)
        ref.out_proj.bias.copy_(ours.w_o.bias)
    query, memory = torch.randn(2, 5, 32), torch.randn(2, 7, 32)
    key_padding = torch.tensor([[False] * 7, [False] * 4 + [True] * 3])  # True = padding for torch
    capture = ActivationCache()
    out = ours(query, memory, (~key_padding)[:, None, None, :], "x", capture)
    ref_out, ref_weights = ref(query, memory, memory, key_padding_mask=key_padding, average_attn_weights=False)
    torch.testing.assert_close(out, ref_out)
    torch.testing.assert_close(capture["x.weights"], ref_weights)


def test_attention_is_softmax_of_scaled_scores():
    q, k, v = torch.randn(1, 2, 3, 4), torch.randn(1, 2, 5, 4), torch.randn(1, 2, 5, 4)
    z, w = attention(q, k, v, None)
    expected = torch.softmax(q @ k.transpose(-2, -1) / 2.0, dim=-1)
    torch.testing.assert_close(w, expected)
    torch.testing.assert_close(z, expected @ v)


@pytest.mark.parametrize("norm", ["post", "pre"])
def test_attention_invariants_with_padding(norm):
    model = tiny_model(norm=norm)
    src = torch.tensor([[5, 6, 7, 8, 3], [9, 10, 3, 0, 0]])  # second row padded
    tgt = torch.tensor([[2, 11, 12, 13], [2, 14, 15, 0]])
    capture = ActivationCache()
    model(src, tgt, capture)
    maps = {name: w for name, w in capture.tensors.items() if name.endswith(".weights")}
    assert len(maps) == 2 + 2 * 2
    for name, weights in maps.items():
        torch.testing.assert_close(weights.sum(-1), torch.ones(weights.shape[:-1]), atol=1e-5, rtol=0)
        if ".self_attn." in name and name.startswith("decoder"):
            assert torch.all(torch.triu(weights, diagonal=1) == 0)  # exactly zero, not just small
        if name.startswith("encoder") or ".cross_attn." in name:
            assert torch.all(weights[1, :, :, 3:] == 0)  # padded source keys get exactly nothing
    assert capture["encoder.0.self_attn.weights"].shape == (2, 4, 5, 5)
    assert capture["decoder.1.cross_attn.weights"].shape == (2, 4, 4, 5)


@pytest.mark.parametrize("norm", ["post", "pre"])
def test_incremental_decoding_with_cache_matches_full_recompute(norm):
    model = tiny_model(norm=norm)
    src = torch.tensor([[5, 6, 7, 8, 3]])
    tgt = torch.tensor([[2, 11, 12, 13, 14, 15]])
    full = model(src, tgt)
    memory = model.encode(src)
    cache = model.new_cache()
    steps = []
    for t in range(tgt.size(1)):
        capture = ActivationCache()
        steps.append(model.decode(tgt[:, t : t + 1], memory, src, capture, cache))
        forced = ActivationCache()
        model(src, tgt, forced)
        for name in capture.tensors:
            if name.endswith(".weights"):
                row = forced[name][:, :, t : t + 1, : capture[name].size(-1)]  # row t of the forced pass
                torch.testing.assert_close(capture[name], row)
    torch.testing.assert_close(torch.cat(steps, dim=1), full)


def test_tied_output_shares_the_embedding():
    model = tiny_model()
    assert model.output.weight is model.tgt_embed.weight is model.src_embed.weight
    untied = tiny_model(share_embeddings=False, tie_output=False)
    assert untied.output.weight is not untied.tgt_embed.weight


def test_cache_grows_past_its_first_buffer_and_rewrites_after_truncation():
    """Chunks of several positions, more positions than the slot's first buffer holds, a batch of
    two, and a rejected tail written over: the logits stay those of the full pass."""
    model = tiny_model(max_positions=3 * MIN_CAPACITY)
    src = torch.tensor([[5, 6, 7, 8, 3], [9, 10, 3, 0, 0]])
    tgt = torch.randint(4, 50, (2, 2 * MIN_CAPACITY + 5))
    tgt[:, 0] = 2
    full = model(src, tgt)
    memory, cache = model.encode(src), model.new_cache()
    parts, start = [], 0
    for size in [1, 3, MIN_CAPACITY, 1, 7, 2 * MIN_CAPACITY]:
        chunk = tgt[:, start : start + size]
        if not chunk.size(1):
            break
        model.decode(torch.randint(4, 50, chunk.shape), memory, src, cache=cache)  # a wrong guess ...
        cache.truncate(start)  # ... forgotten
        parts.append(model.decode(chunk, memory, src, cache=cache))
        start += chunk.size(1)
    assert cache.length == tgt.size(1)
    torch.testing.assert_close(torch.cat(parts, dim=1), full)


def test_freezing_for_inference_keeps_the_logits():
    model = tiny_model()
    src, tgt = torch.tensor([[5, 6, 7, 3]]), torch.tensor([[2, 11, 12]])
    before = model(src, tgt)
    weights = {name: p.detach().clone() for name, p in model.named_parameters()}
    model.train()
    model.freeze_for_inference()
    assert not model.training
    assert not any(isinstance(module, torch.nn.Dropout) for module in model.modules())
    torch.testing.assert_close(model(src, tgt), before)
    for name, p in model.named_parameters():  # the values are the same; only their layout changed
        torch.testing.assert_close(p, weights[name], rtol=0, atol=0)
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear) and m is not model.output]
    wide = [m for m in linears if m.out_features >= m.in_features]
    assert wide and all(m.weight.t().is_contiguous() for m in wide)  # read as Wᵀ, the faster way for them
    assert all(m.weight.is_contiguous() for m in linears if m not in wide)
    memory, cache = model.encode(src), model.new_cache()
    torch.testing.assert_close(model.decode(tgt[:, :1], memory, src, cache=cache), before[:, :1])  # one row


def test_qkv_capture_reproduces_the_heads_output():
    model = tiny_model()
    capture = ActivationCache(with_qkv=True)
    model(torch.tensor([[5, 6, 3]]), torch.tensor([[2, 9]]), capture)
    name = "decoder.1.cross_attn"
    q, k, v = capture[f"{name}.q"], capture[f"{name}.k"], capture[f"{name}.v"]
    torch.testing.assert_close(capture[f"{name}.scores"], q @ k.transpose(-2, -1))
    z, weights = attention(q, k, v, None)
    torch.testing.assert_close(weights, capture[f"{name}.weights"])
    torch.testing.assert_close(z, capture[f"{name}.z"])
