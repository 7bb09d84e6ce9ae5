"""The engine's command line: translate, train, evaluate. Only this module prints."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from engine.devices import DEVICE_CHOICES
from engine.paths import DEFAULT_MODEL


def add_train_parser(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("train", help="train a SentencePiece vocabulary and a model")
    p.add_argument("--train", type=Path, required=True, help="TSV of sentence pairs")
    p.add_argument("--dev", type=Path, required=True, help="TSV of held-out pairs for BLEU during training")
    p.add_argument("--out", type=Path, required=True, help="model directory to write (the best model by dev BLEU)")
    p.add_argument("--checkpoint-dir", type=Path, help="resumable training state (default runs/<out name>)")
    p.add_argument("--source-column", type=int, default=0)
    p.add_argument("--target-column", type=int, default=1)
    p.add_argument("--source-lang", default="fr")
    p.add_argument("--target-lang", default="en")
    p.add_argument("--spm", type=Path, help="reuse this SentencePiece model instead of training one")
    p.add_argument("--vocab-size", type=int, default=8000)
    p.add_argument("--spm-alpha", type=float, default=0.0, help="SentencePiece sampling α (0: off)")
    p.add_argument("--init-from", type=Path, help="start from this model directory's weights (fresh optimiser)")
    p.add_argument("--d-model", type=int, default=256)
    p.add_argument("--d-ff", type=int, default=1024)
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--encoder-layers", type=int, default=3)
    p.add_argument("--decoder-layers", type=int, default=3)
    p.add_argument("--dropout", type=float, default=0.1)
    p.add_argument("--norm", choices=["post", "pre"], default="post")
    p.add_argument("--max-tokens", type=int, default=3000, help="tokens per batch")
    p.add_argument("--lr-schedule", choices=["noam", "cosine"], default="noam")
    p.add_argument("--lr-factor", type=float, default=1.0, help="noam: factor on the paper's schedule")
    p.add_argument("--peak-lr", type=float, default=5e-4, help="cosine: rate after warm-up")
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--warmup", type=int, default=1000)
    p.add_argument("--label-smoothing", type=float, default=0.1)
    p.add_argument("--bf16", action="store_true", help="bf16 autocast")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--max-steps", type=int)
    p.add_argument("--epochs", type=int)
    p.add_argument("--time-budget", type=float, metavar="MINUTES")
    p.add_argument("--eval-every", type=int, default=1000, metavar="STEPS")
    p.add_argument("--dev-sentences", type=int, default=300)
    p.add_argument("--checkpoint-minutes", type=float, default=5.0)
    p.add_argument(
        "--average-last", type=int, default=0, metavar="N", help="also try the mean of the last N checkpoints"
    )
    p.add_argument("--resume", action="store_true")
    p.add_argument("--threads", type=int)
    p.add_argument("--no-progress", action="store_true")


def run_train(args: argparse.Namespace) -> int:
    from engine.model import ModelConfig
    from engine.training.train import TrainOptions, train

    model = ModelConfig(
        d_model=args.d_model,
        d_ff=args.d_ff,
        n_heads=args.heads,
        n_encoder_layers=args.encoder_layers,
        n_decoder_layers=args.decoder_layers,
        dropout=args.dropout,
        norm=args.norm,
    )
    options = TrainOptions(
        train_path=args.train,
        dev_path=args.dev,
        out_dir=args.out,
        checkpoint_dir=args.checkpoint_dir or Path("runs") / args.out.name,
        source_column=args.source_column,
        target_column=args.target_column,
        source_language=args.source_lang,
        target_language=args.target_lang,
        spm_model=args.spm,
        vocab_size=args.vocab_size,
        spm_alpha=args.spm_alpha,
        init_from=args.init_from,
        model=model,
        max_tokens=args.max_tokens,
        lr_schedule=args.lr_schedule,
        lr_factor=args.lr_factor,
        peak_lr=args.peak_lr,
        weight_decay=args.weight_decay,
        warmup_steps=args.warmup,
        label_smoothing=args.label_smoothing,
        bf16=args.bf16,
        seed=args.seed,
        max_steps=args.max_steps,
        epochs=args.epochs,
        time_budget_minutes=args.time_budget,
        eval_every_steps=args.eval_every,
        dev_sentences=args.dev_sentences,
        checkpoint_minutes=args.checkpoint_minutes,
        average_last=args.average_last,
        resume=args.resume,
        threads=args.threads,
        progress=not args.no_progress,
    )
    progress = train(options)
    print(f"trained {progress['step']} steps; best dev BLEU {progress['best_bleu']:.2f}; model in {args.out}")
    return 0


def add_translate_parser(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("translate", help="translate text with a model directory")
    p.add_argument("text", nargs="?", help="the sentence (omit it to read --file or standard input)")
    p.add_argument("--model", type=Path, default=DEFAULT_MODEL, help=f"model directory (default {DEFAULT_MODEL})")
    p.add_argument("--file", type=Path, help="translate one sentence per line of this file ('-' for stdin)")
    p.add_argument("--beam", type=int, default=1, help="beam size (1 = greedy)")
    p.add_argument("--length-penalty", type=float, default=0.6)
    p.add_argument("--top-k", type=int, default=5, help="candidates recorded per step with --json")
    p.add_argument("--json", action="store_true", help="print the tokens and a summary of the trace as JSON")
    p.add_argument("--device", default="auto", choices=DEVICE_CHOICES)


def load_translator(model: Path, device: str):
    from engine.checkpoint import ModelLoadError
    from engine.translator import Translator

    try:
        return Translator.from_directory(model, device)
    except (ModelLoadError, ValueError) as error:
        raise SystemExit(f"error: cannot load model {model}: {error}") from None


def trace_summary(trace) -> dict:
    """The tokens and per-map facts of a trace, small enough to read in a terminal."""
    return {
        "source": trace.source_text,
        "translation": trace.translation,
        "model": trace.model_name,
        "device": trace.device,
        "decoding": trace.decoding,
        "truncated": trace.truncated,
        "src_pieces": trace.src_pieces,
        "tgt_pieces": trace.tgt_pieces,
        "out_pieces": trace.out_pieces,
        "shapes": {kind: list(trace.attention(kind).shape) for kind in ("enc_self", "dec_self", "cross")},
        "steps": [
            {
                "chosen": piece,
                "candidates": [{"piece": p, "prob": round(float(q), 4)} for p, q in zip(pieces, probs, strict=True)],
            }
            for piece, pieces, probs in zip(trace.out_pieces, trace.topk_pieces, trace.topk_probs, strict=True)
        ],
        "timings_ms": {k: round(v, 2) for k, v in trace.timings.items()},
    }


def read_lines(path: Path) -> list[str]:
    """Lines of a UTF-8 file or of standard input; undecodable bytes become U+FFFD instead of a traceback."""
    data = sys.stdin.buffer.read() if str(path) == "-" else path.read_bytes()
    text = data.decode("utf-8", errors="replace")
    return text.split("\n")[:-1] if text.endswith("\n") else text.split("\n")


def run_translate(args: argparse.Namespace) -> int:
    import json

    from engine.decoding import DecodingOptions
    from engine.tokenizer import encodable
    from engine.translator import EmptyInputError, TraceOptions

    translator = load_translator(args.model, args.device)
    options = DecodingOptions(beam_size=args.beam, length_penalty=args.length_penalty)
    if args.text is None:
        lines = read_lines(args.file or Path("-"))
    else:
        lines = [encodable(args.text)]  # undecodable bytes in argv arrive as lone surrogates
    for number, line in enumerate(lines, 1):
        if translator.source(line).truncated if line.strip() else False:
            print(
                f"warning: line {number} is longer than the model's {translator.cfg.max_positions} pieces; it was cut",
                file=sys.stderr,
            )
    if not args.json:
        for translation in translator.translate(lines, options):
            print(translation)
        return 0
    for line in lines:
        try:
            trace = translator.trace(line, TraceOptions(decoding=options, top_k=args.top_k))
        except EmptyInputError:
            print(json.dumps({"source": line, "translation": ""}, ensure_ascii=False))
            continue
        print(json.dumps(trace_summary(trace), ensure_ascii=False))
    return 0


def add_evaluate_parser(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("evaluate", help="sacreBLEU and chrF of a model on a TSV test set")
    p.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    p.add_argument("--test", type=Path, required=True, help="TSV of sentence pairs")
    p.add_argument("--source-column", type=int, help="default: from the model's languages (fr column 0, en column 1)")
    p.add_argument("--target-column", type=int)
    p.add_argument("--limit", type=int, help="only the first N pairs")
    p.add_argument("--beam", type=int, default=1)
    p.add_argument("--length-penalty", type=float, default=0.6)
    p.add_argument("--device", default="auto", choices=DEVICE_CHOICES)
    p.add_argument("--output", type=Path, help="also write the translations, one per line")


def run_evaluate(args: argparse.Namespace) -> int:
    import time

    from engine.decoding import DecodingOptions
    from engine.training.evaluate import evaluate

    translator = load_translator(args.model, args.device)
    started = time.perf_counter()
    result = evaluate(
        translator,
        args.test,
        DecodingOptions(beam_size=args.beam, length_penalty=args.length_penalty),
        source_column=args.source_column,
        target_column=args.target_column,
        limit=args.limit,
    )
    seconds = time.perf_counter() - started
    if args.output:
        from engine.files import write_atomic

        write_atomic(args.output, ("\n".join(result.hypotheses) + "\n").encode("utf-8"))
    print(
        f"model    {args.model} ({translator.loaded.info.source_language} → {translator.loaded.info.target_language})"
    )
    print(
        f"test     {args.test} ({len(result.hypotheses)} pairs), decoding {'greedy' if args.beam == 1 else f'beam {args.beam}'}"
    )
    print(f"BLEU     {result.bleu.score:.2f}   {result.bleu_signature}")
    print(f"chrF     {result.chrf.score:.2f}   {result.chrf_signature}")
    print(f"time     {seconds:.1f} s on {translator.device}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true")
    commands = parser.add_subparsers(dest="command", required=True)
    add_translate_parser(commands)
    add_train_parser(commands)
    add_evaluate_parser(commands)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    handlers = {"translate": run_translate, "train": run_train, "evaluate": run_evaluate}
    return handlers[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
