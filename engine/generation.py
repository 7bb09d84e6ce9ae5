"""How a model family generates, besides what the user chooses (`DecodingOptions`).

Our own models generate as the project's decoders always have, except that they never complete a
repetition loop (`our_rules`, engine/loops.py). A Marian model must generate as
transformers' `generate()` does on it, or the same folder would translate differently here and
there: its pad id (which also starts the decoder) is never chosen, the last step allowed can only
be </s> (`forced_eos_token_id`), a finished hypothesis is ranked by log p / length^α, and the beam
search follows transformers' bookkeeping (see engine/beam.py, TransformersRules).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from engine.loops import LoopGuard

PenaltyForm = Literal["gnmt", "length"]  # log p / ((5 + len) / 6)^α (GNMT), or log p / len^α (transformers)
BeamRules = Literal["classic", "transformers"]  # our beam search, or generate()'s
EarlyStopping = Literal["yes", "no", "never"]  # generate()'s early_stopping True, False, "never"


@dataclass(frozen=True)
class GenerationRules:
    # what may be chosen
    suppressed_ids: tuple[int, ...] = ()  # never generated (Marian: the pad id)
    force_eos_at_limit: bool = False  # the last step the length limit allows can only choose </s>
    renormalize: bool = False  # log-softmax again after suppressing (generate()'s renormalize_logits)
    loop_guard: LoopGuard | None = None  # never complete a repetition loop (engine/loops.py); ours have one
    # how beams are ranked and when the search stops
    penalty_form: PenaltyForm = "gnmt"
    beam: BeamRules = "classic"
    early_stopping: EarlyStopping = "no"  # only read by the "transformers" beam rules


def length_penalised(log_prob: float, length: int, alpha: float, form: PenaltyForm = "gnmt") -> float:
    """A finished hypothesis' score; `length` counts the generated tokens, </s> included."""
    if form == "length":
        return log_prob / (length**alpha)
    return log_prob / (((5 + length) / 6) ** alpha)


def constrain(
    rules: GenerationRules,
    scores: Tensor,
    positions: Tensor,
    limits: Tensor | int,
    eos_id: int,
    histories: Sequence[Sequence[int]],
) -> Tensor:
    """Logits or log-probabilities (N, V) with what may not be chosen at -inf.

    `positions` (N,) is the index, among the generated tokens, of the token each row chooses;
    `limits` the most tokens each row may generate; `histories` the tokens each row generated
    before (what the loop guard reads).
    """
    if rules.loop_guard:
        guard = rules.loop_guard
        rows = [(row, token) for row, history in enumerate(histories) for token in guard.blocked(history)]
        if rows:
            scores = scores.clone()
            scores[[row for row, _ in rows], [token for _, token in rows]] = float("-inf")
    if rules.suppressed_ids:
        ids = torch.tensor(rules.suppressed_ids, device=scores.device)
        scores = scores.index_fill(-1, ids, float("-inf"))
    if rules.force_eos_at_limit:
        at_limit = positions >= torch.as_tensor(limits, device=scores.device) - 1  # (N,)
        if bool(at_limit.any()):
            only_eos = torch.full_like(scores, float("-inf"))
            only_eos[:, eos_id] = 0.0
            scores = torch.where(at_limit[:, None], only_eos, scores)
    if rules.renormalize:
        scores = scores.log_softmax(dim=-1)
    return scores


def our_rules(pieces: Sequence[str]) -> GenerationRules:
    """How our models generate, with the loop guard for their target vocabulary (its pieces, by id)."""
    return GenerationRules(loop_guard=LoopGuard(pieces))


def suppressed_log_probs(rules: GenerationRules, log_probs: Tensor) -> Tensor:
    """A trace's next-token distributions (T, V) without the ids the model never generates, renormalised."""
    if not rules.suppressed_ids:
        return log_probs
    ids = torch.tensor(rules.suppressed_ids, device=log_probs.device)
    return log_probs.index_fill(-1, ids, float("-inf")).log_softmax(dim=-1)
