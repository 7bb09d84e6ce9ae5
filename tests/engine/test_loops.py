"""The loop guard (engine/loops.py): which token completes a loop, and that every decoder obeys it."""

from pathlib import Path

import pytest
import torch

from engine.decoding import DecodingOptions, greedy_decode, greedy_decode_recorded, greedy_from_draft, pad_batch
from engine.generation import GenerationRules
from engine.loops import LoopGuard, completes_loop, is_degenerate, looping_ids, written
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


PIECES = ["▁a", "b", "ab", "▁", "0", "00", "000", "ic", "ici", "▁ha", "hahaha", "x", "xy", "▁the"]


@pytest.mark.parametrize(
    ("text", "blocked"),
    [
        ("", []),
        ("9:00000", ["0", "00", "000"]),  # a character 6 times: "0" is the sixth
        ("9:0000", ["00", "000"]),
        ("9:000", ["000"]),
        ("9:00", []),
        ("prin" + "ic" * 3, ["ic", "ici"]),  # 2 letters a fourth time
        ("prin" + "ic" * 2 + "i", []),  # "ic" twice and a letter: "ici" would not complete 4
        ("bab", []),  # "bab" + "ab" is "babab": not yet
        ("abababa", ["b"]),  # "b" ends "abababab" ("ab" would give "abababaab")
        ("ha", ["hahaha"]),  # "ha" a fourth time
        ("oh ", []),
        ("x x x", []),  # words are the piece rule's business
    ],
)
def test_the_piece_that_would_make_the_text_loop(text, blocked):
    guard = LoopGuard(PIECES)
    assert sorted(PIECES[t] for t in guard.text_looping_ids(text)) == sorted(blocked)


def test_a_piece_that_loops_on_its_own_or_nearly():
    guard = LoopGuard(["a", "hahahahaha", "ahahaha"])
    assert guard.text_looping_ids("") == [1]  # always ruled out
    assert sorted(guard.text_looping_ids("h")) == [1, 2]  # "h" + "ahahaha": less than a period was written


def test_the_text_rule_finds_what_a_slow_reading_finds_over_a_real_vocabulary():
    """Every piece of the shipped vocabulary after the prefixes of real sentences and of loops:
    the bisection finds exactly the pieces after which the text would loop."""
    import sentencepiece as spm

    vocabulary = Path(__file__).resolve().parents[2] / "resources" / "models" / "fr-en" / "spm.model"
    processor = spm.SentencePieceProcessor(model_file=str(vocabulary))
    guard = LoopGuard([processor.IdToPiece(i) for i in range(processor.GetPieceSize())])
    texts = ["We were so cresssheat to 9:00000", "It's against my princippplicicic", "Bamabamabam", "hahahah", "Zzzzz"]
    texts += ["Je ne pense pas que nous devrions partir avant la fin de la réunion.", "Appelle le 555-111"]
    tails = [text[:end] for text in texts for end in range(len(text) + 1)]
    found = 0
    for tail in tails:
        assert not is_degenerate(tail)
        expected = [t for t, piece in enumerate(guard.texts) if completes_loop(tail, piece)]
        assert sorted(guard.text_looping_ids(tail)) == expected, tail
        found += bool(expected)
    assert found >= 5  # the loops' tails have pieces to block


def test_the_guard_reads_the_text_of_the_last_pieces():
    guard = LoopGuard(PIECES)
    ic, ici = PIECES.index("ic"), PIECES.index("ici")
    history = [PIECES.index("▁the"), ic, ic, ic]
    assert looping_ids(history) == [ic]  # a fourth "ic" piece
    assert guard.blocked(history) == [ic, ici]  # and "ici", by the letters: " theicicic" + "ici"
    assert written(["▁the", "ic"]) == " theic"


def loops_in(tokens: list[int], guard: LoopGuard) -> list[int]:
    """Steps whose token the guard would have ruled out."""
    return [t for t in range(len(tokens)) if tokens[t] in guard.blocked(tokens[:t])]


@pytest.fixture(scope="module")
def translator(tiny_model_dir):
    return Translator.from_directory(tiny_model_dir, "cpu")


def test_every_decoder_follows_the_guard_and_agrees_with_the_others(translator):
    """The tiny random model loops without the guard; with it, greedy (batched, recorded, from a
    draft) and beam 1 give one output, in which no step completes a loop."""
    model = translator.model
    rules = model.rules
    assert rules.loop_guard is not None
    rows = [translator.source(text).ids for text in SENTENCES]
    src = pad_batch(rows, model.cfg.pad_id, torch.device("cpu"))
    guarded = greedy_decode(model, src)
    model.rules = GenerationRules()
    try:
        unguarded = greedy_decode(model, src)
    finally:
        model.rules = rules
    assert any(loops_in(tokens, rules.loop_guard) for tokens in unguarded)  # so the guard has work to do here
    assert not any(loops_in(tokens, rules.loop_guard) for tokens in guarded)
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
            assert not loops_in(hypothesis.tokens, translator.model.rules.loop_guard)
