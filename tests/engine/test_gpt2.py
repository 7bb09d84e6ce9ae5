"""GPT-2 folders load natively (our modules, converted weights, no transformers at run time) and
equal transformers' GPT2LMHeadModel on a tiny random-weight folder: token ids, every attention map,
the LM logits, and the greedy continuation of generate()."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from broken_model_builders import payload_marker
from gpt2_fixtures import BREAKERS, END, build_gpt2
from torch.testing import assert_close

from engine.beam_tree import BeamTree
from engine.checkpoint import ModelLoadError
from engine.decoding import DecodingOptions
from engine.families import family_of, gpt2, load_model
from engine.families.gpt2_tokenizer import BYTE_OF, readable
from engine.trace import Trace
from engine.translator import TraceOptions, Translator

ROOT = Path(__file__).resolve().parents[2]
SENTENCE = "The cat has been sleeping on the couch since this morning."
PROMPTS = [
    SENTENCE,
    "Zoë's café serves crème brûlée 🙂",  # accents, and an emoji split over pieces
    "  two leading spaces,\ta tab\nand a new line",
    " i am a student" + END + "you are",  # a typed end-of-text is that token
    "日本語のテキスト ünïcödé",  # characters the BPE never merged: bytes
]
TOLERANCE = dict(atol=1e-4, rtol=1e-4)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return build_gpt2(tmp_path_factory.mktemp("gpt2") / "tiny-gpt2", seed=3)


@pytest.fixture(scope="module")
def translator(folder):
    return Translator(load_model(folder.directory, "cpu"))


def close(ours: np.ndarray, theirs: np.ndarray) -> None:
    np.testing.assert_allclose(ours, theirs, atol=1e-4, rtol=1e-4)


def reference_pass(reference, ids) -> tuple[np.ndarray, torch.Tensor]:
    """transformers' attention maps (L, H, T, T) and logits (T, V) over `ids`."""
    with torch.no_grad():
        out = reference(torch.tensor([list(ids)]), output_attentions=True)
    return torch.stack([a[0] for a in out.attentions]).numpy(), out.logits[0]


def generate(reference, ids: list[int], new_tokens: int) -> list[int]:
    eos = reference.config.eos_token_id
    with torch.no_grad():
        out = reference.generate(
            torch.tensor([ids]),
            attention_mask=torch.ones(1, len(ids), dtype=torch.long),
            max_new_tokens=new_tokens,
            do_sample=False,
            num_beams=1,
            pad_token_id=eos,
        )
    return out[0, len(ids) :].tolist()


def continuation(translator, prompt: str, new_tokens: int, beam: int = 1):
    return translator.run(prompt, TraceOptions(decoding=DecodingOptions(beam_size=beam, max_new_tokens=new_tokens)))


# --- recognised, and read as the config says ---


def test_the_registry_opens_gpt2_folders(folder, translator):
    raw = json.loads((folder.directory / "config.json").read_text())
    assert family_of(raw).name == "gpt2"
    loaded = translator.loaded
    assert loaded.family == "gpt2" and loaded.info.name == "tiny-gpt2"
    cfg = translator.cfg
    assert cfg.shape == "decoder-only" and cfg.norm == "pre" and cfg.positions == "learned"
    assert (cfg.n_decoder_layers, cfg.n_heads, cfg.d_model, cfg.d_ff, cfg.max_positions) == (2, 4, 32, 128, 64)
    assert cfg.eos_id == cfg.bos_id == cfg.pad_id == folder.tokenizer.convert_tokens_to_ids(END)
    assert translator.model.output.weight is translator.model.tgt_embed.weight  # the tied LM head


def test_config_defaults_are_gpt2s():
    small = {"model_type": "gpt2", "vocab_size": 100, "n_embd": 16, "n_head": 2, "n_layer": 1, "n_positions": 32}
    small |= {"bos_token_id": 7, "eos_token_id": 7}
    cfg = gpt2.model_config({**small, "bos_token_id": None, "eos_token_id": [7], "n_inner": None})
    assert (cfg.bos_id, cfg.eos_id, cfg.pad_id, cfg.d_ff) == (7, 7, 7, 64)  # one end token; n_inner → 4 × n_embd
    assert cfg.activation == "gelu_tanh" and cfg.norm_eps == 1e-5  # gelu_new, transformers' default epsilon
    full = gpt2.model_config({"model_type": "gpt2"})  # the 124M model when config.json says nothing
    assert (full.n_decoder_layers, full.d_model, full.tgt_vocab_size, full.max_positions) == (12, 768, 50257, 1024)
    assert gpt2.model_config({**small, "n_inner": 40, "reorder_and_upcast_attn": True}).d_ff == 40


def test_conv1d_weights_are_transposed_and_split(folder, translator):
    theirs = folder.reference.transformer.h[1].attn
    ours = translator.model.decoder_layers[1].self_attn
    d = translator.cfg.d_model
    assert_close(ours.w_k.weight, theirs.c_attn.weight[:, d : 2 * d].t())
    assert_close(ours.w_v.bias, theirs.c_attn.bias[2 * d :])
    assert_close(ours.w_o.weight, theirs.c_proj.weight.t())


# --- the tokenizer ---


@pytest.mark.parametrize("prompt", PROMPTS)
def test_token_ids_equal_transformers(folder, translator, prompt):
    ids = translator.tokenizer.encode_source(prompt)
    assert ids == folder.tokenizer(prompt)["input_ids"]
    assert translator.tokenizer.encode_target(prompt) == ids  # no token added on either side


@pytest.mark.parametrize("prompt", PROMPTS)
def test_decoding_gives_the_text_back_without_end_tokens(folder, translator, prompt):
    ids = translator.tokenizer.encode_source(prompt)
    assert translator.tokenizer.decode_target(ids) == prompt.replace(END, "")
    assert translator.tokenizer.decode_target(ids) == folder.tokenizer.decode(ids, skip_special_tokens=True)


def test_pieces_are_shown_as_text(translator):
    tokenizer = translator.tokenizer
    pieces = tokenizer.source_pieces(tokenizer.encode_source(" the cat\n🙂"))
    assert pieces[0].startswith("▁") and "Ġ" not in "".join(pieces)  # the space mark the labels know
    assert "↵" in pieces  # a new line is visible
    assert any(p.startswith("<0x") for p in pieces)  # part of the emoji: its bytes
    assert tokenizer.target_pieces([tokenizer.eos_id]) == [END]
    assert readable("Ġcaf" + "Ã©") == "▁café"  # é is the two bytes C3 A9


def test_byte_stand_ins_are_gpt2s():
    from tokenizers import pre_tokenizers

    assert set(BYTE_OF) == set(pre_tokenizers.ByteLevel.alphabet()) and sorted(BYTE_OF.values()) == list(range(256))
    assert BYTE_OF["Ġ"] == ord(" ") and BYTE_OF["Ċ"] == ord("\n") and BYTE_OF["A"] == ord("A")


# --- the model equals transformers' ---


@pytest.mark.parametrize("prompt", PROMPTS[:3])
def test_every_attention_map_and_the_logits_equal_transformers(folder, translator, prompt):
    trace = continuation(translator, prompt, 6).trace
    maps, logits = reference_pass(folder.reference, trace.tgt_ids)
    T = len(trace.tgt_ids)
    assert trace.dec_self.shape == (2, 4, T, T)
    close(trace.dec_self, maps)
    with torch.no_grad():
        ours = translator.model.decode(torch.tensor([trace.tgt_ids.tolist()]), None, torch.zeros(1, 0))[0]
    assert_close(ours, logits, **TOLERANCE)
    rows = logits[trace.out_positions.tolist()].softmax(dim=-1)  # the rows that chose the outputs
    close(trace.topk_probs[:, 0], rows.max(dim=-1).values.numpy())


def test_the_trace_is_a_decoder_only_one(translator):
    trace = continuation(translator, SENTENCE, 5).trace
    T, G = len(trace.tgt_ids), len(trace.out_ids)
    assert trace.shape == "decoder-only" and trace.kinds == ("dec_self",)
    assert trace.src_ids.size == 0 and trace.enc_self.shape[0] == 0 and trace.cross.shape == (0, 4, T, 0)
    close(trace.dec_self.sum(axis=-1), np.ones((2, 4, T)))
    assert np.all(np.triu(trace.dec_self, k=1) == 0)  # causal: no query sees a later key
    assert trace.positional.shape == (T, 32) and trace.positions == "learned"
    assert trace.tgt_pieces == translator.tokenizer.target_pieces(trace.tgt_ids) and G == 5


@pytest.mark.parametrize(("prompt", "new_tokens"), [(PROMPTS[0], 12), (PROMPTS[1], 1), (PROMPTS[3], 7)])
def test_greedy_continuation_equals_generate(folder, translator, prompt, new_tokens):
    prompt_ids = folder.tokenizer(prompt)["input_ids"]
    trace = continuation(translator, prompt, new_tokens).trace
    assert trace.out_ids.tolist() == generate(folder.reference, prompt_ids, new_tokens)
    assert trace.translation == folder.tokenizer.decode(trace.out_ids, skip_special_tokens=True)


def test_outputs_align_with_what_the_model_read(folder, translator):
    prompt_ids = folder.tokenizer(SENTENCE)["input_ids"]
    trace = continuation(translator, SENTENCE, 8).trace
    out = trace.out_ids.tolist()
    T, G = len(trace.tgt_ids), len(out)
    assert trace.tgt_ids.tolist() == prompt_ids + out[:-1]
    assert trace.out_positions.tolist() == list(range(T - G, T))
    _, logits = reference_pass(folder.reference, trace.tgt_ids)
    for j, token in enumerate(out):
        assert token == int(logits[T - G + j].argmax())  # chosen after reading tgt_ids[T - G + j]
    assert trace.prediction_at("dec_self", T - 1) == trace.out_pieces[-1]
    assert trace.prediction_at("dec_self", T - G - 1) is None  # a prompt row before the last predicts nothing


def test_forced_tokens_start_the_continuation_and_generate_goes_on_from_them(folder, translator):
    """Clicking a candidate forces it: the continuation starts with the forced tokens, and what
    follows is generate()'s greedy continuation of the prompt plus those tokens."""
    prompt_ids = folder.tokenizer(SENTENCE)["input_ids"]
    free = continuation(translator, SENTENCE, 8).trace
    forced = (free.out_ids[0].item(), int(free.topk_ids[1, 1]))  # the first token, then a runner-up
    options = TraceOptions(decoding=DecodingOptions(max_new_tokens=8), forced_prefix=forced)
    trace = translator.run(SENTENCE, options).trace
    out = trace.out_ids.tolist()
    assert tuple(out[:2]) == forced and len(out) == 8
    assert out[2:] == generate(folder.reference, prompt_ids + list(forced), 6)
    assert trace.decoding == "forced prefix of 2, 8 new tokens"
    assert trace.tgt_ids.tolist() == prompt_ids + out[:-1]  # the maps cover what the model read
    beam_options = TraceOptions(decoding=DecodingOptions(beam_size=3, max_new_tokens=8), forced_prefix=forced)
    with_beam = translator.run(SENTENCE, beam_options)
    assert with_beam.trace.out_ids.tolist() == out  # greedy after the forced tokens, as a translator does ...
    assert isinstance(with_beam.beam, BeamTree)  # ... and the search tree is still there to look at


def test_a_continuation_stops_at_the_end_token_as_generate_does(tmp_path):
    """A folder whose final LayerNorm leans towards <|endoftext|>, so that some prompts end early."""
    built = build_gpt2(tmp_path / "ending-gpt2", seed=3)
    reference = built.reference
    eos = reference.config.eos_token_id
    with torch.no_grad():
        reference.transformer.ln_f.bias.copy_(1.6 * reference.transformer.wte.weight[eos])
    reference.save_pretrained(str(built.directory), safe_serialization=True)
    translator = Translator(load_model(built.directory, "cpu"))
    ended = 0
    for prompt in ("The cat has been sleeping", "He eats an apple and", "i am", "You are my friend"):
        expected = generate(reference, built.tokenizer(prompt)["input_ids"], 12)
        trace = continuation(translator, prompt, 12).trace
        assert trace.out_ids.tolist() == expected
        ended += expected[-1] == eos and len(expected) < 12
    assert ended >= 1  # the case this test is about happened


def test_beam_search_runs_and_gives_a_tree(folder, translator):
    translation = continuation(translator, SENTENCE, 6, beam=3)
    trace = translation.trace
    assert isinstance(translation.beam, BeamTree)
    assert trace.decoding.startswith("beam 3")
    out = trace.out_ids.tolist()
    prompt_ids = folder.tokenizer(SENTENCE)["input_ids"]
    assert trace.tgt_ids.tolist() == prompt_ids + out[:-1] and 1 <= len(out) <= 6
    maps, _ = reference_pass(folder.reference, trace.tgt_ids)
    close(trace.dec_self, maps)


def test_a_prompt_as_long_as_the_model_allows_still_continues(folder, translator):
    long_prompt = " ".join(["the cat"] * 80)  # far beyond 64 positions
    trace = continuation(translator, long_prompt, 10).trace
    assert trace.truncated and len(trace.tgt_ids) <= translator.cfg.max_positions
    assert len(trace.out_ids) >= 1


# --- the command line ---


def run_cli(*args):
    return subprocess.run(
        [sys.executable, "main.py", *map(str, args)], cwd=ROOT, capture_output=True, text=True, timeout=300
    )


def test_export_writes_a_trace_that_agrees_with_transformers(folder, tmp_path):
    figure, data = tmp_path / "g.png", tmp_path / "g.npz"
    result = run_cli(
        "export", SENTENCE, "--model", folder.directory, "--kind", "dec_self", "--layer", 1, "--head", 1,
        "--out", figure, "--trace", data, "--device", "cpu", "--max-new-tokens", 9,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert figure.stat().st_size > 0
    trace = Trace.load(data)
    prompt_ids = folder.tokenizer(SENTENCE)["input_ids"]
    assert trace.tgt_ids.tolist()[: len(prompt_ids)] == prompt_ids and len(trace.out_ids) == 9
    maps, logits = reference_pass(folder.reference, trace.tgt_ids)
    close(trace.dec_self, maps)
    assert trace.out_ids.tolist() == logits[trace.out_positions.tolist()].argmax(dim=-1).tolist()


def test_translate_continues_for_the_tokens_asked(folder):
    result = run_cli(
        "translate", "i am", "--model", folder.directory, "--device", "cpu", "--max-new-tokens", 4, "--json"
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    expected = generate(folder.reference, folder.tokenizer("i am")["input_ids"], 4)
    assert len(summary["out_pieces"]) == len(expected) == 4 and summary["decoding"] == "greedy, 4 new tokens"
    assert run_cli("export", "i am", "--model", folder.directory, "--max-new-tokens", 0).returncode == 2


def test_the_defaults_continue_for_twenty_tokens(translator):
    assert translator.default_decoding.max_new_tokens is None
    assert len(translator.trace("i am").out_ids) == 20
    assert gpt2.recognises({"model_type": "gpt2"}) and not gpt2.recognises({"model_type": "marian"})


# --- the file as other savers write it ---


def rewrite_weights(directory: Path, edit) -> None:
    from safetensors.torch import load_file, save_file

    tensors = load_file(directory / "model.safetensors")
    save_file(edit(tensors), directory / "model.safetensors")


@pytest.mark.parametrize(
    "variant",
    [
        "no prefix",  # GPT2Model.save_pretrained, and the Hub's gpt2 files
        "causal-mask buffers",  # older files carry h.i.attn.bias and h.i.attn.masked_bias
        "head saved too",  # an lm_head.weight equal to wte
        "head only",  # the tied matrix saved under the head's name alone
    ],
)
def test_the_layouts_other_savers_write_load_the_same(folder, translator, tmp_path, variant):
    import shutil

    copy = tmp_path / "variant"
    shutil.copytree(folder.directory, copy)

    def edit(tensors: dict) -> dict:
        wte = tensors["transformer.wte.weight"]
        if variant == "no prefix":
            return {name.removeprefix("transformer."): t for name, t in tensors.items()}
        if variant == "causal-mask buffers":
            mask = torch.tril(torch.ones(64, 64)).view(1, 1, 64, 64)
            return {**tensors, "h.0.attn.bias": mask, "transformer.h.1.attn.masked_bias": torch.tensor(-1e4)}
        if variant == "head saved too":
            return {**tensors, "lm_head.weight": wte.clone()}
        return {**{n: t for n, t in tensors.items() if n != "transformer.wte.weight"}, "lm_head.weight": wte}

    rewrite_weights(copy, edit)
    ours = Translator(load_model(copy, "cpu"))
    for name, tensor in translator.model.state_dict().items():
        assert torch.equal(ours.model.state_dict()[name], tensor), name


# --- broken folders: one line each ---


@pytest.mark.parametrize("damage", sorted(BREAKERS))
def test_a_broken_folder_is_refused_in_one_line(folder, tmp_path, damage):
    import shutil

    copy = tmp_path / "case" / "tiny-gpt2"
    shutil.copytree(folder.directory, copy)
    fragment = BREAKERS[damage](copy)
    with pytest.raises(ModelLoadError) as caught:
        load_model(copy, "cpu")
    message = str(caught.value)
    assert fragment in message and "\n" not in message
    assert not payload_marker(copy).exists()  # a pickle is never opened
