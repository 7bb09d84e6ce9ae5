"""Training data: TSV sentence pairs, their ids, and batches of similar lengths with a token budget."""

from __future__ import annotations

import random
from pathlib import Path

import torch

from engine.tokenizer import BOS_ID, EOS_ID, PAD_ID, Tokenizer


def read_pairs(path: Path, source_column: int, target_column: int) -> list[tuple[str, str]]:
    pairs = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            columns = line.rstrip("\n").split("\t")
            if len(columns) <= max(source_column, target_column):
                raise ValueError(
                    f"{path}:{number}: expected at least {max(source_column, target_column) + 1} tab-separated columns"
                )
            pairs.append((columns[source_column], columns[target_column]))
    return pairs


def encode_pairs(
    tokenizer: Tokenizer, pairs: list[tuple[str, str]], max_positions: int, alpha: float = 0.0
) -> list[tuple[list[int], list[int]]]:
    """Source ids (with </s>) and target ids (<s> … </s>); pairs too long for the model are dropped.

    With `alpha` > 0 each sentence gets one segmentation sampled from SentencePiece's lattice.
    """
    encoded = []
    for source, target in pairs:
        src = tokenizer.encode_source(source, alpha)
        tgt = [BOS_ID] + tokenizer.encode_target(target, alpha) + [EOS_ID]
        if len(src) <= max_positions and len(tgt) <= max_positions:
            encoded.append((src, tgt))
    return encoded


def make_batches(examples: list[tuple[list[int], list[int]]], max_tokens: int, seed: int) -> list[list[int]]:
    """Indices grouped so that sentences × longest side ≤ max_tokens, similar lengths together, order shuffled."""
    rng = random.Random(seed)
    order = list(range(len(examples)))
    rng.shuffle(order)  # ties in length fall in a different order every epoch
    order.sort(key=lambda i: (len(examples[i][0]), len(examples[i][1])))
    batches: list[list[int]] = []
    current: list[int] = []
    longest = 0
    for i in order:
        size = max(len(examples[i][0]), len(examples[i][1]))
        if current and max(longest, size) * (len(current) + 1) > max_tokens:
            batches.append(current)
            current, longest = [], 0
        current.append(i)
        longest = max(longest, size)
    if current:
        batches.append(current)
    rng.shuffle(batches)
    return batches


def collate(examples: list[tuple[list[int], list[int]]], indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    src_len = max(len(examples[i][0]) for i in indices)
    tgt_len = max(len(examples[i][1]) for i in indices)
    src = torch.full((len(indices), src_len), PAD_ID, dtype=torch.long)
    tgt = torch.full((len(indices), tgt_len), PAD_ID, dtype=torch.long)
    for row, i in enumerate(indices):
        s, t = examples[i]
        src[row, : len(s)] = torch.tensor(s)
        tgt[row, : len(t)] = torch.tensor(t)
    return src, tgt
