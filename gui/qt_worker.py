"""The translation worker: one QObject living in one QThread, and the GUI-side client that owns it.

The engine (and torch) is imported inside the worker thread the first time a model loads, so the
window paints before torch is on the path. Requests carry increasing ids; the worker skips any
request that a newer one has replaced, and the client drops any result that is not the newest.
Only signals cross the thread boundary, carrying plain values and numpy Traces.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QObject, QThread, Signal, Slot

from engine.trace import Trace

log = logging.getLogger(__name__)


class LatestRequest:
    """The id of the newest translation request, shared by the GUI thread (writer) and the worker."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._value = 0

    def next(self) -> int:
        with self._lock:
            self._value += 1
            return self._value

    @property
    def value(self) -> int:
        with self._lock:
            return self._value


@dataclass(frozen=True)
class ModelSummary:
    """What the window shows about a loaded model (plain values: safe to send across threads)."""

    name: str
    directory: str
    device: str  # where it runs: "cpu", "cuda:0" …
    device_choice: str  # what was asked for: "auto", "cpu", "cuda" or "mps"
    source_language: str
    target_language: str
    n_layers: dict[str, int]
    n_heads: int
    max_positions: int


class TranslationWorker(QObject):
    """Lives in the worker thread; every slot runs there, one at a time, in request order."""

    modelLoaded = Signal(object)  # ModelSummary
    modelFailed = Signal(str, str)  # directory, one-line reason
    traceReady = Signal(int, object)  # request id, Trace
    traceEmpty = Signal(int)  # request id: blank text
    traceFailed = Signal(int, str)  # request id, one-line reason

    def __init__(self, latest: LatestRequest) -> None:
        super().__init__()
        self._latest = latest
        self._translator = None  # engine.translator.Translator, created in this thread
        self._draft: list[int] | None = None  # the last output, to speed up the next decode

    @Slot(str, str)
    def load_model(self, directory: str, device: str) -> None:
        try:
            # Imported here, in the worker thread, so that torch stays off the path to the first paint.
            from engine.translator import Translator

            translator = Translator.from_directory(directory, device)
        except Exception as error:  # ModelLoadError, an unavailable device, an out-of-memory …
            log.warning("could not load %s: %s", directory, error)
            self.modelFailed.emit(directory, _one_line(error))
            return
        # A failed load above leaves the previous translator in place: the app keeps working.
        self._translator = translator
        self._draft = None
        cfg = translator.cfg
        self.modelLoaded.emit(
            ModelSummary(
                name=translator.name,
                directory=str(Path(directory).resolve()),
                device=str(translator.device),
                device_choice=device,
                source_language=translator.loaded.info.source_language,
                target_language=translator.loaded.info.target_language,
                n_layers={
                    "enc_self": cfg.n_encoder_layers,
                    "dec_self": cfg.n_decoder_layers,
                    "cross": cfg.n_decoder_layers,
                },
                n_heads=cfg.n_heads,
                max_positions=cfg.max_positions,
            )
        )

    @Slot(int, str)
    def translate(self, request_id: int, text: str) -> None:
        if request_id != self._latest.value:
            return  # the user has typed on: a newer request replaces this one
        if self._translator is None:
            self.traceFailed.emit(request_id, "no model is loaded; choose one in the Model menu")
            return
        from engine.translator import EmptyInputError

        try:
            trace = self._translator.trace(text, draft=self._draft)
        except EmptyInputError:
            self.traceEmpty.emit(request_id)
            return
        except Exception as error:  # a bug or a resource error must not kill the thread
            log.exception("translation failed")
            self._draft = None
            self.traceFailed.emit(request_id, _one_line(error))
            return
        self._draft = trace.out_ids.tolist()
        self.traceReady.emit(request_id, trace)


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


class TranslationClient(QObject):
    """GUI-thread side: starts the thread, numbers the requests, drops stale results, shuts down.

    Its signals are emitted in the GUI thread, so widgets may connect to them directly.
    """

    # GUI → worker (queued, because the worker lives in the other thread)
    _loadRequested = Signal(str, str)
    _translateRequested = Signal(int, str)

    # to the window
    traceShown = Signal(object)  # Trace: the newest request's result
    emptyShown = Signal()
    translationFailed = Signal(str)
    modelLoaded = Signal(object)  # ModelSummary
    modelFailed = Signal(str, str)
    loadingChanged = Signal(bool)  # a model load is pending (the window shows a busy indicator)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._latest = LatestRequest()
        self._pending_loads = 0
        self._pending_request: int | None = None  # id of a translation not yet answered
        self._closed = False
        self.model: ModelSummary | None = None

        self._thread = QThread()
        self._thread.setObjectName("translation-worker")
        self._worker = TranslationWorker(self._latest)
        self._worker.moveToThread(self._thread)
        self._loadRequested.connect(self._worker.load_model)
        self._translateRequested.connect(self._worker.translate)
        self._worker.modelLoaded.connect(self._on_model_loaded)
        self._worker.modelFailed.connect(self._on_model_failed)
        self._worker.traceReady.connect(self._on_trace_ready)
        self._worker.traceEmpty.connect(self._on_trace_empty)
        self._worker.traceFailed.connect(self._on_trace_failed)
        self._thread.finished.connect(self._worker.deleteLater)
        self._thread.start()

    # --- requests ---

    def load_model(self, directory: str | Path, device: str = "auto") -> None:
        if self._closed:
            return
        self._pending_loads += 1
        self._emit_loading()
        self._loadRequested.emit(str(directory), device)

    def translate(self, text: str) -> int:
        """Ask for `text`; returns the request id. Blank text is answered at once, without the worker."""
        request_id = self._latest.next()
        if self._closed:
            return request_id
        if not text.strip():
            self._pending_request = None
            self.emptyShown.emit()
            return request_id
        self._pending_request = request_id
        self._translateRequested.emit(request_id, text)
        return request_id

    @property
    def loading(self) -> bool:
        return self._pending_loads > 0

    @property
    def translating(self) -> bool:
        """A translation was asked for and its answer has not been shown yet."""
        return self._pending_request is not None

    @property
    def thread(self) -> QThread:
        return self._thread

    def shutdown(self) -> None:
        """Stop the thread and wait for it; queued requests are skipped, a running one finishes."""
        if self._closed:
            return
        self._closed = True
        self._latest.next()  # every queued translation is now stale and will be skipped
        self._thread.quit()
        self._thread.wait()

    # --- results (delivered in the GUI thread) ---

    def _is_newest(self, request_id: int) -> bool:
        return not self._closed and request_id == self._latest.value

    @Slot(int, object)
    def _on_trace_ready(self, request_id: int, trace: Trace) -> None:
        if not self._is_newest(request_id):
            return  # a newer request is on its way: never show a stale result
        self._pending_request = None
        self.traceShown.emit(trace)

    @Slot(int)
    def _on_trace_empty(self, request_id: int) -> None:
        if self._is_newest(request_id):
            self._pending_request = None
            self.emptyShown.emit()

    @Slot(int, str)
    def _on_trace_failed(self, request_id: int, message: str) -> None:
        if self._is_newest(request_id):
            self._pending_request = None
            self.translationFailed.emit(message)

    @Slot(object)
    def _on_model_loaded(self, summary: ModelSummary) -> None:
        self._pending_loads -= 1
        if self._closed:
            return
        self.model = summary
        self._emit_loading()
        self.modelLoaded.emit(summary)

    @Slot(str, str)
    def _on_model_failed(self, directory: str, message: str) -> None:
        self._pending_loads -= 1
        if self._closed:
            return
        self._emit_loading()
        self.modelFailed.emit(directory, message)

    def _emit_loading(self) -> None:
        self.loadingChanged.emit(self.loading)
