"""Where a model can run: the choices every command line and menu offers (no torch: the GUI reads
them before torch loads; engine.checkpoint.resolve_device turns a choice into a torch device)."""

from __future__ import annotations

from typing import Literal

DeviceChoice = Literal["auto", "cpu", "cuda", "mps"]
DEVICE_CHOICES: tuple[DeviceChoice, ...] = ("auto", "cpu", "cuda", "mps")
DEVICE_HELP = "where the model runs (default: auto = CUDA, then MPS, then CPU)"
