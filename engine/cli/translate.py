"""`translate` and `evaluate`: text or a test set through a model directory."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from engine.devices import DEVICE_CHOICES
from engine.paths import DEFAULT_MODEL

MAX_NEW_TOKENS_HELP = (
    "tokens a decoder-only model (GPT-2) adds to the prompt (default 20); translation models ignore it"
)


class LoadFailure(Exception):
    """A model directory that does not load; str() is the one-line message."""


def load_translator(model: Path, device: str):
    """The Translator of `model`, or LoadFailure with one line naming the problem."""
    from engine.checkpoint import ModelLoadError
    from engine.translator import Translator

    try:
        return Translator.from_directory(model, device)
    except (ModelLoadError, ValueError, OSError) as error:
        raise LoadFailure(f"cannot load model {model}: {error}") from None


def load_or_exit(model: Path, device: str):
    try:
        return load_translator(model, device)
    except LoadFailure as error:
        raise SystemExit(f"error: {error}") from None


def decoding_options(translator, beam: int | None, length_penalty: float | None, max_new_tokens: int | None = None):
    """The model's own decoding defaults (a Marian folder's num_beams, max_length, length_penalty),
    with what the command line gave over them."""
    from dataclasses import replace

    if translator.cfg.shape != "decoder-only":
        max_new_tokens = None  # a translation's length limit comes from its source
    chosen = {"beam_size": beam, "length_penalty": length_penalty, "max_new_tokens": max_new_tokens}
    try:
        return replace(translator.default_decoding, **{k: v for k, v in chosen.items() if v is not None})
    except ValueError as error:
        raise SystemExit(f"error: {error}") from None


def add_translate_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = commands.add_parser("translate", help="translate text with a model directory")
    p.add_argument("text", nargs="?", help="the sentence (omit it to read --file or standard input)")
    p.add_argument("--model", type=Path, default=DEFAULT_MODEL, help=f"model directory (default {DEFAULT_MODEL})")
    p.add_argument("--file", type=Path, help="translate one sentence per line of this file ('-' for stdin)")
    p.add_argument("--beam", type=int, help="beam size (1 = greedy; default: the model's, 1 for ours)")
    p.add_argument("--length-penalty", type=float, help="alpha (default: the model's, 0.6 for ours)")
    p.add_argument("--top-k", type=int, default=5, help="candidates recorded per step with --json")
    p.add_argument("--max-new-tokens", type=int, metavar="N", help=MAX_NEW_TOKENS_HELP)
    p.add_argument("--json", action="store_true", help="print the tokens and a summary of the trace as JSON")
    p.add_argument("--device", default="auto", choices=DEVICE_CHOICES)
    return p


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

    from engine.tokenizer import encodable
    from engine.translator import EmptyInputError, TraceOptions

    translator = load_or_exit(args.model, args.device)
    options = decoding_options(translator, args.beam, args.length_penalty, args.max_new_tokens)
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


def add_evaluate_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = commands.add_parser("evaluate", help="sacreBLEU and chrF of a model on a TSV test set")
    p.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    p.add_argument("--test", type=Path, required=True, help="TSV of sentence pairs")
    p.add_argument("--source-column", type=int, help="default: from the model's languages (fr column 0, en column 1)")
    p.add_argument("--target-column", type=int)
    p.add_argument("--limit", type=int, help="only the first N pairs")
    p.add_argument("--beam", type=int, help="beam size (default: the model's, 1 for ours)")
    p.add_argument("--length-penalty", type=float, help="alpha (default: the model's, 0.6 for ours)")
    p.add_argument("--device", default="auto", choices=DEVICE_CHOICES)
    p.add_argument("--output", type=Path, help="also write the translations, one per line")
    return p


def run_evaluate(args: argparse.Namespace) -> int:
    import time

    from engine.loops import DEGENERATE
    from engine.training.evaluate import evaluate

    translator = load_or_exit(args.model, args.device)
    options = decoding_options(translator, args.beam, args.length_penalty)
    started = time.perf_counter()
    result = evaluate(
        translator,
        args.test,
        options,
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
        f"test     {args.test} ({len(result.hypotheses)} pairs), decoding {'greedy' if options.beam_size == 1 else f'beam {options.beam_size}'}"
    )
    print(f"BLEU     {result.bleu.score:.2f}   {result.bleu_signature}")
    print(f"chrF     {result.chrf.score:.2f}   {result.chrf_signature}")
    degenerate = result.degenerate
    lines = f" (lines {', '.join(str(i + 1) for i in degenerate[:10])})" if degenerate else ""
    print(f"repeats  {len(degenerate)} outputs {DEGENERATE}{lines}")
    print(f"time     {seconds:.1f} s on {translator.device}")
    return 0
