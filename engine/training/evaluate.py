"""Corpus BLEU and chrF of a model on a TSV test set, with sacreBLEU's signatures for reproduction."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.decoding import DecodingOptions
from engine.training.data import read_pairs
from engine.translator import Translator

# the column each language has in the project's Tatoeba files (French<TAB>English)
LANGUAGE_COLUMNS = {"fr": 0, "en": 1}
# a degenerate output: a character 6+ times in a row ("mahhhhhh"), 2-4 letters 4+ times ("prédidididi"),
# or a word 4+ times ("votre votre votre votre"); no reference of train.tsv matches (313k sentences)
REPEATED_CHARACTER = re.compile(r"(.)\1{5,}")
REPEATED_LETTERS = re.compile(r"(\w{2,4})\1{3,}")
REPEATED_WORD = re.compile(r"\b(\w+)(?:\W+\1\b){3,}", re.IGNORECASE)
DEGENERATE = "repeat a character 6+ times, 2-4 letters 4+ times or a word 4+ times in a row"


def is_degenerate(text: str) -> bool:
    """True for the repetition loops a weak model falls into; the Tatoeba references have none."""
    return any(pattern.search(text) for pattern in (REPEATED_CHARACTER, REPEATED_LETTERS, REPEATED_WORD))


@dataclass(frozen=True)
class Evaluation:
    hypotheses: list[str]
    references: list[str]
    bleu: Any  # sacrebleu.metrics.BLEUScore
    chrf: Any  # sacrebleu.metrics.CHRFScore
    bleu_signature: str
    chrf_signature: str

    @property
    def degenerate(self) -> list[int]:
        """0-based indices of the outputs that loop (see DEGENERATE)."""
        return [i for i, text in enumerate(self.hypotheses) if is_degenerate(text)]


def evaluate(
    translator: Translator,
    test_path: Path,
    options: DecodingOptions = DecodingOptions(),
    source_column: int | None = None,
    target_column: int | None = None,
    limit: int | None = None,
) -> Evaluation:
    import sacrebleu

    info = translator.loaded.info
    if source_column is None:
        source_column = LANGUAGE_COLUMNS.get(info.source_language, 0)
    if target_column is None:
        target_column = LANGUAGE_COLUMNS.get(info.target_language, 1 - source_column)
    pairs = read_pairs(test_path, source_column, target_column)[:limit]
    hypotheses = translator.translate([s for s, _ in pairs], options)
    references = [t for _, t in pairs]
    bleu_metric, chrf_metric = sacrebleu.BLEU(), sacrebleu.CHRF()
    bleu = bleu_metric.corpus_score(hypotheses, [references])
    chrf = chrf_metric.corpus_score(hypotheses, [references])
    return Evaluation(
        hypotheses, references, bleu, chrf, str(bleu_metric.get_signature()), str(chrf_metric.get_signature())
    )
