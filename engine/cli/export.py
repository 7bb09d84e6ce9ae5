"""`export`: attention figures and trace data, headless (`python main.py export`).

    export "Je suis étudiant." --kind cross --layer 2 --head 5 --out fig.pdf
    export --batch sentences.txt --out-dir figures/ --what grid --kind enc_self

Layers, heads and steps are numbered from 1 on the command line, as in the figures' titles
("layer 2/3"); engine.render.figures takes 0-based indices.

Batch mode writes one figure per non-empty line, named by line number (``007-head.png`` for line 7),
and one ``traces.npz`` holding every trace; see `save_batch_traces` for its layout and
`load_batch_traces` to read it back.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from engine.architecture import ATTENTION_KINDS, SHAPE_KINDS, stack_of
from engine.cli.analyze import figure_analysis
from engine.cli.translate import MAX_NEW_TOKENS_HELP, LoadFailure, load_translator
from engine.devices import DEVICE_CHOICES
from engine.files import write_atomic
from engine.paths import DEFAULT_MODEL
from engine.render.labels import AVERAGE, Head
from engine.render.request import FIGURES, FigureRequest
from engine.render.shapes import STEP_NAMES, missing_kind, step_kind
from engine.trace import Trace

FORMATS = ("png", "svg", "pdf")
ANIMATION = "animation"  # --what animation: one frame per decoder step, as .gif or .mp4
ANIMATION_FORMATS = ("gif", "mp4")
BATCH_SCHEMA = "attention-studio-trace-batch"
BATCH_SCHEMA_VERSION = 1


class UsageError(Exception):
    """A command line asking for something that does not exist; str() is the one-line message."""


class RuntimeFailure(Exception):
    """A model that does not load or a file that cannot be read or written."""


# --- command line ---


def add_export_arguments(parser: argparse.ArgumentParser) -> None:
    """The export options, for `python main.py export` or any other parser."""
    parser.add_argument("text", nargs="?", help="the sentence to translate and draw (or use --batch)")
    parser.add_argument("--batch", type=Path, metavar="FILE", help="one sentence per line ('-' for stdin)")
    parser.add_argument(
        "--what",
        choices=(*FIGURES, ANIMATION),
        default="head",
        help="head: one map (default); grid: every layer and head of --kind; positional: the positional "
        "encodings; step: one decoder step's candidates and attention rows (--step, --layer, --head); "
        "animation: the decoding, one frame per step (.gif, or .mp4 with imageio-ffmpeg); importance, rollout, "
        "value-norms: the head analysis (importance by masking, encoder rollout, ‖α·f(x)‖ of --kind/--layer/--head)",
    )
    parser.add_argument(
        "--kind", choices=ATTENTION_KINDS, help="which attention (default: cross; BERT's or GPT-2's only kind)"
    )
    parser.add_argument("--layer", type=int, help="layer, numbered from 1 (default: the last layer)")
    parser.add_argument(
        "--head", default="average", help="head, numbered from 1, or 'average' for the mean over heads (default)"
    )
    parser.add_argument("--step", type=int, default=1, help="decoder step for --what step, numbered from 1")
    parser.add_argument(
        "--format", choices=FORMATS + ANIMATION_FORMATS, help="file format (default: from --out's suffix, else png/gif)"
    )
    parser.add_argument("--out", type=Path, help="figure file (default: attention-WHAT.FORMAT)")
    parser.add_argument("--out-dir", type=Path, help="folder for --batch figures (created if missing)")
    parser.add_argument("--trace", type=Path, help="also save the trace data: .npz or .json (batch: one .npz)")
    parser.add_argument("--dpi", type=float, help="PNG resolution in dots per inch (default 200)")
    parser.add_argument("--width", type=int, help="PNG or animation width in pixels (the figure scales to fit)")
    parser.add_argument("--height", type=int, help="PNG or animation height in pixels")
    parser.add_argument("--fps", type=float, default=1.0, help="animation frames (decoder steps) per second")
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL, help=f"model directory (default {DEFAULT_MODEL})")
    parser.add_argument("--device", default="auto", choices=DEVICE_CHOICES)
    parser.add_argument("--top-k", type=int, default=5, help="candidates recorded per decoder step")
    parser.add_argument("--max-new-tokens", type=int, metavar="N", help=MAX_NEW_TOKENS_HELP)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar in batch mode")


def run_export(args: argparse.Namespace) -> int:
    """Run an export; 0 on success, 2 for a bad request, 1 when a model or file fails."""
    try:
        check_arguments(args)
        selection = parse_selection(args)
        try:
            translator = load_translator(args.model, args.device)
        except LoadFailure as error:
            raise RuntimeFailure(str(error)) from None
        selection = model_selection(selection, args.kind, translator.cfg.shape)
        check_against_model(selection, translator.cfg)
        if args.batch is not None:
            return export_batch(args, translator, selection)
        return export_one(args, translator, selection)
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except RuntimeFailure as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


def check_arguments(args: argparse.Namespace) -> None:
    if (args.text is None) == (args.batch is None):
        raise UsageError("give either a sentence or --batch FILE")
    if args.batch is not None and args.out is not None:
        raise UsageError("--batch writes into --out-dir; --out is for a single sentence")
    if args.batch is None and args.out_dir is not None:
        raise UsageError("--out-dir is for --batch; use --out for a single sentence")
    if args.dpi is not None and args.dpi <= 0:
        raise UsageError(f"--dpi must be positive, got {args.dpi:g}")
    for name in ("width", "height"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise UsageError(f"--{name} must be at least 1 pixel, got {value}")
    if args.dpi is not None and (args.width or args.height):
        raise UsageError("give --dpi or --width/--height, not both")
    if (args.width or args.height) and figure_format(args) not in ("png", *ANIMATION_FORMATS):
        raise UsageError("--width and --height apply to PNG and animations; SVG and PDF are vector formats")
    if args.fps <= 0:
        raise UsageError(f"--fps must be positive, got {args.fps:g}")
    if args.top_k < 1:
        raise UsageError(f"--top-k must be at least 1, got {args.top_k}")
    if args.max_new_tokens is not None and args.max_new_tokens < 1:
        raise UsageError(f"--max-new-tokens must be at least 1, got {args.max_new_tokens}")
    if args.trace is not None and args.trace.suffix not in ((".npz",) if args.batch else (".npz", ".json")):
        kinds = ".npz" if args.batch else ".npz or .json"
        raise UsageError(f"--trace {args.trace}: the trace is saved as {kinds}")


def figure_format(args: argparse.Namespace) -> str:
    """--format, else --out's suffix, else png (gif for an animation); a disagreement is an error."""
    allowed = ANIMATION_FORMATS if args.what == ANIMATION else FORMATS
    suffix = args.out.suffix.lower().lstrip(".") if args.out is not None else ""
    if args.format and suffix and suffix != args.format:
        raise UsageError(f"--format {args.format} disagrees with --out {args.out}")
    chosen = args.format or suffix or allowed[0]
    if chosen not in allowed:
        names = " or ".join(f".{f}" for f in allowed)
        what = "an animation" if args.what == ANIMATION else "a figure"
        raise UsageError(f"--out {args.out or chosen}: {what} is written as {names}")
    return chosen


def parse_selection(args: argparse.Namespace) -> FigureRequest:
    """The 1-based numbers of the command line as 0-based indices (range checks come with the model)."""
    if args.head == AVERAGE:
        head: Head = AVERAGE
    else:
        try:
            head = int(args.head) - 1
        except ValueError:
            raise UsageError(f"--head {args.head!r} is neither a number nor 'average'") from None
    layer = None if args.layer is None else args.layer - 1
    return FigureRequest(what=args.what, kind=args.kind or "cross", layer=layer, head=head, step=args.step - 1)


def model_selection(selection: FigureRequest, kind_given: str | None, shape: str) -> FigureRequest:
    """Without --kind: a translator's cross-attention, or the one kind BERT or GPT-2 has."""
    if kind_given is None and shape != "encoder-decoder":
        return replace(selection, kind=SHAPE_KINDS[shape][0])
    return selection


def check_against_model(selection: FigureRequest, cfg) -> None:
    """Layer and head ranges against the model's config, with messages in the command line's numbering."""
    if selection.what in ("head", "grid", "value-norms") and missing_kind(cfg.shape, selection.kind):
        raise UsageError(missing_kind(cfg.shape, selection.kind))  # "GPT-2 has no encoder, so there is no …"
    if selection.what in ("grid", "positional", "importance", "rollout"):
        return  # these draw every layer and head
    kind = step_kind(cfg.shape) if selection.what in ("step", ANIMATION) else selection.kind
    stack = stack_of(kind)
    n_layers = cfg.n_encoder_layers if stack == "encoder" else cfg.n_decoder_layers
    if selection.layer is not None and not 0 <= selection.layer < n_layers:
        raise UsageError(
            f"--layer {selection.layer + 1} is out of range: the model has {n_layers} {stack} layers "
            f"(numbered 1 to {n_layers})"
        )
    if selection.head != "average" and not 0 <= int(selection.head) < cfg.n_heads:
        raise UsageError(
            f"--head {int(selection.head) + 1} is out of range: the model has {cfg.n_heads} heads per layer "
            f"(numbered 1 to {cfg.n_heads}, or 'average')"
        )


def check_step(selection: FigureRequest, trace: Trace) -> None:
    n_steps = len(trace.out_pieces)  # a translator's decoder steps, BERT's masks, GPT-2's new tokens
    if selection.what == "step" and not 0 <= selection.step < n_steps:
        has = "the translation has" if trace.shape == "encoder-decoder" else "the output has"
        raise UsageError(
            f"--step {selection.step + 1} is out of range: {has} {n_steps} {STEP_NAMES[trace.shape]}s "
            f"(numbered 1 to {n_steps})"
        )


# --- figures ---


def pixel_size(fig, width: int | None, height: int | None) -> tuple[int, int] | None:
    """Both pixel dimensions; a missing one follows the figure's own aspect ratio."""
    if width is None and height is None:
        return None
    natural_w, natural_h = fig.get_size_inches()
    if width is None:
        width = max(1, round(height * natural_w / natural_h))
    if height is None:
        height = max(1, round(width * natural_h / natural_w))
    return width, height


def write_figure(trace: Trace, selection: FigureRequest, path: Path, args: argparse.Namespace, analysis=None) -> None:
    from engine.render.figures import ExportError, build_figure, save_figure  # matplotlib loads here

    try:
        if selection.what == ANIMATION:
            write_animation(trace, selection, path, args)
            return
        fig = build_figure(trace, selection, analysis=analysis)
        save_figure(fig, path, dpi=args.dpi, size_px=pixel_size(fig, args.width, args.height))
    except ExportError as error:
        raise RuntimeFailure(str(error)) from None


def write_animation(trace: Trace, selection: FigureRequest, path: Path, args: argparse.Namespace) -> None:
    from engine.render.animation import DEFAULT_SIZE, save_animation

    width, height = DEFAULT_SIZE
    if args.width and not args.height:  # the other side keeps the default frame's proportions
        width, height = args.width, round(args.width * height / width)
    elif args.height and not args.width:
        width, height = round(args.height * width / height), args.height
    elif args.width and args.height:
        width, height = args.width, args.height
    save_animation(trace, path, selection.layer, selection.head, fps=args.fps, size=(width, height))


def save_trace(trace: Trace, path: Path) -> None:
    try:
        trace.save(path)
    except OSError as error:
        raise RuntimeFailure(f"cannot write {path}: {error.strerror or error}") from None


def trace_text(translator, text: str, top_k: int, max_new_tokens: int | None = None) -> Trace:
    from dataclasses import replace

    from engine.translator import TraceOptions

    decoding = translator.default_decoding
    if max_new_tokens is not None and translator.cfg.shape == "decoder-only":  # translations ignore it
        decoding = replace(decoding, max_new_tokens=max_new_tokens)
    return translator.trace(text, TraceOptions(decoding=decoding, top_k=top_k))


# --- one sentence ---


def export_one(args: argparse.Namespace, translator, selection: FigureRequest) -> int:
    from engine.translator import EmptyInputError

    fmt = figure_format(args)
    out = args.out if args.out is not None else Path(f"attention-{selection.what}.{fmt}")
    if not out.suffix:
        out = out.with_suffix(f".{fmt}")
    try:
        trace = trace_text(translator, args.text, args.top_k, args.max_new_tokens)
    except EmptyInputError as error:
        raise UsageError(str(error)) from None
    check_step(selection, trace)
    if trace.truncated:
        print(
            f"warning: the sentence is longer than the model's {translator.cfg.max_positions} pieces; it was cut",
            file=sys.stderr,
        )
    write_figure(trace, selection, out, args, figure_analysis(translator, trace, selection.what))
    print(f"wrote {out}")
    if args.trace is not None:
        save_trace(trace, args.trace)
        print(f"wrote {args.trace}")
    return 0


# --- batch ---


def read_sentences(path: Path) -> list[str]:
    try:
        text = sys.stdin.read() if str(path) == "-" else path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise RuntimeFailure(f"cannot read {path}: {getattr(error, 'strerror', None) or error}") from None
    return text.splitlines()


def export_batch(args: argparse.Namespace, translator, selection: FigureRequest) -> int:
    """One figure per non-empty line plus one .npz of every trace; empty lines are skipped with a warning."""
    from tqdm import tqdm

    from engine.translator import EmptyInputError

    lines = read_sentences(args.batch)
    fmt = figure_format(args)
    out_dir = args.out_dir if args.out_dir is not None else Path(".")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise RuntimeFailure(f"cannot create {out_dir}: {error.strerror or error}") from None
    digits = max(3, len(str(len(lines))))
    traces, numbers, n_figures = [], [], 0
    progress = tqdm(lines, desc="export", unit="sentence", file=sys.stderr, disable=args.no_progress)
    for number, line in enumerate(progress, 1):
        try:
            trace = trace_text(translator, line, args.top_k, args.max_new_tokens)
        except EmptyInputError:
            tqdm.write(f"warning: line {number} is empty; skipped", file=sys.stderr)
            continue
        traces.append(trace)
        numbers.append(number)
        if trace.truncated:
            tqdm.write(f"warning: line {number} is longer than the model allows; it was cut", file=sys.stderr)
        try:
            check_step(selection, trace)
        except UsageError as error:
            tqdm.write(f"warning: line {number}: {error}; no figure", file=sys.stderr)
            continue
        path = out_dir / f"{number:0{digits}d}-{selection.what}.{fmt}"
        write_figure(trace, selection, path, args, figure_analysis(translator, trace, selection.what))
        n_figures += 1
    trace_path = args.trace if args.trace is not None else out_dir / "traces.npz"
    try:
        save_batch_traces(traces, trace_path, numbers)
    except OSError as error:
        raise RuntimeFailure(f"cannot write {trace_path}: {error.strerror or error}") from None
    print(f"wrote {n_figures} figures to {out_dir} and {len(traces)} traces to {trace_path}")
    return 0


def save_batch_traces(traces: Sequence[Trace], path: Path | str, line_numbers: Sequence[int] | None = None) -> None:
    """Write many traces into one .npz, atomically.

    Layout: trace i (0-based, in input order) keeps the entries of its own `Trace.save` .npz under
    the prefix ``"{i}/"`` (``0/enc_self``, ``0/meta_json``, ``0/qkv/...``), so each one reads back
    with the single-trace schema. ``index_json`` holds ``{"schema": "attention-studio-trace-batch",
    "schema_version": 1, "count": N, "line_numbers": [...], "sources": [...]}``, line numbers being
    the 1-based lines of the batch file the traces came from.
    """
    numbers = list(line_numbers) if line_numbers is not None else list(range(1, len(traces) + 1))
    if len(numbers) != len(traces):
        raise ValueError(f"{len(numbers)} line numbers for {len(traces)} traces")
    arrays: dict[str, Any] = {}
    for i, trace in enumerate(traces):
        with np.load(io.BytesIO(trace.to_npz_bytes()), allow_pickle=False) as single:
            arrays.update({f"{i}/{key}": single[key] for key in single.files})
    index = {
        "schema": BATCH_SCHEMA,
        "schema_version": BATCH_SCHEMA_VERSION,
        "count": len(traces),
        "line_numbers": numbers,
        "sources": [t.source_text for t in traces],
    }
    arrays["index_json"] = np.array(json.dumps(index, ensure_ascii=False))
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    write_atomic(path, buffer.getvalue())


def load_batch_index(path: Path | str) -> dict:
    """The ``index_json`` of a batch .npz (count, line numbers, sources); ValueError if it is not one."""
    with np.load(path, allow_pickle=False) as data:
        if "index_json" not in data.files:
            raise ValueError(f"{Path(path).name}: not an Attention Studio batch of traces (no index_json entry)")
        index = json.loads(str(data["index_json"]))
    if index.get("schema") != BATCH_SCHEMA or index.get("schema_version") != BATCH_SCHEMA_VERSION:
        raise ValueError(
            f"{Path(path).name}: unsupported batch schema {index.get('schema')!r} {index.get('schema_version')}"
        )
    return index


def load_batch_traces(path: Path | str) -> list[Trace]:
    """Every trace of a batch .npz written by `save_batch_traces`, in input order."""
    count = load_batch_index(path)["count"]
    entries: list[dict[str, Any]] = [{} for _ in range(count)]
    with np.load(path, allow_pickle=False) as data:
        for key in data.files:
            prefix, _, name = key.partition("/")
            if prefix.isdigit() and int(prefix) < count:
                entries[int(prefix)][name] = data[key]
    traces = []
    for arrays in entries:
        buffer = io.BytesIO()  # one trace's own .npz again, so Trace.from_npz checks its schema
        np.savez(buffer, **arrays)
        buffer.seek(0)
        traces.append(Trace.from_npz(buffer))  # type: ignore[arg-type]  # np.load reads file objects too
    return traces
