"""What the head analysis costs beyond the trace, for a 20-piece sentence (issue 18's budget: 30 ms).

    python benchmarks/analysis_latency.py [--model resources/models/fr-en] [--threads N] [--repeats N]

Prints one table, p50 and p95 in milliseconds: the trace itself (for scale), each numpy part of
`analyze_trace` (statistics of every head, rollout, coverage, value norms with W^O and v), then
importance by masking, one batched forced pass per kind, and the slow reference that masks one head
at a time (one kind), so the gain from batching is visible; then the arithmetic floor of the masking
passes at this machine's float32 matrix-product rate. Pause other work on the machine first.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from app_latency import long_texts  # noqa: E402
from engine_latency import THREADS_HELP  # noqa: E402

from engine.devices import worker_threads  # noqa: E402

TEST_TSV = ROOT.parent / "shared" / "data" / "tatoeba-fra-eng" / "test.tsv"
FALLBACK = "Je ne pense pas que nous devrions partir avant la fin de la réunion, mais il est déjà très tard."


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def twenty_piece_sentence(translator) -> str:
    """The first test sentence with 20 source pieces (</s> included), else a fixed long one."""
    if TEST_TSV.exists():
        for line in TEST_TSV.read_text(encoding="utf-8").splitlines():
            source = line.split("\t")[0]
            if len(translator.source(source).ids) == 20:
                return source
    return FALLBACK


def masking_flops(cfg, S: int, T: int) -> dict[str, float]:
    """Multiply-adds × 2 of the matrix products in each kind's batched masking pass (attention
    scores left out, a few per cent): rows branch off layer by layer (engine.importance), so
    L·(L+1)/2·H + L rows run through a layer, and all 1 + L·H rows through the decoder's output
    matrix. Encoder heads: the encoder branches and the decoder runs on every row, cross keys and
    values included; decoder heads: one encoder output, its keys and values computed once."""
    d, ff, V, H = cfg.d_model, cfg.d_ff, cfg.tgt_vocab_size, cfg.n_heads
    enc_layer = S * (4 * d * d + 2 * d * ff)  # per row
    dec_layer = T * (6 * d * d + 2 * d * ff)  # self q/k/v/o, cross q/o, feed-forward
    cross_kv = 2 * S * d * d
    L_enc, L_dec = cfg.n_encoder_layers, cfg.n_decoder_layers
    rows = {"enc_self": 1 + L_enc * H, "dec_self": 1 + L_dec * H, "cross": 1 + L_dec * H}
    branched = {kind: L * (L + 1) // 2 * H + L for kind, L in (("enc_self", L_enc), ("dec_self", L_dec))}
    branched["cross"] = branched["dec_self"]
    out = T * d * V
    macs = {
        "enc_self": branched["enc_self"] * enc_layer + rows["enc_self"] * L_dec * (dec_layer + cross_kv),
        "dec_self": branched["dec_self"] * dec_layer + L_dec * cross_kv,
        "cross": branched["cross"] * dec_layer + L_dec * cross_kv,
    }
    return {kind: 2 * (m + rows[kind] * out) for kind, m in macs.items()}


def timed(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    fn()  # warm up
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        runs.append((time.perf_counter() - start) * 1000)
    return statistics.median(runs), percentile(runs, 95)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, default=ROOT / "resources" / "models" / "fr-en")
    parser.add_argument("--threads", type=int, default=worker_threads(), help=THREADS_HELP)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()

    import torch

    from engine.analysis import analyze_trace, attention_rollout, kind_statistics, source_coverage
    from engine.architecture import ATTENTION_KINDS
    from engine.importance import (
        head_importance,
        head_importance_one_at_a_time,
        output_projections,
        recorded_values,
    )
    from engine.translator import TraceOptions, Translator

    torch.set_num_threads(args.threads)
    translator = Translator.from_directory(args.model, "cpu")
    model, sentence = translator.model, twenty_piece_sentence(translator)
    trace = translator.trace(sentence, TraceOptions(with_qkv=True))
    w_o, values = output_projections(model), recorded_values(model, trace)
    n = args.repeats
    rows: list[tuple[str, tuple[float, float]]] = [
        (
            "trace (greedy decode + capture, q/k/v)",
            timed(lambda: translator.trace(sentence, TraceOptions(with_qkv=True)), n),
        ),
        (
            "statistics of every head (3 kinds)",
            timed(lambda: [kind_statistics(trace.attention(k), k) for k in ATTENTION_KINDS], n),
        ),
        ("rollout (encoder)", timed(lambda: attention_rollout(trace.enc_self), n)),
        ("coverage", timed(lambda: source_coverage(trace.cross), n)),
        ("W^O of every attention (once per model)", timed(lambda: output_projections(model), n)),
        ("analyze_trace: all the numpy part", timed(lambda: analyze_trace(trace, w_o, values), n)),
    ]
    for kind in ATTENTION_KINDS:
        rows.append(
            (f"importance {kind}: one batched pass", timed(lambda kind=kind: head_importance(model, trace, kind), n))
        )
    slow = timed(lambda: head_importance_one_at_a_time(model, trace, "cross"), max(1, n // 5))
    rows.append(("importance cross, one head at a time (reference)", slow))
    paragraph = translator.trace(long_texts(translator, 200, 1)[0])  # what the app holds for a paragraph
    rows.append(
        (
            f"a {len(paragraph.src_pieces)}-piece text: values' forced pass",
            timed(lambda: recorded_values(model, paragraph), max(1, n // 2)),
        )
    )
    paragraph_values = recorded_values(model, paragraph)
    rows.append(
        (
            f"a {len(paragraph.src_pieces)}-piece text: analyze_trace",
            timed(lambda: analyze_trace(paragraph, w_o, paragraph_values), max(1, n // 2)),
        )
    )

    print(f"model {args.model.name}, {torch.get_num_threads()} torch threads, {args.repeats} repeats")
    print(f"sentence ({len(trace.src_pieces)} source pieces, {len(trace.tgt_pieces)} steps): {sentence}")
    print(f"{'stage':<52}{'p50 ms':>10}{'p95 ms':>10}")
    for name, (p50, p95) in rows:
        print(f"{name:<52}{p50:>10.2f}{p95:>10.2f}")
    beyond = rows[5][1][0] + sum(p50 for name, (p50, _) in rows if "batched" in name)
    print(f"{'beyond the trace: numpy part + 3 batched passes':<52}{beyond:>10.2f}")

    from engine_latency import matmul_gflops

    flops = masking_flops(model.cfg, len(trace.src_pieces), len(trace.tgt_pieces))
    rate = matmul_gflops(25 * len(trace.tgt_pieces), model.cfg.tgt_vocab_size, model.cfg.d_model)
    total = sum(flops.values()) / 1e9
    print(
        f"\nfloor: the masking passes' matrix products are {total:.1f} GFLOP ("
        + ", ".join(f"{kind} {f / 1e9:.1f}" for kind, f in flops.items())
        + f"); at this machine's float32 rate for the output matrix's product ({rate:.0f} GFLOPS) "
        f"they take at least {total / rate * 1000:.0f} ms, with nothing else counted"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
