"""The keys and values a decoder keeps between decoding steps, one slot per attention per layer."""

from __future__ import annotations

from torch import Tensor

MIN_CAPACITY = 32  # target positions a self-attention slot has room for at first


class KVSlot:
    """Keys and values of one attention in one decoder layer, kept between decoding steps.

    A self-attention slot grows by the positions of each step. It writes them into a buffer with
    room to spare (doubled when full), so a step copies only its own keys and values instead of the
    whole history; `k` and `v` are views of the positions held. A cross-attention slot is filled
    once from the encoder output and reused.
    """

    def __init__(self, grows: bool) -> None:
        self.grows = grows
        self.length = 0  # positions held
        self._keys: Tensor | None = None  # (B, H, capacity, d_k); the first `length` positions are held
        self._values: Tensor | None = None

    @property
    def k(self) -> Tensor | None:
        return None if self._keys is None else self._keys[:, :, : self.length]  # (B, H, length, d_k)

    @property
    def v(self) -> Tensor | None:
        return None if self._values is None else self._values[:, :, : self.length]

    def update(self, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Add the keys and values (B, H, n, d_k) of new positions; return all held (views)."""
        if not self.grows:
            if self._keys is None or self._values is None:  # the encoder output's, at the first step
                self._keys, self._values, self.length = k, v, k.size(2)
            return self._keys, self._values
        end = self.length + k.size(2)
        keys, values = self._keys, self._values
        if keys is None or values is None or end > keys.size(2) or k.size(0) != keys.size(0):
            keys, values = self._reserve(k, v, end)
        keys[:, :, self.length : end] = k
        values[:, :, self.length : end] = v
        self.length = end
        return keys[:, :, :end], values[:, :, :end]

    def _reserve(self, k: Tensor, v: Tensor, needed: int) -> tuple[Tensor, Tensor]:
        """New buffers with room for at least `needed` positions, holding what is held now."""
        B, H, _, d_k = k.shape
        capacity = max(MIN_CAPACITY, needed, 2 * (0 if self._keys is None else self._keys.size(2)))
        keys, values = k.new_empty(B, H, capacity, d_k), v.new_empty(B, H, capacity, v.size(-1))
        if self._keys is not None and self._values is not None and self.length:
            keys[:, :, : self.length] = self._keys[:, :, : self.length]
            values[:, :, : self.length] = self._values[:, :, : self.length]
        self._keys, self._values = keys, values
        return keys, values

    def truncate(self, length: int) -> None:
        self.length = min(self.length, length)

    def reorder(self, index: Tensor) -> None:
        if self._keys is not None and self._values is not None:
            self._keys, self._values = self._keys.index_select(0, index), self._values.index_select(0, index)


class DecoderCache:
    """The KV slots of every decoder layer, and how many target positions they hold."""

    def __init__(self, n_layers: int) -> None:
        self.self_attn = [KVSlot(grows=True) for _ in range(n_layers)]
        self.cross_attn = [KVSlot(grows=False) for _ in range(n_layers)]

    @property
    def length(self) -> int:
        return self.self_attn[0].length if self.self_attn else 0

    def truncate(self, length: int) -> None:
        """Forget every target position from `length` on (a draft was rejected there)."""
        for slot in self.self_attn:
            slot.truncate(length)

    def reorder(self, index: Tensor) -> None:
        """Keep the batch rows in `index` (beam search picks which hypotheses survive)."""
        for slot in self.self_attn + self.cross_attn:
            slot.reorder(index)
