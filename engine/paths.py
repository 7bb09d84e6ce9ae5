"""Where models are found: the shipped ones, and the one used when none is named."""

from __future__ import annotations

from pathlib import Path

MODELS_ROOT = Path(__file__).resolve().parent.parent / "resources" / "models"
DEFAULT_MODEL_NAME = "fr-en"
DEFAULT_MODEL = MODELS_ROOT / DEFAULT_MODEL_NAME
CONFIG_FILE = "config.json"


def shipped_models(root: Path = MODELS_ROOT) -> list[Path]:
    """Every directory under `root` that has a config.json, by name."""
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if (p / CONFIG_FILE).is_file())
