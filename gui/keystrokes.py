"""Keystroke coalescing: send the text at once when the worker is free; while it works, pool the keys.

A fixed debounce delay would make every keystroke wait; sending every keystroke would queue work
that a newer one replaces anyway. Instead the first change goes out at once, the changes made
while the worker is busy pile up into one request, and that request (with the newest text) is
sent as soon as the answer to the previous one comes.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QObject, Signal

from gui.worker import DecodeRequest, TranslationClient

Wanted = tuple[str, DecodeRequest]  # the text and the decoding the window would ask for now


class KeystrokeCoalescer(QObject):
    sent = Signal()  # a request left for the worker

    def __init__(self, client: TranslationClient, wanted: Callable[[], Wanted], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._client = client
        self._wanted = wanted
        self._waiting = False  # something changed while the worker was busy: send when it answers
        self._last_sent: Wanted | None = None
        client.answered.connect(self._on_answered)

    def changed(self) -> None:
        """The text or the decoding changed: send now if the worker is free, else after its answer."""
        if self._client.translating:
            self._waiting = True
        else:
            self.send()

    def send(self) -> None:
        """Send what is wanted now, whether or not the worker is busy (a newer request replaces an older)."""
        self._waiting = False
        self._last_sent = self._wanted()
        self._client.translate(*self._last_sent)
        self.sent.emit()

    def stop(self) -> None:
        """Forget a pooled change (the window is closing)."""
        self._waiting = False

    @property
    def idle(self) -> bool:
        """No translation runs or waits (tests and benchmarks wait for this)."""
        return not self._client.translating and not self._waiting

    def _on_answered(self) -> None:
        if not self._waiting:
            return
        self._waiting = False
        if self._wanted() != self._last_sent:  # the keys typed meanwhile may have come back to the same text
            self.send()
