"""Our trace vs Hugging Face transformers' MarianMTModel doing the same work, side by side.

    pip install transformers   # benchmark-only dependency
    python benchmarks/versus_transformers.py [--model resources/models/fr-en]

Marian is configured to our model's sizes with random weights and eager attention, and runs
generate(..., output_attentions=True, return_dict_in_generate=True) for exactly as many target
tokens as our model produced for sentences of the same source length, in the same process with
the same torch threads. Prints p50 and p95 per length and the ratio of p50s ours / theirs (below 1
means we are faster) for plain greedy: both sides decode from nothing, a like-for-like comparison.

The last column, "draft, best case", is NOT like for like: our trace of the full sentence is given
the previous keystroke's output as a draft (one character shorter input), which is nearly always
right, so one decoder pass confirms it; Marian gets no such help and generates token by token. It
shows what typing costs us at best, not a speed-up over transformers.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from engine_latency import ROOT, percentile, sentences_by_length  # noqa: E402


def marian_like(cfg):
    from transformers import MarianConfig, MarianMTModel

    config = MarianConfig(
        vocab_size=cfg.tgt_vocab_size,
        d_model=cfg.d_model,
        encoder_layers=cfg.n_encoder_layers,
        decoder_layers=cfg.n_decoder_layers,
        encoder_attention_heads=cfg.n_heads,
        decoder_attention_heads=cfg.n_heads,
        encoder_ffn_dim=cfg.d_ff,
        decoder_ffn_dim=cfg.d_ff,
        max_position_embeddings=cfg.max_positions,
        pad_token_id=cfg.pad_id,
        eos_token_id=cfg.eos_id,
        decoder_start_token_id=cfg.bos_id,
        scale_embedding=True,
        share_encoder_decoder_embeddings=True,
        attn_implementation="eager",
    )
    return MarianMTModel(config).eval()


def time_marian(model, S: int, T: int, repeats: int) -> list[float]:
    import torch

    input_ids = torch.randint(4, model.config.vocab_size, (1, S))
    input_ids[0, -1] = model.config.eos_token_id
    times = []
    with torch.inference_mode():
        for _ in range(repeats + 1):
            start = time.perf_counter()
            out = model.generate(
                input_ids,
                max_new_tokens=T,
                min_new_tokens=T,
                num_beams=1,
                do_sample=False,
                output_attentions=True,
                return_dict_in_generate=True,
            )
            times.append((time.perf_counter() - start) * 1000)
            # touch what a visualiser needs: every attention as numpy
            _ = [a.numpy() for a in out.encoder_attentions]
            _ = [[a.numpy() for a in step] for step in out.cross_attentions]
    return times[1:]  # the first call warms up


def compare_bucket(translator, marian, S: int, texts: list[str], repeats: int) -> dict:
    """Ours (greedy from nothing, and from the previous key's draft) and Marian's times in ms for
    sentences of S pieces, Marian generating as many tokens as ours produced on average."""
    ours, drafted, T_values = [], [], []
    for text in texts:
        draft = list(translator.trace(text[:-1]).out_ids) if len(text) > 1 else None
        for _ in range(repeats):
            translator.remembered.clear()  # from nothing: a text of several sentences is remembered
            start = time.perf_counter()
            trace = translator.trace(text)
            ours.append((time.perf_counter() - start) * 1000)
            translator.remembered.clear()
            start = time.perf_counter()
            translator.trace(text, draft=draft)
            drafted.append((time.perf_counter() - start) * 1000)
        T_values.append(len(trace.out_ids))
    T = round(statistics.mean(T_values))
    return {"S": S, "T": T, "ours": ours, "drafted": drafted, "theirs": time_marian(marian, S, T, repeats * len(texts))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=ROOT / "resources" / "models" / "fr-en")
    parser.add_argument("--sentences", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, help="torch threads for both sides (default: torch's choice)")
    parser.add_argument("--quick", action="store_true", help="1 sentence, 2 repeats")
    args = parser.parse_args()
    if args.quick:
        args.sentences, args.repeats = 1, 2
    try:
        import transformers
    except ImportError:
        print("this benchmark needs transformers: pip install transformers", file=sys.stderr)
        return 2
    import torch

    from engine.translator import Translator

    if args.threads:
        torch.set_num_threads(args.threads)
    translator = Translator.from_directory(args.model, "cpu")
    marian = marian_like(translator.cfg)
    translator.trace("Bonjour.")
    print(
        f"ours: {args.model.name}; theirs: transformers {transformers.__version__} MarianMTModel, same sizes, "
        f"random weights, eager; torch {torch.__version__}, {torch.get_num_threads()} threads; ms p50 / p95"
    )
    print(
        f"{'src':>4} {'tgt':>4} | {'ours greedy':>13} | {'Marian greedy':>13} | {'greedy/Marian':>13} | "
        f"{'ours, draft (best case)':>23}"
    )
    for S, texts in sentences_by_length(translator, args.sentences).items():
        row = compare_bucket(translator, marian, S, texts, args.repeats)
        ours, theirs, drafted = row["ours"], row["theirs"], row["drafted"]
        print(
            f"{S:>4} {row['T']:>4} | {percentile(ours, 50):>6.1f} {percentile(ours, 95):>6.1f} | "
            f"{percentile(theirs, 50):>6.1f} {percentile(theirs, 95):>6.1f} | "
            f"{percentile(ours, 50) / percentile(theirs, 50):>13.2f} | "
            f"{percentile(drafted, 50):>11.1f} {percentile(drafted, 95):>11.1f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
