"""Beam search over a batch of sentences: every live hypothesis of every sentence is one row of the
batch, so each step is one decoder pass, whatever the number of sentences and beams.

Two sets of rules decide, per sentence, which continuations survive a step:
- `ClassicRules` (our models): the first K continuations to end with </s> finish; the search ends
  when K have finished.
- `TransformersRules` (Marian folders, whose reference is transformers' `generate()`): of the 2K
  best continuations only those ranked in the first K may finish; the finished pool keeps the K best
  scores (log p / length^α); the search stops when no running beam can beat the worst finished one
  by generate()'s heuristic, or as soon as K have finished with `early_stopping` "yes".
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from engine.decoding import DecodingOptions
from engine.generation import GenerationRules, constrain, length_penalised
from engine.model import Transformer


@dataclass(frozen=True)
class Hypothesis:
    tokens: list[int]  # generated ids after <s>
    log_prob: float  # sum of the tokens' log-probabilities
    score: float  # log_prob with the length penalty applied: what beams are ranked by
    finished: bool  # ended with </s> (False: stopped by the length limit)


@dataclass(frozen=True)
class BeamStep:
    """The hypotheses alive after one step: token chosen, parent index in the previous step, log p."""

    tokens: list[int]
    parents: list[int]
    log_probs: list[float]


@dataclass(frozen=True)
class BeamResult:
    hypotheses: list[Hypothesis]  # best first
    steps: list[BeamStep] = field(default_factory=list)  # the search tree, for the beam view


class ClassicRules:
    """One sentence's search under our rules."""

    def __init__(self, K: int, alpha: float, limit: int, eos_id: int, rules: GenerationRules) -> None:
        self.K, self.alpha, self.limit, self.eos_id, self.rules = K, alpha, limit, eos_id, rules
        self.beams: list[list[int]] = [[]]
        self.scores: list[float] = [0.0]  # log p of each running beam
        self.finished: list[Hypothesis] = []
        self.steps: list[BeamStep] = []
        self.done = False

    def finish(self, tokens: list[int], log_prob: float, step: int, ended: bool) -> Hypothesis:
        return Hypothesis(
            tokens, log_prob, length_penalised(log_prob, step + 1, self.alpha, self.rules.penalty_form), ended
        )

    def advance(self, step: int, best: list[tuple[float, int, int]]) -> list[int]:
        """Take this step's best continuations (log p, parent, token), best first; return the parent
        of each surviving beam (and set `done` when the search is over)."""
        beams, parents, tokens, scores = [], [], [], []
        for score, parent, token in best:
            tokens_so_far = self.beams[parent] + [token]
            if token == self.eos_id:
                if len(self.finished) < self.K:
                    self.finished.append(self.finish(tokens_so_far, score, step, True))
                continue
            beams.append(tokens_so_far)
            parents.append(parent)
            tokens.append(token)
            scores.append(score)
            if len(beams) == self.K:
                break
        self.steps.append(BeamStep(tokens, parents, scores))
        if len(self.finished) >= self.K or not beams:
            self.done = True
        elif step == self.limit - 1:
            self.finished += [self.finish(b, s, step, False) for b, s in zip(beams, scores, strict=True)]
            self.done = True
        self.beams, self.scores = beams, scores
        return parents

    def result(self) -> BeamResult:
        return BeamResult(sorted(self.finished, key=lambda h: h.score, reverse=True)[: self.K], self.steps)


class TransformersRules(ClassicRules):
    """One sentence's search as transformers' generate() runs it (version 5's `_beam_search`)."""

    def advance(self, step: int, best: list[tuple[float, int, int]]) -> list[int]:
        K = self.K
        may_finish = not (self.rules.early_stopping == "yes" and len(self.finished) >= K)
        beams, parents, tokens, scores = [], [], [], []
        any_running = False
        for rank, (score, parent, token) in enumerate(best):
            if score == float("-inf"):
                break  # only forbidden tokens are left
            tokens_so_far = self.beams[parent] + [token]
            if token == self.eos_id or step + 1 >= self.limit:
                if rank < K and may_finish:
                    self.finished.append(self.finish(tokens_so_far, score, step, token == self.eos_id))
                continue
            any_running = True
            if len(beams) < K:
                beams.append(tokens_so_far)
                parents.append(parent)
                tokens.append(token)
                scores.append(score)
        self.finished = sorted(self.finished, key=lambda h: h.score, reverse=True)[:K]
        self.steps.append(BeamStep(tokens, parents, scores))
        self.done = not any_running or not beams or self.cannot_improve(scores[0], step)
        self.beams, self.scores = beams, scores
        return parents

    def cannot_improve(self, best_running: float, step: int) -> bool:
        """generate()'s stopping test after step `step` (0-based), once the pool holds K hypotheses."""
        if len(self.finished) < self.K:
            return False
        if self.rules.early_stopping == "yes":
            return True
        alpha = self.alpha
        length = self.limit if self.rules.early_stopping == "never" and alpha > 0 else step + 1
        return best_running / (length**alpha) <= self.finished[-1].score


@torch.no_grad()
def beam_search_batch(
    model: Transformer,
    src: Tensor,
    options: DecodingOptions = DecodingOptions(),
    memory: Tensor | None = None,
    start: list[int] | None = None,
) -> list[BeamResult]:
    """Beam search for every sentence of src (B, S) at once; one decoder pass per step.

    `start` replaces <s> as the decoder's first inputs (a decoder-only model's prompt; then B is 1).
    Beam size 1 gives exactly the greedy output.
    """
    cfg = model.cfg
    start = list(start or [cfg.bos_id])
    room = cfg.max_positions - len(start) + 1
    lengths = (src != cfg.pad_id).sum(dim=1).tolist()
    rule_set = TransformersRules if model.rules.beam == "transformers" else ClassicRules
    searches = [
        rule_set(options.beam_size, options.length_penalty, options.max_length(n, room), cfg.eos_id, model.rules)
        for n in lengths
    ]
    memory = model.encode(src) if memory is None else memory  # (B, S, d); None without an encoder
    cache = model.new_cache()
    owner = list(range(len(searches)))  # the sentence of each batch row
    inputs = torch.tensor([start] * len(searches), device=src.device)  # (B, len(start))
    for step in range(max(s.limit for s in searches)):
        rows = torch.tensor(owner, device=src.device)
        memories = memory.index_select(0, rows) if memory is not None else None
        logits = model.decode(inputs, memories, src.index_select(0, rows), cache=cache)[:, -1]  # (R, V)
        limits = torch.tensor([searches[b].limit for b in owner], device=src.device)
        positions = torch.full((len(owner),), step, device=src.device)
        histories = [beam for b in _running(owner) for beam in searches[b].beams]  # in the rows' order
        log_probs = constrain(model.rules, logits.log_softmax(dim=-1), positions, limits, cfg.eos_id, histories)
        scores = torch.tensor([score for b in _running(owner) for score in searches[b].scores], device=src.device)
        candidates = scores[:, None] + log_probs  # (R, V)
        keep, next_owner, next_tokens = [], [], []
        first = 0
        for b in _running(owner):
            search = searches[b]
            n = len(search.beams)
            block = candidates[first : first + n]  # (n, V): this sentence's beams
            top_scores, top_index = block.flatten().topk(min(2 * search.K, block.numel()))
            best = [
                (s, *divmod(i, block.size(1))) for s, i in zip(top_scores.tolist(), top_index.tolist(), strict=True)
            ]
            parents = search.advance(step, best)
            if not search.done:
                keep += [first + p for p in parents]
                next_owner += [b] * len(parents)
                next_tokens += search.steps[-1].tokens
            first += n
        if not keep:
            break
        cache.reorder(torch.tensor(keep, device=src.device))
        owner = next_owner
        inputs = torch.tensor(next_tokens, device=src.device)[:, None]  # (R, 1)
    return [search.result() for search in searches]


def _running(owner: list[int]) -> list[int]:
    """The sentences of the batch rows, each once, in row order (rows of a sentence are adjacent)."""
    return list(dict.fromkeys(owner))


def beam_search(
    model: Transformer,
    src: Tensor,
    options: DecodingOptions = DecodingOptions(),
    memory: Tensor | None = None,
    start: list[int] | None = None,
) -> BeamResult:
    """Beam search for one sentence src (1, S)."""
    return beam_search_batch(model, src, options, memory, start)[0]
