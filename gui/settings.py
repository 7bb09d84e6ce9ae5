"""What the window remembers between runs (QSettings keys: window/*, view/dark, source/text,
model/directory, model/recent, export/directory), and the model to open at start."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QByteArray, QSettings

from engine.paths import CONFIG_FILE, DEFAULT_MODEL_NAME

RECENT_MODELS = 8  # model folders the Model menu remembers

if TYPE_CHECKING:
    from gui.main_window import MainWindow


def restore_window(window: MainWindow) -> None:
    settings = window.settings
    for key, restore in (
        ("window/geometry", window.restoreGeometry),
        ("window/state", window.restoreState),
        ("window/splitter", window.splitter.restoreState),
        ("window/vertical", window.vertical.restoreState),
    ):
        value = settings.value(key)
        if isinstance(value, QByteArray):
            restore(value)
    window.tabs.setCurrentIndex(settings.value("window/tab", 0, type=int))
    window.dark_action.setChecked(settings.value("view/dark", False, type=bool))
    # blocked: the model is not loaded yet; the text is translated once it is
    window.source.blockSignals(True)
    window.source.setText(str(settings.value("source/text", "")))
    window.source.blockSignals(False)


def save_window(window: MainWindow) -> None:
    settings = window.settings
    settings.setValue("window/geometry", window.saveGeometry())
    settings.setValue("window/state", window.saveState())
    settings.setValue("window/splitter", window.splitter.saveState())
    settings.setValue("window/vertical", window.vertical.saveState())
    settings.setValue("window/tab", window.tabs.currentIndex())
    settings.setValue("source/text", window.source.text())
    settings.setValue("view/dark", window.dark_action.isChecked())
    if window.client.model is not None:
        settings.setValue("model/directory", window.client.model.directory)
    settings.sync()


def initial_model(settings: QSettings, model_dir: str | Path | None, models_root: Path) -> Path:
    """The command line's model, else the last one used, else the shipped default."""
    if model_dir:
        return Path(model_dir)
    last = settings.value("model/directory")
    if last and (Path(str(last)) / "config.json").is_file():
        return Path(str(last))
    return models_root / DEFAULT_MODEL_NAME


def recent_paths(settings: QSettings, key: str, exists) -> list[Path]:
    """Paths remembered under `key`, newest first; those for which `exists` fails are left out."""
    value = settings.value(key, [])
    entries = [value] if isinstance(value, str) else list(value or [])  # QSettings gives a str for one entry
    return [Path(str(e)) for e in entries if exists(Path(str(e)))]


def remember_path(settings: QSettings, key: str, path: str | Path, exists) -> None:
    """Put `path` first among the paths remembered under `key`."""
    resolved = Path(path).resolve()
    recent = [resolved, *(p for p in recent_paths(settings, key, exists) if p.resolve() != resolved)]
    settings.setValue(key, [str(p) for p in recent[:RECENT_MODELS]])


def recent_models(settings: QSettings) -> list[Path]:
    """Model folders opened before, newest first; folders that are gone are left out."""
    return recent_paths(settings, "model/recent", lambda p: (p / CONFIG_FILE).is_file())


def remember_model(settings: QSettings, directory: str | Path) -> None:
    remember_path(settings, "model/recent", directory, lambda p: (p / CONFIG_FILE).is_file())


def recent_studies(settings: QSettings) -> list[Path]:
    return recent_paths(settings, "study/recent", Path.is_file)


def remember_study(settings: QSettings, path: str | Path) -> None:
    remember_path(settings, "study/recent", path, Path.is_file)
