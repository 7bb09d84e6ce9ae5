"""The main window: the sentence box, the translation, the model view, the head view and the tabs.

The window only wires: widgets to the ViewState (which owns the selection and the forced decoding),
keystrokes to the TranslationClient through a KeystrokeCoalescer, File → Export to an Exporter
that writes off the GUI thread, and the settings. The drawing lives in gui/views, the numbers in
gui.maps and the engine.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QCloseEvent, QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import (
    QFileDialog,
    QInputDialog,
    QLabel,
    QLayout,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from engine.paths import MODELS_ROOT
from engine.render.request import FIGURES, FigureRequest
from engine.trace import Trace
from gui.analysis_panel import AnalysisPanel
from gui.export import EXPORTS, FIGURE_FILTER, TRACE_FILTER, Exporter, ExportJob
from gui.keystrokes import KeystrokeCoalescer
from gui.maps import TokenFocus, latency_text, token_summary
from gui.menus import build_menus
from gui.model_shape import adapt_window, hint_text, language_name
from gui.settings import initial_model, remember_model, restore_window, save_window
from gui.view_state import ViewState
from gui.views.beam_view import BeamView
from gui.views.decoder_steps import DecoderStepsView
from gui.views.head_view import HeadView
from gui.views.model_view import ModelView
from gui.views.positional_view import PositionalView
from gui.views.selection_bar import SelectionBar
from gui.views.sentence_view import SentenceView
from gui.views.walkthrough_view import WalkthroughView
from gui.worker import DecodeRequest, ModelSummary, TraceResult, TranslationClient

START_DELAY_MS = 50  # let the first paint happen before the worker starts importing torch


def local_directory(urls) -> Path | None:
    """The first dropped URL that is a local directory, if any."""
    for url in urls:
        if url.isLocalFile() and Path(url.toLocalFile()).is_dir():
            return Path(url.toLocalFile())
    return None


class MainWindow(QMainWindow):
    traceDisplayed = Signal(object)  # every Trace the window puts on screen, in order
    translationRequested = Signal()  # a request left for the worker

    def __init__(
        self,
        settings: QSettings,
        model_dir: str | Path | None = None,
        device: str = "auto",
        models_root: Path = MODELS_ROOT,
        autoload: bool = True,
    ) -> None:
        super().__init__()
        self.settings = settings
        self.models_root = Path(models_root)
        self.device = device
        self.result: TraceResult | None = None  # the trace on screen with its beam tree and norms
        self.walkthrough = None  # engine.walkthrough.Walkthrough on screen
        self.export_dpi = 200
        self.last_export_error: QMessageBox | None = None
        self.view_state = ViewState(self)
        self.client = TranslationClient(self)
        self.keystrokes = KeystrokeCoalescer(self.client, self._wanted_translation, self)
        self.exporter = Exporter(self)
        self._requested_model: Path | None = None
        self._language = ""  # the loaded model's source language, for the hints

        self.setWindowTitle("Attention Studio")
        self.resize(1360, 860)
        self.setAcceptDrops(True)
        self._build_central()
        # The window's minimum size would otherwise follow every label shown or hidden while typing;
        # fixed constraints also keep platform plugins without size hints (offscreen) from warning.
        self.layout().setSizeConstraint(QLayout.SizeConstraint.SetNoConstraint)
        self._build_status_bar()
        build_menus(self)
        self._connect()
        self.analysis_panel = AnalysisPanel(self)  # the Analysis tab; after _connect, so traces paint first
        restore_window(self)

        self._initial_model = initial_model(settings, model_dir, self.models_root)
        # a child timer, not a bare singleShot: it dies with the window if it closes first
        self._start_timer = QTimer(self)
        self._start_timer.setSingleShot(True)
        self._start_timer.timeout.connect(lambda: self.load_model(self._initial_model))
        if autoload:
            self._start_timer.start(START_DELAY_MS)
            # say so at once: the load itself starts after the first paint
            self.statusBar().showMessage(f"Loading model {self._initial_model.name}…")
            self.busy.show()

    @property
    def trace(self) -> Trace | None:
        return self.result.trace if self.result is not None else None

    # --- construction ---

    def _build_central(self) -> None:
        central = QWidget()
        layout = QVBoxLayout(central)
        self.sentence = SentenceView()
        self.source = self.sentence.source  # the box everyone types into: tests, benchmarks, settings
        self.selection_bar = SelectionBar(self.view_state)
        layout.addWidget(self.sentence)
        layout.addWidget(self.selection_bar)
        self.model_view = ModelView(self.view_state)
        self.head_view = HeadView(self.view_state)
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(self.model_view)
        self.splitter.addWidget(self.head_view)
        self.splitter.setSizes([700, 600])
        self.decoder_steps = DecoderStepsView(self.view_state)
        self.beam_view = BeamView()
        self.positional_view = PositionalView()
        self.walkthrough_view = WalkthroughView()
        self.tabs = QTabWidget()
        self.tabs.setObjectName("detailTabs")
        self.tabs.addTab(self.decoder_steps, "Decoder steps")
        self.tabs.addTab(self.beam_view, "Beam search")
        self.tabs.addTab(self.positional_view, "Positional encodings")
        self.tabs.addTab(self.walkthrough_view, "Walkthrough")
        self.vertical = QSplitter(Qt.Orientation.Vertical)
        self.vertical.addWidget(self.splitter)
        self.vertical.addWidget(self.tabs)
        self.vertical.setSizes([560, 300])  # the maps keep most of the room; the tabs can be dragged taller
        self.vertical.setStretchFactor(1, 1)  # a taller window gives the tabs room too, not only the maps
        layout.addWidget(self.vertical, 1)
        self.setCentralWidget(central)

    def _build_status_bar(self) -> None:
        self.busy = QProgressBar()
        self.busy.setRange(0, 0)  # no known length: an animated "busy" bar
        self.busy.setMaximumWidth(90)
        self.busy.setMaximumHeight(14)
        self.busy.setTextVisible(False)
        self.busy.hide()
        self.model_label = QLabel("no model")
        self.device_label = QLabel()
        self.tokens_label = QLabel()
        self.latency_label = QLabel()
        for widget in (self.busy, self.model_label, self.device_label, self.tokens_label, self.latency_label):
            self.statusBar().addPermanentWidget(widget)

    def _connect(self) -> None:
        state, client = self.view_state, self.client
        self.source.textChanged.connect(self._on_text_changed)
        self.keystrokes.sent.connect(self.translationRequested)
        self.selection_bar.beam_size.valueChanged.connect(self._on_beam_size_changed)
        self.selection_bar.new_tokens.valueChanged.connect(self._on_beam_size_changed)  # GPT-2's length
        self.head_view.modeChanged.connect(lambda mode: self.lines_action.setChecked(mode == "Lines"))
        self.decoder_steps.forceRequested.connect(self.force_token)
        self.decoder_steps.resetRequested.connect(state.clear_forcing)
        self.beam_view.nodeChosen.connect(state.choose_beam_node)
        self.walkthrough_view.queryChosen.connect(lambda index: state.set_token(TokenFocus("query", index)))
        self.walkthrough_view.exportRequested.connect(lambda path: self.export_to("walkthrough", path))
        self.tabs.currentChanged.connect(self._on_tab_changed)
        state.forcingChanged.connect(self._on_forcing_changed)
        for signal in (state.selectionChanged, state.tokenChanged, state.stepChanged):
            signal.connect(self._request_walkthrough)
        client.resultShown.connect(self.show_result)
        client.emptyShown.connect(self.show_empty)
        client.translationFailed.connect(lambda message: self.statusBar().showMessage(f"Translation failed: {message}"))
        client.walkthroughShown.connect(self._on_walkthrough)
        client.walkthroughFailed.connect(
            lambda message: self.statusBar().showMessage(f"Walkthrough failed: {message}", 8000)
        )
        client.modelLoaded.connect(self._on_model_loaded)
        client.modelFailed.connect(self._on_model_failed)
        client.loadingChanged.connect(self._update_busy)
        self.exporter.started.connect(self._show_export_progress)
        self.exporter.finished.connect(self._on_export_finished)
        self.show_empty()

    def save_settings(self) -> None:
        save_window(self)

    # --- models ---

    def load_model(self, directory: str | Path) -> None:
        self._requested_model = Path(directory)
        self.statusBar().showMessage(f"Loading model {Path(directory).name} on {self.device}…")
        self.client.load_model(directory, self.device)

    def set_device(self, device: str) -> None:
        self.device = device
        current = self.client.model.directory if self.client.model else self._requested_model
        if current is not None:
            self.load_model(current)

    def open_model_dialog(self) -> None:
        start = str(self.models_root if self.models_root.is_dir() else Path.home())
        directory = QFileDialog.getExistingDirectory(self, "Open a model directory", start)
        if directory:
            self.load_model(directory)

    def _on_model_loaded(self, summary: ModelSummary) -> None:
        self.statusBar().showMessage(f"Loaded {summary.name} on {summary.device}", 5000)
        remember_model(self.settings, summary.directory)
        self.setWindowTitle(f"Attention Studio — {summary.name}")
        self.model_label.setText(f"model: {summary.name}")
        self.device_label.setText(f"device: {summary.device}")
        self._language = language_name(summary.source_language)
        self.show_empty()  # the previous model's maps never stay on screen beside the new model's name
        adapt_window(self, summary)
        self._check_model_action(summary.directory)
        self._set_device_choice(summary.device_choice)
        self.show_empty()  # with the hint of this model's shape
        if self.source.text().strip():
            self.request_translation()  # the sentence on screen, now through the new model

    def _on_model_failed(self, directory: str, message: str) -> None:
        self.statusBar().showMessage(f"Could not load model {Path(directory).name}: {message}")
        # the previous model stays active: put the menu's check mark back on it
        self._check_model_action(self.client.model.directory if self.client.model else None)
        if self.client.model is not None:
            self._set_device_choice(self.client.model.device_choice)
        if self.trace is None:
            self.show_empty()  # the hint now says how to get a model

    def _set_device_choice(self, device: str) -> None:
        self.device = device
        for action in self.device_actions.actions():
            action.setChecked(action.text() == device)

    def _check_model_action(self, directory: str | None) -> None:
        for action in self.model_actions.actions():
            action.setChecked(directory is not None and action.data() == directory)

    # --- translation ---

    def _wanted_translation(self) -> tuple[str, DecodeRequest]:
        """The text and decoding to ask for now: the box, the beam size, the ViewState's forced prefix."""
        with_qkv = self.tabs.currentWidget() is self.walkthrough_view
        bar = self.selection_bar
        request = DecodeRequest(bar.beam_size.value(), self.view_state.forced_prefix, with_qkv, bar.new_tokens.value())
        return self.source.text(), request

    def _on_text_changed(self, _text: str) -> None:
        self.view_state.clear_forcing()  # a forced token belongs to the sentence it was chosen for
        self.keystrokes.changed()

    def _on_forcing_changed(self) -> None:
        if self.client.model is not None:
            self.keystrokes.changed()

    def _on_beam_size_changed(self, _value: int) -> None:
        self.view_state.clear_forcing()
        if self.source.text().strip() and self.client.model is not None:
            self.keystrokes.changed()

    @property
    def idle(self) -> bool:
        """No translation runs or waits (tests and benchmarks wait for this)."""
        return self.keystrokes.idle

    def request_translation(self) -> None:
        """Send the text now, even while the worker is busy (the newer request replaces the older)."""
        self.keystrokes.send()

    def force_token(self, step: int, token: int) -> None:
        """Make the output take `token` at `step` (0-based) and decode on from there."""
        if self.trace is not None:
            self.view_state.force_prefix((*self.trace.out_ids[:step].tolist(), token))

    def show_result(self, result: TraceResult) -> None:
        """Put one answer of the worker on screen: every view shows `result.trace`."""
        trace, state = result.trace, self.view_state
        self.result = result
        state.set_model_shape(trace.n_layers, trace.n_heads)
        self.model_view.set_trace(trace)
        self.head_view.set_trace(trace)
        forced, beam_node = len(result.request.forced_prefix), state.beam_selection is not None
        self.decoder_steps.set_trace(trace, forced_length=0 if beam_node else forced)
        searched = trace.sentences if result.request.beam_size > 1 else 0
        self.beam_view.set_tree(result.beam if searched else None, state.beam_selection, searched)
        self.positional_view.set_result(trace, result.embedding_norms, result.positional_norms)
        self.selection_bar.show_forcing(forced, beam_node)
        self.sentence.show_trace(trace)
        self.tokens_label.setText(token_summary(trace))
        self.latency_label.setText(latency_text(trace))
        self.device_label.setText(f"device: {trace.device}")
        if self.statusBar().currentMessage().startswith("Translation failed"):
            self.statusBar().clearMessage()
        self._request_walkthrough()
        self.traceDisplayed.emit(trace)

    def show_empty(self) -> None:
        self.result = None
        self.walkthrough = None
        self.model_view.set_trace(None)
        self.head_view.set_trace(None)
        self.decoder_steps.set_trace(None)
        self.beam_view.set_tree(None)
        self.positional_view.set_result(None, None, None)
        self.walkthrough_view.set_walkthrough(None)
        self.selection_bar.show_forcing(0, False)
        self.sentence.show_hint(self._hint_text())
        self.tokens_label.clear()
        self.latency_label.clear()

    def _hint_text(self) -> str:
        has_model = self.client.model is not None or self.client.loading
        return hint_text(self.view_state.model_shape, self._language, has_model)

    # --- walkthrough ---

    def _on_tab_changed(self, _index: int) -> None:
        if self.tabs.currentWidget() is self.walkthrough_view and self.trace is not None and self.trace.qkv is None:
            self.request_translation()  # typing skips q/k/v; the walkthrough needs them
        else:
            self._request_walkthrough()

    def _request_walkthrough(self, *_args) -> None:
        """Ask the worker for the walkthrough, only while its tab is on screen (it costs a computation)."""
        if self.tabs.currentWidget() is not self.walkthrough_view:
            return
        selection = self.view_state.walkthrough_selection(self.trace)
        if selection is not None:
            self.client.walkthrough(self.trace, selection.kind, selection.layer, selection.head, selection.query)

    def _on_walkthrough(self, walkthrough) -> None:
        self.walkthrough = walkthrough
        self.walkthrough_view.set_walkthrough(walkthrough)

    # --- export ---

    def update_export_actions(self) -> None:
        has_trace = self.trace is not None
        for what, action in self.export_actions.items():
            action.setEnabled(self.walkthrough is not None if what == "walkthrough" else has_trace)
        self.export_actions["positional"].setEnabled(has_trace or self.positional_view.has_table())
        self.export_actions["step"].setEnabled(has_trace and bool(self.trace.out_pieces))  # BERT: a [MASK]

    def ask_export_dpi(self) -> None:
        dpi, ok = QInputDialog.getInt(
            self, "PNG resolution", "Dots per inch for PNG exports:", self.export_dpi, 50, 1200
        )
        if ok:
            self.export_dpi = dpi

    def export_dialog(self, what: str) -> None:
        name = {"trace": "trace.npz"}.get(what, f"{what}.png")
        start = str(Path(str(self.settings.value("export/directory", Path.home()))) / name)
        title = f"Export — {EXPORTS[what]}"
        path, _ = QFileDialog.getSaveFileName(self, title, start, TRACE_FILTER if what == "trace" else FIGURE_FILTER)
        if path:
            self.settings.setValue("export/directory", str(Path(path).parent))
            self.export_to(what, path)

    def export_to(self, what: str, path: str | Path, dpi: int | None = None) -> ExportJob:
        """Queue `what` (as on screen now) for writing to `path`, format by suffix, off the GUI thread;
        the status bar follows it, and a box says why when it fails."""
        state = self.view_state
        figure = FigureRequest(what, state.kind, state.layer, state.head, state.step or 0) if what in FIGURES else None
        job = ExportJob(
            what,
            Path(path),
            self.trace,
            figure=figure,
            positional=self.positional_view.closed_form() if what == "positional" else None,
            walkthrough=self.walkthrough if what == "walkthrough" else None,
            analysis=self.analysis_panel.analysis,
            dpi=dpi or self.export_dpi,
        )
        self.exporter.submit(job)
        self._show_export_progress()
        return job

    @property
    def exporting(self) -> bool:
        """An export is being written or waits its turn."""
        return self.exporter.busy

    def _show_export_progress(self, *_args) -> None:
        job, waiting = self.exporter.running, self.exporter.waiting
        if job is not None:
            more = f" ({waiting} more waiting)" if waiting else ""
            self.statusBar().showMessage(f"Exporting {job.title} to {job.path}…{more}")
        self._update_busy()

    def _on_export_finished(self, job: ExportJob, error: str) -> None:
        self._update_busy()
        if job.what == "walkthrough":
            self.walkthrough_view.show_export_message(error or f"Saved {job.path}")
        if not error:
            self.statusBar().showMessage(f"Exported {job.title} to {job.path}", 8000)
            return
        self.statusBar().showMessage(f"Export failed: {error}", 10000)
        box = QMessageBox(QMessageBox.Icon.Warning, "Export failed", error, QMessageBox.StandardButton.Ok, self)
        box.setObjectName("exportError")
        self.last_export_error = box
        box.open()  # window-modal, not a nested event loop: tests and the worker keep running

    def _update_busy(self, *_args) -> None:
        self.busy.setVisible(self.client.loading or self.exporter.busy)

    # --- drag and drop of a model folder ---

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if event.mimeData().hasUrls() and local_directory(event.mimeData().urls()) is not None:
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        directory = local_directory(event.mimeData().urls())
        if directory is not None:
            event.acceptProposedAction()
            self.load_model(directory)

    # --- closing ---

    def shutdown(self) -> None:
        """Stop the start timer, write the exports asked for, stop the worker thread (idempotent)."""
        self.keystrokes.stop()
        self._start_timer.stop()
        self.exporter.shutdown()
        self.client.shutdown()

    def closeEvent(self, event: QCloseEvent) -> None:
        self.save_settings()
        self.shutdown()
        super().closeEvent(event)
