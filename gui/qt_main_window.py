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
    QLabel,
    QLayout,
    QLineEdit,
    QMainWindow,
    QMenu,
    QProgressBar,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from engine.trace import ATTENTION_KINDS, Trace
from gui.maps import head_label, latency_text, token_summary
from gui.qt_head_view import QtHeadView
from gui.qt_model_view import QtModelView
from gui.qt_theme import apply_theme
from gui.qt_viewstate import ViewState
from gui.qt_worker import ModelSummary, TranslationClient

REPO_ROOT = Path(__file__).resolve().parents[1]
MODELS_ROOT = REPO_ROOT / "resources" / "models"
DEFAULT_MODEL = "fr-en"
DEBOUNCE_MS = 100  # long enough to skip the keystrokes of a word, short enough to feel live
START_DELAY_MS = 50  # let the first paint happen before the worker starts importing torch
DEVICES = ("auto", "cpu", "cuda", "mps")
LANGUAGES = {"fr": "French", "en": "English", "de": "German", "es": "Spanish"}
KIND_BUTTONS = {"enc_self": "Encoder self", "dec_self": "Decoder self (masked)", "cross": "Encoder → decoder"}


def shipped_models(root: Path = MODELS_ROOT) -> list[Path]:
    """Every directory under `root` that has a config.json, by name."""
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if (p / "config.json").is_file())


def local_directory(urls) -> Path | None:
    """The first dropped URL that is a local directory, if any."""
    for url in urls:
        if url.isLocalFile() and Path(url.toLocalFile()).is_dir():
            return Path(url.toLocalFile())
    return None


class MainWindow(QMainWindow):
    traceDisplayed = Signal(object)  # every Trace the window puts on screen, in order

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
        kinds_row.addStretch(1)
        keys = QLabel("PgUp/PgDn or Ctrl+↑/↓: layer · Ctrl+←/→ or Alt+←/→: head")
        keys.setEnabled(False)
        kinds_row.addWidget(keys)

        self.model_view = QtModelView(self.view_state)
        self.head_view = QtHeadView(self.view_state)
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(self.model_view)
        self.splitter.addWidget(self.head_view)
        self.splitter.setSizes([700, 600])

        central = QWidget()
        layout = QVBoxLayout(central)
        layout.addWidget(self.source)
        layout.addWidget(self.translation)
        layout.addWidget(self.hint)
        layout.addWidget(self.truncated_notice)
        layout.addLayout(kinds_row)
        layout.addWidget(self.splitter, 1)
        self.setCentralWidget(central)

        self.debounce = QTimer(self)
        self.debounce.setSingleShot(True)
        self.debounce.setInterval(DEBOUNCE_MS)

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
        file_menu.addSeparator()
        file_menu.addAction("&Quit", QKeySequence.StandardKey.Quit, self.close)

        self.model_menu = self.menuBar().addMenu("&Model")
        self.model_actions = QActionGroup(self)
        self.device_menu = QMenu("&Device", self)
        self.device_actions = QActionGroup(self)
        for device in DEVICES:
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
        self.debounce.timeout.connect(self.request_translation)
        self.kind_buttons.idClicked.connect(lambda index: self.view_state.set_kind(ATTENTION_KINDS[index]))
        self.view_state.selectionChanged.connect(self._on_selection_changed)
        self.head_view.mode.currentIndexChanged.connect(lambda index: self.lines_action.setChecked(index == 1))
        self.client.traceShown.connect(self.show_trace)
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
        self.dark_action.setChecked(self.settings.value("view/dark", False, type=bool))
        # blocked: the model is not loaded yet; the text is translated once it is
        self.source.blockSignals(True)
        self.source.setText(str(self.settings.value("source/text", "")))
        self.source.blockSignals(False)

    def save_settings(self) -> None:
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue("window/state", self.saveState())
        self.settings.setValue("window/splitter", self.splitter.saveState())
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
        return self.models_root / DEFAULT_MODEL

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
        self.view_state.set_model_shape(summary.n_layers, summary.n_heads)
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
        self.debounce.start()  # restarts: only a pause in typing sends a request

    def request_translation(self) -> None:
        self.debounce.stop()
        self.client.translate(self.source.text())

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
        self.traceDisplayed.emit(trace)

    def show_empty(self) -> None:
        self.trace = None
        self.model_view.set_trace(None)
        self.head_view.set_trace(None)
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
        """Stop typing timers and the worker thread (idempotent)."""
        self.debounce.stop()
        self._start_timer.stop()
        self.client.shutdown()

    def closeEvent(self, event: QCloseEvent) -> None:
        self.save_settings()
        self.shutdown()
        super().closeEvent(event)
