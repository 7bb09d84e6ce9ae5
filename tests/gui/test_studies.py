"""Studies: what the window shows, saved and reopened exactly; a missing model shows the saved
trace read-only; a bad file changes nothing."""

from __future__ import annotations

import shutil

import pytest
from PySide6.QtWidgets import QMessageBox

from engine.study import Study
from gui import studies

TIMEOUT_MS = 60_000


def translate(qtbot, window, text: str) -> None:
    window.source.setText(text)
    qtbot.waitUntil(
        lambda: window.trace is not None and window.trace.source_text == text and window.idle, timeout=TIMEOUT_MS
    )


def steer(qtbot, window) -> None:
    """Beam 3, a chosen beam node, head 2 of decoder layer 2, step 1, the Beam search tab, lines."""
    window.selection_bar.beam_size.setValue(3)
    qtbot.waitUntil(lambda: window.idle and window.result.beam is not None, timeout=TIMEOUT_MS)
    hypotheses = window.result.beam.hypotheses
    path = hypotheses[min(1, len(hypotheses) - 1)][0][:2]  # the start of the runner-up
    window.view_state.choose_beam_node(path)
    qtbot.waitUntil(lambda: window.idle, timeout=TIMEOUT_MS)
    window.view_state.select("dec_self", 1, 1)
    window.view_state.set_step(1)
    window.tabs.setCurrentIndex(1)
    window.head_view.mode.setCurrentText("Lines")


def test_a_saved_study_reopens_the_same_view(qtbot, make_window, tmp_path):
    window = make_window()
    translate(qtbot, window, "Le chien dort.")
    steer(qtbot, window)
    saved = studies.current_study(window)
    path = tmp_path / "dog.study"
    assert studies.save_study(window, saved, path)

    other = make_window()
    translate(qtbot, other, "Je suis étudiant.")
    assert studies.open_study(other, path) is not None
    qtbot.waitUntil(
        lambda: other.idle and other.trace is not None and other.trace.source_text == "Le chien dort.",
        timeout=TIMEOUT_MS,
    )
    qtbot.waitUntil(lambda: other._pending_study_view is None, timeout=TIMEOUT_MS)
    state, before = other.view_state, window.view_state
    assert other.trace.equals(window.trace)  # the same decoding: beam, chosen node, forced tokens
    assert (state.kind, state.layer, state.head, state.step) == ("dec_self", 1, 1, 1)
    assert state.beam_selection == before.beam_selection and state.forced_prefix == before.forced_prefix
    assert other.selection_bar.beam_size.value() == 3 and other.tabs.currentIndex() == 1
    assert other.head_view.mode.currentText() == "Lines"
    assert studies.recent_studies(other.settings)[0] == path.resolve()  # saved, then opened: listed once
    assert studies.recent_studies(other.settings).count(path.resolve()) == 1


def test_a_study_whose_model_is_gone_is_shown_read_only(qtbot, make_window, tmp_path, tiny_model_dir):
    copy = tmp_path / "model-copy"
    shutil.copytree(tiny_model_dir, copy)
    window = make_window(model_dir=copy)
    translate(qtbot, window, "Le chien dort.")
    path = tmp_path / "gone.study"
    studies.save_study(window, studies.current_study(window), path)
    shutil.rmtree(copy)

    other = make_window()
    studies.open_study(other, path)
    assert other.trace.equals(Study.load(path).trace)
    assert other.source.isReadOnly() and other.source.text() == "Le chien dort."
    assert "not on this machine" in other.statusBar().currentMessage()


@pytest.mark.parametrize("content", [b"garbage", b""])
def test_a_bad_study_changes_nothing(qtbot, window, tmp_path, monkeypatch, content):
    translate(qtbot, window, "Le chien dort.")
    shown = window.trace
    said = []
    monkeypatch.setattr(QMessageBox, "warning", lambda *args: said.append(args[2]))
    path = tmp_path / "bad.study"
    path.write_bytes(content)
    assert studies.open_study(window, path) is None
    assert len(said) == 1 and "\n" not in said[0] and "bad.study" in said[0]
    assert window.trace is shown and window.source.text() == "Le chien dort."
