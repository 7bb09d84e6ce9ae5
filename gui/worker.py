"""The translation worker: one QObject living in one QThread, and the GUI-side client that owns it.

The engine (and torch) is imported inside the worker thread the first time a model loads, so the
window paints before torch is on the path. Requests carry increasing ids; the worker skips any
request that a newer one has replaced, and the client drops any result that is not the newest.
Only signals cross the thread boundary, carrying plain values and numpy Traces.
"""

from __future__ import annotations

import gc
import logging
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, Qt, QThread, QTimer, Signal, Slot

from engine.architecture import SHAPE_KINDS
from engine.beam_tree import BeamTree
from engine.devices import worker_threads
from engine.trace import Trace

log = logging.getLogger(__name__)
DEFAULT_NEW_TOKENS = 20  # the "new tokens" box's default, engine.one_stack's too


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
    d_model: int = 0
    pe_base: float = 10000.0
    shape: str = "encoder-decoder"  # or "encoder-only" (BERT) or "decoder-only" (GPT-2)
    positions: str = "sinusoidal"  # or "learned" (BERT, GPT-2)

    @property
    def kinds(self) -> tuple[str, ...]:
        """The attention kinds the model has, in the usual order."""
        return SHAPE_KINDS[self.shape]


@dataclass(frozen=True)
class DecodeRequest:
    """How to decode: beam size (1 is greedy) and the target ids the output must start with."""

    beam_size: int = 1
    forced_prefix: tuple[int, ...] = ()
    with_qkv: bool = False  # record q/k/v for the walkthrough (it costs a forced pass per keystroke)
    max_new_tokens: int = DEFAULT_NEW_TOKENS  # how far a decoder-only model (GPT-2) continues a prompt


@dataclass(frozen=True)
class TraceResult:
    """What the worker sends for one request: the trace and what the step and positional views need."""

    trace: Trace
    request: DecodeRequest
    beam: BeamTree | None  # the search tree when beam_size > 1
    embedding_norms: np.ndarray  # (P,) ‖embedding × √d_model‖ of each input piece (the source; GPT-2's input)
    positional_norms: np.ndarray  # (P,) ‖positional row‖


class TranslationWorker(QObject):
    """Lives in the worker thread; every slot runs there, one at a time, in request order."""

    modelLoaded = Signal(object)  # ModelSummary
    modelFailed = Signal(str, str)  # directory, one-line reason
    traceReady = Signal(int, object)  # request id, TraceResult
    traceEmpty = Signal(int)  # request id: blank text
    traceFailed = Signal(int, str)  # request id, one-line reason
    walkthroughReady = Signal(int, object)  # request id, engine.walkthrough.Walkthrough
    walkthroughFailed = Signal(int, str)
    analysisReady = Signal(int, object)  # id of the trace's request, engine.analysis.Analysis (one per stage)
    analysisFailed = Signal(int, str)

    def __init__(self, latest: LatestRequest, walkthrough_latest: LatestRequest | None = None) -> None:
        super().__init__()
        self._latest = latest
        self._translator = None  # engine.translator.Translator, created in this thread
        self._draft: list[int] | None = None  # the last output, to speed up the next decode
        self._walkthrough_latest = walkthrough_latest or LatestRequest()

    @Slot(str, str)
    def load_model(self, directory: str, device: str) -> None:
        try:
            from engine.tokenizer import start_checks

            start_checks(directory)  # the tokenizer's crash checks run in child processes while torch imports
            # Imported here, in the worker thread, so that torch stays off the path to the first paint.
            import torch

            from engine.translator import Translator

            torch.set_num_threads(worker_threads())  # per thread with OpenMP: set here, where torch runs
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
                    "cross": cfg.n_decoder_layers if cfg.shape == "encoder-decoder" else 0,
                },
                n_heads=cfg.n_heads,
                max_positions=cfg.max_positions,
                d_model=cfg.d_model,
                pe_base=float(getattr(cfg, "pe_base", 10000.0)),
                shape=cfg.shape,
                positions=cfg.positions,
            )
        )

    @Slot(int, object, object)  # text as object: see TranslationClient._translateRequested
    def translate(self, request_id: int, text: str, request: DecodeRequest) -> None:
        if request_id != self._latest.value:
            return  # the user has typed on: a newer request replaces this one
        if self._translator is None:
            self.traceFailed.emit(request_id, "no model is loaded; choose one in the Model menu")
            return
        from engine.translator import EmptyInputError

        try:
            result = self._trace(text, request)
        except EmptyInputError:
            self.traceEmpty.emit(request_id)
            return
        except Exception as error:  # a bug or a resource error must not kill the thread
            log.exception("translation failed")
            self._draft = None
            self.traceFailed.emit(request_id, _one_line(error))
            return
        if not request.forced_prefix:
            self._draft = result.trace.out_ids.tolist()
        self.traceReady.emit(request_id, result)

    def _trace(self, text: str, request: DecodeRequest) -> TraceResult:
        from dataclasses import replace

        from engine.translator import TraceOptions

        continues = self._translator.cfg.shape == "decoder-only"
        # the model's own defaults (a Marian folder's length penalty and limit), the user's beam size
        decoding = replace(
            self._translator.default_decoding,
            beam_size=request.beam_size,
            max_new_tokens=request.max_new_tokens if continues else None,
        )
        options = TraceOptions(decoding=decoding, forced_prefix=request.forced_prefix, with_qkv=request.with_qkv)
        translation = self._translator.run(text, options, draft=self._draft)
        trace = translation.trace
        return TraceResult(
            trace=trace,
            request=request,
            beam=translation.beam,
            embedding_norms=self._translator.embedding_norms(trace.input_ids),
            positional_norms=np.linalg.norm(trace.positional.astype(np.float64), axis=1),
        )

    @Slot(int, object, str, int, int, int)
    def walkthrough(self, request_id: int, trace: Trace, kind: str, layer: int, head: int, query: int) -> None:
        if request_id != self._walkthrough_latest.value or self._translator is None:
            return
        try:
            result = self._translator.walkthrough(trace, kind, layer, head, query)
        except Exception as error:
            log.exception("walkthrough failed")
            self.walkthroughFailed.emit(request_id, _one_line(error))
            return
        self.walkthroughReady.emit(request_id, result)

    @Slot(int, object, bool)
    def analyze(self, request_id: int, trace: Trace, importance: bool) -> None:
        """The head analysis of `trace`, stage by stage, importance by masking only when asked (it is
        nearly all of the cost); stops between stages once a newer request exists."""
        if request_id != self._latest.value or self._translator is None:
            return
        from engine.importance import analysis_stages  # torch: in the worker thread only

        try:

            def newer() -> bool:  # asked between the sentences of a text too: a paragraph's pass takes seconds
                return request_id != self._latest.value

            kinds = None if importance else ()
            for analysis in analysis_stages(self._translator, trace, kinds, cancelled=newer):
                if request_id != self._latest.value:
                    return  # the user typed on: the rest of the masking passes are dropped
                self.analysisReady.emit(request_id, analysis)
        except Exception as error:  # a trace of another model, a bug: report it, keep the thread
            log.exception("analysis failed")
            self.analysisFailed.emit(request_id, _one_line(error))


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


class TranslationClient(QObject):
    """GUI-thread side: starts the thread, numbers the requests, drops stale results, shuts down.

    Its signals are emitted in the GUI thread, so widgets may connect to them directly.
    """

    # GUI → worker (queued, because the worker lives in the other thread)
    _loadRequested = Signal(str, str)
    # The text travels as a Python object: through a QString, PySide drops a leading U+FEFF, so the
    # worker would translate (and the trace record) a text other than the one in the box.
    _translateRequested = Signal(int, object, object)
    _walkthroughRequested = Signal(int, object, str, int, int, int)
    _analysisRequested = Signal(int, object, bool)

    # to the window
    resultShown = Signal(object)  # TraceResult of the newest request: the trace, its beam tree and norms
    walkthroughShown = Signal(object)  # Walkthrough of the newest walkthrough request
    walkthroughFailed = Signal(str)
    analysisShown = Signal(object, object)  # Trace, engine.analysis.Analysis of it (partial, then complete)
    analysisFailed = Signal(str)
    emptyShown = Signal()
    translationFailed = Signal(str)
    modelLoaded = Signal(object)  # ModelSummary
    modelFailed = Signal(str, str)
    loadingChanged = Signal(bool)  # a model load is pending (the window shows a busy indicator)
    answered = Signal()  # the newest translation request has its answer: the worker is free

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._latest = LatestRequest()
        self._walkthrough_latest = LatestRequest()
        self._pending_loads = 0
        self._pending_request: int | None = None  # id of a translation not yet answered
        self._shown: tuple[int, Trace] | None = None  # the request id and trace last shown
        self._closed = False
        self.model: ModelSummary | None = None

        self._thread = QThread()
        self._thread.setObjectName("translation-worker")
        self._worker = TranslationWorker(self._latest, self._walkthrough_latest)
        self._worker.moveToThread(self._thread)
        self._loadRequested.connect(self._worker.load_model)
        self._translateRequested.connect(self._worker.translate)
        self._walkthroughRequested.connect(self._worker.walkthrough)
        self._worker.walkthroughReady.connect(self._on_walkthrough_ready)
        self._worker.walkthroughFailed.connect(self._on_walkthrough_failed)
        self._analysisRequested.connect(self._worker.analyze)
        self._worker.analysisReady.connect(self._on_analysis_ready)
        self._worker.analysisFailed.connect(self._on_analysis_failed)
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

    def translate(self, text: str, request: DecodeRequest | None = None) -> int:
        """Ask for `text`; returns the request id. Blank text is answered at once, without the worker."""
        request_id = self._latest.next()
        if self._closed:
            return request_id
        if not text.strip():
            self._pending_request = None
            self.emptyShown.emit()
            self.answered.emit()
            return request_id
        self._pending_request = request_id
        self._translateRequested.emit(request_id, text, request or DecodeRequest())
        return request_id

    def walkthrough(self, trace: Trace, kind: str, layer: int, head: int, query: int) -> int:
        """Ask for one head's walkthrough of `trace` (recorded with q/k/v); the newest request wins."""
        request_id = self._walkthrough_latest.next()
        if not self._closed:
            self._walkthroughRequested.emit(request_id, trace, kind, layer, head, query)
        return request_id

    def analyze_shown(self, importance: bool = True) -> Trace | None:
        """Ask for the head analysis of the trace on screen (with importance by masking or not), under
        its own request id, so that a newer keystroke makes it stale; returns that trace (None when
        nothing is shown)."""
        if self._closed or self._shown is None or self._shown[0] != self._latest.value:
            return None
        self._analysisRequested.emit(*self._shown, importance)
        return self._shown[1]

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
        self._walkthrough_latest.next()
        self._thread.quit()
        self._thread.wait()

    # --- results (delivered in the GUI thread) ---

    def _is_newest(self, request_id: int) -> bool:
        return not self._closed and request_id == self._latest.value

    @Slot(int, object)
    def _on_trace_ready(self, request_id: int, result: TraceResult) -> None:
        if not self._is_newest(request_id):
            return  # a newer request is on its way: never show a stale result
        self._pending_request = None
        self._shown = (request_id, result.trace)
        self.resultShown.emit(result)
        self.answered.emit()

    @Slot(int, object)
    def _on_walkthrough_ready(self, request_id: int, walkthrough) -> None:
        if not self._closed and request_id == self._walkthrough_latest.value:
            self.walkthroughShown.emit(walkthrough)

    @Slot(int, str)
    def _on_walkthrough_failed(self, request_id: int, message: str) -> None:
        if not self._closed and request_id == self._walkthrough_latest.value:
            self.walkthroughFailed.emit(message)

    @Slot(int, object)
    def _on_analysis_ready(self, request_id: int, analysis) -> None:
        if self._is_newest(request_id) and self._shown is not None and self._shown[0] == request_id:
            self.analysisShown.emit(self._shown[1], analysis)

    @Slot(int, str)
    def _on_analysis_failed(self, request_id: int, message: str) -> None:
        if self._is_newest(request_id):
            self.analysisFailed.emit(message)

    @Slot(int)
    def _on_trace_empty(self, request_id: int) -> None:
        if self._is_newest(request_id):
            self._pending_request = None
            self.emptyShown.emit()
            self.answered.emit()

    @Slot(int, str)
    def _on_trace_failed(self, request_id: int, message: str) -> None:
        if self._is_newest(request_id):
            self._pending_request = None
            self.translationFailed.emit(message)
            self.answered.emit()

    @Slot(object)
    def _on_model_loaded(self, summary: ModelSummary) -> None:
        self._pending_loads -= 1
        if self._closed:
            return
        self.model = summary
        self._emit_loading()
        self.modelLoaded.emit(summary)  # the window asks for its text's translation here
        if self.translating:  # the user waits for it: settle once it is on screen (85 ms sooner at start)
            self.answered.connect(self._settle_after_paint, Qt.ConnectionType.SingleShotConnection)
        else:
            self._settle_memory()

    def _settle_after_paint(self) -> None:
        QTimer.singleShot(0, self._settle_memory)  # posted after the views' paint requests: runs after them

    def _settle_memory(self) -> None:
        """Libraries, window and model stay for good: frozen, later full collections skip them (a
        70 ms pause of the GUI thread otherwise). Collect first, so a replaced model is not frozen.
        Here, in the GUI thread: a collection in the worker thread finalises Qt objects left in
        cycles by closed windows, off their thread, and could deadlock with the GUI's event loop."""
        if not self._closed:
            gc.collect()
            gc.freeze()

    @Slot(str, str)
    def _on_model_failed(self, directory: str, message: str) -> None:
        self._pending_loads -= 1
        if self._closed:
            return
        self._emit_loading()
        self.modelFailed.emit(directory, message)

    def _emit_loading(self) -> None:
        self.loadingChanged.emit(self.loading)
