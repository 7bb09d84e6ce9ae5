"""Where models are found: the shipped ones (package data, so a wheel finds them too), the folders
named in $ATTENTION_STUDIO_MODELS, and the one used when none is named."""

from __future__ import annotations

import importlib.resources
import os
from pathlib import Path

MODELS_PACKAGE = "attention_studio_models"  # resources/models/ in the source tree (see pyproject.toml)
SOURCE_MODELS = Path(__file__).resolve().parent.parent / "resources" / "models"
MODELS_VARIABLE = "ATTENTION_STUDIO_MODELS"  # more model folders, separated like PATH
DEFAULT_MODEL_NAME = "fr-en"
CONFIG_FILE = "config.json"


def shipped_models_root() -> Path:
    """The folder of the models that ship with the app, in a checkout or an installed wheel."""
    try:
        return Path(str(importlib.resources.files(MODELS_PACKAGE)))
    except ModuleNotFoundError:  # a checkout that was never pip-installed
        return SOURCE_MODELS


MODELS_ROOT = shipped_models_root()
DEFAULT_MODEL = MODELS_ROOT / DEFAULT_MODEL_NAME


def models_in(folder: Path) -> list[Path]:
    """Every directory under `folder` that has a config.json, by name."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if (p / CONFIG_FILE).is_file())


def shipped_models(root: Path = MODELS_ROOT) -> list[Path]:
    return models_in(root)


def extra_models(value: str | None = None) -> list[Path]:
    """Model folders named in $ATTENTION_STUDIO_MODELS: each entry is a model folder or a folder of them."""
    value = os.environ.get(MODELS_VARIABLE, "") if value is None else value
    found: list[Path] = []
    for entry in filter(None, value.split(os.pathsep)):
        folder = Path(entry).expanduser()
        candidates = [folder] if (folder / CONFIG_FILE).is_file() else models_in(folder)
        found.extend(p for p in candidates if p not in found)
    return found
