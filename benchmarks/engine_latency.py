"""Engine trace latency, decoder passes per keystroke, memory, and the arithmetic floor.

    python benchmarks/engine_latency.py [--model resources/models/fr-en] [--threads N] [--key-gap-ms MS] [--quick]

Prints three tables:
  (a) trace latency (tokenize → encode → decode with capture → Trace) in ms, p50 / p95 / max, for
      sentences of 5/10/20/40 pieces (with </s>):
      plain greedy: the whole sentence, no draft;
      typing, all keys: every keystroke of typing the sentence character by character, each with the
        previous keystroke's output as draft (prefixes of every length up to N);
      typing at N: only the keystrokes whose typed prefix has exactly N pieces, taken from sentences
        of N to N + 10 pieces; the keys before them are typed back to back and not timed, and each
        timed key follows an idle pause of --key-gap-ms (a trace after a pause is slower, whether the
        CPU slept or spun meanwhile, which is what the app meets);
  (e) resident memory after loading and after 1,000 translations;
  (f) the floors: a greedy trace's floating-point operations (one cached decoder step per output
      token, no extra forced pass: greedy traces capture the maps as they decode) / this machine's
      measured matmul rate, and the weight bytes a trace reads / this machine's memory read rate:
      for the mean typed key, and for a key that needs as many decoder passes as the p95 of the
      keys timed at N pieces (each pass reads every decoder weight and the output matrix once);
      and the p95 over the keys timed at N of their matrix products alone: each key's passes, as
      many rows each as it ran (`PassLog`), replayed as bare products with the model's weights
      (`products_ms`). A pass of several rows (a draft's check, a guess) is bound by arithmetic
      rather than by reading the weights, which the bytes floor does not see.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from engine.devices import worker_threads  # noqa: E402

THREADS_HELP = "torch threads (default: the app worker's, every core but one; the figures are the app's)"
TEST_TSV = ROOT.parent / "shared" / "data" / "tatoeba-fra-eng" / "test.tsv"
DEV_TSV = TEST_TSV.with_name("dev.tsv")
BUCKETS = (5, 10, 20, 40)


def single_sentences() -> list[str]:
    """French sides of test.tsv, then dev.tsv, that are one sentence each: a text of several is
    translated sentence by sentence (engine/sentences.py), which is other work than one sentence of
    the same length."""
    from engine.sentences import split_sentences

    lines = [
        line.split("\t")[0] for tsv in (TEST_TSV, DEV_TSV) for line in tsv.read_text(encoding="utf-8").splitlines()
    ]
    return [line for line in lines if len(split_sentences(line)) == 1]


def forget(translator) -> None:
    """Forget the sentences the translator remembers from earlier traces, so that a timed trace
    starts from nothing: it remembers a text's sentences between keystrokes, and a text timed twice
    would otherwise cost nothing the second time."""
    translator.remembered.clear()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def sentences_by_length(translator, count: int) -> dict[int, list[str]]:
    """Single sentences with each bucket's piece count (with </s>); where too few, sentences joined
    (a text of several, as a paragraph would be)."""
    lines = single_sentences()
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


def summarise(values: list[float]) -> str:
    """p50, p95 and max of `values` as a table cell."""
    return f"{percentile(values, 50):>6.1f} {percentile(values, 95):>6.1f} {max(values):>6.1f}"


def timed_trace(translator, text: str, forgetting: bool = True, **kwargs) -> tuple[float, object]:
    """ms of one trace, and the trace; from nothing unless `forgetting` is False (typing's keys)."""
    if forgetting:
        forget(translator)
    start = time.perf_counter()
    trace = translator.trace(text, **kwargs)
    return (time.perf_counter() - start) * 1000, trace


def type_all_keys(translator, text: str) -> tuple[list[float], list[int]]:
    """Type `text` key by key, each trace drafted from the previous one; ms and decoder passes per key."""
    times, passes, trace = [], [], None
    forget(translator)  # what the text's earlier keys left is the app's to use; another text's is not
    for end in range(1, len(text) + 1):
        if not text[:end].strip():
            continue
        draft = None if trace is None else list(trace.out_ids)
        elapsed, trace = timed_trace(translator, text[:end], forgetting=False, draft=draft)
        times.append(elapsed)
        passes.append(trace.decoder_passes)
    return times, passes


def prefix_ends(translator, text: str, pieces: int) -> list[int]:
    """The keystrokes (as end offsets into `text`) whose typed prefix has exactly `pieces` pieces."""
    return [end for end in range(1, len(text) + 1) if len(translator.source(text[:end]).ids) == pieces]


def type_at_prefix(
    translator, text: str, pieces: int, gap_s: float, recorded: list[list[tuple[str, int]]] | None = None
) -> tuple[list[float], list[int]]:
    """Type `text` key by key (each trace drafted from the previous one) and time only the keys whose
    prefix has `pieces` pieces, each after an idle pause of `gap_s`; the others run back to back.
    The timed keys' ms and decoder passes; each timed key's passes (`PassLog`) go to `recorded`."""
    ends = set(prefix_ends(translator, text, pieces))
    times, passes, trace = [], [], None
    forget(translator)  # what the text's earlier keys left is the app's to use; another text's is not
    for end in range(1, max(ends, default=0) + 1):
        if not text[:end].strip():
            continue
        draft = None if trace is None else list(trace.out_ids)
        if end in ends:
            time.sleep(gap_s)
            with PassLog(translator.model) as log:
                elapsed, trace = timed_trace(translator, text[:end], forgetting=False, draft=draft)
            times.append(elapsed)
            passes.append(trace.decoder_passes)
            if recorded is not None:
                recorded.append(log.passes)
        else:
            trace = translator.trace(text[:end], draft=draft)
    return times, passes


class PassLog:
    """The passes a model runs while the log is open: ("encoder" or "decoder", rows) each."""

    def __init__(self, model) -> None:
        self.model = model
        self.passes: list[tuple[str, int]] = []

    def __enter__(self) -> PassLog:
        encode, decode = self.model.encode, self.model.decode

        def logged_encode(src, *args, **kwargs):
            self.passes.append(("encoder", src.size(1)))
            return encode(src, *args, **kwargs)

        def logged_decode(tgt, *args, **kwargs):
            self.passes.append(("decoder", tgt.size(1)))
            return decode(tgt, *args, **kwargs)

        self.model.encode, self.model.decode = logged_encode, logged_decode  # this model only
        return self

    def __exit__(self, *exc) -> None:
        del self.model.encode, self.model.decode  # the class's methods again


def products_ms(model, passes: list[tuple[str, int]]) -> float:
    """ms of only the matrix products of `passes` (a `PassLog`'s, of an encoder-decoder model frozen
    for inference) with the model's own weights, run twice and the second timed: what those passes
    cost at least on this machine, whatever else a trace does. The first decoder pass after an
    encoder pass also projects the memory's cross-attention keys and values, as the cache does."""
    import torch
    import torch.nn.functional as F

    device = model.output_t.device

    def linear(x, module):
        return F.linear(x, module.weight, module.bias)

    def run() -> None:
        memory_rows = 0  # an encoder pass's rows whose keys and values no decoder pass has made yet
        for kind, rows in passes:
            x = torch.zeros(1, rows, model.cfg.d_model, device=device)
            if kind == "encoder":
                for layer in model.encoder_layers:
                    F.linear(x, *layer.self_attn.fused_qkv)
                    linear(x, layer.self_attn.w_o)
                    linear(linear(x, layer.feed_forward.w_1), layer.feed_forward.w_2)
                memory_rows = rows
                continue
            for layer in model.decoder_layers:
                F.linear(x, *layer.self_attn.fused_qkv)
                linear(x, layer.self_attn.w_o)
                linear(x, layer.cross_attn.w_q)
                if memory_rows:
                    memory = torch.zeros(1, memory_rows, model.cfg.d_model, device=device)
                    linear(memory, layer.cross_attn.w_k)
                    linear(memory, layer.cross_attn.w_v)
                linear(x, layer.cross_attn.w_o)
                linear(linear(x, layer.feed_forward.w_1), layer.feed_forward.w_2)
            memory_rows = 0
            x @ model.output_t

    with torch.inference_mode():
        run()
        synchronize(device)
        start = time.perf_counter()
        run()
        synchronize(device)
        return (time.perf_counter() - start) * 1000


def synchronize(device) -> None:
    """Wait for a GPU's queued work (nothing to wait for on the CPU)."""
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def sentences_at_least(translator, pieces: int, count: int, spare: int = 10, joined: bool = False) -> list[str]:
    """`count` single test sentences of `pieces` to `pieces + spare` pieces; with `joined`, runs of
    shorter ones joined into texts of that length instead (typing one types in its last sentence)."""
    chosen, current = [], ""
    for line in single_sentences():
        size = len(translator.source(line).ids)
        if not joined and pieces <= size <= pieces + spare:
            chosen.append(line)
        elif joined and size < pieces:  # join short ones until they are long enough
            current = f"{current} {line}".strip()
            total = len(translator.source(current).ids)
            if total >= pieces:
                if total <= pieces + spare:
                    chosen.append(current)
                current = ""
        if len(chosen) >= count:
            break
    return chosen


def measure_latency(translator, sentences: dict[int, list[str]], repeats: int, key_gap_s: float = 0.0) -> list[dict]:
    rows = []
    for bucket, texts in sentences.items():
        plain, typing, at_prefix, passes, at_prefix_passes, recorded = [], [], [], [], [], []
        for text in texts:
            plain += [timed_trace(translator, text)[0] for _ in range(repeats)]
            for _ in range(repeats):
                times, counts = type_all_keys(translator, text)
                typing += times
                passes += counts
        # single sentences of the bucket's length; where test.tsv has none (40 pieces), joined ones
        typed = sentences_at_least(translator, bucket, len(texts)) or sentences_at_least(
            translator, bucket, len(texts), joined=True
        )
        for text in typed:
            for _ in range(repeats):
                times, counts = type_at_prefix(translator, text, bucket, key_gap_s, recorded)
                at_prefix += times
                at_prefix_passes += counts
        rows.append(
            {
                "pieces": bucket,
                "out": statistics.mean(len(translator.trace(t).out_ids) for t in texts),
                "plain": plain,
                "typing": typing,
                "at_prefix": at_prefix or [float("nan")],
                "passes": statistics.mean(passes),
                "at_prefix_passes": at_prefix_passes or [0],
                "at_prefix_products": [products_ms(translator.model, p) for p in recorded] or [float("nan")],
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
    """Multiply-adds × 2 of one greedy trace: the encoder once, then T cached decoder steps (greedy
    traces capture their maps while decoding; there is no second, teacher-forced pass)."""
    d, ff, V = cfg.d_model, cfg.d_ff, cfg.tgt_vocab_size
    encoder = cfg.n_encoder_layers * (4 * S * d * d + 2 * S * S * d + 2 * S * d * ff)
    cross_kv = cfg.n_decoder_layers * 2 * S * d * d  # the memory's keys and values, once per trace

    def decoder_row(keys_self: int) -> float:
        per_layer = 4 * d * d + 2 * keys_self * d + 2 * d * d + 2 * S * d + 2 * d * ff
        return cfg.n_decoder_layers * per_layer + d * V

    return 2 * encoder + 2 * cross_kv + sum(2 * decoder_row(t + 1) for t in range(T))


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


def traces_then_rss(translator, texts: list[str], count: int) -> float:
    """Resident MB after `count` more traces of `texts` in turn."""
    for i in range(count):
        translator.trace(texts[i % len(texts)])
    return rss_mb()


def print_latency(rows: list[dict], gap_ms: float) -> None:
    gap = f"{gap_ms:.0f} ms idle before each timed key" if gap_ms else "timed keys back to back"
    print(f"\n(a) trace latency in ms, p50 / p95 / max (tokenize → encode → decode with capture → Trace); {gap}")
    print(
        f"{'pieces':>6} {'out':>5} | {'plain greedy':>20} | {'typing, all keys':>20} {'passes/key':>10} | "
        f"{'typing at N pieces':>20} {'keys':>5}"
    )
    for row in rows:
        print(
            f"{row['pieces']:>6} {row['out']:>5.1f} | {summarise(row['plain'])} | {summarise(row['typing'])} "
            f"{row['passes']:>10.2f} | {summarise(row['at_prefix'])} {len(row['at_prefix']):>5}"
        )


def print_floors(translator, rows: list[dict]) -> None:
    cfg = translator.cfg
    big = matmul_gflops(1024, 1024, 1024)
    small = matmul_gflops(20, cfg.d_model, cfg.d_model)
    bandwidth = read_gigabytes_per_second()
    encoder_mb, decoder_mb = weight_megabytes(translator.model)
    print(
        f"\n(f) floors of a greedy trace: fp32 matmul {big:.1f} GFLOP/s (1024³), {small:.1f} GFLOP/s "
        f"(20×{cfg.d_model}²); memory read {bandwidth:.1f} GB/s; weights read per pass: encoder "
        f"{encoder_mb:.1f} MB, decoder + output {decoder_mb:.1f} MB"
    )
    print(
        f"{'pieces':>6} {'GFLOP':>6} | {'flop floor ms':>13} {'(small rate)':>12} | {'greedy p50':>10} | "
        f"{'bytes floor ms, typing':>22} {'typing p50':>10} | {'passes p95 at N':>15} {'their bytes floor':>17} "
        f"{'products p95':>12} {'at N p95':>8}"
    )
    for row in rows:
        flops = trace_flops(cfg, row["pieces"], round(row["out"])) / 1e9
        bytes_floor = pass_bytes_floor_ms(encoder_mb, decoder_mb, row["passes"], bandwidth)
        passes_p95 = percentile(row["at_prefix_passes"], 95)
        print(
            f"{row['pieces']:>6} {flops:>6.3f} | {flops / big * 1000:>13.2f} {flops / small * 1000:>12.2f} | "
            f"{percentile(row['plain'], 50):>10.1f} | {bytes_floor:>22.2f} {percentile(row['typing'], 50):>10.1f} | "
            f"{passes_p95:>15} {pass_bytes_floor_ms(encoder_mb, decoder_mb, passes_p95, bandwidth):>17.2f} "
            f"{percentile(row['at_prefix_products'], 95):>12.2f} {percentile(row['at_prefix'], 95):>8.1f}"
        )


def pass_bytes_floor_ms(encoder_mb: float, decoder_mb: float, passes: float, gigabytes_per_second: float) -> float:
    """ms to read the weights of one encoder pass and `passes` decoder passes once each, at a rate
    (what a key that needs those passes costs at least, with weights too big for the cores' caches)."""
    return (encoder_mb + passes * decoder_mb) / 1e3 / gigabytes_per_second * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=ROOT / "resources" / "models" / "fr-en")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--sentences", type=int, default=8, help="sentences per length bucket")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=worker_threads(), help=THREADS_HELP)
    parser.add_argument("--key-gap-ms", type=float, default=150.0, help="idle pause before each timed typed key")
    parser.add_argument("--quick", action="store_true", help="2 sentences, 1 repeat, 50 traces for memory")
    args = parser.parse_args()
    if args.quick:
        args.sentences, args.repeats = 2, 1

    import torch

    from engine.translator import Translator

    torch.set_num_threads(args.threads)
    before_load = rss_mb()
    translator = Translator.from_directory(args.model, args.device)
    after_load = rss_mb()
    sentences = sentences_by_length(translator, args.sentences)
    translator.trace("Bonjour.")  # warm up the allocator and kernels
    print(
        f"model {args.model.name} on {translator.device}, {torch.get_num_threads()} threads, torch {torch.__version__}"
    )
    rows = measure_latency(translator, sentences, args.repeats, args.key_gap_ms / 1000)
    print_latency(rows, args.key_gap_ms)

    count = 50 if args.quick else 1000
    after_many = traces_then_rss(translator, [t for group in sentences.values() for t in group], count)
    print("\n(e) resident memory, MB")
    print(f"{'before load':>12} {'after load':>11} {f'after {count:,} traces':>19}")
    print(f"{before_load:>12.0f} {after_load:>11.0f} {after_many:>19.0f}")
    if translator.device.type == "cpu":  # the rates below are the CPU's
        print_floors(translator, rows)
    else:
        print(f"\n(f) floors: measured for the CPU only, not printed for {translator.device}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
