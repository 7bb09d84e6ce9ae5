"""Sinusoidal positional encodings in closed form (numpy only, so the GUI can use it without torch).

PE(pos, 2i)   = sin(pos / base^(2i / d_model))
PE(pos, 2i+1) = cos(pos / base^(2i / d_model))
"""

from __future__ import annotations

import numpy as np


def sinusoidal_table(n_positions: int, d_model: int, base: float = 10000.0) -> np.ndarray:
    """The (n_positions, d_model) table of "Attention Is All You Need", section 3.5, as float64."""
    if n_positions < 0 or d_model < 1:
        raise ValueError(f"need n_positions >= 0 and d_model >= 1, got {n_positions}, {d_model}")
    if base <= 0:
        raise ValueError(f"the base must be positive, got {base}")
    positions = np.arange(n_positions, dtype=np.float64)[:, None]  # (P, 1)
    even_dims = np.arange(0, d_model, 2, dtype=np.float64)  # 2i for every pair
    angles = positions / np.power(base, even_dims / d_model)  # (P, ceil(d/2))
    table = np.zeros((n_positions, d_model), dtype=np.float64)
    table[:, 0::2] = np.sin(angles)
    table[:, 1::2] = np.cos(angles[:, : d_model // 2])  # an odd d_model has one sin column more
    return table
