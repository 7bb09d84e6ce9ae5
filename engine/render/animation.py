"""The decoding as an animation: one frame per decoder step, for a slide or a web page.

Each frame shows the output so far (the step's choice highlighted), what the step attended to over
the source (encoder–decoder attention, one layer, one head or their average) and the top-k
candidates with their probabilities. Every frame has the same layout, sized for the longest step,
so nothing jumps between frames. GIF through Pillow (which matplotlib already needs); MP4 when the
optional `imageio-ffmpeg` is installed (`pip install ".[video]"`).
"""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from PIL import Image

from engine.files import write_atomic
from engine.render.figures import STYLE, ExportError, render_figure, row_bars, suptitle, topk_bars
from engine.render.labels import (
    AVERAGE,
    KIND_LABELS,
    Head,
    check_selection,
    display_piece,
    head_label,
    select_map,
    visible_text,
)
from engine.render.shapes import step_kind
from engine.trace import Trace

ANIMATION_FORMATS = (".gif", ".mp4")
DEFAULT_SIZE = (960, 600)  # pixels: a 16:10 slide
DEFAULT_FPS = 1.0  # one step a second: time to read the candidates


def frame_figure(trace: Trace, step: int, layer: int, head: Head = AVERAGE) -> Figure:
    """Step `step` of the decoding, laid out for the whole sentence (the same size for every step).
    BERT's masks and GPT-2's new tokens: their step figure (the frames are scaled to one size anyway)."""
    if trace.shape != "encoder-decoder":
        from engine.render.one_stack_figures import output_step_figure

        return output_step_figure(trace, step, layer, head)
    check_selection(trace, "cross", layer, head)
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(9.6, 6.0), layout="constrained")
        top_ax, cross_ax = fig.subplots(2, 1, height_ratios=[1.0, 1.2])
        topk_bars(top_ax, trace, step)
        cross_row = select_map(trace, "cross", layer, head)[step]
        title = (
            f"{KIND_LABELS['cross'].name} of step {step + 1} over the source (layer {layer + 1}, {head_label(head)})"
        )
        row_bars(cross_ax, cross_row, trace.src_pieces, title)
        for index, bar in enumerate(cross_ax.patches):  # the piece it looked at most stands out
            bar.set_color("#08519c" if index == int(np.argmax(cross_row)) else "#6baed6")
        suptitle(fig, _progress_line(trace, step), 9.6)
    return fig


def _progress_line(trace: Trace, step: int) -> str:
    so_far = " ".join(display_piece(p) for p in trace.out_pieces[:step])
    chosen = display_piece(trace.out_pieces[step])
    return f"{trace.model_name}: “{visible_text(trace.source_text)}”\nstep {step + 1}/{len(trace.out_pieces)}:  {so_far} [{chosen}]"


def animation_frames(
    trace: Trace, layer: int | None = None, head: Head = AVERAGE, size: tuple[int, int] = DEFAULT_SIZE
) -> list[Image.Image]:
    """One RGB image of `size` pixels per decoder step; `layer` None is the last decoder layer."""
    layer = trace.n_layers[step_kind(trace.shape)] - 1 if layer is None else layer
    frames = []
    for step in range(len(trace.out_pieces)):
        png = render_figure(frame_figure(trace, step, layer, head), "png", size_px=size)
        frames.append(Image.open(io.BytesIO(png)).convert("RGB"))
    return frames


def save_animation(
    trace: Trace,
    path: Path | str,
    layer: int | None = None,
    head: Head = AVERAGE,
    fps: float = DEFAULT_FPS,
    size: tuple[int, int] = DEFAULT_SIZE,
) -> Path:
    """Write the decoding of `trace` as .gif or .mp4, atomically; ExportError (one line) if it cannot."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in ANIMATION_FORMATS:
        raise ExportError(f"cannot write {path}: an animation is saved as .gif or .mp4")
    if fps <= 0:
        raise ExportError(f"the frame rate must be positive, got {fps:g}")
    if min(size) < 16:
        raise ExportError(f"frames must be at least 16×16 pixels, got {size[0]}×{size[1]}")
    frames = animation_frames(trace, layer, head, size)
    data = _gif_bytes(frames, fps) if suffix == ".gif" else _mp4_bytes(frames, fps)
    try:
        write_atomic(path, data)
    except OSError as error:
        raise ExportError(f"cannot write {path}: {error.strerror or error}") from error
    return path


def _gif_bytes(frames: list[Image.Image], fps: float) -> bytes:
    buffer = io.BytesIO()
    duration_ms = round(1000 / fps)
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=duration_ms, loop=0)
    return buffer.getvalue()


def _mp4_bytes(frames: list[Image.Image], fps: float) -> bytes:
    try:
        import imageio_ffmpeg
    except ImportError:
        raise ExportError(
            "MP4 needs the optional imageio-ffmpeg package (pip install imageio-ffmpeg); GIF works without it"
        ) from None
    import tempfile

    width, height = frames[0].size
    with tempfile.TemporaryDirectory() as folder:
        target = Path(folder) / "decoding.mp4"
        writer = imageio_ffmpeg.write_frames(str(target), (width, height), fps=fps, macro_block_size=1)
        writer.send(None)  # start the encoder
        for frame in frames:
            writer.send(frame.tobytes())
        writer.close()
        return target.read_bytes()
