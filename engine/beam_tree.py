"""The beam search as a tree of plain nodes, for the beam view: every beam alive at every step, the
finished hypotheses as leaves, and which nodes lie on a final path (the others were pruned).

No torch at import: the GUI's beam view imports these types before the model loads."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from engine.beam import BeamResult


@dataclass(frozen=True)
class BeamNode:
    """One hypothesis of the beam search tree (plain data for the GUI)."""

    tokens: tuple[int, ...]  # the path from <s>, this node's token last
    pieces: tuple[str, ...]
    depth: int  # 1-based decoding step
    rank: int  # place among the beams alive at that step
    parent: int  # index of the parent node in BeamTree.nodes, -1 for the root's children
    log_prob: float
    score: float | None  # length-normalised score of a finished hypothesis
    finished: bool
    survived: bool  # on the path of one of the final hypotheses (else pruned)


@dataclass(frozen=True)
class BeamTree:
    beam_size: int
    nodes: list[BeamNode]
    best: tuple[int, ...]  # the best hypothesis' tokens
    hypotheses: list[tuple[tuple[int, ...], float]]  # every final hypothesis and its score, best first


def beam_tree(result: BeamResult, beam_size: int, pieces_of: Callable[[list[int]], list[str]]) -> BeamTree:
    """The search tree of an engine BeamResult as plain nodes: every surviving beam of every step,
    plus the finished hypotheses as leaves; nodes off every final path are marked pruned."""
    finals = [tuple(h.tokens) for h in result.hypotheses]
    on_path = {path[:n] for path in finals for n in range(1, len(path) + 1)}
    nodes: list[BeamNode] = []
    previous: list[int] = []  # node index of each beam alive after the previous step
    by_path: dict[tuple[int, ...], int] = {}
    for depth, step in enumerate(result.steps, start=1):
        current = []
        for rank, (token, parent, log_prob) in enumerate(zip(step.tokens, step.parents, step.log_probs, strict=True)):
            parent_index = previous[parent] if previous else -1
            path = (nodes[parent_index].tokens if parent_index >= 0 else ()) + (int(token),)
            node = BeamNode(path, (), depth, rank, parent_index, float(log_prob), None, False, path in on_path)
            by_path[path] = len(nodes)
            current.append(len(nodes))
            nodes.append(node)
        previous = current
    ranks: dict[int, int] = {}
    for hypothesis in result.hypotheses:
        path = tuple(int(t) for t in hypothesis.tokens)
        if path in by_path:  # stopped by the length limit: the node exists already
            index = by_path[path]
            nodes[index] = replace(nodes[index], score=float(hypothesis.score), finished=hypothesis.finished)
            continue
        parent_index = by_path.get(path[:-1], -1)
        depth = len(path)
        rank = ranks.get(depth, sum(1 for n in nodes if n.depth == depth))  # below the beams of that step
        ranks[depth] = rank + 1
        by_path[path] = len(nodes)
        nodes.append(
            BeamNode(
                path, (), depth, rank, parent_index, float(hypothesis.log_prob), float(hypothesis.score), True, True
            )
        )
    nodes = [replace(n, pieces=tuple(pieces_of(list(n.tokens)))) for n in nodes]
    return BeamTree(
        beam_size=beam_size,
        nodes=nodes,
        best=finals[0] if finals else (),
        hypotheses=[(tuple(h.tokens), float(h.score)) for h in result.hypotheses],
    )
