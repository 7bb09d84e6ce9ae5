"""Keystroke to pixels in the real app (offscreen), and cold start of the real app.

    python benchmarks/app_latency.py [--model resources/models/fr-en] [--device auto|cpu|cuda]

(c) A 20-piece sentence is typed character by character into the real window at a fixed gap
    between keys. For every keystroke: the time from the key event until the views have painted a
    trace that includes it (key → pixels; a key typed while the worker is busy waits for the
    running translation and then rides on the next request), and from the moment a request left
    for the worker until its trace was painted (request → pixels).
(d) Cold start in a fresh process: process start → window painted → first translation painted.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from engine_latency import percentile  # noqa: E402

SENTENCE = "Je suis étudiant à l'université et j'aime beaucoup lire des livres le soir."  # 20 pieces with </s>


def run_event_loop(seconds: float) -> None:
    """Let Qt's own event loop run for `seconds`, as the app's does between keys. Polling with
    processEvents() and sleep() instead takes the GIL a thousand times a second from the worker."""
    from PySide6.QtCore import QEventLoop, QTimer

    loop = QEventLoop()
    QTimer.singleShot(max(0, round(seconds * 1000)), loop.quit)
    loop.exec()


def type_and_time(window, app, text: str, gap_s: float) -> tuple[list[float], list[float], int]:
    """Type `text` one key per `gap_s`; returns key→pixels and request→pixels times in ms, and the
    number of traces painted."""
    from PySide6.QtCore import QEvent, Qt
    from PySide6.QtGui import QKeyEvent

    keys: list[tuple[str, float]] = []
    request_times: dict[str, float] = {}
    painted: list[tuple[str, float]] = []

    def on_request() -> None:
        request_times[window.source.text()] = time.perf_counter()

    def on_shown(trace) -> None:
        window.centralWidget().repaint()  # synchronous: the views have painted when this returns
        painted.append((trace.source_text, time.perf_counter()))

    window.translationRequested.connect(on_request)
    window.traceDisplayed.connect(on_shown)
    window.source.setFocus()
    for char in text:
        # a real key event carrying the character (QTest.keyClicks only knows ASCII keys)
        pressed = time.perf_counter()
        for kind in (QEvent.Type.KeyPress, QEvent.Type.KeyRelease):
            app.sendEvent(window.source, QKeyEvent(kind, Qt.Key.Key_unknown, Qt.KeyboardModifier.NoModifier, char))
        keys.append((window.source.text(), pressed))
        run_event_loop(pressed + gap_s - time.perf_counter())
    deadline = time.perf_counter() + 5
    while (not painted or painted[-1][0] != text) and time.perf_counter() < deadline:
        run_event_loop(0.01)
    window.translationRequested.disconnect(on_request)
    window.traceDisplayed.disconnect(on_shown)
    window.source.clear()
    key_ms = []
    for typed, pressed in keys:  # typing only appends: the first later paint of a longer text shows this key
        shown = next((t for s, t in painted if t >= pressed and s.startswith(typed)), None)
        if shown is not None and typed.strip():
            key_ms.append((shown - pressed) * 1000)
    request_ms = [(t - request_times[s]) * 1000 for s, t in painted if s in request_times]
    return key_ms, request_ms, len(painted)


def make_window(model: Path, device: str = "auto"):
    """The real main window, offscreen, with private settings; returns once its model is loaded."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    from gui.main_window import MainWindow

    app = QApplication.instance() or QApplication([])
    settings = QSettings(str(Path(tempfile.mkdtemp()) / "bench.ini"), QSettings.Format.IniFormat)
    window = MainWindow(settings=settings, model_dir=model, device=device)
    loaded = []
    window.client.modelLoaded.connect(loaded.append)
    window.show()
    deadline = time.perf_counter() + 120
    while not loaded and time.perf_counter() < deadline:
        run_event_loop(0.01)
    return app, window


def keystroke_to_pixels(model: Path, rounds: int, device: str) -> None:
    app, window = make_window(model, device)
    print(f"\n(c) keystroke → pixels, offscreen, real window, model {model.name} on {window.client.model.device}")
    print(f"    sentence: {SENTENCE!r}, typed {rounds} times per row")
    print(
        f"{'key gap':>8} | {'keys':>5} {'painted':>8} | {'key→pixels p50':>15} {'p95':>7} | {'request→pixels p50':>19} {'p95':>7}"
    )
    for gap_s in (0.25, 0.12, 0.06):
        keys, requests, shown = [], [], 0
        for _ in range(rounds):
            k, r, n = type_and_time(window, app, SENTENCE, gap_s)
            keys += k
            requests += r
            shown += n
        print(
            f"{gap_s * 1000:>6.0f}ms | {len(keys):>5} {shown:>8} | {percentile(keys, 50):>15.1f} "
            f"{percentile(keys, 95):>7.1f} | {percentile(requests, 50):>19.1f} {percentile(requests, 95):>7.1f}"
        )
    window.close()


COLD_START_CHILD = r"""
import json, os, sys, time
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
marks = {"python_ready": time.time()}
sys.path.insert(0, sys.argv[1])
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QApplication
from gui.main_window import MainWindow
app = QApplication([])
window = MainWindow(settings=QSettings(sys.argv[3], QSettings.Format.IniFormat), model_dir=sys.argv[2], device=sys.argv[4])
window.show()
app.processEvents()
window.repaint()
marks["window_painted"] = time.time()
marks["torch_loaded_at_paint"] = "torch" in sys.modules
def shown(trace):
    window.repaint()
    marks["first_translation"] = time.time()
    print(json.dumps(marks)); window.close(); app.quit()
window.traceDisplayed.connect(shown)
def type_when_loaded(summary):
    marks["model_loaded"] = time.time()
    window.source.setText("Je suis étudiant.")  # the window sends it at once
window.client.modelLoaded.connect(type_when_loaded)
app.exec()
"""


def cold_start(model: Path, runs: int, device: str) -> None:
    print("\n(d) cold start, fresh process each run (ms after the process was spawned)")
    print(f"{'run':>4} | {'window painted':>14} {'model loaded':>13} {'first translation':>18} | torch at paint")
    for run in range(runs):
        settings = Path(tempfile.mkdtemp()) / "cold.ini"
        spawned = time.time()
        result = subprocess.run(
            [sys.executable, "-c", COLD_START_CHILD, str(ROOT), str(model), str(settings), device],
            capture_output=True,
            text=True,
            timeout=300,
            env={**os.environ, "QT_QPA_PLATFORM": "offscreen"},
        )
        marks = json.loads(result.stdout.strip().splitlines()[-1])
        window, loaded, first = (
            (marks[k] - spawned) * 1000 for k in ("window_painted", "model_loaded", "first_translation")
        )
        print(f"{run + 1:>4} | {window:>14.0f} {loaded:>13.0f} {first:>18.0f} | {marks['torch_loaded_at_paint']}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=ROOT / "resources" / "models" / "fr-en")
    parser.add_argument("--rounds", type=int, default=3, help="times the sentence is typed per setting")
    parser.add_argument("--cold-runs", type=int, default=3)
    parser.add_argument("--device", default="auto", help="cpu, cuda, mps or auto (the app's choice)")
    args = parser.parse_args()
    cold_start(args.model, args.cold_runs, args.device)
    keystroke_to_pixels(args.model, args.rounds, args.device)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
