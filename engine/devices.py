"""Where a model can run: the choices every command line and menu offers (no torch: the GUI reads
them before torch loads; engine.checkpoint.resolve_device turns a choice into a torch device)."""

from __future__ import annotations

import os
from typing import Literal

DeviceChoice = Literal["auto", "cpu", "cuda", "mps"]
DEVICE_CHOICES: tuple[DeviceChoice, ...] = ("auto", "cpu", "cuda", "mps")
DEVICE_HELP = "where the model runs (default: auto = CUDA, then MPS, then CPU)"

THREADS_VARIABLE = "ATTENTION_STUDIO_THREADS"  # torch threads for the app's worker, to override the default


def worker_threads() -> int:
    """Torch threads for the app's worker: every core but one, which stays free for the GUI thread so
    that the event loop is never starved while a trace is computed. $ATTENTION_STUDIO_THREADS overrides.
    The benchmarks measure the engine with this many threads too: what the app runs."""
    chosen = os.environ.get(THREADS_VARIABLE, "")
    if chosen.isdigit() and int(chosen) > 0:
        return int(chosen)
    return max(1, (os.cpu_count() or 1) - 1)
