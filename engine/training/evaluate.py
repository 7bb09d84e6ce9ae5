"""Corpus BLEU and chrF of a model on a TSV test set, with sacreBLEU's signatures for reproduction."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.decoding import DecodingOptions
from engine.loops import is_degenerate
from engine.training.data import read_pairs
from engine.translator import Translator

# the column each language has in the project's Tatoeba files (French<TAB>English)
LANGUAGE_COLUMNS = {"fr": 0, "en": 1}


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
