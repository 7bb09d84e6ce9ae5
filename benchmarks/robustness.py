"""Robustness figures: hostile text through the engine and the app, and a long typing session.

    python benchmarks/robustness.py [--model resources/models/fr-en] [--inputs 2000] [--keys 10000]

(1) text: random hostile strings (empty, whitespace, 10,000+ characters, emoji, right-to-left and
    mixed scripts, combining marks, control characters and NUL, newlines, markup, format strings)
    through Translator.trace and through the app's text box; counts uncaught exceptions and maps
    whose shape disagrees with the tokens (goal: 0 and 0).
(3) long session: simulated keystrokes through the real worker thread; requests run, results
    shown, stale results dropped, stalls of the GUI event loop measured by a 10 ms heartbeat timer
    (p99, p99.9 and the longest; goal < 100 ms), and the growth of resident memory (goal < 30 MB).
(4) model switches: the shipped models loaded in turn; resident memory must not grow with each load.
Broken model files: benchmarks/broken_models.py (and tests/engine/test_checkpoint.py case by case).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "tests"))  # the hostile pieces are the fuzz tests' own
from app_latency import make_window, run_event_loop  # noqa: E402
from engine_latency import rss_mb  # noqa: E402
from hostile_text import HOSTILE_PIECES  # noqa: E402


def hostile_text(rng: random.Random) -> str:
    if rng.random() < 0.03:
        return rng.choice([p for p in HOSTILE_PIECES if p.strip()]) * rng.randint(2000, 12000)  # 10,000+ characters
    return "".join(rng.choice(HOSTILE_PIECES) for _ in range(rng.randint(0, 8)))


def shapes_agree(trace) -> bool:
    S, T = len(trace.src_pieces), len(trace.tgt_pieces)
    return trace.enc_self.shape[2:] == (S, S) and trace.dec_self.shape[2:] == (T, T) and trace.cross.shape[2:] == (T, S)


def fuzz_engine(translator, count: int, rng: random.Random) -> tuple[int, int, int, int]:
    from engine.translator import EmptyInputError

    errors = mismatches = refused = cut = 0
    for _ in range(count):
        text = hostile_text(rng)
        try:
            trace = translator.trace(text)
        except EmptyInputError:
            refused += 1
            continue
        except Exception as error:  # what this script exists to find
            errors += 1
            print(f"    uncaught {type(error).__name__}: {error!s:.100} for {text[:40]!r}")
            continue
        mismatches += not shapes_agree(trace)
        cut += trace.truncated
    return errors, mismatches, refused, cut


def wait_idle(app, window, seconds: float = 30.0) -> None:
    deadline = time.perf_counter() + seconds
    while not window.idle and time.perf_counter() < deadline:
        run_event_loop(0.002)


def fuzz_app(app, window, count: int, rng: random.Random) -> tuple[int, int, int, int]:
    """Hostile text into the real text box; counts failures shown, grids disagreeing with tokens,
    texts cut to the maximum length, and cuts shown without the notice."""
    failures = mismatches = cut = silent_cuts = 0
    window.statusBar().messageChanged.connect(lambda m: None)
    for _ in range(count):
        window.source.setText(hostile_text(rng))
        wait_idle(app, window)
        message = window.statusBar().currentMessage()
        if message.startswith("Translation failed"):
            failures += 1
            print(f"    app: {message[:120]}")
        trace = window.trace
        if trace is not None and window.source.text().strip():
            mismatches += not shapes_agree(trace)
            cut += trace.truncated
            silent_cuts += trace.truncated and not window.sentence.truncated_notice.isVisible()
    return failures, mismatches, cut, silent_cuts


HEARTBEAT_MS = 10


class Heartbeat:
    """A timer in the GUI thread every HEARTBEAT_MS; a gap between ticks beyond that is the event
    loop stalled (busy with something else). Coarse on purpose: each tick takes the GIL."""

    def __init__(self) -> None:
        from PySide6.QtCore import Qt, QTimer

        self.stalls_ms: list[float] = []
        self._last = time.perf_counter()
        self._timer = QTimer()
        self._timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._timer.timeout.connect(self._tick)
        self._timer.start(HEARTBEAT_MS)

    def _tick(self) -> None:
        now = time.perf_counter()
        self.stalls_ms.append(max(0.0, (now - self._last) * 1000 - HEARTBEAT_MS))
        self._last = now

    def stop(self) -> list[float]:
        self._timer.stop()
        return sorted(self.stalls_ms)


def long_session(app, window, keys: int, rng: random.Random) -> dict:
    """Type `keys` keystrokes (letters, spaces, backspaces) at 5–60 ms intervals, pausing 100–400 ms
    after one word in five as a person does, with Qt's event loop running between keys; measure
    stalls of the GUI event loop and memory."""
    from PySide6.QtCore import QEvent, Qt
    from PySide6.QtGui import QKeyEvent

    worker_results = []
    window.client._worker.traceReady.connect(lambda i, t: worker_results.append(i))  # counted in the worker thread
    shown = []
    window.traceDisplayed.connect(lambda t: shown.append(t.source_text))
    requests = []
    window.client._translateRequested.connect(lambda *_: requests.append(1))  # every request sent to the worker
    window.source.clear()
    wait_idle(app, window)
    before = rss_mb()
    heartbeat = Heartbeat()
    words = "je suis étudiant et j'aime les livres le chat dort dans la maison".split()
    for _ in range(keys):
        if rng.random() < 0.1 and window.source.text():
            event_args = (Qt.Key.Key_Backspace, Qt.KeyboardModifier.NoModifier, "")
            char = ""
        else:
            char = rng.choice(" " + rng.choice(words))
            event_args = (Qt.Key.Key_unknown, Qt.KeyboardModifier.NoModifier, char)
        if len(window.source.text()) > 120:
            window.source.clear()
        for kind in (QEvent.Type.KeyPress, QEvent.Type.KeyRelease):
            app.sendEvent(window.source, QKeyEvent(kind, *event_args))
        pause = rng.uniform(0.1, 0.4) if char == " " and rng.random() < 0.2 else rng.uniform(0.005, 0.06)
        run_event_loop(pause)
    wait_idle(app, window)
    stalls = heartbeat.stop() or [0.0]
    return {
        "keystrokes": keys,
        "requests sent": len(requests),
        "traces computed": len(worker_results),
        "skipped in the worker (replaced)": len(requests) - len(worker_results),
        "results shown": len(shown),
        "stale results dropped": len(worker_results) - len(shown),
        "event-loop stall p99 ms": stalls[int(0.99 * (len(stalls) - 1))],
        "event-loop stall p99.9 ms": stalls[int(0.999 * (len(stalls) - 1))],
        "longest event-loop stall ms": stalls[-1],
        "memory growth MB": rss_mb() - before,
    }


def model_switches(app, window, count: int) -> tuple[float, float]:
    """Load the shipped models in turn `count` times, translating after each load; returns the
    growth of resident memory after the first round and after the last (a replaced model must
    be freed, not kept)."""
    loaded = []
    window.client.modelLoaded.connect(loaded.append)
    models = sorted(p for p in (ROOT / "resources" / "models").iterdir() if (p / "config.json").exists())
    before = rss_mb()
    after_first = before
    for i in range(count):
        window.load_model(models[i % len(models)])
        while len(loaded) <= i:
            run_event_loop(0.01)
        window.source.setText(f"le chat dort {i}")
        wait_idle(app, window)
        if i == len(models) - 1:
            after_first = rss_mb()
    return after_first - before, rss_mb() - before


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=ROOT / "resources" / "models" / "fr-en")
    parser.add_argument("--inputs", type=int, default=2000, help="hostile texts through the engine")
    parser.add_argument("--app-inputs", type=int, default=300, help="hostile texts through the app's text box")
    parser.add_argument("--keys", type=int, default=10_000)
    parser.add_argument("--switches", type=int, default=20, help="model loads, alternating the shipped models")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)

    from engine.translator import Translator

    translator = Translator.from_directory(args.model, "cpu")
    print(f"(1) hostile text, model {args.model.name}")
    errors, mismatches, refused, cut = fuzz_engine(translator, args.inputs, rng)
    print(
        f"    engine: {args.inputs} inputs, {errors} uncaught exceptions, {mismatches} shape mismatches "
        f"({refused} blank ones refused with EmptyInputError, {cut} cut to the maximum length)"
    )
    app, window = make_window(args.model)
    failures, app_mismatches, app_cut, silent_cuts = fuzz_app(app, window, args.app_inputs, rng)
    print(
        f"    app:    {args.app_inputs} inputs, {failures} failures shown, {app_mismatches} shape mismatches "
        f"({app_cut} cut to the maximum length, {silent_cuts} of them without the visible notice)"
    )

    print(f"(3) long session: {args.keys} keystrokes through the real worker thread")
    for name, value in long_session(app, window, args.keys, rng).items():
        print(f"    {name:<30} {value:>10.1f}" if isinstance(value, float) else f"    {name:<30} {value:>10}")
    first, last = model_switches(app, window, args.switches)
    print(
        f"(4) model switches: {args.switches} loads of the shipped models in turn, each then translating; "
        f"memory growth {first:.1f} MB after one round, {last:.1f} MB after all"
    )
    window.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
