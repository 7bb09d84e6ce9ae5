"""What a wheel holds and where an installed app finds its models."""

import os
from pathlib import Path

import tomllib

from engine import paths

ROOT = Path(__file__).resolve().parents[2]


def test_every_package_of_the_tree_is_in_the_wheel():
    """pyproject.toml lists the packages by hand (the models are a mapped package): none may be missing."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    on_disk = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for top in ("engine", "gui")
        for init in (ROOT / top).rglob("__init__.py")
    }
    assert on_disk <= set(config["packages"]), sorted(on_disk - set(config["packages"]))
    assert config["package-dir"][paths.MODELS_PACKAGE] == "resources/models"
    assert (ROOT / "resources" / "models" / "__init__.py").is_file()  # a regular package: importlib.resources needs it


def test_the_shipped_models_are_found_through_the_package():
    names = [p.name for p in paths.shipped_models()]
    assert names == ["en-fr", "fr-en"]
    assert paths.DEFAULT_MODEL in paths.shipped_models()


def test_extra_model_folders_come_from_the_environment_variable(tmp_path, monkeypatch):
    one = tmp_path / "one"  # a model folder itself
    many = tmp_path / "many"  # a folder of model folders
    for folder in (one, many / "b", many / "a", many / "not-a-model"):
        folder.mkdir(parents=True)
    for folder in (one, many / "a", many / "b"):
        (folder / "config.json").write_text("{}")
    monkeypatch.setenv(paths.MODELS_VARIABLE, os.pathsep.join([str(one), str(many), "", str(tmp_path / "missing")]))
    assert paths.extra_models() == [one, many / "a", many / "b"]
    assert paths.extra_models("") == []
