"""BERT folders load natively (our modules, converted weights, no transformers at run time) and
equal transformers' BertForMaskedLM on a tiny random-weight folder: token ids, every attention map,
the MLM logits and the fillers of each [MASK]; a BertModel folder (no MLM head) shows maps only."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from bert_fixtures import BREAKERS, build_bert, reference_tokenizer, write_tokenizer
from broken_model_builders import payload_marker
from torch.testing import assert_close

from engine.checkpoint import ModelLoadError
from engine.families import bert, family_of, load_model
from engine.families.bert_tokenizer import BertTokenizer, Normalization, SpecialTokens
from engine.trace import Trace
from engine.translator import TraceOptions, Translator

ROOT = Path(__file__).resolve().parents[2]
SENTENCE = "The cat has been sleeping on the couch since this morning."
TEXTS = [
    SENTENCE,
    "The cat has been [MASK] on the couch since this [MASK].",
    "Zoë's café serves crème brûlée, naïve JALAPEÑO!",  # accents, capitals, punctuation
    "☃ snowmen and 日本語 text (unknown) ... x" + "a" * 120,  # unknown characters, CJK, an over-long word
    "tabs\tand\nnew lines,[MASK]glued[MASK]!",  # whitespace; a typed [MASK] is one token even when glued
    "houses sleepers bookish played",  # continuation pieces
    "",
]
MASKED = [TEXTS[1], "i am a [MASK] and you are my [MASK].", "[MASK] [MASK] [MASK]"]
TOLERANCE = dict(atol=1e-4, rtol=1e-4)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return build_bert(tmp_path_factory.mktemp("bert") / "tiny-bert", seed=3)


@pytest.fixture(scope="module")
def translator(folder):
    return Translator(load_model(folder.directory, "cpu"))


def close(ours: np.ndarray, theirs: np.ndarray) -> None:
    np.testing.assert_allclose(ours, theirs, atol=1e-4, rtol=1e-4)


def reference_pass(reference, ids) -> tuple[np.ndarray, torch.Tensor]:
    """transformers' attention maps (L, H, S, S) and its last output (S, V logits or S, d hidden states)."""
    with torch.no_grad():
        out = reference(torch.tensor([list(ids)]), output_attentions=True)
    last = out.logits if hasattr(out, "logits") else out.last_hidden_state
    return torch.stack([a[0] for a in out.attentions]).numpy(), last[0]


# --- recognised, and read as the config says ---


def test_the_registry_opens_bert_folders(folder, translator):
    raw = json.loads((folder.directory / "config.json").read_text())
    assert family_of(raw).name == "bert"
    loaded = translator.loaded
    assert loaded.family == "bert" and loaded.info.name == "tiny-bert"
    cfg = translator.cfg
    assert cfg.shape == "encoder-only" and cfg.norm == "post" and cfg.positions == "learned"
    assert (cfg.n_encoder_layers, cfg.n_heads, cfg.d_model, cfg.d_ff, cfg.max_positions) == (2, 4, 32, 64, 64)
    assert (cfg.type_vocab_size, cfg.embed_norm, cfg.norm_eps, cfg.activation) == (2, True, 1e-12, "gelu")
    assert cfg.lm_head and cfg.mlm_transform and cfg.final_logits_bias and not cfg.scale_embedding
    assert translator.model.output.weight is translator.model.src_embed.weight  # the tied MLM output
    assert translator.tokenizer.mask_id == folder.tokenizer.mask_token_id
    assert (cfg.pad_id, cfg.bos_id, cfg.eos_id) == tuple(
        folder.tokenizer.convert_tokens_to_ids(t) for t in ("[PAD]", "[CLS]", "[SEP]")
    )


def test_the_weights_sit_in_our_modules(folder, translator):
    theirs, ours = folder.reference, translator.model
    assert_close(ours.encoder_layers[1].self_attn.w_k.weight, theirs.bert.encoder.layer[1].attention.self.key.weight)
    assert_close(ours.encoder_layers[0].sub_ff.norm.bias, theirs.bert.encoder.layer[0].output.LayerNorm.bias)
    assert_close(ours.type_embed.weight, theirs.bert.embeddings.token_type_embeddings.weight)
    assert_close(ours.final_logits_bias[0], theirs.cls.predictions.bias)
    assert_close(ours.mlm_transform.dense.weight, theirs.cls.predictions.transform.dense.weight)


def test_config_defaults_are_berts():
    tokenizer = BertTokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a"], SpecialTokens(), Normalization())
    cfg = bert.model_config(
        {"model_type": "bert"}, tokenizer, has_head=False
    )  # bert-base when config.json says nothing
    assert (cfg.n_encoder_layers, cfg.d_model, cfg.n_heads, cfg.d_ff, cfg.src_vocab_size) == (12, 768, 12, 3072, 30522)
    assert (cfg.max_positions, cfg.type_vocab_size, cfg.norm_eps, cfg.activation) == (512, 2, 1e-12, "gelu")
    assert not cfg.lm_head and not cfg.mlm_transform and not cfg.final_logits_bias
    small = {"vocab_size": 10, "hidden_size": 8, "num_attention_heads": 2, "hidden_act": "gelu_new"}
    assert bert.model_config(small, tokenizer, has_head=True).activation == "gelu_tanh"
    assert bert.recognises({"model_type": "bert"}) and not bert.recognises({"model_type": "gpt2"})


# --- the tokenizer ---


@pytest.mark.parametrize("text", TEXTS)
def test_token_ids_equal_transformers(folder, translator, text):
    ids = translator.tokenizer.encode_source(text)
    assert ids == folder.tokenizer(text)["input_ids"]
    assert translator.tokenizer.encode_target(text) == ids[1:-1]  # without [CLS] and [SEP]
    assert translator.tokenizer.source_pieces(ids) == folder.tokenizer.convert_ids_to_tokens(ids)


def test_a_cased_vocabulary_keeps_capitals_and_accents(tmp_path):
    reference = write_tokenizer(tmp_path, lowercase=False)
    ours = bert.tokenizer_for(tmp_path)
    for text in ("Zoë's Café serves CRÈME brûlée.", SENTENCE, "The [MASK] sleeps."):
        assert ours.encode_source(text) == reference(text)["input_ids"]
    pieces = ours.source_pieces(ours.encode_source("Zoë The"))
    assert "The" in pieces and any("ë" in p for p in pieces)


def test_tokenizer_config_may_rename_the_special_tokens(tmp_path):
    write_tokenizer(tmp_path)
    vocab = (tmp_path / "vocab.txt").read_text().replace("[MASK]", "<mask>")
    (tmp_path / "vocab.txt").write_text(vocab)
    (tmp_path / "tokenizer_config.json").write_text(
        json.dumps({"mask_token": {"__type": "AddedToken", "content": "<mask>"}})
    )
    ours = bert.tokenizer_for(tmp_path)
    assert ours.encode_source("the <mask> sleeps") == reference_tokenizer(tmp_path)("the <mask> sleeps")["input_ids"]
    assert ours.mask_id is not None and ours.source_pieces([ours.mask_id]) == ["<mask>"]


@pytest.mark.parametrize("text", [SENTENCE, TEXTS[2], "Is it 3 o'clock? Yes -- it's 3:15; don't be late...", ""])
def test_decoding_joins_the_pieces_into_text(folder, translator, text):
    ids = translator.tokenizer.encode_source(text)
    assert translator.tokenizer.decode_target(ids) == folder.tokenizer.decode(ids, skip_special_tokens=True)


def test_pieces_are_berts_and_an_unfilled_mask_stays_visible(translator):
    tokenizer = translator.tokenizer
    ids = tokenizer.encode_source("houses sleepers [MASK] ☃")
    pieces = tokenizer.source_pieces(ids)
    assert pieces[0] == "[CLS]" and pieces[-1] == "[SEP]" and "[MASK]" in pieces and "[UNK]" in pieces
    assert any(p.startswith("##") for p in pieces)  # a continuation piece, as BERT writes it
    assert tokenizer.decode_target(ids) == "houses sleepers [MASK] [UNK]"  # ## joined, [CLS]/[SEP] dropped
    assert tokenizer.decode_target([tokenizer.pad_id, *ids, tokenizer.pad_id]) == tokenizer.decode_target(ids)


# --- the model equals transformers' ---


@pytest.mark.parametrize("text", [SENTENCE, *MASKED, TEXTS[2]])
def test_every_attention_map_equals_transformers(folder, translator, text):
    trace = translator.run(text).trace
    maps, _ = reference_pass(folder.reference, trace.src_ids)
    S = len(trace.src_ids)
    assert trace.enc_self.shape == (2, 4, S, S)
    close(trace.enc_self, maps)
    close(trace.enc_self.sum(axis=-1), np.ones((2, 4, S)))


@pytest.mark.parametrize("text", [SENTENCE, *MASKED])
def test_mlm_logits_equal_transformers(folder, translator, text):
    ids = folder.tokenizer(text)["input_ids"]
    _, logits = reference_pass(folder.reference, ids)
    with torch.no_grad():
        ours = translator.model.mlm_logits(translator.model.encode(torch.tensor([ids])))[0]
    assert_close(ours, logits, **TOLERANCE)
    assert logits.std() > 1.0  # random weights large enough that a wrong head would show


@pytest.mark.parametrize("text", MASKED)
def test_each_mask_is_filled_by_the_argmax_of_transformers(folder, translator, text):
    trace = translator.run(text, TraceOptions(top_k=5)).trace
    ids = trace.src_ids.tolist()
    masks = [i for i, t in enumerate(ids) if t == folder.tokenizer.mask_token_id]
    _, logits = reference_pass(folder.reference, ids)
    assert trace.shape == "encoder-only" and trace.kinds == ("enc_self",)
    assert trace.out_positions.tolist() == masks and len(masks) >= 2
    assert trace.out_ids.tolist() == logits[masks].argmax(dim=-1).tolist()
    probs = logits[masks].softmax(dim=-1)
    top = probs.topk(5, dim=-1)
    assert trace.topk_ids.tolist() == top.indices.tolist()
    close(trace.topk_probs, top.values.numpy())
    filled = list(ids)
    for position, token in zip(masks, trace.out_ids.tolist(), strict=True):
        filled[position] = token
    assert trace.translation == folder.tokenizer.decode(filled, skip_special_tokens=True)
    assert trace.prediction_at("enc_self", masks[0]) == trace.out_pieces[0]


def test_the_trace_of_a_text_without_masks_has_no_outputs(translator):
    trace = translator.run(SENTENCE).trace
    assert trace.out_ids.size == 0 and trace.out_positions.size == 0
    assert trace.positional.shape == (len(trace.src_ids), 32) and trace.positions == "learned"
    assert trace.dec_self.shape[0] == 0 and trace.cross.shape[0] == 0


def test_a_long_text_is_cut_to_the_positions_the_model_has(translator):
    trace = translator.run(" ".join(["the cat [MASK]"] * 40)).trace
    assert trace.truncated and len(trace.src_ids) == 64
    assert trace.src_pieces[-1] == "[SEP]" and len(trace.out_ids) >= 1


# --- a folder without the MLM head ---


@pytest.fixture(scope="module")
def headless(tmp_path_factory):
    return build_bert(tmp_path_factory.mktemp("bert") / "tiny-bert-model", seed=4, head=False)


def test_a_bert_model_folder_shows_maps_and_predicts_nothing(headless):
    translator = Translator(load_model(headless.directory, "cpu"))
    cfg = translator.cfg
    assert not cfg.lm_head and not cfg.mlm_transform and not cfg.final_logits_bias
    trace = translator.run(MASKED[1]).trace
    assert trace.out_ids.size == 0 and trace.out_positions.size == 0 and trace.out_pieces == []
    assert trace.translation == "i am a [MASK] and you are my [MASK]."  # the masks stay, unfilled
    maps, hidden = reference_pass(headless.reference, trace.src_ids)
    close(trace.enc_self, maps)
    with torch.no_grad():
        memory = translator.model.encode(torch.tensor([trace.src_ids.tolist()]))[0]
    assert_close(memory, hidden, **TOLERANCE)  # the encoder's output, under the pooler BertModel adds


# --- the command line ---


def run_cli(*args):
    return subprocess.run(
        [sys.executable, "main.py", *map(str, args)], cwd=ROOT, capture_output=True, text=True, timeout=300
    )


@pytest.mark.parametrize("text", [SENTENCE, MASKED[1]])
def test_export_writes_a_trace_that_agrees_with_transformers(folder, tmp_path, text):
    figure, data = tmp_path / "b.png", tmp_path / "b.npz"
    result = run_cli(
        "export", text, "--model", folder.directory, "--kind", "enc_self", "--layer", 1, "--head", 1,
        "--out", figure, "--trace", data, "--device", "cpu",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert figure.stat().st_size > 0
    trace = Trace.load(data)
    assert trace.src_ids.tolist() == folder.tokenizer(text)["input_ids"]
    maps, logits = reference_pass(folder.reference, trace.src_ids)
    close(trace.enc_self, maps)
    assert trace.out_ids.tolist() == logits[trace.out_positions.tolist()].argmax(dim=-1).tolist()


# --- the file as other savers write it ---


def rewrite_weights(directory: Path, edit) -> None:
    from safetensors.torch import load_file, save_file

    tensors = load_file(directory / "model.safetensors")
    save_file(edit(tensors), directory / "model.safetensors")


def old_layer_norm_names(tensors: dict) -> dict:
    renamed = {}
    for name, tensor in tensors.items():
        name = name.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta")
        renamed[name] = tensor
    return renamed


def pretraining_extras(tensors: dict) -> dict:
    """BertForPreTraining's file: the tied decoder saved, a pooler, the next-sentence head, position ids."""
    extras = {
        "cls.predictions.decoder.weight": tensors["bert.embeddings.word_embeddings.weight"].clone(),
        "cls.predictions.decoder.bias": tensors["cls.predictions.bias"].clone(),
        "bert.pooler.dense.weight": torch.zeros(32, 32),
        "bert.pooler.dense.bias": torch.zeros(32),
        "cls.seq_relationship.weight": torch.zeros(2, 32),
        "cls.seq_relationship.bias": torch.zeros(2),
        "bert.embeddings.position_ids": torch.arange(64)[None],
    }
    return {**tensors, **extras}


@pytest.mark.parametrize(
    "edit",
    [
        lambda t: {name.removeprefix("bert."): tensor for name, tensor in t.items()},  # no prefix
        old_layer_norm_names,  # checkpoints converted from TensorFlow
        pretraining_extras,
    ],
    ids=["no prefix", "gamma and beta", "pretraining extras"],
)
def test_the_layouts_other_savers_write_load_the_same(folder, translator, tmp_path, edit):
    copy = tmp_path / "variant"
    shutil.copytree(folder.directory, copy)
    rewrite_weights(copy, edit)
    ours = Translator(load_model(copy, "cpu"))
    assert ours.cfg == translator.cfg
    for name, tensor in translator.model.state_dict().items():
        assert torch.equal(ours.model.state_dict()[name], tensor), name


# --- broken folders: one line each ---


@pytest.mark.parametrize("damage", sorted(BREAKERS))
def test_a_broken_folder_is_refused_in_one_line(folder, tmp_path, damage):
    copy = tmp_path / "case" / "tiny-bert"
    shutil.copytree(folder.directory, copy)
    fragment = BREAKERS[damage](copy)
    with pytest.raises(ModelLoadError) as caught:
        load_model(copy, "cpu")
    message = str(caught.value)
    assert fragment in message and "\n" not in message
    assert not payload_marker(copy).exists()  # a pickle is never opened
