"""The sentence box and what answers it: the translation, the hint before there is one, and the
notice that the text was cut to the model's maximum length."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QFont
from PySide6.QtWidgets import QLabel, QLineEdit, QVBoxLayout, QWidget

from engine.trace import Trace


class SentenceView(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
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
        self.coverage_notice = QLabel()  # the coverage flag of the head analysis, when it has one
        self.coverage_notice.setObjectName("coverageNotice")
        self.coverage_notice.setStyleSheet("QLabel { color: #dc3232; }")
        self.coverage_notice.hide()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        for widget in (self.source, self.translation, self.hint, self.truncated_notice, self.coverage_notice):
            layout.addWidget(widget)

    def show_trace(self, trace: Trace) -> None:
        # GPT-2's answer is the continuation of the text in the box; BERT's the text with its masks filled
        self.translation.setText(f"…{trace.translation}" if trace.shape == "decoder-only" else trace.translation)
        self.translation.show()
        self.hint.hide()
        self.truncated_notice.setVisible(trace.truncated)
        self.coverage_notice.hide()  # it belonged to the previous sentence
        self.truncated_notice.setText(
            f"⚠ The text was cut to the model's maximum length ({len(trace.src_pieces)} pieces); "
            "the end of it is not translated."
        )

    def show_coverage_flags(self, pieces: list[str]) -> None:
        """Name the source pieces that received far less cross-attention than the others (none: hidden)."""
        self.coverage_notice.setVisible(bool(pieces))
        self.coverage_notice.setText(
            f"⚠ Possibly untranslated (little cross-attention): {'  '.join(pieces)}" if pieces else ""
        )

    def show_hint(self, text: str) -> None:
        """No translation to show: `text` says what to do instead."""
        self.translation.clear()
        self.translation.hide()
        self.truncated_notice.hide()
        self.coverage_notice.hide()
        self.hint.setText(f"<i>{text}</i>")
        self.hint.show()
