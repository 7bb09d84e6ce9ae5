"""Model folders of other families in the app: a Marian folder opens, translates and is remembered."""

from __future__ import annotations

import shutil

from hf_fixtures import build_marian

from engine.translator import Translator
from gui.menus import rebuild_model_menu
from gui.settings import recent_models

TIMEOUT_MS = 60_000  # the machine may be busy; waitUntil returns as soon as the condition holds


def wait_for_trace(qtbot, window, text: str) -> None:
    window.source.setText(text)
    qtbot.waitUntil(lambda: window.trace is not None and window.trace.source_text == text, timeout=TIMEOUT_MS)


def test_a_marian_folder_opens_translates_and_is_remembered(make_window, qtbot, tmp_path, settings):
    marian = tmp_path / "downloads" / "opus-mt-tiny"
    build_marian(marian)
    window = make_window()
    window.load_model(marian)
    qtbot.waitUntil(lambda: window.client.model.name == "opus-mt-tiny", timeout=TIMEOUT_MS)
    assert window.model_label.text() == "model: opus-mt-tiny"  # its name in the status bar

    wait_for_trace(qtbot, window, "le chat dort")
    expected = Translator.from_directory(marian, "cpu").trace("le chat dort")
    assert window.trace.translation == expected.translation
    assert list(window.trace.src_ids) == list(expected.src_ids)
    assert window.trace.n_layers == expected.n_layers

    assert recent_models(settings)[0] == marian.resolve()
    rebuild_model_menu(window)
    recent = [a for a in window.model_actions.actions() if a.data() == str(marian.resolve())]
    assert len(recent) == 1 and recent[0].isChecked() and "opus-mt-tiny" in recent[0].text()


def test_recent_models_forget_folders_that_are_gone(make_window, qtbot, tmp_path, settings, tiny_model_dir):
    copy = tmp_path / "elsewhere" / "copy"
    shutil.copytree(tiny_model_dir, copy)
    window = make_window(model_dir=copy)
    assert recent_models(settings) == [copy.resolve()]
    window.load_model(tiny_model_dir)
    qtbot.waitUntil(lambda: window.client.model.directory == str(tiny_model_dir.resolve()), timeout=TIMEOUT_MS)
    assert recent_models(settings) == [tiny_model_dir.resolve(), copy.resolve()]
    shutil.rmtree(copy)
    assert recent_models(settings) == [tiny_model_dir.resolve()]
