"""Keystroke to pixels in the real app (offscreen), a long input's trace to pixels, and cold start.

    python benchmarks/app_latency.py [--model resources/models/fr-en] [--device auto|cpu|cuda] [--json OUT] [--quick]
                                     [--tab Analysis]

(c) Key → pixels at a fixed prefix length: test sentences of 20 to 30 pieces; each is set in the
    box up to the key before its typed prefix first has 20 pieces (and painted), then typed on
    character by character into the real window, one key per --key-gap-ms, through the last key
    whose prefix has 20 pieces. Timed are exactly the keys whose prefix has 20 pieces (with </s>):
    from the key event until the views have painted a trace that includes it (a key typed while
    the worker is busy waits for the running translation and then rides on the next request).
    A key not painted within 2 s of the last key counts as never painted: its time is infinite,
    so it raises p95 and max rather than vanishing. Reported: p50, p95, max and the unpainted count.
(c') A 200-piece input (test sentences joined) set in the box at once: edit → trace painted in
    every visible view, alternating two such texts so that each is a new translation.
(d) Cold start in a fresh process: process start → window painted → first translation painted.
    As a user's launches run: with Python's bytecode cache of the project's sources, which the
    first launch after `pip install -e .` writes (PYTHONDONTWRITEBYTECODE is dropped for the app's
    process); that first launch, which compiles them (about 0.1 s more here), is run first and
    printed as run 0, not counted.

--tab Analysis times (c) and (c') with the Analysis tab open: after each trace is painted the worker
computes the head analysis (importance by masking, 100–170 ms of work on 2 cores), and a key typed
meanwhile stops it at the next layer or scoring piece: the keys should cost what they cost with the tab closed.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from engine_latency import TEST_TSV, percentile, prefix_ends, sentences_at_least  # noqa: E402

PREFIX_PIECES = 20
LONG_PIECES = 200
LONG_TYPED = 12  # characters typed at the end of each long text, each key timed
NEVER_PAINTED_S = 2.0  # after the last key


def run_event_loop(seconds: float) -> None:
    """Let Qt's own event loop run for `seconds`, as the app's does between keys. Polling with
    processEvents() and sleep() instead takes the GIL a thousand times a second from the worker."""
    from PySide6.QtCore import QEventLoop, QTimer

    loop = QEventLoop()
    QTimer.singleShot(max(0, round(seconds * 1000)), loop.quit)
    loop.exec()


class PaintLog:
    """Every trace the window displays, with the moment its views had painted it."""

    def __init__(self, window) -> None:
        self.window = window
        self.painted: list[tuple[str, float]] = []
        window.traceDisplayed.connect(self._on_shown)

    def _on_shown(self, trace) -> None:
        self.window.centralWidget().repaint()  # synchronous: the views have painted when this returns
        self.painted.append((trace.source_text, time.perf_counter()))

    def shown_at(self, typed: str, since: float) -> float | None:
        """When a trace of `typed` or of a longer text (typing only appends) was first painted after `since`."""
        return next((t for text, t in self.painted if t >= since and text.startswith(typed)), None)

    def wait_for(self, text: str, seconds: float) -> None:
        deadline = time.perf_counter() + seconds
        while not (self.painted and self.painted[-1][0] == text) and time.perf_counter() < deadline:
            run_event_loop(0.01)

    def close(self) -> None:
        self.window.traceDisplayed.disconnect(self._on_shown)


def send_key(app, widget, char: str) -> None:
    """A real key event carrying the character (QTest.keyClicks only knows ASCII keys)."""
    from PySide6.QtCore import QEvent, Qt
    from PySide6.QtGui import QKeyEvent

    for kind in (QEvent.Type.KeyPress, QEvent.Type.KeyRelease):
        app.sendEvent(widget, QKeyEvent(kind, Qt.Key.Key_unknown, Qt.KeyboardModifier.NoModifier, char))


def type_at_prefix(window, app, log: PaintLog, text: str, ends: list[int], gap_s: float) -> list[float]:
    """Key → pixels in ms of the keys ending at `ends` (math.inf: never painted), typing from ends[0]."""
    window.source.setText(text[: ends[0] - 1])
    log.wait_for(text[: ends[0] - 1], 30)
    timed: list[tuple[str, float]] = []
    for end in range(ends[0], ends[-1] + 1):
        pressed = time.perf_counter()
        send_key(app, window.source, text[end - 1])
        if end in ends:
            timed.append((text[:end], pressed))
        run_event_loop(pressed + gap_s - time.perf_counter())
    log.wait_for(text[: ends[-1]], NEVER_PAINTED_S)
    times = []
    for typed, pressed in timed:
        shown = log.shown_at(typed, pressed)
        times.append(math.inf if shown is None else (shown - pressed) * 1000)
    return times


def long_texts(translator, pieces: int, count: int) -> list[str]:
    """`count` different texts of test sentences joined, cut at a word to at most `pieces` pieces."""
    lines = [line.split("\t")[0] for line in TEST_TSV.read_text(encoding="utf-8").splitlines()]
    texts, current = [], ""
    for line in lines:
        current = f"{current} {line}".strip()
        if len(translator.source(current).ids) > pieces:
            words = current.split()
            while len(translator.source(" ".join(words)).ids) > pieces:
                words.pop()
            texts.append(" ".join(words))
            current = ""
            if len(texts) == count:
                break
    return texts


def long_to_pixels(window, log: PaintLog, texts: list[str], runs: int) -> list[float]:
    """Edit → pixels in ms of setting each long text at once (math.inf: not painted within 30 s).
    Every run sets a text the app has not seen: the engine remembers sentences it translated."""
    times = []
    for run in range(runs):
        text = texts[run]
        start = time.perf_counter()
        window.source.setText(text)
        log.wait_for(text, 30)
        shown = log.shown_at(text, start)
        times.append(math.inf if shown is None else (shown - start) * 1000)
    return times


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


def cell(values: list[float]) -> str:
    return f"{percentile(values, 50):>7.1f} {percentile(values, 95):>7.1f} {max(values):>7.1f}"


def open_tab(window, name: str) -> None:
    """Make the detail tab called `name` the current one (as a click on it would)."""
    names = [window.tabs.tabText(i) for i in range(window.tabs.count())]
    if name not in names:
        raise SystemExit(f"no tab {name!r}; the window has {', '.join(names)}")
    window.tabs.setCurrentIndex(names.index(name))


def window_figures(model: Path, rounds: int, long_runs: int, gap_ms: float, device: str, tab: str = "") -> dict:
    """Key → pixels at a 20-piece prefix, the long input's edit → pixels, and keys typed at its end,
    printed and returned; with the detail tab called `tab` open, if given."""
    from engine.translator import Translator

    counter = Translator.from_directory(model, "cpu")  # only to count pieces
    sentences = sentences_at_least(counter, PREFIX_PIECES, rounds)
    long = long_texts(counter, LONG_PIECES, long_runs)  # a new text each run: no sentence of it remembered
    app, window = make_window(model, device)
    if tab:
        open_tab(window, tab)
    log = PaintLog(window)
    print(
        f"\n(c) key → pixels at a {PREFIX_PIECES}-piece prefix, offscreen, real window, on {window.client.model.device}"
        + (f", the {tab} tab open" if tab else "")
    )
    print(f"{'key gap':>8} | {'keys':>5} {'unpainted':>9} | {'p50':>7} {'p95':>7} {'max':>7}  ms")
    keys: list[float] = []
    for sentence in sentences:
        ends = prefix_ends(counter, sentence, PREFIX_PIECES)
        if ends:
            keys += type_at_prefix(window, app, log, sentence, ends, gap_ms / 1000)
    unpainted = sum(math.isinf(k) for k in keys)
    print(f"{gap_ms:>6.0f}ms | {len(keys):>5} {unpainted:>9} | {cell(keys)}")
    long_ms = long_to_pixels(window, log, long, long_runs)
    print(
        f"\n(c') a {LONG_PIECES}-piece input (new sentences each run) set at once → trace painted, {long_runs} runs:"
        f" p50 p95 max {cell(long_ms)} ms"
    )
    long_keys = []  # the last characters of each long text typed after the rest: a paragraph's last sentence
    for text in long:
        long_keys += type_at_prefix(
            window, app, log, text, list(range(len(text) - LONG_TYPED + 1, len(text) + 1)), gap_ms / 1000
        )
    print(
        f"(c'') its last {LONG_TYPED} characters typed, {gap_ms:.0f} ms apart, {len(long_keys)} keys: key → pixels"
        f" p50 p95 max {cell(long_keys)} ms, {sum(math.isinf(k) for k in long_keys)} unpainted"
    )
    log.close()
    window.close()
    return {
        "key_to_pixels_p50_ms_20": percentile(keys, 50),
        "key_to_pixels_p95_ms_20": percentile(keys, 95),
        "key_to_pixels_max_ms_20": max(keys),
        "keys_timed_20": len(keys),
        "keys_unpainted_20": unpainted,
        "long_200_trace_paint_ms": statistics.median(long_ms),
        "key_to_pixels_p95_ms_200": percentile(long_keys, 95),
        "key_to_pixels_p50_ms_200": percentile(long_keys, 50),
        "long_200_trace_paint_max_ms": max(long_ms),
    }


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
# as gui/app.py does: left to the interpreter's exit, Qt objects die in an arbitrary order
import shiboken6
window.shutdown()
shiboken6.delete(window)
"""


def cold_start(model: Path, runs: int, device: str) -> dict:
    """Seconds from spawning a fresh app process to its window painted and its first translation
    painted (medians of `runs`), printed run by run."""
    print("\n(d) cold start, fresh process each run (ms after the process was spawned; run 0 not counted)")
    print(f"{'run':>4} | {'window painted':>14} {'model loaded':>13} {'first translation':>18} | torch at paint")
    windows, firsts = [], []
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # a user's Python caches the compiled sources
    for run in range(runs + 1):
        settings = Path(tempfile.mkdtemp()) / "cold.ini"
        spawned = time.time()
        result = subprocess.run(
            [sys.executable, "-c", COLD_START_CHILD, str(ROOT), str(model), str(settings), device],
            capture_output=True,
            text=True,
            timeout=300,
            env=env,
        )
        if result.returncode != 0:
            raise SystemExit(f"the cold-start app exited with {result.returncode}:\n{result.stderr[-2000:]}")
        marks = json.loads(result.stdout.strip().splitlines()[-1])
        window, loaded, first = (
            (marks[k] - spawned) * 1000 for k in ("window_painted", "model_loaded", "first_translation")
        )
        print(f"{run:>4} | {window:>14.0f} {loaded:>13.0f} {first:>18.0f} | {marks['torch_loaded_at_paint']}")
        if run > 0:  # run 0 wrote the bytecode cache, if it was missing: a first launch after installing
            windows.append(window / 1000)
            firsts.append(first / 1000)
    return {"window_s": statistics.median(windows), "first_translation_s": statistics.median(firsts)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=ROOT / "resources" / "models" / "fr-en")
    parser.add_argument("--rounds", type=int, default=30, help="sentences typed (each gives 2 to 6 timed keys)")
    parser.add_argument("--long-runs", type=int, default=6, help="times a 200-piece input is set")
    parser.add_argument("--cold-runs", type=int, default=3)
    parser.add_argument("--key-gap-ms", type=float, default=150.0)
    parser.add_argument("--device", default="auto", help="cpu, cuda, mps or auto (the app's choice)")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    parser.add_argument("--quick", action="store_true", help="2 sentences, 2 long runs, 1 cold start")
    parser.add_argument(
        "--tab", default="", help="the detail tab open while typing, e.g. Analysis (default: the first)"
    )
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.long_runs, args.cold_runs = 2, 2, 1
    figures = cold_start(args.model, args.cold_runs, args.device)
    figures |= window_figures(args.model, args.rounds, args.long_runs, args.key_gap_ms, args.device, args.tab)
    if args.json:  # infinite (never painted) is written as null
        args.json.write_text(json.dumps({k: v if math.isfinite(v) else None for k, v in figures.items()}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
