"""Engine trace latency, decoder passes per keystroke, memory, and the arithmetic floor.

    python benchmarks/engine_latency.py [--model resources/models/fr-en] [--threads N]

Prints three tables:
  (a) trace latency (tokenize → decode → forced pass → Trace) for 5/10/20/40-piece sentences:
      plain greedy vs incremental (the previous keystroke's output as draft), p50 and p95;
  (e) resident memory after loading and after 1,000 translations;
  (f) the floor: the trace's floating-point operations / this machine's measured matmul rate.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
TEST_TSV = ROOT.parent / "shared" / "data" / "tatoeba-fra-eng" / "test.tsv"
BUCKETS = (5, 10, 20, 40)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def sentences_by_length(translator, count: int) -> dict[int, list[str]]:
    """Source sentences whose piece count (with </s>) is closest to each bucket; long ones are joined."""
    lines = [line.split("\t")[0] for line in TEST_TSV.read_text(encoding="utf-8").splitlines()]
    by_length: dict[int, list[str]] = {}
    for line in lines:
        by_length.setdefault(len(translator.source(line).ids), []).append(line)
    chosen = {}
    for bucket in BUCKETS:
        pool = by_length.get(bucket, [])
        if len(pool) < count:  # join shorter sentences until they reach the bucket
            joined, current = [], ""
            for line in lines:
                current = f"{current} {line}".strip()
                if len(translator.source(current).ids) >= bucket:
                    joined.append(current)
                    current = ""
                if len(joined) >= count:
                    break
            pool = pool + joined
        chosen[bucket] = pool[:count]
    return chosen


def measure_latency(translator, sentences: dict[int, list[str]], repeats: int) -> list[tuple]:
    rows = []
    for bucket, texts in sentences.items():
        plain, incremental, passes, typed_passes = [], [], [], []
        for text in texts:
            previous = translator.trace(text[:-1]) if len(text) > 1 else None
            draft = list(previous.out_ids) if previous else None
            for _ in range(repeats):
                start = time.perf_counter()
                translator.trace(text)
                plain.append((time.perf_counter() - start) * 1000)
                start = time.perf_counter()
                trace = translator.trace(text, draft=draft)
                incremental.append((time.perf_counter() - start) * 1000)
            passes.append(trace.decoder_passes)
            typed = None  # decoder passes per keystroke while typing the sentence from its start
            for end in range(1, len(text) + 1):
                if text[:end].strip():
                    typed = translator.trace(text[:end], draft=None if typed is None else list(typed.out_ids))
                    typed_passes.append(typed.decoder_passes)
        tgt = statistics.mean(len(translator.trace(t).tgt_ids) for t in texts)
        rows.append(
            (
                bucket,
                tgt,
                percentile(plain, 50),
                percentile(plain, 95),
                percentile(incremental, 50),
                percentile(incremental, 95),
                statistics.mean(passes),
                statistics.mean(typed_passes),
            )
        )
    return rows


def trace_flops(cfg, S: int, T: int) -> float:
    """Multiply-adds × 2 of one trace: greedy decode with the cache (T steps) + one forced pass."""
    d, ff, V = cfg.d_model, cfg.d_ff, cfg.tgt_vocab_size
    encoder = cfg.n_encoder_layers * (4 * S * d * d + 2 * S * S * d + 2 * S * d * ff)
    cross_kv = cfg.n_decoder_layers * 2 * S * d * d  # computed once per pass

    def decoder_rows(rows: int, keys_self: float) -> float:
        per_layer = (
            4 * rows * d * d + 2 * rows * keys_self * d + 2 * rows * d * d + 2 * rows * S * d + 2 * rows * d * ff
        )
        return cfg.n_decoder_layers * per_layer + rows * d * V

    decode = 2 * encoder + 2 * cross_kv
    decode += sum(2 * decoder_rows(1, t + 1) for t in range(T))  # one new row per step
    forced = 2 * encoder + 2 * cross_kv + 2 * decoder_rows(T, (T + 1) / 2)
    return decode + forced


def matmul_gflops(n: int, m: int, k: int, seconds: float = 1.0) -> float:
    import torch

    a, b = torch.randn(n, k), torch.randn(k, m)
    for _ in range(3):
        a @ b
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        count += 1
    return 2 * n * m * k * count / (time.perf_counter() - start) / 1e9


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=ROOT / "resources" / "models" / "fr-en")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--sentences", type=int, default=10, help="sentences per length bucket")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    args = parser.parse_args()

    import torch

    from engine.translator import Translator

    if args.threads:
        torch.set_num_threads(args.threads)
    before_load = rss_mb()
    translator = Translator.from_directory(args.model, args.device)
    after_load = rss_mb()
    sentences = sentences_by_length(translator, args.sentences)
    translator.trace("Bonjour.")  # warm up the allocator and kernels

    print(
        f"model {args.model.name} on {translator.device}, {torch.get_num_threads()} threads, torch {torch.__version__}"
    )
    print("\n(a) trace latency in ms (tokenize → decode → forced pass → Trace)")
    print(
        f"{'pieces':>6} {'out':>5} | {'greedy p50':>10} {'p95':>7} | {'incr. p50':>10} {'p95':>7} | "
        f"{'passes (last key)':>17} {'passes/key typing':>17}"
    )
    rows = measure_latency(translator, sentences, args.repeats)
    for bucket, tgt, p50, p95, i50, i95, passes, typed in rows:
        print(
            f"{bucket:>6} {tgt:>5.1f} | {p50:>10.1f} {p95:>7.1f} | {i50:>10.1f} {i95:>7.1f} | {passes:>17.1f} {typed:>17.2f}"
        )

    texts = [t for group in sentences.values() for t in group]
    for i in range(1000):
        translator.trace(texts[i % len(texts)])
    after_many = rss_mb()
    print("\n(e) resident memory, MB")
    print(f"{'before load':>12} {'after load':>11} {'after 1,000 traces':>19}")
    print(f"{before_load:>12.0f} {after_load:>11.0f} {after_many:>19.0f}")

    cfg = translator.cfg
    big = matmul_gflops(1024, 1024, 1024)
    small = matmul_gflops(20, cfg.d_model, cfg.d_model)
    print(
        f"\n(f) arithmetic floor: measured fp32 matmul {big:.1f} GFLOP/s (1024³), {small:.1f} GFLOP/s (20×{cfg.d_model}²)"
    )
    print(
        f"{'pieces':>6} {'GFLOP':>7} | {'floor ms (1024³ rate)':>22} {'floor ms (small rate)':>22} | {'measured greedy p50':>19}"
    )
    for bucket, tgt, p50, *_ in rows:
        flops = trace_flops(cfg, bucket, round(tgt)) / 1e9
        print(f"{bucket:>6} {flops:>7.3f} | {flops / big * 1000:>22.2f} {flops / small * 1000:>22.2f} | {p50:>19.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
