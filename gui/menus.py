"""The main window's menu bar: File (open, export), Model (shipped, $ATTENTION_STUDIO_MODELS and recent
models, the device) and View (kind, layer, head, lines, dark mode). Every action only calls the window
or its ViewState."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import QMenu

from engine.architecture import ATTENTION_KINDS
from engine.devices import DEVICE_CHOICES
from engine.paths import extra_models, shipped_models
from engine.render.labels import KIND_LABELS
from gui import studies
from gui.export import EXPORTS
from gui.settings import recent_models
from gui.theme import apply_theme

if TYPE_CHECKING:
    from gui.main_window import MainWindow


def build_menus(window: MainWindow) -> None:
    _file_menu(window)
    _model_menu(window)
    _view_menu(window)


def _file_menu(window: MainWindow) -> None:
    menu = window.menuBar().addMenu("&File")
    window.open_action = menu.addAction("&Open model…", QKeySequence.StandardKey.Open, window.open_model_dialog)
    menu.addAction("Open &study…", lambda: studies.open_study_dialog(window))
    recent = menu.addMenu("Recent studies")
    recent.aboutToShow.connect(lambda: studies.fill_recent_menu(window, recent))
    menu.addAction("&Save study…", QKeySequence.StandardKey.Save, lambda: studies.save_study_dialog(window))
    studies.install(window)
    menu.addSeparator()
    window.export_menu = menu.addMenu("&Export")
    window.export_actions = {}
    for what, text in EXPORTS.items():
        window.export_actions[what] = window.export_menu.addAction(f"{text}…", lambda w=what: window.export_dialog(w))
    window.export_actions["head"].setShortcut(QKeySequence("Ctrl+E"))
    window.export_menu.addSeparator()
    window.export_menu.addAction("PNG resolution…", window.ask_export_dpi)
    window.export_menu.aboutToShow.connect(window.update_export_actions)
    menu.addSeparator()
    menu.addAction("&Quit", QKeySequence.StandardKey.Quit, window.close)


def _model_menu(window: MainWindow) -> None:
    window.model_menu = window.menuBar().addMenu("&Model")
    window.model_actions = QActionGroup(window)
    window.device_menu = QMenu("&Device", window)
    window.device_actions = QActionGroup(window)
    for device in DEVICE_CHOICES:
        action = window.device_menu.addAction(device)
        action.setCheckable(True)
        action.setChecked(device == window.device)
        action.triggered.connect(lambda _=False, d=device: window.set_device(d))
        window.device_actions.addAction(action)
    rebuild_model_menu(window)
    # rebuilt on every opening: a model that training has just written appears without a restart
    window.model_menu.aboutToShow.connect(lambda: rebuild_model_menu(window))


def rebuild_model_menu(window: MainWindow) -> None:
    for action in window.model_actions.actions():
        window.model_actions.removeAction(action)
    window.model_menu.clear()  # deletes the model actions, which the menu owns
    current = window.client.model.directory if window.client.model else None
    shipped = shipped_models(window.models_root) + extra_models()
    for directory in shipped:
        _add_model_action(window, directory, directory.name, current)
    if not window.model_actions.actions():
        window.model_menu.addAction(f"(no model under {window.models_root})").setEnabled(False)
    known = {p.resolve() for p in shipped}
    recent = [p for p in recent_models(window.settings) if p.resolve() not in known]
    if recent:
        window.model_menu.addSection("Recent")
        for directory in recent:
            _add_model_action(window, directory, f"{directory.name}  ({directory.parent})", current)
    window.model_menu.addSeparator()
    window.model_menu.addAction("&Open model…", window.open_model_dialog)
    window.model_menu.addMenu(window.device_menu)


def _add_model_action(window: MainWindow, directory: Path, text: str, current: str | None) -> None:
    action = window.model_menu.addAction(text)
    action.setCheckable(True)
    action.setData(str(directory.resolve()))
    action.setChecked(action.data() == current)
    action.triggered.connect(lambda _=False, d=directory: window.load_model(d))
    window.model_actions.addAction(action)


def _view_menu(window: MainWindow) -> None:
    state = window.view_state
    menu = window.menuBar().addMenu("&View")
    window.kind_actions = {}  # hidden for the kinds a model lacks (gui/model_shape.py)
    for index, kind in enumerate(ATTENTION_KINDS):
        window.kind_actions[kind] = menu.addAction(
            KIND_LABELS[kind].button, QKeySequence(f"Ctrl+{index + 1}"), lambda k=kind: state.set_kind(k)
        )
    menu.addSeparator()
    _add_shortcut(menu, "Next layer", ["Ctrl+Down", "PgDown"], lambda: state.step_layer(1))
    _add_shortcut(menu, "Previous layer", ["Ctrl+Up", "PgUp"], lambda: state.step_layer(-1))
    # Ctrl+←/→ move by words while the sentence box has focus, so Alt+←/→ also step heads
    _add_shortcut(menu, "Next head", ["Ctrl+Right", "Alt+Right"], lambda: state.step_head(1))
    _add_shortcut(menu, "Previous head", ["Ctrl+Left", "Alt+Left"], lambda: state.step_head(-1))
    menu.addSeparator()
    window.lines_action = menu.addAction("Head as &lines")
    window.lines_action.setShortcut(QKeySequence("Ctrl+L"))
    window.lines_action.setCheckable(True)
    window.lines_action.toggled.connect(lambda on: window.head_view.set_mode("Lines" if on else "Heatmap"))
    window.dark_action = menu.addAction("&Dark mode")
    window.dark_action.setCheckable(True)
    window.dark_action.toggled.connect(apply_theme)


def _add_shortcut(menu: QMenu, text: str, keys: list[str], slot) -> QAction:
    action = menu.addAction(text)
    action.setShortcuts([QKeySequence(k) for k in keys])
    action.triggered.connect(slot)
    return action
