"""The headline figures in one run (under 5 minutes on 2 cores), as JSON and as a table.

    python benchmarks/summary.py [--json OUT] [--device cpu|cuda] [--threads N] [--quick]

The engine runs with the app worker's threads (every core but one) unless --threads says otherwise.

What each figure is (20 = sentences or prefixes of 20 SentencePiece pieces, counting </s>):
  trace_typing_p95_ms_20   typing single test sentences of 20–30 pieces key by key (engine_latency.py
                           sentences_at_least), each key's trace drafted
                           from the previous key's output: p95 over exactly the keys whose typed
                           prefix has 20 pieces, each after a 150 ms idle pause (the keys before them
                           run back to back, untimed); benchmarks/engine_latency.py type_at_prefix
  trace_typing_passes_p95_20, typing_p95_passes_bytes_floor_ms_20
                           decoder passes of those keys (p50 beside it), and what reading the weights
                           of one encoder pass and that many decoder passes takes at this machine's
                           memory read rate: a p95 key cannot cost less on this machine
  typing_products_p95_ms_20
                           p95 over the same keys of their matrix products alone (each key's passes
                           with the rows it ran, replayed as bare products with the model's weights,
                           warm: engine_latency.py products_ms): the arithmetic no trace of these
                           keys can skip in float32 here
  trace_typing_no_pause_p95_ms_20
                           the same keys without the pause: the engine's own cost, apart from what
                           an idle pause costs this machine (benchmarks/idle_penalty.py)
  trace_typing_text_p95_ms_20
                           the same, typing texts of 20–30 pieces made of shorter test sentences
                           joined (most Tatoeba sentences are short): the keys fall in a text's last
                           sentence, the others remembered
  trace_plain_p50_ms_20    a whole 20-piece sentence, greedy, no draft (p95 in trace_plain_p95_ms_20)
  plain_out_tokens_20      mean output tokens of those traces
  trace_plain_products_p50_ms_20
                           p50 of those traces' matrix products alone (as typing_products_p95_ms_20):
                           the rest of trace_plain_p50_ms_20 is every other operation and Python
  beam4_over_greedy_20     p50 of beam-4 traces / p50 of greedy traces, same 20-piece sentences
  rss_mb_after_1000        resident MB of this (engine-only, no Qt) process after 1,000 more traces
  greedy_speedup_vs_transformers_20
                           transformers' MarianMTModel greedy generate with attentions (same sizes,
                           random weights, same process and threads) p50 / ours p50; CPU only
  key_to_pixels_p95_ms_20  the real window offscreen, keys 150 ms apart, keys whose prefix has 20
                           pieces: key event → views painted; a key never painted counts as infinite
                           (JSON null); benchmarks/app_latency.py (c)
  long_200_trace_paint_ms  a 200-piece input set at once → trace painted in every visible view (median)
  key_to_pixels_p95_ms_200 the last 12 characters of those inputs typed 150 ms apart: key → views painted
  window_s, first_translation_s
                           fresh app process → window painted / first translation painted (median of 3)
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from engine_latency import (  # noqa: E402
    ROOT,
    THREADS_HELP,
    PassLog,
    pass_bytes_floor_ms,
    percentile,
    products_ms,
    read_gigabytes_per_second,
    rss_mb,
    sentences_at_least,
    sentences_by_length,
    timed_trace,
    traces_then_rss,
    type_at_prefix,
    weight_megabytes,
)

from engine.devices import worker_threads  # noqa: E402  (engine_latency put the project on the path)

PIECES = 20
KEY_GAP_S = 0.150


def engine_figures(translator, sentences: int, repeats: int, traces: int) -> dict:
    """The engine's figures at 20 pieces, measured in this process."""
    from engine.decoding import DecodingOptions
    from engine.translator import TraceOptions

    plain_texts = sentences_by_length(translator, sentences)[PIECES]
    plain, plain_products = [], []
    for text in plain_texts:
        for _ in range(repeats):
            with PassLog(translator.model) as log:
                plain.append(timed_trace(translator, text)[0])
            plain_products.append(products_ms(translator.model, log.passes))
    beam4 = TraceOptions(decoding=DecodingOptions(beam_size=4))
    beam = [timed_trace(translator, t, options=beam4)[0] for t in plain_texts for _ in range(repeats)]
    typing, passes, recorded, back_to_back, in_text = [], [], [], [], []
    for text in sentences_at_least(translator, PIECES, 2 * sentences):
        times, counts = type_at_prefix(translator, text, PIECES, KEY_GAP_S, recorded)
        typing += times
        passes += counts
        back_to_back += type_at_prefix(translator, text, PIECES, 0.0)[0]
    for text in sentences_at_least(translator, PIECES, 2 * sentences, joined=True):
        in_text += type_at_prefix(translator, text, PIECES, KEY_GAP_S)[0]
    encoder_mb, decoder_mb = weight_megabytes(translator.model)
    return {
        "trace_typing_p50_ms_20": percentile(typing, 50),
        "trace_typing_p95_ms_20": percentile(typing, 95),
        "trace_typing_keys_20": len(typing),
        "trace_typing_passes_p50_20": percentile(passes, 50),
        "trace_typing_passes_p95_20": percentile(passes, 95),
        "typing_products_p95_ms_20": percentile([products_ms(translator.model, p) for p in recorded], 95),
        "trace_typing_no_pause_p50_ms_20": percentile(back_to_back, 50),
        "trace_typing_no_pause_p95_ms_20": percentile(back_to_back, 95),
        "trace_typing_text_p50_ms_20": percentile(in_text, 50),
        "trace_typing_text_p95_ms_20": percentile(in_text, 95),
        "trace_typing_text_keys_20": len(in_text),
        "trace_plain_p50_ms_20": percentile(plain, 50),
        "trace_plain_p95_ms_20": percentile(plain, 95),
        "trace_plain_products_p50_ms_20": percentile(plain_products, 50),
        "plain_out_tokens_20": statistics.mean(len(translator.trace(t).out_ids) for t in plain_texts),
        "beam4_over_greedy_20": percentile(beam, 50) / percentile(plain, 50),
        "rss_mb_after_1000": traces_then_rss(translator, plain_texts, traces),
        "traces_before_rss": traces,
        # after the RSS figure: the read rate's 256 MB buffer is not the engine's
        "typing_p95_passes_bytes_floor_ms_20": pass_bytes_floor_ms(
            encoder_mb, decoder_mb, percentile(passes, 95), read_gigabytes_per_second()
        ),
    }


def versus_transformers(translator, sentences: int, repeats: int) -> dict:
    """Marian's p50 / ours at 20 pieces, or nothing where transformers is missing."""
    try:
        import transformers  # noqa: F401
    except ImportError:
        return {}
    from versus_transformers import compare_bucket, marian_like

    texts = sentences_by_length(translator, sentences)[PIECES]
    row = compare_bucket(translator, marian_like(translator.cfg), PIECES, texts, repeats)
    return {"greedy_speedup_vs_transformers_20": percentile(row["theirs"], 50) / percentile(row["ours"], 50)}


def app_figures(model: Path, device: str, quick: bool) -> dict:
    """Key → pixels, the long input and cold start, from app_latency.py in a fresh process."""
    out = Path(tempfile.mkdtemp()) / "app.json"
    command = [sys.executable, str(ROOT / "benchmarks" / "app_latency.py"), "--model", str(model)]
    command += ["--device", device, "--json", str(out), *(["--quick"] if quick else [])]
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=240, env=env)
    print(result.stdout, end="")
    if result.returncode != 0:
        print(f"app_latency.py failed ({result.returncode}):\n{result.stderr[-3000:]}", file=sys.stderr)
        return {}
    return json.loads(out.read_text())


def finite(value):
    return None if isinstance(value, float) and not math.isfinite(value) else value


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=ROOT / "resources" / "models" / "fr-en")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or mps: the engine's and the app's device")
    parser.add_argument("--threads", type=int, default=worker_threads(), help=THREADS_HELP)
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--quick", action="store_true", help="a smoke run: few sentences, 100 traces for RSS")
    parser.add_argument("--no-app", action="store_true", help="skip the window's figures (no Qt)")
    args = parser.parse_args()
    started = time.perf_counter()
    sentences, repeats, traces = (2, 1, 100) if args.quick else (10, 3, 1000)

    import torch

    from engine.translator import Translator

    torch.set_num_threads(args.threads)
    translator = Translator.from_directory(args.model, args.device)
    translator.trace("Bonjour.")  # warm up
    figures: dict = {"device": str(translator.device), "torch": torch.__version__}
    figures |= {"threads": torch.get_num_threads(), "cpus": os.cpu_count(), "machine": platform.platform()}
    figures |= {"date": datetime.date.today().isoformat(), "quick": args.quick, "rss_mb_after_load": rss_mb()}
    figures |= engine_figures(translator, sentences, repeats, traces)
    if translator.device.type == "cpu":  # after the RSS figure: transformers adds its own memory
        figures |= versus_transformers(translator, sentences, repeats)
    if not args.no_app:
        figures |= app_figures(args.model, args.device, args.quick)
    figures["summary_s"] = time.perf_counter() - started
    figures = {name: finite(value) for name, value in figures.items()}
    width = max(len(name) for name in figures)
    for name, value in figures.items():
        print(f"{name:<{width}}  {value:.2f}" if isinstance(value, float) else f"{name:<{width}}  {value}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
