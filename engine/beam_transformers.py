"""Beam search as transformers' `generate()` does it (version 5's vectorised `_beam_search`), for the
families whose reference is transformers (Marian): the same folder must give the same translation
here and there.

What differs from `engine.decoding.beam_search`'s classic rules:
- of the 2K best continuations, only those ranked in the first K may finish (end with </s> or reach
  the length limit); the rest only feed the K running beams;
- the finished pool keeps the K best scores seen (log p / length^α), not the first K to arrive;
- the search stops when no running beam can beat the worst finished one by generate()'s heuristic
  (`early_stopping` "no": the best running score at the current length; "never": at the longest
  length allowed), or as soon as K have finished (`early_stopping` "yes").
"""

from __future__ import annotations

import torch
from torch import Tensor

from engine.decoding import BeamResult, BeamStep, DecodingOptions, Hypothesis
from engine.generation import constrain, length_penalised
from engine.model import Transformer


@torch.no_grad()
def beam_search_transformers(
    model: Transformer, src: Tensor, options: DecodingOptions, memory: Tensor | None = None
) -> BeamResult:
    """Beam search for one sentence src (1, S) under generate()'s rules; hypotheses best first."""
    cfg, rules = model.cfg, model.rules
    K, alpha = options.beam_size, options.length_penalty
    limit = options.max_length(int((src != cfg.pad_id).sum()), cfg.max_positions)
    memory = model.encode(src) if memory is None else memory  # (1, S, d)
    cache = model.new_cache()
    beams: list[list[int]] = [[]]
    beam_log_probs = torch.zeros(1, device=src.device)
    inputs = torch.tensor([[cfg.bos_id]], device=src.device)
    finished: list[Hypothesis] = []
    steps: list[BeamStep] = []
    for step in range(limit):
        n = len(beams)
        logits = model.decode(inputs, memory.expand(n, -1, -1), src.expand(n, -1), cache=cache)[:, -1]
        positions = torch.full((n,), step, device=src.device)
        log_probs = constrain(rules, logits.log_softmax(dim=-1), positions, limit, cfg.eos_id)
        candidates = beam_log_probs[:, None] + log_probs  # (n, V)
        top_scores, top_index = candidates.flatten().topk(min(2 * K, candidates.numel()))
        may_finish = not (rules.early_stopping == "yes" and len(finished) >= K)
        next_beams, parents, tokens, scores = [], [], [], []
        any_running = False
        for rank, (score, index) in enumerate(zip(top_scores.tolist(), top_index.tolist(), strict=True)):
            if score == float("-inf"):
                break  # only forbidden tokens are left
            parent, token = divmod(index, candidates.size(1))
            tokens_so_far = beams[parent] + [token]
            if token == cfg.eos_id or step + 1 >= limit:
                if rank < K and may_finish:
                    penalised = length_penalised(score, step + 1, alpha, rules.penalty_form)
                    finished.append(Hypothesis(tokens_so_far, score, penalised, token == cfg.eos_id))
                continue
            any_running = True
            if len(next_beams) < K:
                next_beams.append(tokens_so_far)
                parents.append(parent)
                tokens.append(token)
                scores.append(score)
        finished = sorted(finished, key=lambda h: h.score, reverse=True)[:K]
        steps.append(BeamStep(tokens, parents, scores))
        if not any_running or not next_beams or _done(rules.early_stopping, finished, scores[0], step, limit, K, alpha):
            break
        cache.reorder(torch.tensor(parents, device=src.device))
        beams = next_beams
        beam_log_probs = torch.tensor(scores, device=src.device)
        inputs = torch.tensor(tokens, device=src.device)[:, None]  # (K, 1)
    return BeamResult(finished, steps)


def _done(
    early_stopping: str, finished: list[Hypothesis], best_running: float, step: int, limit: int, K: int, alpha: float
) -> bool:
    """generate()'s stopping test after step `step` (0-based), once the pool holds K hypotheses."""
    if len(finished) < K:
        return False
    if early_stopping == "yes":
        return True
    length = limit if early_stopping == "never" and alpha > 0 else step + 1
    return best_running / (length**alpha) <= finished[-1].score
