"""Publication figures: every kind renders, PNG sizes are exact, SVG and PDF keep their labels as text,
labels never overlap, and a failed write leaves nothing behind."""

import errno
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from PIL import Image

import engine.files
from engine.decoding import DecodingOptions
from engine.render import figures
from engine.render.figures import ExportError, save_figure
from engine.render.labels import display_piece, select_map
from engine.render.request import FigureRequest
from engine.trace import Trace
from engine.translator import TraceOptions, Translator

SVG_TEXT = "{http://www.w3.org/2000/svg}text"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def trace(tiny_model_dir):
    """A real trace, kept short (8 decoder steps) so every test renders quickly."""
    options = TraceOptions(decoding=DecodingOptions(max_len_a=0.0, max_len_b=8))
    return Translator.from_directory(tiny_model_dir, "cpu").trace("Je suis étudiant.", options)


def synthetic_trace(src_pieces, tgt_pieces, n_layers=2, n_heads=3, k=4, d_model=16, seed=0) -> Trace:
    """A valid Trace of any size, with pieces chosen by the test (rows of every map sum to 1)."""
    rng = np.random.default_rng(seed)
    S, T = len(src_pieces), len(tgt_pieces)

    def softmax_rows(shape, causal=False):
        scores = rng.normal(size=shape)
        if causal:
            scores = np.where(np.tril(np.ones(shape[-2:], dtype=bool)), scores, -np.inf)
        weights = np.exp(scores - scores.max(axis=-1, keepdims=True))
        return (weights / weights.sum(axis=-1, keepdims=True)).astype(np.float32)

    probs = np.sort(rng.dirichlet(np.ones(20), size=T)[:, :k], axis=1)[:, ::-1].astype(np.float32)
    return Trace(
        source_text=" ".join(src_pieces),
        translation=" ".join(tgt_pieces[1:]),
        model_name="synthetic",
        src_ids=np.arange(S, dtype=np.int64),
        src_pieces=list(src_pieces),
        tgt_ids=np.arange(T, dtype=np.int64),
        tgt_pieces=list(tgt_pieces),
        out_ids=np.arange(1, T + 1, dtype=np.int64),
        out_pieces=list(tgt_pieces[1:]) + ["</s>"],
        enc_self=softmax_rows((n_layers, n_heads, S, S)),
        dec_self=softmax_rows((n_layers, n_heads, T, T), causal=True),
        cross=softmax_rows((n_layers, n_heads, T, S)),
        topk_ids=np.tile(np.arange(1, k + 1, dtype=np.int64), (T, 1)),
        topk_probs=np.ascontiguousarray(probs),
        topk_pieces=[[f"cand{j}" for j in range(k)] for _ in range(T)],
        positional=rng.uniform(-1, 1, size=(S, d_model)).astype(np.float32),
    )


def every_figure(trace):
    last = trace.n_layers["cross"] - 1
    return {
        "head-enc_self": figures.head_figure(trace, "enc_self", 0, 1),
        "head-dec_self-average": figures.head_figure(trace, "dec_self", last, "average"),
        "head-cross": figures.head_figure(trace, "cross", last, 0),
        "grid-cross": figures.grid_figure(trace, "cross"),
        "positional": figures.positional_figure(trace),
        "positional-table": figures.positional_figure(d_model=32, n_positions=40),
        "step": figures.step_figure(trace, 2, last, "average"),
    }


def distinct_colours(png: Path) -> int:
    pixels = np.asarray(Image.open(png).convert("RGB")).reshape(-1, 3)
    return len(np.unique(pixels, axis=0))


def svg_texts(path: Path) -> list[str]:
    return ["".join(element.itertext()) for element in ET.parse(path).iter(SVG_TEXT)]


# --- every kind of figure ---


def test_every_figure_kind_renders_a_non_blank_png(trace, tmp_path):
    for name, fig in every_figure(trace).items():
        path = save_figure(fig, tmp_path / f"{name}.png", dpi=60)
        assert distinct_colours(path) > 30, name


def title_of(fig) -> str:
    return " ".join(fig.get_suptitle().split())  # long titles are wrapped to the figure's width


def test_titles_name_the_model_the_kind_and_the_one_based_layer_and_head(trace):
    title = title_of(figures.head_figure(trace, "cross", 1, 2))
    assert title.startswith(f"{trace.model_name}: encoder–decoder attention, layer 2/3, head 3/4")
    assert "Je suis étudiant." in title
    assert "layer 1/2, average of 4 heads" in title_of(figures.head_figure(trace, "enc_self", 0, "average"))
    assert "masked decoder self-attention" in title_of(figures.head_figure(trace, "dec_self", 0, 0))
    assert "decoder step 3/8" in title_of(figures.step_figure(trace, 2, 0, 0))


def test_average_is_the_mean_over_heads(trace):
    average = select_map(trace, "cross", 1, "average")
    np.testing.assert_allclose(average, trace.cross[1].mean(axis=0))
    np.testing.assert_array_equal(select_map(trace, "cross", 1, 2), trace.cross[1, 2])


@pytest.mark.parametrize(
    ("kind", "layer", "head", "message"),
    [
        ("cross", 3, 0, "layer index 3 is out of range 0..2"),
        ("enc_self", 2, 0, "layer index 2 is out of range 0..1"),
        ("cross", 0, 4, "head index 4 is out of range 0..3"),
        ("cross", 0, -1, "head index -1 is out of range"),
        ("attention", 0, 0, "unknown attention kind"),
    ],
)
def test_a_selection_out_of_range_is_refused(trace, kind, layer, head, message):
    with pytest.raises(ValueError, match=message):
        figures.head_figure(trace, kind, layer, head)


def test_a_step_out_of_range_is_refused(trace):
    with pytest.raises(ValueError, match="step index 8 is out of range 0..7"):
        figures.step_figure(trace, len(trace.tgt_pieces), 0, 0)


def test_pieces_are_shown_without_the_word_start_mark():
    assert display_piece("▁Je") == "Je"
    assert display_piece("▁") == "␣"
    assert display_piece("ant") == "ant"
    assert display_piece("</s>") == "</s>"


# --- file formats ---


@pytest.mark.parametrize("size", [(640, 480), (1000, 300), (333, 777)])
def test_png_has_the_exact_pixel_size_asked_for(trace, tmp_path, size):
    path = save_figure(figures.head_figure(trace, "cross", 0, 0), tmp_path / "map.png", size_px=size)
    assert Image.open(path).size == size
    assert distinct_colours(path) > 30


def test_png_resolution_follows_the_dpi(trace, tmp_path):
    fig = figures.head_figure(trace, "enc_self", 0, 0)
    low = Image.open(save_figure(fig, tmp_path / "low.png", dpi=50)).size
    high = Image.open(save_figure(fig, tmp_path / "high.png", dpi=100)).size
    assert abs(high[0] - 2 * low[0]) <= 1 and abs(high[1] - 2 * low[1]) <= 1


def test_svg_is_xml_with_the_labels_as_text(trace, tmp_path):
    path = save_figure(figures.head_figure(trace, "cross", 0, 0), tmp_path / "map.svg")
    texts = svg_texts(path)
    for piece in trace.src_pieces + trace.tgt_pieces:
        assert display_piece(piece) in texts
    assert any("encoder–decoder attention" in text for text in texts)


def test_labels_with_markup_characters_stay_literal_text(tmp_path):
    """'$' would start matplotlib's mathtext and '<' or '&' would break XML if not escaped."""
    odd = ["$5", "$x$", "a_b", "<unk>", "R&D", "\\n", "</s>"]
    trace = synthetic_trace(odd, ["<s>", "$", "&", "x^2"])
    path = save_figure(figures.head_figure(trace, "cross", 0, 0), tmp_path / "odd.svg")
    texts = svg_texts(path)
    for piece in odd + ["$", "&", "x^2"]:
        assert piece in texts


def test_pdf_renders_with_its_labels_as_text(trace, tmp_path):
    """Rasterised and read back with pypdfium2 (a wheel: no system package needed)."""
    import pypdfium2

    path = save_figure(figures.head_figure(trace, "cross", 0, 0), tmp_path / "map.pdf")
    assert path.read_bytes().startswith(b"%PDF")
    page = pypdfium2.PdfDocument(path)[0]
    page.render(scale=50 / 72).to_pil().save(tmp_path / "page.png")
    assert distinct_colours(tmp_path / "page.png") > 30
    text = page.get_textpage().get_text_range()
    assert trace.model_name in text and "encoder–decoder attention" in text


def test_the_format_comes_from_the_suffix(trace, tmp_path):
    fig = figures.grid_figure(trace, "enc_self")
    assert save_figure(fig, tmp_path / "g.PNG", dpi=40).read_bytes().startswith(b"\x89PNG")
    assert save_figure(fig, tmp_path / "g.pdf").read_bytes().startswith(b"%PDF")
    assert b"<svg" in save_figure(fig, tmp_path / "g.svg").read_bytes()[:1000]
    with pytest.raises(ExportError, match=r"must end with \.png, \.svg or \.pdf"):
        save_figure(fig, tmp_path / "g.jpg")
    with pytest.raises(ExportError, match="PNG only"):
        save_figure(fig, tmp_path / "g.svg", size_px=(100, 100))


# --- failures leave nothing behind ---


def test_an_unwritable_path_gives_a_one_line_error_and_no_file(trace, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    target = blocker / "map.pdf"  # under a regular file: unwritable even for root
    with pytest.raises(ExportError) as caught:
        save_figure(figures.head_figure(trace, "cross", 0, 0), target)
    assert str(caught.value) == f"cannot write {target}: Not a directory"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]
    assert blocker.read_text() == "x"


def test_a_full_disk_gives_a_clear_error_and_no_partial_file(trace, tmp_path, monkeypatch):
    def no_space(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(engine.files.os, "fsync", no_space)
    with pytest.raises(ExportError, match=r"cannot write .*map\.png: No space left on device$"):
        save_figure(figures.head_figure(trace, "cross", 0, 0), tmp_path / "map.png", dpi=40)
    assert list(tmp_path.iterdir()) == []


def test_a_failed_export_keeps_the_previous_file(trace, tmp_path, monkeypatch):
    path = tmp_path / "map.png"
    path.write_bytes(b"previous")

    def no_space(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(engine.files.os, "fsync", no_space)
    with pytest.raises(ExportError):
        save_figure(figures.head_figure(trace, "cross", 0, 0), path, dpi=40)
    assert path.read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir()] == ["map.png"]


# --- long sentences stay readable ---


def label_boxes(fig, axis_name):
    """Window extents of the visible tick labels of every axes' x or y axis, in drawing order."""
    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw(renderer)
    boxes = []
    for ax in fig.axes:
        labels = ax.get_xticklabels() if axis_name == "x" else ax.get_yticklabels()
        boxes.append([t.get_window_extent(renderer) for t in labels if t.get_visible() and t.get_text()])
    return boxes


def assert_no_overlap(boxes, axis_name):
    for a, b in zip(boxes, boxes[1:], strict=False):
        if axis_name == "x":
            assert a.x1 <= b.x0 + 0.5, (a, b)
        else:
            assert a.y0 >= b.y1 - 0.5 or b.y0 >= a.y1 - 0.5, (a, b)


def test_labels_of_a_long_sentence_do_not_overlap():
    src = [f"▁mot{i}" if i % 3 else f"morceau{i}" for i in range(70)]
    tgt = ["<s>"] + [f"▁word{i}" for i in range(59)]
    trace = synthetic_trace(src, tgt)
    for fig in (figures.head_figure(trace, "cross", 1, 2), figures.step_figure(trace, 59, 0, 0)):
        for axis_name in ("x", "y"):
            for boxes in label_boxes(fig, axis_name):
                assert_no_overlap(boxes, axis_name)
        first_axes = fig.axes[0]
        assert first_axes.get_window_extent().width > 0
    head = figures.head_figure(trace, "cross", 0, 0)
    assert len(head.axes[0].get_xticklabels()) == 70  # every piece labelled, none thinned out
    assert len(head.axes[0].get_yticklabels()) == 60


def test_a_paragraph_sized_map_stops_growing_and_thins_its_labels_without_overlap():
    """260 pieces at 0.2 in each made a 54-inch figure (10,700 px a side at 200 dpi, 3.4 GB to draw)."""
    src = [f"▁mot{i}" if i % 3 else f"morceau{i}" for i in range(260)]
    tgt = ["<s>"] + [f"▁word{i}" for i in range(199)]
    trace = synthetic_trace(src, tgt)
    head = figures.head_figure(trace, "cross", 0, 0)
    width, height = head.get_size_inches()
    assert width < figures.MAX_MAP + 3 and height < figures.MAX_MAP + 4
    cell = figures.cells(260)
    assert cell.every == 2 and cell.font == figures.MIN_LABEL_FONT
    xticks = head.axes[0].get_xticklabels()
    assert [t.get_text() for t in xticks[:3]] == ["morceau0", "mot2", "mot4"]  # every second piece, in place
    assert len(xticks) == 130 and len(head.axes[0].get_yticklabels()) == 100
    assert all(t.get_fontsize() == figures.MIN_LABEL_FONT for t in xticks)
    for axis_name in ("x", "y"):
        assert_no_overlap(label_boxes(head, axis_name)[0], axis_name)
    # up to 100 pieces nothing changes: CELL each, 8 pt, every label
    assert figures.cells(100) == figures.Cells(figures.CELL, figures.LABEL_FONT, 1)


def test_figures_grow_with_the_sentence():
    short = synthetic_trace(["▁a", "▁b", "</s>"], ["<s>", "▁x"])
    long = synthetic_trace([f"▁p{i}" for i in range(50)], ["<s>"] + [f"▁q{i}" for i in range(39)])
    for make in (lambda t: figures.head_figure(t, "cross", 0, 0), lambda t: figures.step_figure(t, 1, 0, 0)):
        assert make(long).get_size_inches()[0] > make(short).get_size_inches()[0]


# --- headless ---


def test_figures_and_export_load_neither_qt_nor_pyplot():
    code = (
        "import sys, engine.render.figures, engine.cli.export; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('PySide6', 'PyQt5', 'PyQt6', 'pyqtgraph', 'gui')"
        " or m == 'matplotlib.pyplot'))"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert result.stdout.strip() == "[]", result.stderr


# --- BERT (encoder-only) and GPT-2 (decoder-only) traces ---


@pytest.fixture(scope="module")
def one_stack_traces():
    from test_analysis import one_stack_translator

    options = TraceOptions(decoding=DecodingOptions(max_new_tokens=4))
    return {shape: one_stack_translator(shape).trace("ab?cd?e", options) for shape in ("encoder-only", "decoder-only")}


@pytest.mark.parametrize("shape", ["encoder-only", "decoder-only"])
def test_one_stack_figures_draw_their_own_kind_and_refuse_the_others(one_stack_traces, shape):
    trace = one_stack_traces[shape]
    (kind,) = trace.kinds
    for what in ("head", "grid"):
        fig = figures.build_figure(trace, FigureRequest(what, kind, head=1))
        assert len(figures.render_figure(fig, "png", dpi=40)) > 1000
    absent = [k for k in ("enc_self", "dec_self", "cross") if k != kind]
    for other in absent:
        with pytest.raises(ValueError, match="so there is no"):
            figures.build_figure(trace, FigureRequest("grid", other))
    lacks = "GPT-2 has no encoder" if shape == "decoder-only" else "BERT has no decoder"
    with pytest.raises(ValueError, match=f"^{lacks}, so there is no cross-attention.$"):
        figures.head_figure(trace, "cross", 0, 0)


def test_a_gpt2_step_shows_its_new_token_over_the_input_so_far(one_stack_traces):
    trace = one_stack_traces["decoder-only"]
    fig = figures.build_figure(trace, FigureRequest("step", "dec_self", layer=None, head=0, step=1))
    row = int(trace.out_positions[1])
    assert f"new token 2/{len(trace.out_pieces)}" in title_of(fig)
    candidates, attention = fig.axes[:2]
    np.testing.assert_allclose([bar.get_width() for bar in candidates.patches], trace.topk_probs[1], rtol=1e-6)
    heights = [bar.get_height() for bar in attention.patches]
    np.testing.assert_allclose(heights, trace.dec_self[-1, 0, row, : row + 1], rtol=1e-6)  # causal: no later key
    assert [t.get_text() for t in attention.get_xticklabels()] == trace.tgt_pieces[: row + 1]


def test_a_bert_step_shows_a_masks_fillers_over_the_whole_text(one_stack_traces):
    trace = one_stack_traces["encoder-only"]
    assert trace.src_pieces.count("[MASK]") == len(trace.out_pieces) == 2
    fig = figures.step_figure(trace, 1, 0, "average")
    assert "mask 2/2" in title_of(fig) and f"position {trace.out_positions[1] + 1}" in title_of(fig)
    attention = fig.axes[1]
    expected = trace.enc_self[0].mean(axis=0)[trace.out_positions[1]]
    np.testing.assert_allclose([bar.get_height() for bar in attention.patches], expected, rtol=1e-6)
    without_masks = replace_outputs(trace)
    with pytest.raises(ValueError, match=r"Type \[MASK\] in the text"):
        figures.step_figure(without_masks, 0, 0, 0)


def replace_outputs(trace: Trace) -> Trace:
    """`trace` as if its text had no [MASK]: no outputs."""
    from dataclasses import replace

    empty = np.zeros((0, trace.topk_ids.shape[1]))
    return replace(
        trace, out_ids=np.zeros(0, np.int64), out_pieces=[], out_positions=np.zeros(0, np.int64),
        topk_ids=empty.astype(np.int64), topk_probs=empty.astype(np.float32), topk_pieces=[],
    )  # fmt: skip


@pytest.mark.parametrize("shape", ["encoder-only", "decoder-only"])
def test_learned_positions_show_the_rows_used_labelled_learned_without_sinusoids(one_stack_traces, shape, tmp_path):
    trace = one_stack_traces[shape]
    assert trace.positions == "learned"
    fig = figures.build_figure(trace, FigureRequest("positional"))
    assert "learned positional embeddings" in title_of(fig)
    table = fig.axes[0].images[0].get_array()
    np.testing.assert_allclose(table, trace.positional, rtol=1e-6)  # the rows used, one per input piece
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels == [f"{i} {p}" for i, p in enumerate(trace.input_pieces)]
    assert not any(ax.lines for ax in fig.axes)  # no curves: nothing here is a sinusoid
    svg = save_figure(fig, tmp_path / "learned.svg").read_text()
    assert "learned: the rows added" in svg


def test_an_animation_of_a_continuation_has_one_frame_per_new_token(one_stack_traces):
    from engine.render.animation import animation_frames

    trace = one_stack_traces["decoder-only"]
    frames = animation_frames(trace, size=(320, 200))
    assert len(frames) == len(trace.out_pieces) and all(f.size == (320, 200) for f in frames)


def test_control_characters_in_a_continuation_are_shown_not_dropped(one_stack_traces, tmp_path):
    """A GPT-2 continuation can decode to a NUL byte or a new line: the title names them (no font
    has a glyph for NUL, and matplotlib warns about it)."""
    from dataclasses import replace

    trace = replace(one_stack_traces["decoder-only"], translation="a\x00b\nc")
    fig = figures.grid_figure(trace, "dec_self")
    assert "a<0x00>b↵c" in title_of(fig)
    save_figure(fig, tmp_path / "grid.png", dpi=30)  # warnings are errors here: none was raised


def test_cells_the_mask_forbids_are_grey_not_zero(tiny_model_dir):
    """Decoder self-attention's future, and every cell between two sentences of a text, are drawn as
    masked (grey), told apart from a weight the head chose to make 0."""
    text = "Je suis étudiant. Le chien dort !"
    trace = Translator.from_directory(tiny_model_dir, "cpu").trace(text)
    assert trace.sentences == 2
    for kind in ("enc_self", "dec_self", "cross"):
        for fig in (figures.head_figure(trace, kind, 0, 0), figures.grid_figure(trace, kind)):
            shown = fig.axes[0].images[0].get_array()
            expected = ~trace.same_sentence(kind)
            if kind == "dec_self":
                expected |= np.triu(np.ones(expected.shape, dtype=bool), k=1)
            np.testing.assert_array_equal(np.ma.getmaskarray(shown), expected)
            np.testing.assert_allclose(shown.compressed(), trace.attention(kind)[0, 0][~expected], atol=1e-6)


def test_a_step_of_a_text_is_drawn_over_its_own_sentence(tiny_model_dir):
    trace = Translator.from_directory(tiny_model_dir, "cpu").trace("Je suis étudiant. Le chien dort !")
    step = int(np.flatnonzero(trace.tgt_sentence == 1)[1])  # the second step of the second sentence
    fig = figures.step_figure(trace, step, 0, 0)
    _, cross_ax, self_ax = fig.axes
    sources = np.flatnonzero(trace.src_sentence == 1)
    assert [t.get_text() for t in cross_ax.get_xticklabels()] == [display_piece(trace.src_pieces[i]) for i in sources]
    heights = [bar.get_height() for bar in cross_ax.patches]
    np.testing.assert_allclose(heights, trace.cross[0, 0, step, sources], atol=1e-6)
    assert len(self_ax.patches) == 2  # its sentence's <s> and the step itself
    assert "of sentence 2/2" in cross_ax.get_title()
