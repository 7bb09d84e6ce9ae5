"""Engine trace latency, decoder passes per keystroke, memory, and the arithmetic floor.

    python benchmarks/engine_latency.py [--model resources/models/fr-en] [--threads N] [--key-gap-ms MS]

Prints three tables:
  (a) trace latency (tokenize → encode → decode with capture → Trace) for 5/10/20/40-piece sentences,
      p50 and p95: plain greedy (no draft); while typing (every keystroke of typing the sentence
      character by character, each with the previous keystroke's output as draft), with decoder
      passes per keystroke; and the last keystroke alone. Keystrokes follow each other at once
      unless --key-gap-ms sets a typist's pause between them: after a pause a trace is slower
      (here about twice as slow, whether the CPU slept or spun meanwhile), which is what the app meets;
  (e) resident memory after loading and after 1,000 translations;
  (f) the floors: the trace's floating-point operations / this machine's measured matmul rate,
      and the weight bytes a trace reads / this machine's measured memory read rate.
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


def measure_latency(translator, sentences: dict[int, list[str]], repeats: int, key_gap_s: float = 0.0) -> list[dict]:
    rows = []
    for bucket, texts in sentences.items():
        plain, typing, last, passes = [], [], [], []
        for text in texts:
            for _ in range(repeats):
                start = time.perf_counter()
                translator.trace(text)
                plain.append((time.perf_counter() - start) * 1000)
            for _ in range(repeats):  # type the sentence from its start, key by key
                trace = None
                for end in range(1, len(text) + 1):
                    if not text[:end].strip():
                        continue
                    draft = None if trace is None else list(trace.out_ids)
                    time.sleep(key_gap_s)
                    start = time.perf_counter()
                    trace = translator.trace(text[:end], draft=draft)
                    typing.append((time.perf_counter() - start) * 1000)
                    passes.append(trace.decoder_passes)
                last.append(typing[-1])
        rows.append(
            {
                "pieces": bucket,
                "out": statistics.mean(len(translator.trace(t).tgt_ids) for t in texts),
                "plain": plain,
                "typing": typing,
                "last": last,
                "passes": statistics.mean(passes),
            }
        )
    return rows


def weight_megabytes(model) -> tuple[float, float]:
    """MB of weights an encoder pass reads, and one decoder pass (its layers and the output matrix)."""
    encoder = sum(p.numel() * p.element_size() for p in model.encoder_layers.parameters())
    decoder = sum(p.numel() * p.element_size() for p in model.decoder_layers.parameters())
    output = model.output.weight.numel() * model.output.weight.element_size()
    return encoder / 1e6, (decoder + output) / 1e6


def read_gigabytes_per_second(seconds: float = 1.0) -> float:
    import torch

    big = torch.ones(64_000_000)  # 256 MB: far larger than any cache
    big.sum()
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        big.sum()
        count += 1
    return big.numel() * 4 * count / (time.perf_counter() - start) / 1e9


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
    parser.add_argument("--sentences", type=int, default=8, help="sentences per length bucket")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    parser.add_argument("--key-gap-ms", type=float, default=0.0, help="idle pause before each typed keystroke")
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
    gap = f", {args.key_gap_ms:.0f} ms idle before each typed key" if args.key_gap_ms else ", keys back to back"
    print(f"\n(a) trace latency in ms (tokenize → encode → decode with capture → Trace){gap}")
    print(
        f"{'pieces':>6} {'out':>5} | {'plain greedy p50':>16} {'p95':>6} | {'typing p50':>10} {'p95':>6} "
        f"{'passes/key':>10} | {'last key p50':>12} {'p95':>6}"
    )
    rows = measure_latency(translator, sentences, args.repeats, args.key_gap_ms / 1000)
    for row in rows:
        plain, typing, last = row["plain"], row["typing"], row["last"]
        print(
            f"{row['pieces']:>6} {row['out']:>5.1f} | {percentile(plain, 50):>16.1f} {percentile(plain, 95):>6.1f} | "
            f"{percentile(typing, 50):>10.1f} {percentile(typing, 95):>6.1f} {row['passes']:>10.2f} | "
            f"{percentile(last, 50):>12.1f} {percentile(last, 95):>6.1f}"
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
    bandwidth = read_gigabytes_per_second()
    encoder_mb, decoder_mb = weight_megabytes(translator.model)
    print(
        f"\n(f) floors: fp32 matmul {big:.1f} GFLOP/s (1024³), {small:.1f} GFLOP/s (20×{cfg.d_model}²); "
        f"memory read {bandwidth:.1f} GB/s; weights read per pass: encoder {encoder_mb:.1f} MB, "
        f"decoder + output {decoder_mb:.1f} MB"
    )
    print(
        f"{'pieces':>6} {'GFLOP':>6} | {'flop floor ms':>13} {'(small rate)':>12} | {'greedy p50':>10} | "
        f"{'bytes floor ms, typing':>22} {'typing p50':>10}"
    )
    for row in rows:
        flops = trace_flops(cfg, row["pieces"], round(row["out"])) / 1e9
        bytes_floor = (encoder_mb + row["passes"] * decoder_mb) / 1e3 / bandwidth * 1000
        print(
            f"{row['pieces']:>6} {flops:>6.3f} | {flops / big * 1000:>13.2f} {flops / small * 1000:>12.2f} | "
            f"{percentile(row['plain'], 50):>10.1f} | {bytes_floor:>22.2f} {percentile(row['typing'], 50):>10.1f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
