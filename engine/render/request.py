"""What a figure export asks for, shared by the command line and the GUI (no matplotlib at import)."""

from __future__ import annotations

from dataclasses import dataclass

from engine.render.labels import AVERAGE, Head

ANALYSIS_FIGURES = ("importance", "rollout", "value-norms")  # drawn from a head analysis (engine/analysis.py)
FIGURES = ("head", "grid", "positional", "step", *ANALYSIS_FIGURES)


@dataclass(frozen=True)
class PositionalParams:
    """A sinusoidal table to draw without a trace (the positional view's "explore" mode)."""

    d_model: int = 64
    n_positions: int = 50
    base: float = 10000.0


@dataclass(frozen=True)
class FigureRequest:
    """What to draw, 0-based: `layer` None is the last layer of the kind drawn; `step` for 'step' only."""

    what: str  # one of FIGURES
    kind: str = "cross"
    layer: int | None = None
    head: Head = AVERAGE
    step: int = 0
