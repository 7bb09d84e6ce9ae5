"""Broken Marian folders give one line naming the damage, before anything model-sized is allocated,
and a pickled pytorch_model.bin is never unpickled."""

from __future__ import annotations

import shutil

import pytest
from broken_marian_builders import BREAKERS
from broken_model_builders import payload_marker
from hf_fixtures import build_marian

from engine.checkpoint import ModelLoadError
from engine.families import load_model


@pytest.fixture(scope="module")
def good_folder(tmp_path_factory):
    return build_marian(tmp_path_factory.mktemp("good") / "opus-mt-fr-en", seed=5).directory


def test_the_good_folder_loads(good_folder):
    assert load_model(good_folder, "cpu").family == "marian"


@pytest.mark.parametrize("damage", sorted(BREAKERS))
def test_a_broken_folder_is_refused_in_one_line(good_folder, tmp_path, damage):
    folder = tmp_path / "case" / "opus-mt-fr-en"
    shutil.copytree(good_folder, folder)
    fragment = BREAKERS[damage](folder)
    with pytest.raises(ModelLoadError) as caught:
        load_model(folder, "cpu", isolate_tokenizer=damage == "corrupt_spm")
    message = str(caught.value)
    assert fragment in message and "\n" not in message
    assert not payload_marker(folder).exists()
