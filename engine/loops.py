"""The loop guard: our models never complete a repetition loop ("refressssssss", "Bamabamabama").

A small model that meets a rare word sometimes spells it from fragments and then repeats one of
them until the length limit. The guard forbids the token that would complete such a loop: a piece
4 times in a row, a pair of pieces 3 times in a row, or a run of 3 to 6 pieces twice in a row. The
training references break this rule in about 1 sentence in 10,000 ("Un instant..." is "." three
times, "calls a spade a spade" a pair twice), so it leaves real sentences alone.

Plain Python on token ids (no torch): the decoders call it for every row they choose from, and the
GUI to mark the candidates a step could not choose.
"""

from __future__ import annotations

from collections.abc import Sequence

LONGEST_UNIT = 6  # pieces


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
