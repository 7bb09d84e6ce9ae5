"""Sinusoidal positional encodings in closed form (numpy only, so the GUI can use it without torch).

PE(pos, 2i)   = sin(pos / base^(2i / d_model))
PE(pos, 2i+1) = cos(pos / base^(2i / d_model))

Marian (and Pegasus) lay the same values out in two halves instead: every sin column first, then
every cos column (``layout="halves"``, transformers' ``MarianSinusoidalPositionalEmbedding``).
"""

from __future__ import annotations

from typing import Literal

import numpy as np

PositionalLayout = Literal["interleaved", "halves"]  # sin/cos alternating (the paper), or sin half then cos half


def sinusoidal_table(
    n_positions: int, d_model: int, base: float = 10000.0, layout: PositionalLayout = "interleaved"
) -> np.ndarray:
    """The (n_positions, d_model) table of "Attention Is All You Need", section 3.5, as float64."""
    if n_positions < 0 or d_model < 1:
        raise ValueError(f"need n_positions >= 0 and d_model >= 1, got {n_positions}, {d_model}")
    if base <= 0:
        raise ValueError(f"the base must be positive, got {base}")
    positions = np.arange(n_positions, dtype=np.float64)[:, None]  # (P, 1)
    even_dims = np.arange(0, d_model, 2, dtype=np.float64)  # 2i for every pair
    angles = positions / np.power(base, even_dims / d_model)  # (P, ceil(d/2))
    table = np.zeros((n_positions, d_model), dtype=np.float64)
    if layout == "halves":
        half = angles.shape[1]  # ceil(d/2) sin columns, then floor(d/2) cos columns
        table[:, :half] = np.sin(angles)
        table[:, half:] = np.cos(angles[:, : d_model // 2])
        return table
    if layout != "interleaved":
        raise ValueError(f"layout must be 'interleaved' or 'halves', got {layout!r}")
    table[:, 0::2] = np.sin(angles)
    table[:, 1::2] = np.cos(angles[:, : d_model // 2])  # an odd d_model has one sin column more
    return table
