"""The loop guard (engine/loops.py): which token completes a loop, and that every decoder obeys it."""

import pytest
import torch

from engine.decoding import DecodingOptions, greedy_decode, greedy_decode_recorded, greedy_from_draft, pad_batch
from engine.generation import GenerationRules
from engine.loops import looping_ids
from engine.translator import Translator

SENTENCES = ["Je suis étudiant.", "Le chien dort.", "Nous aimons le chat, tu es mon ami.", "Il mange."]


@pytest.mark.parametrize(
    ("history", "blocked"),
    [
        ([], []),
        ([5, 5], []),  # a piece may occur 3 times in a row ("..." is "." three times)
        ([5, 5, 5], [5]),  # not 4
        ([1, 2, 1, 2], []),  # a pair twice in a row is allowed ("a spade a spade")
        ([1, 2, 1, 2, 1], [2]),  # not 3 times
        ([1, 2, 3, 1, 2], [3]),  # a run of 3 pieces only once
        ([9, 1, 2, 3, 4, 5, 6, 1, 2, 3, 4, 5], [6]),  # ... up to 6
        ([1, 2, 3, 4, 5, 6, 7, 1, 2, 3, 4, 5, 6], []),  # 7 is not a loop the guard knows
        ([2, 2, 2, 2, 2], [2]),  # every unit agrees: the token once
        ([4, 1, 1, 1, 4, 1, 1], [4, 1]),  # "1 1 4" twice (unit 3), "4 1 1 1" twice (unit 4)
        ([3, 4, 3, 4, 4, 4], [4]),
    ],
)
def test_the_token_that_would_complete_a_loop(history, blocked):
    assert looping_ids(history) == blocked


def loops_in(tokens: list[int]) -> list[int]:
    """Steps whose token the guard would have ruled out."""
    return [t for t in range(len(tokens)) if tokens[t] in looping_ids(tokens[:t])]


@pytest.fixture(scope="module")
def translator(tiny_model_dir):
    return Translator.from_directory(tiny_model_dir, "cpu")


def test_every_decoder_follows_the_guard_and_agrees_with_the_others(translator):
    """The tiny random model loops without the guard; with it, greedy (batched, recorded, from a
    draft) and beam 1 give one output, in which no step completes a loop."""
    model = translator.model
    assert model.rules.loop_guard
    rows = [translator.source(text).ids for text in SENTENCES]
    src = pad_batch(rows, model.cfg.pad_id, torch.device("cpu"))
    guarded = greedy_decode(model, src)
    model.rules = GenerationRules()
    try:
        unguarded = greedy_decode(model, src)
    finally:
        model.rules = GenerationRules(loop_guard=True)
    assert any(loops_in(tokens) for tokens in unguarded)  # so the guard has work to do here
    assert not any(loops_in(tokens) for tokens in guarded)
    recorded, _ = greedy_decode_recorded(model, rows)
    assert [sentence.tokens for sentence in recorded] == guarded
    beam_one = translator.beam(SENTENCES[0], DecodingOptions(beam_size=1)).hypotheses[0].tokens
    assert beam_one == guarded[0]
    for row, tokens in zip(rows, guarded, strict=True):
        one = pad_batch([row], model.cfg.pad_id, torch.device("cpu"))
        for draft in ([], tokens, tokens[:4], tokens[:4] + [7, 7, 7, 7]):
            assert greedy_from_draft(model, one, draft).tokens == tokens


def test_no_beam_hypothesis_completes_a_loop(translator):
    for sentence in SENTENCES:
        for hypothesis in translator.beam(sentence, DecodingOptions(beam_size=4)).hypotheses:
            assert not loops_in(hypothesis.tokens)
