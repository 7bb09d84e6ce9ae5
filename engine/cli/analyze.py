"""`analyze`: which heads matter for one sentence, and what each one does (`python main.py analyze`).

    analyze "Je suis étudiant." [--model DIR] [--json]

Prints a table of every head of every kind (entropy, mean distance, diagonal, previous, sink and
maximum weight shares, importance by masking), the most important heads and the source pieces
coverage flags as possibly untranslated. With --json, one object:
{"model", "source_pieces", "output_pieces", "heads": [...], "rollout": S×S, "coverage": [S], "input_pieces",
"rollout_kind"} (BERT and GPT-2: the heads of their one kind, rollout over their input, no coverage).
Layers and heads are numbered from 1, as in `export` and the figures.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from engine.cli.translate import LoadFailure, load_translator
from engine.devices import DEVICE_CHOICES
from engine.paths import DEFAULT_MODEL

KIND_COLUMN = {"enc_self": "enc self", "dec_self": "dec self", "cross": "cross"}
COLUMNS = ("entropy", "mean_distance", "diagonal", "previous", "sink", "max_weight", "importance")
HEADINGS = ("entropy", "distance", "diagonal", "previous", "sink", "max", "importance")


def add_analyze_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = commands.add_parser(
        "analyze", help="statistics, importance by masking, rollout and coverage of every head for one sentence"
    )
    p.add_argument("text", help="the sentence to translate and analyse")
    p.add_argument("--model", type=Path, default=DEFAULT_MODEL, help=f"model directory (default {DEFAULT_MODEL})")
    p.add_argument("--device", default="auto", choices=DEVICE_CHOICES)
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    p.add_argument("--top", type=int, default=5, help="how many of the most important heads to list (default 5)")
    return p


def run_analyze(args: argparse.Namespace) -> int:
    from engine.analysis import analysis_json
    from engine.importance import analyze
    from engine.tokenizer import encodable
    from engine.translator import EmptyInputError, TraceOptions

    try:
        translator = load_translator(args.model, args.device)
    except LoadFailure as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    try:
        trace = translator.trace(encodable(args.text), TraceOptions(with_qkv=True))
    except EmptyInputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if trace.truncated:
        print(f"warning: the sentence is longer than the model's {translator.cfg.max_positions} pieces; it was cut")
    analysis = analyze(translator, trace)
    if args.json:
        print(json.dumps(analysis_json(trace, analysis), ensure_ascii=False, allow_nan=False))
        return 0
    print("\n".join(report_lines(trace, analysis, args.top)))
    return 0


def number(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def report_lines(trace, analysis, top: int) -> list[str]:
    """The table, the most important heads and the coverage, as lines of text."""
    from engine.render.labels import display_piece
    from engine.render.shapes import missing_kind

    lines = [f"{trace.model_name}: “{trace.source_text}” → “{trace.translation}”", ""]
    header = f"{'kind':<9}{'layer':>6}{'head':>5}" + "".join(f"{h:>11}" for h in HEADINGS)
    lines += [header, "-" * len(header)]
    for row in analysis.rows():
        cells = "".join(f"{number(getattr(row, name)):>11}" for name in COLUMNS)
        lines.append(f"{KIND_COLUMN[row.kind]:<9}{row.layer + 1:>6}{row.head + 1:>5}{cells}")
    lines += ["", f"the {top} most important heads (log-probability lost when the head is zeroed, nats):"]
    for rank, row in enumerate(analysis.top_heads(top), 1):
        lines.append(
            f"  {rank}. {KIND_COLUMN[row.kind]} layer {row.layer + 1} head {row.head + 1}: {number(row.importance)}"
        )
    if analysis.importance_note:
        lines.append(f"  {analysis.importance_note}")
    coverage = analysis.coverage
    if not coverage.received.size:  # BERT and GPT-2 have no cross-attention to count
        lines += ["", f"coverage: {missing_kind(trace.shape, 'cross')}"]
    else:
        pieces = [
            f"{display_piece(p)} {c:.2f}{' ⚑' if flag else ''}"
            for p, c, flag in zip(trace.src_pieces, coverage.received, coverage.flagged, strict=True)
        ]
        lines += [
            "",
            "coverage (cross-attention each source piece received, summed over the steps; ⚑ possibly untranslated):",
            "  " + "  ".join(pieces),
        ]
    seconds = analysis.milliseconds + sum(i.milliseconds for i in analysis.importance.values())
    lines += ["", f"analysis {seconds:.0f} ms on {trace.device} (importance: one batched masking pass per kind)"]
    return lines


def figure_analysis(translator, trace, what: str):
    """The Analysis an `export --what` figure draws from, or None for the other figures: importance
    needs the masking passes; rollout and value norms only the numpy part (and W^O, v)."""
    from engine.importance import analysis_stages, analyze
    from engine.render.request import ANALYSIS_FIGURES

    if what not in ANALYSIS_FIGURES:
        return None
    return analyze(translator, trace) if what == "importance" else next(analysis_stages(translator, trace))
