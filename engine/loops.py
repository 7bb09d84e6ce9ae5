"""The loop guard: our models never complete a repetition loop ("refressssssss", "Bamabamabama").

A small model that meets a rare word sometimes spells it from fragments and then repeats one of
them until the length limit. The guard forbids the token that would complete such a loop, by two
rules:
- on pieces (`looping_ids`): a piece 4 times in a row, a pair of pieces 3 times in a row, or a run
  of 3 to 6 pieces twice in a row. The training references break this rule in about 1 sentence in
  10,000 ("Un instant..." is "." three times, "calls a spade a spade" a pair twice);
- on the text (`LoopGuard.text_looping_ids`): a character 6 times in a row ("9:000000"), or 2 to 4
  letters 4 times ("princicicic"), spelled by pieces that vary, which the first rule cannot see.
  These are the loops `is_degenerate` counts in an output; no reference of train.tsv has one.

Plain Python (no torch): the decoders call it for every row they choose from, and the GUI to mark
the candidates a step could not choose.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Sequence

LONGEST_UNIT = 6  # pieces
# a degenerate text: a character 6+ times in a row ("mahhhhhh"), 2-4 letters 4+ times ("prédidididi"),
# or a word 4+ times ("votre votre votre votre"); no reference of train.tsv matches (313k sentences)
CHARACTER_RUN = 6
LETTER_UNITS = (2, 3, 4)
LETTER_COPIES = 4
REPEATED_CHARACTER = re.compile(rf"(.)\1{{{CHARACTER_RUN - 1},}}")
REPEATED_LETTERS = re.compile(rf"(\w{{{LETTER_UNITS[0]},{LETTER_UNITS[-1]}}})\1{{{LETTER_COPIES - 1},}}")
REPEATED_WORD = re.compile(r"\b(\w+)(?:\W+\1\b){3,}", re.IGNORECASE)
DEGENERATE = "repeat a character 6+ times, 2-4 letters 4+ times or a word 4+ times in a row"
TAIL_PIECES = max(CHARACTER_RUN, LETTER_COPIES * LETTER_UNITS[-1])  # text enough for the longest loop


def loops(text: str) -> bool:
    """A character or letter loop anywhere in `text` (the rule the guard's text rule keeps)."""
    return bool(REPEATED_CHARACTER.search(text) or REPEATED_LETTERS.search(text))


def is_degenerate(text: str) -> bool:
    """True for the repetition loops a weak model falls into; the Tatoeba references have none."""
    return loops(text) or bool(REPEATED_WORD.search(text))


def copies_allowed(unit: int) -> int:
    """How many times in a row a unit of `unit` pieces may occur: one fewer completes a loop."""
    return {1: 3, 2: 2}.get(unit, 1)


def looping_ids(history: Sequence[int]) -> list[int]:
    """The tokens that would complete a loop if chosen after `history` (the tokens generated so
    far), shortest unit first; at most one per unit length."""
    ids: list[int] = []
    for unit in range(1, LONGEST_UNIT + 1):
        needed = (copies_allowed(unit) + 1) * unit - 1  # tokens of history a loop of this unit ends
        if len(history) < needed:
            break  # longer units need at least as many
        if history[-1] != history[-1 - unit]:
            continue  # the history does not repeat itself with this period: the common case, checked first
        token = history[-unit]  # the next token would repeat the one a unit earlier
        tail = [*history[len(history) - needed :], token]
        if token not in ids and all(tail[i] == tail[i % unit] for i in range(len(tail))):
            ids.append(token)
    return ids


def written(pieces: Sequence[str]) -> str:
    """The text of SentencePiece pieces, as far as the text rule is concerned ("▁" is a space)."""
    return "".join(pieces).replace("▁", " ")


def loop_length(period: int) -> int:
    """Characters in a row, repeating every `period`, that make a text loop."""
    return CHARACTER_RUN if period == 1 else LETTER_COPIES * period


def is_word_character(character: str) -> bool:
    return character.isalnum() or character == "_"  # what the regular expressions' \\w matches


def periodic_suffix(text: str, period: int) -> int:
    """Length of the longest end of `text` that repeats every `period` characters (letters only,
    beyond period 1); 0 when the text does not end in `period` such characters."""
    if len(text) < period or (period > 1 and not all(is_word_character(c) for c in text[-period:])):
        return 0
    n = period
    while n < len(text) and text[-n - 1] == text[-n - 1 + period] and (period == 1 or is_word_character(text[-n - 1])):
        n += 1
    return n


def repeating_start(text: str, period: int) -> int:
    """Length of the longest start of `text` that repeats every `period` characters."""
    n = min(period, len(text))
    while n < len(text) and text[n] == text[n - period]:
        n += 1
    return n


class LoopGuard:
    """Both rules for one vocabulary (`pieces`, SentencePiece's strings, "▁" for a space)."""

    def __init__(self, pieces: Sequence[str]) -> None:
        self.texts = [written([piece]) for piece in pieces]
        # a loop the text has begun (at least one period of it) is completed by the pieces that start
        # with its continuation: found by bisection in the pieces sorted by their text
        order = sorted(range(len(self.texts)), key=self.texts.__getitem__)
        self.sorted_texts = [self.texts[token] for token in order]
        self.sorted_ids = order
        # how far each piece repeats itself from its start, period by period (letters or not: an
        # upper bound is all that is needed here)
        periods = (1, *LETTER_UNITS)
        starts = [[repeating_start(text, p) for p in periods] for text in self.texts]
        # the most characters by which a piece can continue a loop of each period: a text whose loop
        # needs more than that is passed over without a search (the common case)
        self.reach = {p: max(row[i] for row in starts) for i, p in enumerate(periods)}
        # pieces that could complete a loop the text has not shown a whole period of (a piece that
        # loops on its own, or nearly, "hahaha"): checked one by one, and there are few or none
        self.loopy = [
            token
            for token, (text, row) in enumerate(zip(self.texts, starts, strict=True))
            if any(n > loop_length(p) - p for n, p in zip(row[1:], LETTER_UNITS, strict=True)) or loops(text)
        ]

    def starting_with(self, prefix: str) -> list[int]:
        """The tokens whose piece starts with `prefix`."""
        first = bisect_left(self.sorted_texts, prefix)
        last = bisect_left(self.sorted_texts, prefix + "\U0010ffff", lo=first)
        return self.sorted_ids[first:last]

    def blocked(self, history: Sequence[int]) -> list[int]:
        """The tokens either rule forbids after `history` (the tokens generated so far)."""
        ids = looping_ids(history)
        text = "".join([self.texts[token] for token in history[-TAIL_PIECES:]])
        return ids + [token for token in self.text_looping_ids(text) if token not in ids]

    def text_looping_ids(self, text: str) -> list[int]:
        """The tokens whose piece, written after `text`, would make it loop (`is_degenerate`'s
        character and letter loops)."""
        ids: list[int] = []
        for period in (1, *LETTER_UNITS):
            n = periodic_suffix(text, period)
            needed = max(1, loop_length(period) - n)  # characters the next piece must continue it by
            if n == 0 or needed > self.reach[period]:
                continue
            continuation = (text[-period:] * (needed // period + 1))[:needed]
            ids += self.starting_with(continuation)
        ids += [t for t in self.loopy if completes_loop(text, self.texts[t])]
        return list(dict.fromkeys(ids))


def completes_loop(text: str, piece: str) -> bool:
    """Whether `piece` written after `text` makes a character or letter loop end in it (the slow,
    plain reading of the rule that `LoopGuard.text_looping_ids` finds with a lookup)."""
    whole = text + piece
    return any(
        match.end() > len(text)
        for pattern in (REPEATED_CHARACTER, REPEATED_LETTERS)
        for match in pattern.finditer(whole)
    )
