"""The keys and values a decoder keeps between decoding steps, one slot per attention per layer."""

from __future__ import annotations

import torch
from torch import Tensor


class KVSlot:
    """Keys and values of one attention in one decoder layer, kept between decoding steps.

    A self-attention slot grows by one position per step; a cross-attention slot is filled once
    from the encoder output and reused.
    """

    def __init__(self, grows: bool) -> None:
        self.grows = grows
        self.k: Tensor | None = None
        self.v: Tensor | None = None

    def update(self, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        if self.k is not None and self.v is not None:
            if not self.grows:
                return self.k, self.v
            k = torch.cat([self.k, k], dim=2)  # (B, H, t + 1, d_k)
            v = torch.cat([self.v, v], dim=2)
        self.k, self.v = k, v
        return k, v

    def reorder(self, index: Tensor) -> None:
        if self.k is not None and self.v is not None:
            self.k, self.v = self.k.index_select(0, index), self.v.index_select(0, index)


class DecoderCache:
    """The KV slots of every decoder layer, and how many target positions they hold."""

    def __init__(self, n_layers: int) -> None:
        self.self_attn = [KVSlot(grows=True) for _ in range(n_layers)]
        self.cross_attn = [KVSlot(grows=False) for _ in range(n_layers)]

    @property
    def length(self) -> int:
        k = self.self_attn[0].k
        return 0 if k is None else k.size(2)

    def truncate(self, length: int) -> None:
        """Forget every target position from `length` on (a draft was rejected there)."""
        for slot in self.self_attn:
            if slot.k is not None and slot.v is not None:
                slot.k, slot.v = slot.k[:, :, :length], slot.v[:, :, :length]  # (B, H, length, d_k)

    def reorder(self, index: Tensor) -> None:
        """Keep the batch rows in `index` (beam search picks which hypotheses survive)."""
        for slot in self.self_attn + self.cross_attn:
            slot.reorder(index)
