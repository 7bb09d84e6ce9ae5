"""Broken model directories through the real app: the message shown, the model kept, no payload run.

    python benchmarks/broken_models.py [--model resources/models/fr-en]

Loads a good model in the real main window (offscreen, real worker thread), then each broken copy
of it (built by tests/broken_model_builders.py: truncated or random weights, wrong shapes, missing tensors,
missing or corrupt tokenizer, a config lying about sizes, pickles carrying a payload, an oversized
header, a directory that is not a model …). For each it prints the status-bar line the user sees,
whether the previous model is still the one that translates (a fresh sentence is translated after
the failed load and its trace must name the good model), and whether a payload ran (its marker file).
The last row replaces the child-process tokenizer check by one that aborts, as a tokenizer file that
crashes the native library would: the app must refuse it and live on.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "tests"))
from app_latency import make_window  # noqa: E402
from broken_model_builders import BREAKERS, payload_marker, variant_name  # noqa: E402

TIMEOUT_S = 120.0


def wait_for(app, condition, seconds: float = TIMEOUT_S) -> bool:
    deadline = time.perf_counter() + seconds
    while not condition():
        if time.perf_counter() > deadline:
            return False
        app.processEvents()
        time.sleep(0.005)
    return True


def try_variant(app, window, directory: Path, good_name: str, sentence: str) -> tuple[str, bool]:
    """Load `directory` in the window; returns (the status line shown, previous model still translating)."""
    failed: list[str] = []
    loaded: list[object] = []
    on_failed = window.client.modelFailed.connect(lambda _d, message: failed.append(message))
    on_loaded = window.client.modelLoaded.connect(loaded.append)
    try:
        window.load_model(directory)
        wait_for(app, lambda: failed or loaded)
    finally:
        window.client.modelFailed.disconnect(on_failed)
        window.client.modelLoaded.disconnect(on_loaded)
    shown = (
        window.statusBar().currentMessage() if failed else f"(loaded: {loaded[0].name})" if loaded else "(no answer)"
    )
    window.source.setText(sentence)
    translated = wait_for(app, lambda: window.trace is not None and window.trace.source_text == sentence)
    still_active = (
        translated
        and not loaded
        and window.client.model is not None
        and window.client.model.name == good_name
        and window.trace.model_name == good_name
    )
    return shown, still_active


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=ROOT / "resources" / "models" / "fr-en")
    args = parser.parse_args()

    import engine.tokenizer

    logging.getLogger("gui.worker").setLevel(logging.ERROR)  # the table shows each failure's message
    app, window = make_window(args.model)
    if window.client.model is None:
        print(f"the good model {args.model} did not load: {window.statusBar().currentMessage()}")
        return 1
    good_name = window.client.model.name
    work = Path(tempfile.mkdtemp(prefix="broken-models-"))
    rows = []
    cases = [(variant_name(b), b) for b in BREAKERS] + [("tokenizer_crashes_native_library", None)]
    for index, (name, breaker) in enumerate(cases):
        directory = shutil.copytree(args.model, work / name / name)  # the payload marker goes beside it
        if breaker is not None:
            expected = breaker(directory)
            shown, active = try_variant(app, window, directory, good_name, f"Je suis étudiant numéro {index}.")
        else:  # a file that kills the library kills the child that reads it first (simulated by an abort)
            expected = "crashes reading it"
            original = engine.tokenizer.CHILD_CHECK
            engine.tokenizer.CHILD_CHECK = "import os; os.abort()"
            try:
                shown, active = try_variant(app, window, directory, good_name, f"Je suis étudiant numéro {index}.")
            finally:
                engine.tokenizer.CHILD_CHECK = original
        ran = payload_marker(directory).exists()
        names_it = expected in shown and "\n" not in shown
        rows.append((name, shown.replace(str(work), "…"), active, ran, names_it))

    width = max(len(r[0]) for r in rows)
    print(f"good model: {args.model} ({good_name}); each variant is a broken copy of it")
    print(f"{'variant':<{width}} | previous model active | payload ran | message shown (one line)")
    for name, shown, active, ran, names_it in rows:
        flag = "" if names_it else "   <-- does not name the problem"
        print(f"{name:<{width}} | {'yes' if active else 'NO':<21} | {'YES' if ran else 'no':<11} | {shown}{flag}")
    kept = sum(r[2] for r in rows)
    payloads = sum(r[3] for r in rows)
    named = sum(r[4] for r in rows)
    print(
        f"\n{len(rows)} variants: {named} messages name the problem, previous model active after {kept}, "
        f"payloads run {payloads}; app alive: {window.isVisible()}"
    )
    window.close()
    shutil.rmtree(work, ignore_errors=True)
    return 0 if (kept, named, payloads) == (len(rows), len(rows), 0) else 1


if __name__ == "__main__":
    raise SystemExit(main())
