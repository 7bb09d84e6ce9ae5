"""A text of several sentences, translated sentence by sentence.

The shipped models learnt from single sentences: a paragraph fed to them as one sequence comes out
as a loop ("I'm going to get a t a t a t …"). Like every production translator, the engine splits
the text into sentences and decodes them side by side, one batch, each attending only to itself
(`engine.model.Sentences`, `engine.decoding.greedy_decode_recorded`). The Trace says which sentence
each piece belongs to (`src_sentence`, `tgt_sentence`); its maps are block diagonal. Numpy only:
the analysis and the GUI read sentence arrays too.
"""

from __future__ import annotations

import re

import numpy as np

# sentence-final punctuation (French puts a space before ? and !), closing quotes or brackets, space,
# then something that starts a sentence: a capital, a digit, an opening quote or ¿ ¡
_BOUNDARY = re.compile(r"""(?<=[.!?…])["'»”’)\]]*\s+(?=["«“‘(¿¡]?\w)""")
# words whose period does not end a sentence (lower-cased, without the period)
ABBREVIATIONS = frozenset(
    "mr mrs ms dr prof st sr jr vs etc cf e.g i.e pp vol fig mm mme mmes mlle mlles av bd".split()
)


def split_sentences(text: str) -> list[str]:
    """The sentences of `text` in order, stripped; the text itself when it is one sentence.

    A boundary is sentence-final punctuation followed by space and a capital letter (or a digit, or
    an opening quote); not after an abbreviation ("Mr.", "M.", "etc.") or an initial ("J. K.")."""
    sentences, start = [], 0
    for match in _BOUNDARY.finditer(text):
        before = text[start : match.start()].rstrip("\"'»”’)]")
        word = before.rsplit(maxsplit=1)[-1] if before.split() else ""
        stem = word.rstrip(".!?…").lower()
        if word.endswith(".") and (stem in ABBREVIATIONS or (len(stem) == 1 and stem.isalpha())):
            continue
        following = text[match.end() :].lstrip('"«“‘(¿¡')
        if following[:1].islower():
            continue  # "… ? dit-il" goes on
        sentences.append(text[start : match.start()] + match.group().rstrip())
        start = match.end()
    sentences.append(text[start:])
    return [s.strip() for s in sentences if s.strip()] or [text]


def positions_within(sentence_of: np.ndarray) -> np.ndarray:
    """Each position's index within its sentence: sentence_of [0, 0, 0, 1, 1] → [0, 1, 2, 0, 1]."""
    index = np.arange(len(sentence_of))
    starts = np.r_[True, np.diff(sentence_of) != 0]
    return index - np.maximum.accumulate(np.where(starts, index, 0))
