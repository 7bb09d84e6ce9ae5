"""The main window: the sentence box, the translation, the model view and the head view.

The window wires widgets to the ViewState and the TranslationClient and keeps the settings; the
drawing lives in the views and the numbers in gui.maps.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QByteArray, QEvent, QSettings, Qt, QTimer, Signal
from PySide6.QtGui import (
    QAction,
    QActionGroup,
    QCloseEvent,
    QDragEnterEvent,
    QDropEvent,
    QFont,
    QKeySequence,
    QPalette,
)
from PySide6.QtWidgets import (
    QButtonGroup,
    QFileDialog,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QLayout,
    QLineEdit,
    QMainWindow,
    QMenu,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from engine.devices import DEVICE_CHOICES
from engine.paths import DEFAULT_MODEL_NAME, MODELS_ROOT, shipped_models
from engine.trace import ATTENTION_KINDS, Trace
from gui.maps import AVERAGE, head_label, latency_text, token_summary
from gui.theme import apply_theme
from gui.view_state import ViewState
from gui.views.beam_view import BeamView
from gui.views.decoder_steps import DecoderStepsView
from gui.views.head_view import HeadView
from gui.views.model_view import ModelView
from gui.views.positional_view import PositionalView
from gui.views.walkthrough_view import WalkthroughView
from gui.worker import DecodeRequest, ModelSummary, TraceResult, TranslationClient

START_DELAY_MS = 50  # let the first paint happen before the worker starts importing torch
LANGUAGES = {"fr": "French", "en": "English", "de": "German", "es": "Spanish"}
KIND_BUTTONS = {"enc_self": "Encoder self", "dec_self": "Decoder self (masked)", "cross": "Encoder → decoder"}
# File → Export: what can be exported, and the formats offered for it
EXPORTS = {
    "head": "Head view",
    "grid": "Model grid",
    "positional": "Positional encodings",
    "step": "Decoder step",
    "walkthrough": "Walkthrough",
    "trace": "Trace data",
}
FIGURE_FILTER = "PNG image (*.png);;SVG vector image (*.svg);;PDF document (*.pdf)"
TRACE_FILTER = "NumPy archive (*.npz);;JSON (*.json)"


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
        self.trace: Trace | None = None
        self.result: TraceResult | None = None  # the trace on screen with its beam tree and norms
        self.forced_prefix: tuple[int, ...] = ()  # target ids the user forced (cleared when the text changes)
        self.beam_selection: tuple[int, ...] | None = None  # the beam node whose path is shown
        self.walkthrough = None  # engine.walkthrough.Walkthrough on screen
        self.text_waiting = False  # the text changed while the worker was busy: send it when it answers
        self.export_dpi = 200
        self.view_state = ViewState(self)
        self.client = TranslationClient(self)
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
        self._build_menus()
        self._connect()
        self._restore_settings()

        self._initial_model = self._choose_initial_model(model_dir)
        # a child timer, not a bare singleShot: it dies with the window if it closes first
        self._start_timer = QTimer(self)
        self._start_timer.setSingleShot(True)
        self._start_timer.timeout.connect(lambda: self.load_model(self._initial_model))
        if autoload:
            self._start_timer.start(START_DELAY_MS)
            # say so at once: the load itself starts after the first paint
            self.statusBar().showMessage(f"Loading model {self._initial_model.name}…")
            self.busy.show()

    # --- construction ---

    def _build_central(self) -> None:
        self.source = QLineEdit()
        self.source.setObjectName("sourceBox")
        self.source.setPlaceholderText("Type a sentence to translate…")
        self.source.setClearButtonEnabled(True)
        self.source.setAcceptDrops(False)  # a dropped folder opens a model instead of pasting its path
        font = QFont(self.source.font())
        font.setPointSizeF(font.pointSizeF() * 1.35)
        self.source.setFont(font)

        self.translation = QLabel()
        self.translation.setObjectName("translation")
        self.translation.setWordWrap(True)
        self.translation.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        translation_font = QFont(font)
        translation_font.setWeight(QFont.Weight.DemiBold)  # the answer stands out from the question
        self.translation.setFont(translation_font)
        self.hint = QLabel()
        self.hint.setObjectName("hint")
        self.hint.setWordWrap(True)
        self.truncated_notice = QLabel()
        self.truncated_notice.setObjectName("truncatedNotice")
        self.truncated_notice.setStyleSheet("QLabel { background: #f5c542; color: #222; padding: 3px 6px; }")
        self.truncated_notice.hide()

        self.kind_buttons = QButtonGroup(self)
        kinds_row = QHBoxLayout()
        kinds_row.addWidget(QLabel("Attention:"))
        for index, kind in enumerate(ATTENTION_KINDS):
            button = QPushButton(KIND_BUTTONS[kind])
            button.setCheckable(True)
            button.setToolTip(f"Ctrl+{index + 1}")
            self.kind_buttons.addButton(button, index)
            kinds_row.addWidget(button)
        self._style_kind_buttons()
        self.selection_label = QLabel()
        kinds_row.addSpacing(16)
        kinds_row.addWidget(self.selection_label)
        kinds_row.addSpacing(16)
        kinds_row.addWidget(QLabel("Beam size:"))
        self.beam_size = QSpinBox()
        self.beam_size.setRange(1, 16)
        self.beam_size.setToolTip("1 is greedy decoding; above 1, the Beam search tab shows the search tree")
        kinds_row.addWidget(self.beam_size)
        self.forced_label = QLabel()
        self.forced_label.setObjectName("forcedNotice")
        self.forced_label.setStyleSheet("QLabel { background: #ffd9a8; color: #222; padding: 2px 6px; }")
        self.forced_label.hide()
        kinds_row.addWidget(self.forced_label)
        self.unforce_button = QPushButton("Back to the model's choice")
        self.unforce_button.hide()
        kinds_row.addWidget(self.unforce_button)
        kinds_row.addStretch(1)
        keys = QLabel("PgUp/PgDn or Ctrl+↑/↓: layer · Ctrl+←/→ or Alt+←/→: head")
        keys.setEnabled(False)
        kinds_row.addWidget(keys)

        self.model_view = ModelView(self.view_state)
        self.head_view = HeadView(self.view_state)
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(self.model_view)
        self.splitter.addWidget(self.head_view)
        self.splitter.setSizes([700, 600])

        self.timeline = DecoderStepsView(self.view_state)
        self.beam_view = BeamView()
        self.positional_view = PositionalView()
        self.walkthrough_panel = WalkthroughView()
        self.tabs = QTabWidget()
        self.tabs.setObjectName("detailTabs")
        self.tabs.addTab(self.timeline, "Decoder steps")
        self.tabs.addTab(self.beam_view, "Beam search")
        self.tabs.addTab(self.positional_view, "Positional encodings")
        self.tabs.addTab(self.walkthrough_panel, "Walkthrough")
        self.vertical = QSplitter(Qt.Orientation.Vertical)
        self.vertical.addWidget(self.splitter)
        self.vertical.addWidget(self.tabs)
        self.vertical.setSizes([560, 300])  # the maps keep most of the room; the tabs can be dragged taller

        central = QWidget()
        layout = QVBoxLayout(central)
        layout.addWidget(self.source)
        layout.addWidget(self.translation)
        layout.addWidget(self.hint)
        layout.addWidget(self.truncated_notice)
        layout.addLayout(kinds_row)
        layout.addWidget(self.vertical, 1)
        self.setCentralWidget(central)

    def _build_status_bar(self) -> None:
        bar = self.statusBar()
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
            bar.addPermanentWidget(widget)

    def _build_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        self.open_action = file_menu.addAction("&Open model…", QKeySequence.StandardKey.Open, self.open_model_dialog)
        self.export_menu = file_menu.addMenu("&Export")
        self.export_actions: dict[str, QAction] = {}
        for what, text in EXPORTS.items():
            action = self.export_menu.addAction(f"{text}…", lambda w=what: self.export_dialog(w))
            self.export_actions[what] = action
        self.export_actions["head"].setShortcut(QKeySequence("Ctrl+E"))
        self.export_menu.addSeparator()
        self.export_menu.addAction("PNG resolution…", self.ask_export_dpi)
        self.export_menu.aboutToShow.connect(self._update_export_actions)
        file_menu.addSeparator()
        file_menu.addAction("&Quit", QKeySequence.StandardKey.Quit, self.close)

        self.model_menu = self.menuBar().addMenu("&Model")
        self.model_actions = QActionGroup(self)
        self.device_menu = QMenu("&Device", self)
        self.device_actions = QActionGroup(self)
        for device in DEVICE_CHOICES:
            action = self.device_menu.addAction(device)
            action.setCheckable(True)
            action.setChecked(device == self.device)
            action.triggered.connect(lambda _=False, d=device: self.set_device(d))
            self.device_actions.addAction(action)
        self._rebuild_model_menu()
        # rebuilt on every opening: a model that training has just written appears without a restart
        self.model_menu.aboutToShow.connect(self._rebuild_model_menu)

        view_menu = self.menuBar().addMenu("&View")
        for index, kind in enumerate(ATTENTION_KINDS):
            view_menu.addAction(
                KIND_BUTTONS[kind], QKeySequence(f"Ctrl+{index + 1}"), lambda k=kind: self.view_state.set_kind(k)
            )
        view_menu.addSeparator()
        self._add_shortcut(view_menu, "Next layer", ["Ctrl+Down", "PgDown"], lambda: self.view_state.step_layer(1))
        self._add_shortcut(view_menu, "Previous layer", ["Ctrl+Up", "PgUp"], lambda: self.view_state.step_layer(-1))
        # Ctrl+←/→ move by words while the sentence box has focus, so Alt+←/→ also step heads
        self._add_shortcut(view_menu, "Next head", ["Ctrl+Right", "Alt+Right"], lambda: self.view_state.step_head(1))
        self._add_shortcut(view_menu, "Previous head", ["Ctrl+Left", "Alt+Left"], lambda: self.view_state.step_head(-1))
        view_menu.addSeparator()
        self.lines_action = view_menu.addAction("Head as &lines")
        self.lines_action.setShortcut(QKeySequence("Ctrl+L"))
        self.lines_action.setCheckable(True)
        self.lines_action.toggled.connect(lambda on: self.head_view.set_mode("Lines" if on else "Heatmap"))
        self.dark_action = view_menu.addAction("&Dark mode")
        self.dark_action.setCheckable(True)
        self.dark_action.toggled.connect(self.set_dark)

    def _rebuild_model_menu(self) -> None:
        for action in self.model_actions.actions():
            self.model_actions.removeAction(action)
        self.model_menu.clear()  # deletes the model actions, which the menu owns
        current = self.client.model.directory if self.client.model else None
        for directory in shipped_models(self.models_root):
            action = self.model_menu.addAction(directory.name)
            action.setCheckable(True)
            action.setData(str(directory.resolve()))
            action.setChecked(action.data() == current)
            action.triggered.connect(lambda _=False, d=directory: self.load_model(d))
            self.model_actions.addAction(action)
        if not self.model_actions.actions():
            self.model_menu.addAction(f"(no model under {self.models_root})").setEnabled(False)
        self.model_menu.addSeparator()
        self.model_menu.addAction("&Open model…", self.open_model_dialog)
        self.model_menu.addMenu(self.device_menu)

    def _add_shortcut(self, menu, text: str, keys: list[str], slot) -> QAction:
        action = menu.addAction(text)
        action.setShortcuts([QKeySequence(k) for k in keys])
        action.triggered.connect(slot)
        return action

    def _connect(self) -> None:
        self.source.textChanged.connect(self._on_text_changed)
        self.client.answered.connect(self._send_waiting_text)
        self.kind_buttons.idClicked.connect(lambda index: self.view_state.set_kind(ATTENTION_KINDS[index]))
        self.view_state.selectionChanged.connect(self._on_selection_changed)
        self.head_view.mode.currentIndexChanged.connect(lambda index: self.lines_action.setChecked(index == 1))
        self.client.resultShown.connect(self._on_result)
        self.client.traceShown.connect(self.show_trace)
        self.client.walkthroughShown.connect(self._on_walkthrough)
        self.client.walkthroughFailed.connect(self._on_walkthrough_failed)
        self.beam_size.valueChanged.connect(self._on_beam_size_changed)
        self.timeline.forceRequested.connect(self.force_token)
        self.timeline.resetRequested.connect(self.unforce)
        self.unforce_button.clicked.connect(self.unforce)
        self.beam_view.nodeChosen.connect(self.show_beam_node)
        self.view_state.selectionChanged.connect(self._request_walkthrough)
        self.view_state.tokenChanged.connect(self._request_walkthrough)
        self.view_state.stepChanged.connect(self._request_walkthrough)
        self.tabs.currentChanged.connect(self._on_tab_changed)
        self.walkthrough_panel.queryChosen.connect(self._on_walkthrough_query)
        self.client.emptyShown.connect(self.show_empty)
        self.client.translationFailed.connect(self._on_translation_failed)
        self.client.modelLoaded.connect(self._on_model_loaded)
        self.client.modelFailed.connect(self._on_model_failed)
        self.client.loadingChanged.connect(self.busy.setVisible)
        self._on_selection_changed()
        self.show_empty()

    # --- settings ---

    def _restore_settings(self) -> None:
        geometry = self.settings.value("window/geometry")
        if isinstance(geometry, QByteArray):
            self.restoreGeometry(geometry)
        state = self.settings.value("window/state")
        if isinstance(state, QByteArray):
            self.restoreState(state)
        splitter = self.settings.value("window/splitter")
        if isinstance(splitter, QByteArray):
            self.splitter.restoreState(splitter)
        vertical = self.settings.value("window/vertical")
        if isinstance(vertical, QByteArray):
            self.vertical.restoreState(vertical)
        self.tabs.setCurrentIndex(self.settings.value("window/tab", 0, type=int))
        self.dark_action.setChecked(self.settings.value("view/dark", False, type=bool))
        # blocked: the model is not loaded yet; the text is translated once it is
        self.source.blockSignals(True)
        self.source.setText(str(self.settings.value("source/text", "")))
        self.source.blockSignals(False)

    def save_settings(self) -> None:
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue("window/state", self.saveState())
        self.settings.setValue("window/splitter", self.splitter.saveState())
        self.settings.setValue("window/vertical", self.vertical.saveState())
        self.settings.setValue("window/tab", self.tabs.currentIndex())
        self.settings.setValue("source/text", self.source.text())
        self.settings.setValue("view/dark", self.dark_action.isChecked())
        if self.client.model is not None:
            self.settings.setValue("model/directory", self.client.model.directory)
        self.settings.sync()

    def _choose_initial_model(self, model_dir: str | Path | None) -> Path:
        """The command line's model, else the last one used, else the shipped default."""
        if model_dir:
            return Path(model_dir)
        last = self.settings.value("model/directory")
        if last and (Path(str(last)) / "config.json").is_file():
            return Path(str(last))
        return self.models_root / DEFAULT_MODEL_NAME

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
        self.setWindowTitle(f"Attention Studio — {summary.name}")
        self.model_label.setText(f"model: {summary.name}")
        self.device_label.setText(f"device: {summary.device}")
        self._language = LANGUAGES.get(summary.source_language, summary.source_language)
        self.source.setPlaceholderText(f"Type a {self._language} sentence to translate…")
        if self.trace is None:  # a trace on screen keeps its own shape until the new model's replaces it
            self.view_state.set_model_shape(summary.n_layers, summary.n_heads)
        self.positional_view.set_model(summary.d_model, summary.pe_base)
        self._on_selection_changed()  # the counts are known now, even if the shape did not change
        self._check_model_action(summary.directory)
        self._set_device_choice(summary.device_choice)
        if self.source.text().strip():
            self.request_translation()  # the sentence on screen, now through the new model
        else:
            self.show_empty()

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

    def _on_text_changed(self, _text: str) -> None:
        """Send the text at once when the worker is free; while it works, keystrokes pile up into
        one request, sent with the newest text as soon as the answer comes (no fixed delay)."""
        self.forced_prefix = ()  # a forced token belongs to the sentence it was chosen for
        self.beam_selection = None
        if self.client.translating:
            self.text_waiting = True
        else:
            self.request_translation()

    def _send_waiting_text(self) -> None:
        if self.text_waiting:
            self.request_translation()

    @property
    def idle(self) -> bool:
        """No translation runs or waits (tests and benchmarks wait for this)."""
        return not self.client.translating and not self.text_waiting

    def decode_request(self) -> DecodeRequest:
        with_qkv = self.tabs.currentWidget() is self.walkthrough_panel
        return DecodeRequest(self.beam_size.value(), self.forced_prefix, with_qkv)

    def request_translation(self) -> None:
        self.text_waiting = False
        self.client.translate(self.source.text(), self.decode_request())
        self.translationRequested.emit()

    def force_token(self, step: int, token: int) -> None:
        """Make the output take `token` at `step` (0-based) and decode on from there."""
        if self.trace is None:
            return
        self.forced_prefix = tuple(int(t) for t in self.trace.out_ids[:step]) + (int(token),)
        self.beam_selection = None
        self.request_translation()

    def unforce(self) -> None:
        """Back to the model's own choices."""
        self.forced_prefix = ()
        self.beam_selection = None
        self.request_translation()

    def show_beam_node(self, tokens: tuple[int, ...]) -> None:
        """Show the attention of a beam node's path: its prefix forced, greedy after it."""
        self.forced_prefix = tuple(tokens)
        self.beam_selection = tuple(tokens)
        self.request_translation()

    def _on_beam_size_changed(self, _value: int) -> None:
        self.forced_prefix = ()
        self.beam_selection = None
        if self.source.text().strip() and self.client.model is not None:
            self.request_translation()

    def _on_result(self, result: TraceResult) -> None:
        self.result = result
        forced = len(result.request.forced_prefix)
        self.timeline.set_trace(result.trace, forced_length=forced if self.beam_selection is None else 0)
        if result.request.beam_size > 1:
            self.beam_view.set_tree(result.beam, selected=self.beam_selection)
        else:
            self.beam_view.set_tree(None)
        self.positional_view.set_result(result.trace, result.embedding_norms, result.positional_norms)
        if forced and self.beam_selection is None:
            self.forced_label.setText(f"⚑ {forced} token{'s' if forced > 1 else ''} forced by you")
        elif self.beam_selection is not None:
            self.forced_label.setText(f"⚑ showing a beam node's path ({forced} tokens forced)")
        self.forced_label.setVisible(bool(forced))
        self.unforce_button.setVisible(bool(forced))

    def show_trace(self, trace: Trace) -> None:
        self.trace = trace
        self.view_state.set_model_shape(trace.n_layers, trace.n_heads)
        self.model_view.set_trace(trace)
        self.head_view.set_trace(trace)
        self.translation.setText(trace.translation)
        self.translation.show()
        self.hint.hide()
        self.truncated_notice.setVisible(trace.truncated)
        self.truncated_notice.setText(
            f"⚠ The text was cut to the model's maximum length ({len(trace.src_pieces)} pieces); "
            "the end of it is not translated."
        )
        self.tokens_label.setText(token_summary(trace))
        self.latency_label.setText(latency_text(trace))
        self.device_label.setText(f"device: {trace.device}")
        if self.statusBar().currentMessage().startswith("Translation failed"):
            self.statusBar().clearMessage()
        if self.result is None or self.result.trace is not trace:
            self.result = None
            self.timeline.set_trace(trace)
            self.positional_view.set_result(trace, None, None)
        self._request_walkthrough()
        self.traceDisplayed.emit(trace)

    def show_empty(self) -> None:
        self.trace = None
        self.result = None
        self.model_view.set_trace(None)
        self.head_view.set_trace(None)
        self.timeline.set_trace(None)
        self.beam_view.set_tree(None)
        self.positional_view.set_result(None, None, None)
        self.walkthrough = None
        self.walkthrough_panel.set_walkthrough(None)
        self.forced_label.hide()
        self.unforce_button.hide()
        self.translation.clear()
        self.translation.hide()
        self.truncated_notice.hide()
        self.tokens_label.clear()
        self.latency_label.clear()
        self.hint.setText(f"<i>{self._hint_text()}</i>")
        self.hint.show()

    def _hint_text(self) -> str:
        if self.client.model is None and not self.client.loading:
            return (
                "No model is loaded: choose one in the Model menu, open one with File → Open model…, "
                "or drop a model folder on this window."
            )
        language = f"{self._language} " if self._language else ""
        return (
            f"Type a {language}sentence above: the translation and every layer's and head's attention "
            "follow as you type."
        )

    def _on_translation_failed(self, message: str) -> None:
        self.statusBar().showMessage(f"Translation failed: {message}")

    # --- view ---

    def _on_selection_changed(self) -> None:
        state = self.view_state
        self.kind_buttons.button(ATTENTION_KINDS.index(state.kind)).setChecked(True)
        if self.client.model is None and self.trace is None:
            self.selection_label.clear()  # no model yet: the layer and head counts are unknown
            return
        self.selection_label.setText(
            f"layer {state.layer + 1}/{state.n_layers()} · {head_label(state.head)} (of {state.n_heads})"
        )

    # --- walkthrough ---

    def walkthrough_selection(self) -> tuple[str, int, int, int] | None:
        """(kind, layer, head, query) the walkthrough shows: the view state's, the query token from
        ViewState.token, else the decoder step, else the first piece; the average shows head 1."""
        if self.trace is None or self.trace.qkv is None:
            return None
        state = self.view_state
        queries, _ = self.trace.axis_pieces(state.kind)
        token = state.token
        if token is not None and token.side == "query":
            query = token.index
        elif state.kind != "enc_self" and state.step is not None:
            query = state.step
        else:
            query = 0
        head = 0 if state.head == AVERAGE else int(state.head)
        return state.kind, state.layer, head, min(max(query, 0), len(queries) - 1)

    def _on_tab_changed(self, _index: int) -> None:
        if self.tabs.currentWidget() is self.walkthrough_panel and self.trace is not None and self.trace.qkv is None:
            self.request_translation()  # typing skips q/k/v; the walkthrough needs them
        else:
            self._request_walkthrough()

    def _request_walkthrough(self, *_args) -> None:
        """Ask the worker for the walkthrough, only while its tab is on screen (it costs a computation)."""
        if self.tabs.currentWidget() is not self.walkthrough_panel:
            return
        selection = self.walkthrough_selection()
        if selection is None:
            return
        self.client.walkthrough(self.trace, *selection)

    def _on_walkthrough(self, walkthrough) -> None:
        self.walkthrough = walkthrough
        self.walkthrough_panel.set_walkthrough(walkthrough)

    def _on_walkthrough_failed(self, message: str) -> None:
        self.statusBar().showMessage(f"Walkthrough failed: {message}", 8000)

    def _on_walkthrough_query(self, index: int) -> None:
        from gui.maps import TokenFocus

        self.view_state.set_token(TokenFocus("query", index))

    # --- export ---

    def _update_export_actions(self) -> None:
        has_trace = self.trace is not None
        for what, action in self.export_actions.items():
            action.setEnabled(self.walkthrough is not None if what == "walkthrough" else has_trace)
        self.export_actions["positional"].setEnabled(has_trace or self.positional_view.table.size > 0)

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

    def export_figure(self, what: str):
        """The matplotlib figure of `what` for the current selection (built by engine.render.figures)."""
        from engine.render import figures

        state = self.view_state
        if what == "walkthrough":
            from engine.render.walkthrough import walkthrough_figure

            if self.walkthrough is None:
                raise figures.ExportError("open the Walkthrough tab first: there is no walkthrough to export")
            return walkthrough_figure(self.walkthrough)
        if what == "positional" and (self.positional_view.explore.isChecked() or self.trace is None):
            view = self.positional_view
            return figures.positional_figure(
                d_model=view.width_box.value(), n_positions=view.positions.value(), base=view.base.value()
            )
        if self.trace is None:
            raise figures.ExportError("nothing to export yet: type a sentence first")
        head = "average" if state.head == AVERAGE else state.head
        if what == "head":
            return figures.head_figure(self.trace, state.kind, state.layer, head)
        if what == "grid":
            return figures.grid_figure(self.trace, state.kind)
        if what == "positional":
            return figures.positional_figure(self.trace)
        if what == "step":
            step = state.step if state.step is not None else 0
            layer = min(state.layer, self.trace.n_layers["cross"] - 1)
            return figures.step_figure(self.trace, step, layer, head)
        raise ValueError(f"unknown export {what!r}")

    def export_to(self, what: str, path: str | Path, dpi: int | None = None) -> bool:
        """Write `what` to `path` (format by suffix); the status bar says what happened, a box says why not."""
        from engine.render.figures import ExportError, save_figure

        path = Path(path)
        self.setCursor(Qt.CursorShape.WaitCursor)
        try:
            if what == "trace":
                if self.trace is None:
                    raise ExportError("nothing to export yet: type a sentence first")
                if path.suffix.lower() not in (".npz", ".json"):
                    raise ExportError(f"cannot write {path}: a trace is saved as .npz or .json")
                try:
                    self.trace.save(path)
                except OSError as error:
                    raise ExportError(f"cannot write {path}: {error.strerror or error}") from error
            else:
                fig = self.export_figure(what)
                save_figure(fig, path, dpi=(dpi or self.export_dpi) if path.suffix.lower() == ".png" else None)
        except (ExportError, ValueError) as error:
            self.statusBar().showMessage(f"Export failed: {error}", 10000)
            self._export_error(str(error))
            return False
        finally:
            self.unsetCursor()
        self.statusBar().showMessage(f"Exported {EXPORTS[what].lower()} to {path}", 8000)
        return True

    def _export_error(self, message: str) -> None:
        box = QMessageBox(QMessageBox.Icon.Warning, "Export failed", message, QMessageBox.StandardButton.Ok, self)
        box.setObjectName("exportError")
        self.last_export_error = box
        box.open()  # window-modal, not a nested event loop: tests and the worker keep running

    def set_dark(self, dark: bool) -> None:
        apply_theme(dark)

    def _style_kind_buttons(self) -> None:
        """The chosen kind in the highlight colour: Fusion's pressed look is faint in a dark palette."""
        palette = self.palette()
        highlight = palette.color(QPalette.ColorRole.Highlight).name()
        text = palette.color(QPalette.ColorRole.HighlightedText).name()
        for button in self.kind_buttons.buttons():
            button.setStyleSheet(f"QPushButton:checked {{ background: {highlight}; color: {text}; }}")

    def changeEvent(self, event: QEvent) -> None:
        if event.type() == QEvent.Type.PaletteChange and hasattr(self, "kind_buttons"):
            self._style_kind_buttons()
        super().changeEvent(event)

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
        """Stop the start timer and the worker thread (idempotent)."""
        self.text_waiting = False
        self._start_timer.stop()
        self.client.shutdown()

    def closeEvent(self, event: QCloseEvent) -> None:
        self.save_settings()
        self.shutdown()
        super().closeEvent(event)
