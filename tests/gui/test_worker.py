"""The worker thread on its own: newest request wins, stale work is skipped, failures are reported."""

from __future__ import annotations

import gc
import threading

import pytest

from engine.devices import THREADS_VARIABLE, worker_threads
from engine.translator import Translator
from gui.worker import TranslationClient

TIMEOUT_MS = 60_000  # generous: the machine may be busy; waitUntil returns as soon as it can


@pytest.fixture
def client(qtbot, tiny_model_dir):
    client = TranslationClient()
    client.load_model(tiny_model_dir, "cpu")
    qtbot.waitUntil(lambda: client.model is not None, timeout=TIMEOUT_MS)
    yield client
    client.shutdown()


def test_the_worker_skips_replaced_requests_and_only_the_newest_is_shown(client, qtbot, monkeypatch):
    release = threading.Event()
    calls: list[str] = []
    original = Translator.run

    def gated_trace(self, text, *args, **kwargs):
        calls.append(text)
        release.wait(10)  # hold the first request so that the next two queue up behind it
        return original(self, text, *args, **kwargs)

    monkeypatch.setattr(Translator, "run", gated_trace)
    shown = []
    client.resultShown.connect(lambda result: shown.append(result.trace))
    client.translate("je suis étudiant")
    qtbot.waitUntil(lambda: calls == ["je suis étudiant"], timeout=TIMEOUT_MS)
    client.translate("le chien dort")
    client.translate("elle lit un livre")
    release.set()
    qtbot.waitUntil(lambda: len(shown) == 1, timeout=TIMEOUT_MS)
    qtbot.waitUntil(lambda: not client.translating, timeout=TIMEOUT_MS)
    assert calls == ["je suis étudiant", "elle lit un livre"]  # the middle request never ran
    assert [trace.source_text for trace in shown] == ["elle lit un livre"]


def test_the_loads_collection_waits_until_the_translation_it_unblocked_is_shown(qtbot, tiny_model_dir, monkeypatch):
    """The collection and freeze after a load (85 ms at the app's start) must not delay the text's
    first translation: with one asked for at the load, they run after it is shown; else at once."""
    events: list[str] = []
    monkeypatch.setattr(gc, "collect", lambda *args: events.append("collect") or 0)
    monkeypatch.setattr(gc, "freeze", lambda: events.append("freeze"))
    client = TranslationClient()
    client.resultShown.connect(lambda result: events.append("shown"))
    client.modelLoaded.connect(lambda summary: events.append("loaded"))
    client.modelLoaded.connect(lambda summary: client.translate("le chien dort"))
    try:
        client.load_model(tiny_model_dir, "cpu")
        qtbot.waitUntil(lambda: "freeze" in events, timeout=TIMEOUT_MS)
        assert events == ["loaded", "shown", "collect", "freeze"]
    finally:
        client.shutdown()

    events.clear()
    idle = TranslationClient()
    idle.modelLoaded.connect(lambda summary: events.append("loaded"))
    try:
        idle.load_model(tiny_model_dir, "cpu")
        qtbot.waitUntil(lambda: "freeze" in events, timeout=TIMEOUT_MS)
        assert events == ["loaded", "collect", "freeze"]  # nobody waits: at once
    finally:
        idle.shutdown()


def test_blank_text_is_answered_without_the_worker(client, qtbot):
    empties = []
    client.emptyShown.connect(lambda: empties.append(True))
    client.translate("   ")
    assert empties == [True]
    assert not client.translating


def test_a_failed_load_keeps_the_previous_model(client, qtbot, tmp_path):
    failures = []
    client.modelFailed.connect(lambda directory, message: failures.append(message))
    before = client.model
    client.load_model(tmp_path / "nowhere", "cpu")
    qtbot.waitUntil(lambda: bool(failures), timeout=TIMEOUT_MS)
    assert "not a directory" in failures[0]
    assert client.model == before
    shown = []
    client.resultShown.connect(lambda result: shown.append(result.trace))
    client.translate("le chien dort")
    qtbot.waitUntil(lambda: bool(shown), timeout=TIMEOUT_MS)
    assert shown[0].model_name == before.name


def test_shutdown_stops_the_thread_and_is_idempotent(client):
    client.shutdown()
    assert not client.thread.isRunning()
    client.shutdown()
    client.translate("le chien dort")  # ignored after shutdown, no crash


@pytest.mark.parametrize("text", ["\ufeffje suis étudiant", "\ufeff\ufeff\ufeff", "\ufeff" * 2000])
def test_the_worker_translates_exactly_the_text_it_was_given(client, qtbot, text):
    """Sent as a str through a queued signal, a leading U+FEFF was dropped on the way (PySide's str →
    QString conversion), so the trace named a text other than the one in the box (found by fuzzing)."""
    shown = []
    client.resultShown.connect(lambda result: shown.append(result.trace))
    client.translate(text)
    qtbot.waitUntil(lambda: bool(shown), timeout=TIMEOUT_MS)
    assert shown[0].source_text == text


def test_the_worker_leaves_a_core_to_the_gui_thread_unless_told_otherwise(monkeypatch):
    monkeypatch.delenv(THREADS_VARIABLE, raising=False)
    monkeypatch.setattr("os.cpu_count", lambda: 8)
    assert worker_threads() == 7
    monkeypatch.setattr("os.cpu_count", lambda: 1)
    assert worker_threads() == 1
    monkeypatch.setenv(THREADS_VARIABLE, "3")
    assert worker_threads() == 3
    for unusable in ("0", "-2", "many", ""):
        monkeypatch.setenv(THREADS_VARIABLE, unusable)
        assert worker_threads() == 1  # ignored: back to the default


def test_the_worker_computes_with_its_share_of_the_threads(client, qtbot, monkeypatch):
    import torch

    seen = []
    original = Translator.run

    def recording_trace(self, *args, **kwargs):
        seen.append(torch.get_num_threads())  # in the worker thread, where the setting applies
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Translator, "run", recording_trace)
    client.translate("je suis étudiant")
    qtbot.waitUntil(lambda: bool(seen), timeout=TIMEOUT_MS)
    assert seen == [worker_threads()]


def test_the_worker_decodes_with_the_models_own_defaults(tiny_model_dir):
    """A Marian folder's length penalty and limits reach the app's traces; the beam size is the user's."""
    from dataclasses import replace

    from gui.worker import DecodeRequest, LatestRequest, TranslationWorker

    translator = Translator.from_directory(tiny_model_dir, "cpu")
    translator.loaded = replace(
        translator.loaded, decoding=replace(translator.default_decoding, length_penalty=1.7, max_len_b=3)
    )
    seen = []
    original = translator.run
    translator.run = lambda text, options, draft=None: seen.append(options.decoding) or original(text, options, draft)
    worker = TranslationWorker(LatestRequest(), LatestRequest())
    worker._translator = translator
    worker._trace("Le chien dort.", DecodeRequest(beam_size=2))
    assert (seen[0].length_penalty, seen[0].max_len_b, seen[0].beam_size) == (1.7, 3, 2)
