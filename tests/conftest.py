"""Fixtures shared by the engine and GUI tests: tiny random-weight models with tiny SentencePiece models.

Nothing here needs the training data or a shipped model, so the suite runs on a fresh clone.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from model_fixtures import build_tiny_model


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny post-norm model; treat it as read-only (copy it before breaking it)."""
    return build_tiny_model(tmp_path_factory.mktemp("models") / "tiny-fr-en")


@pytest.fixture(scope="session")
def tiny_prenorm_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("models") / "tiny-pre", seed=1, norm="pre")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked requires_cuda run only where CUDA is present (the CI machine has none)."""
    if not any(item.get_closest_marker("requires_cuda") for item in items):
        return
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if item.get_closest_marker("requires_cuda"):
            item.add_marker(skip)
