"""Our trace vs Hugging Face transformers' MarianMTModel doing the same work, side by side.

    pip install transformers   # benchmark-only dependency
    python benchmarks/versus_transformers.py [--model resources/models/fr-en]

Marian is configured to our model's sizes with random weights and eager attention, and runs
generate(..., output_attentions=True, return_dict_in_generate=True) for exactly as many target
tokens as our model produced for sentences of the same source length. Prints p50 per length and the
ratio ours / theirs (below 1 means we are faster), for plain greedy and for incremental typing.
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=ROOT / "resources" / "models" / "fr-en")
    parser.add_argument("--sentences", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    try:
        import transformers
    except ImportError:
        print("this benchmark needs transformers: pip install transformers", file=sys.stderr)
        return 2
    import torch

    from engine.translator import Translator

    translator = Translator.from_directory(args.model, "cpu")
    marian = marian_like(translator.cfg)
    translator.trace("Bonjour.")
    print(
        f"ours: {args.model.name}; theirs: transformers {transformers.__version__} MarianMTModel, same sizes, "
        f"random weights, eager; torch {torch.__version__}, {torch.get_num_threads()} threads"
    )
    print(
        f"{'src':>4} {'tgt':>4} | {'ours greedy':>11} {'ours incr.':>10} | {'Marian':>8} | "
        f"{'greedy/Marian':>13} {'incr./Marian':>12}"
    )
    for S, texts in sentences_by_length(translator, args.sentences).items():
        ours, incremental, T_values = [], [], []
        for text in texts:
            draft = list(translator.trace(text[:-1]).out_ids) if len(text) > 1 else None
            for _ in range(args.repeats):
                start = time.perf_counter()
                trace = translator.trace(text)
                ours.append((time.perf_counter() - start) * 1000)
                start = time.perf_counter()
                translator.trace(text, draft=draft)
                incremental.append((time.perf_counter() - start) * 1000)
            T_values.append(len(trace.out_ids))
        T = round(statistics.mean(T_values))
        theirs = time_marian(marian, S, T, args.repeats * len(texts))
        o, i, m = percentile(ours, 50), percentile(incremental, 50), percentile(theirs, 50)
        print(f"{S:>4} {T:>4} | {o:>11.1f} {i:>10.1f} | {m:>8.1f} | {o / m:>13.2f} {i / m:>12.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
