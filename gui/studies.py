"""Studies in the window: *File → Save study…* writes what is on screen (engine/study.py), *Open
study…* (or `python main.py FILE.study`) puts it back — model, text, beam size, forced tokens, the
chosen beam node, the selected kind/layer/head/step, tab, map mode and head-view mode. When the
study's model is not on this machine, the saved trace is shown read-only.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PySide6.QtCore import QSignalBlocker
from PySide6.QtWidgets import QFileDialog, QMessageBox

from engine.study import SUFFIX, Study, StudyError
from gui.settings import recent_studies, remember_study
from gui.worker import DecodeRequest, TraceResult

if TYPE_CHECKING:
    from gui.main_window import MainWindow

FILTER = f"Attention Studio study (*{SUFFIX})"


def fill_recent_menu(window: MainWindow, menu) -> None:
    """The studies opened or saved before, newest first (rebuilt each time the menu opens)."""
    menu.clear()
    for path in recent_studies(window.settings):
        menu.addAction(path.name, lambda p=path: open_study(window, p)).setToolTip(str(path))
    if menu.isEmpty():
        menu.addAction("(none yet)").setEnabled(False)


def install(window: MainWindow) -> None:
    """File menu entries are added by gui/menus.py; this wires what a reopened study needs."""
    window._pending_study_view = None
    window.traceDisplayed.connect(lambda trace: restore_view(window, trace))
    window.client.modelLoaded.connect(lambda _summary: window.source.setReadOnly(False))


def current_study(window: MainWindow) -> Study | None:
    """What the window shows now, as a Study (None before the first translation)."""
    result, model = window.result, window.client.model
    if result is None:
        return None
    state = window.view_state
    view: dict[str, Any] = {
        "kind": state.kind,
        "layer": state.layer,
        "head": state.head,
        "step": state.step,
        "tab": window.tabs.currentIndex(),
        "map_mode": state.map_mode,
        "head_mode": window.head_view.mode.currentText(),
    }
    return Study(
        model_directory=str(model.directory) if model is not None else "",
        model_name=result.trace.model_name,
        text=window.source.text(),
        trace=result.trace,
        beam_size=result.request.beam_size,
        forced_prefix=tuple(state.forced_prefix),
        beam_selection=state.beam_selection,
        new_tokens=result.request.max_new_tokens,
        view=view,
        embedding_norms=result.embedding_norms,
    )


def save_study_dialog(window: MainWindow) -> None:
    study = current_study(window)
    if study is None:
        window.statusBar().showMessage("Nothing to save yet: type a sentence first", 5000)
        return
    path, _ = QFileDialog.getSaveFileName(window, "Save study", str(Path.home() / f"study{SUFFIX}"), FILTER)
    if path:
        save_study(window, study, Path(path) if Path(path).suffix else Path(path + SUFFIX))


def save_study(window: MainWindow, study: Study, path: Path) -> bool:
    try:
        study.save(path)
    except OSError as error:
        QMessageBox.warning(window, "Save study", f"Could not write {path}: {error.strerror or error}")
        return False
    window.statusBar().showMessage(f"Saved study {path.name}", 5000)
    remember_study(window.settings, path)
    return True


def open_study_dialog(window: MainWindow) -> None:
    path, _ = QFileDialog.getOpenFileName(window, "Open study", str(Path.home()), FILTER)
    if path:
        open_study(window, Path(path))


def open_study(window: MainWindow, path: Path) -> Study | None:
    """Read `path` and put it on screen; a bad file gets one line in a message box, nothing changes."""
    try:
        study = Study.load(path)
    except StudyError as error:
        QMessageBox.warning(window, "Open study", str(error))
        return None
    apply_study(window, study, path.name)
    remember_study(window.settings, path)
    return study


def study_model_exists(study: Study) -> bool:
    return (Path(study.model_directory) / "config.json").is_file()


def apply_study(window: MainWindow, study: Study, name: str, load: bool = True) -> None:
    """The study's decoding choices and text in the controls, its model loaded (the worker then
    recomputes the same trace; `load` False: the caller loads it), and its view selection once
    that trace is shown."""
    bar = window.selection_bar
    with QSignalBlocker(bar.beam_size), QSignalBlocker(bar.new_tokens):
        bar.beam_size.setValue(study.beam_size)
        if study.new_tokens is not None:
            bar.new_tokens.setValue(study.new_tokens)
    window.source.setText(study.text)  # not blocked: the box updates its own buttons; forcing is cleared

    window._pending_study_view = study.view  # applied by restore_view on the next trace shown
    model_dir = Path(study.model_directory)
    if not study_model_exists(study):
        show_read_only(window, study, name)
        return
    if study.beam_selection is not None:
        window.view_state.choose_beam_node(study.beam_selection)
    elif study.forced_prefix:
        window.view_state.force_prefix(study.forced_prefix)
    current = window.client.model.directory if window.client.model is not None else None
    if current is not None and Path(current).resolve() == model_dir.resolve():
        window.request_translation()
    elif load:
        window.load_model(model_dir)  # translates the box's text once loaded
    window.statusBar().showMessage(f"Opened study {name}", 5000)


def show_read_only(window: MainWindow, study: Study, name: str) -> None:
    """No model to recompute with: show the saved trace as it was; typing is off until a model loads."""
    trace = study.trace
    norms = study.embedding_norms if study.embedding_norms is not None else np.zeros(len(trace.input_pieces))
    positional = np.linalg.norm(trace.positional.astype(np.float64), axis=1)
    request = DecodeRequest(study.beam_size, study.forced_prefix, trace.qkv is not None, study.new_tokens or 20)
    window.show_result(TraceResult(trace, request, None, norms, positional))
    window.source.setReadOnly(True)
    window.statusBar().showMessage(
        f"Study {name}: its model {study.model_name} ({study.model_directory}) is not on this machine — "
        "the saved trace is shown read-only; open a model to type again"
    )
    restore_view(window, trace)


def restore_view(window: MainWindow, _trace: object = None) -> None:
    """Apply a just-opened study's selection (once), after its trace is on screen."""
    view = getattr(window, "_pending_study_view", None)
    if view is None:
        return
    window._pending_study_view = None
    state = window.view_state
    kind = view.get("kind")
    if kind in state.kinds:
        state.select(kind, int(view.get("layer", 0)), view.get("head", 0))
    if isinstance(view.get("map_mode"), str):
        try:
            state.set_map_mode(view["map_mode"])
        except ValueError:
            pass
    step = view.get("step")
    state.set_step(int(step) if isinstance(step, int) else None)
    if isinstance(view.get("tab"), int) and 0 <= view["tab"] < window.tabs.count():
        window.tabs.setCurrentIndex(view["tab"])
    if isinstance(view.get("head_mode"), str):
        window.head_view.mode.setCurrentText(view["head_mode"])
