"""Where a model runs: the choices offered everywhere, and how `auto` picks one.

torch is imported only by `resolve_device`, so the choices are free to import (the GUI reads them
before torch loads).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import torch

DeviceChoice = Literal["auto", "cpu", "cuda", "mps"]
DEVICE_CHOICES: tuple[DeviceChoice, ...] = ("auto", "cpu", "cuda", "mps")
DEVICE_HELP = "where the model runs (default: auto = CUDA, then MPS, then CPU)"


def resolve_device(choice: str = "auto") -> torch.device:
    """`auto` picks CUDA, then MPS, then CPU; an explicit choice that is not available is an error."""
    import torch

    if choice == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if choice == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but CUDA is not available")
    if choice == "mps" and not torch.backends.mps.is_available():
        raise ValueError("device 'mps' was asked for but MPS is not available")
    if choice not in DEVICE_CHOICES:
        raise ValueError(f"unknown device {choice!r}; choose {', '.join(DEVICE_CHOICES)}")
    return torch.device(choice)
