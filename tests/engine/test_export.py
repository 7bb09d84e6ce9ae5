"""The headless export command: one sentence or a batch, figures and trace data, clear errors."""

import argparse
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.cli.export import add_export_arguments, load_batch_index, load_batch_traces, run_export, save_batch_traces
from engine.trace import Trace
from engine.translator import TraceOptions, Translator

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def translator(tiny_model_dir):
    return Translator.from_directory(tiny_model_dir, "cpu")


@pytest.fixture
def export(tiny_model_dir, monkeypatch, tmp_path):
    """Run the export command line in tmp_path with the tiny model; returns the exit status."""
    monkeypatch.chdir(tmp_path)

    def run(*argv: str) -> int:
        parser = argparse.ArgumentParser()
        add_export_arguments(parser)
        args = parser.parse_args([*argv, "--model", str(tiny_model_dir), "--device", "cpu", "--no-progress"])
        return run_export(args)

    return run


def test_one_sentence_to_pdf_with_its_trace(export, translator, tmp_path, capsys):
    options = "--kind cross --layer 2 --head 3 --format pdf --out fig.pdf --trace trace.json".split()
    status = export("Je suis étudiant.", *options)
    assert status == 0
    assert (tmp_path / "fig.pdf").read_bytes().startswith(b"%PDF")
    assert Trace.load(tmp_path / "trace.json").equals(translator.trace("Je suis étudiant."))
    assert "wrote fig.pdf" in capsys.readouterr().out


@pytest.mark.parametrize("what", ["head", "grid", "positional", "step"])
def test_every_kind_of_figure_exports_to_png(export, tmp_path, what):
    assert export("Tu es mon ami.", "--what", what, "--step", "2", "--out", f"{what}.png", "--dpi", "40") == 0
    pixels = np.asarray(Image.open(tmp_path / f"{what}.png").convert("RGB")).reshape(-1, 3)
    assert len(np.unique(pixels, axis=0)) > 30


def test_png_width_and_height_in_pixels(export, tmp_path):
    assert export("Le chien dort.", "--out", "exact.png", "--width", "500", "--height", "400") == 0
    assert Image.open(tmp_path / "exact.png").size == (500, 400)
    assert export("Le chien dort.", "--out", "wide.png", "--width", "500") == 0
    assert Image.open(tmp_path / "wide.png").size[0] == 500


def test_svg_without_suffix_takes_the_format(export, tmp_path):
    assert export("Le chien dort.", "--what", "grid", "--format", "svg", "--out", "grid") == 0
    assert b"<svg" in (tmp_path / "grid.svg").read_bytes()[:1000]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--layer", "7"], "error: --layer 7 is out of range: the model has 3 decoder layers (numbered 1 to 3)"),
        (["--layer", "0"], "error: --layer 0 is out of range: the model has 3 decoder layers (numbered 1 to 3)"),
        (["--kind", "enc_self", "--layer", "3"], "error: --layer 3 is out of range: the model has 2 encoder layers"),
        (["--head", "5"], "error: --head 5 is out of range: the model has 4 heads per layer (numbered 1 to 4"),
        (["--head", "first"], "error: --head 'first' is neither a number nor 'average'"),
        (["--what", "step", "--step", "99"], "error: --step 99 is out of range: the translation has"),
        (["--format", "svg", "--out", "fig.pdf"], "error: --format svg disagrees with --out fig.pdf"),
        (["--out", "fig.svg", "--width", "300"], "error: --width and --height apply to PNG"),
        (["--trace", "t.csv"], "error: --trace t.csv: the trace is saved as .npz or .json"),
    ],
)
def test_a_bad_request_gives_one_clear_line_and_writes_nothing(export, tmp_path, capsys, argv, message):
    assert export("Je suis étudiant.", *argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1, err
    assert list(tmp_path.iterdir()) == []


def test_an_unwritable_path_gives_a_clear_error_and_no_file(export, tmp_path, capsys):
    (tmp_path / "a-file").write_text("x")
    assert export("Je suis étudiant.", "--out", "a-file/fig.pdf") == 1
    assert capsys.readouterr().err == "error: cannot write a-file/fig.pdf: Not a directory\n"
    assert [p.name for p in tmp_path.iterdir()] == ["a-file"]


def test_a_missing_model_is_a_clear_error(export, tmp_path, capsys):
    parser = argparse.ArgumentParser()
    add_export_arguments(parser)
    status = run_export(parser.parse_args(["Je suis étudiant.", "--model", str(tmp_path / "none"), "--device", "cpu"]))
    assert status == 1
    assert capsys.readouterr().err.startswith(f"error: cannot load model {tmp_path / 'none'}")


# --- batch ---


def test_batch_writes_numbered_figures_and_one_npz_of_equal_traces(export, translator, tmp_path, capsys):
    sentences = ["Je suis étudiant.", "", "Tu es mon ami.", "   ", "Le chien dort."]
    (tmp_path / "sentences.txt").write_text("\n".join(sentences) + "\n", encoding="utf-8")
    assert export("--batch", "sentences.txt", "--out-dir", "figs", "--format", "svg", "--what", "grid") == 0
    out = tmp_path / "figs"
    assert sorted(p.name for p in out.iterdir()) == ["001-grid.svg", "003-grid.svg", "005-grid.svg", "traces.npz"]
    err = capsys.readouterr().err
    assert "warning: line 2 is empty; skipped" in err and "warning: line 4 is empty; skipped" in err
    loaded = load_batch_traces(out / "traces.npz")
    expected = [translator.trace(s) for s in sentences if s.strip()]
    assert len(loaded) == 3 and all(a.equals(b) for a, b in zip(loaded, expected, strict=True))
    index = load_batch_index(out / "traces.npz")
    assert index["line_numbers"] == [1, 3, 5] and index["sources"][1] == "Tu es mon ami."


def test_batch_with_a_step_too_far_for_some_lines_warns_and_goes_on(export, tmp_path, capsys):
    (tmp_path / "s.txt").write_text("Je suis étudiant.\nLe chien dort.\n", encoding="utf-8")
    assert export("--batch", "s.txt", "--out-dir", "o", "--what", "step", "--step", "1", "--dpi", "30") == 0
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["001-step.png", "002-step.png", "traces.npz"]
    assert export("--batch", "s.txt", "--out-dir", "p", "--what", "step", "--step", "1000", "--dpi", "30") == 0
    assert "warning: line 1: --step 1000 is out of range" in capsys.readouterr().err
    assert len(load_batch_traces(tmp_path / "p" / "traces.npz")) == 2


def test_batch_of_traces_with_qkv_round_trips(translator, tmp_path):
    traces = [translator.trace(s, TraceOptions(with_qkv=True)) for s in ("Je veux partir.", "Il mange une pomme.")]
    save_batch_traces(traces, tmp_path / "b.npz")
    loaded = load_batch_traces(tmp_path / "b.npz")
    assert [t.source_text for t in loaded] == ["Je veux partir.", "Il mange une pomme."]
    assert all(a.equals(b) for a, b in zip(loaded, traces, strict=True))


def test_a_single_trace_file_is_not_a_batch(translator, tmp_path):
    translator.trace("Je suis étudiant.").save(tmp_path / "one.npz")
    with pytest.raises(ValueError, match="not an Attention Studio batch"):
        load_batch_traces(tmp_path / "one.npz")


def test_empty_batch_writes_an_empty_npz(export, tmp_path, capsys):
    (tmp_path / "blank.txt").write_text("\n\n", encoding="utf-8")
    assert export("--batch", "blank.txt", "--out-dir", "o") == 0
    assert load_batch_traces(tmp_path / "o" / "traces.npz") == []


# --- as a separate, display-less process ---


def test_export_runs_headless_in_its_own_process(tiny_model_dir, tmp_path):
    code = (
        "import sys; from engine.cli import main; status = main(['export', *sys.argv[1:]]); "
        "qt = [m for m in sys.modules if m.split('.')[0] in ('PySide6', 'pyqtgraph', 'gui')]; "
        "print('QT', qt, file=sys.stderr); sys.exit(status)"
    )
    argv = ["Je suis étudiant.", "--model", str(tiny_model_dir), "--device", "cpu", "--out", str(tmp_path / "f.png")]
    hidden = ("DISPLAY", "WAYLAND_DISPLAY", "MPLBACKEND", "QT_QPA_PLATFORM")  # as on a server with no screen
    env = {name: value for name, value in os.environ.items() if name not in hidden}
    result = subprocess.run([sys.executable, "-c", code, *argv], cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "QT []" in result.stderr
    assert Image.open(tmp_path / "f.png").size[0] > 100
    help_text = subprocess.run(
        [sys.executable, "-c", code, "--help"], cwd=ROOT, env=env, capture_output=True, text=True
    ).stdout
    assert "layer, numbered from 1" in help_text and "'average'" in help_text


def test_main_py_export_runs_headless(tiny_model_dir, tmp_path):
    """`python main.py export ...` — the command users type — writes the figure without Qt."""

    root = Path(__file__).resolve().parents[2]
    out = tmp_path / "fig.pdf"
    command = [
        sys.executable,
        "main.py",
        "export",
        "Je suis étudiant.",
        "--kind",
        "cross",
        "--layer",
        "2",
        "--head",
        "3",
        "--format",
        "pdf",
        "--out",
        str(out),
        "--model",
        str(tiny_model_dir),
    ]
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "QT_QPA_PLATFORM")}
    result = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert out.read_bytes().startswith(b"%PDF")


# --- BERT-shaped (encoder-only) and GPT-2-shaped (decoder-only) model folders ---


@pytest.fixture(scope="module")
def one_stack_dirs(tmp_path_factory):
    from model_fixtures import build_tiny_model

    root = tmp_path_factory.mktemp("one-stack")
    return {
        "encoder-only": build_tiny_model(root / "enc", n_decoder_layers=0, positions="learned"),
        "decoder-only": build_tiny_model(root / "dec", n_encoder_layers=0, positions="learned", norm="pre"),
    }


def export_with(model_dir: Path, *argv: str) -> int:
    parser = argparse.ArgumentParser()
    add_export_arguments(parser)
    return run_export(parser.parse_args([*argv, "--model", str(model_dir), "--device", "cpu", "--no-progress"]))


@pytest.mark.parametrize("what", ["head", "grid", "positional", "step"])
def test_a_decoder_only_model_exports_every_figure_of_its_own_kind(one_stack_dirs, tmp_path, monkeypatch, what):
    monkeypatch.chdir(tmp_path)
    status = export_with(one_stack_dirs["decoder-only"], "le chien", "--what", what, "--out", "f.png", "--dpi", "40")
    assert status == 0  # no --kind: GPT-2's only kind, decoder self-attention
    pixels = np.asarray(Image.open(tmp_path / "f.png").convert("RGB")).reshape(-1, 3)
    assert len(np.unique(pixels, axis=0)) > 30


@pytest.mark.parametrize(
    ("shape", "argv", "message"),
    [
        ("decoder-only", ["--kind", "cross"], "error: GPT-2 has no encoder, so there is no cross-attention.\n"),
        ("decoder-only", ["--kind", "enc_self"], "error: GPT-2 has no encoder, so there is no encoder self-attention."),
        ("encoder-only", ["--kind", "cross"], "error: BERT has no decoder, so there is no cross-attention.\n"),
        ("encoder-only", ["--what", "step"], "error: --step 1 is out of range: the output has 0 masks"),
    ],
)
def test_what_a_one_stack_model_lacks_is_refused_in_one_line(one_stack_dirs, tmp_path, monkeypatch, capsys, shape, argv, message):  # fmt: skip
    monkeypatch.chdir(tmp_path)
    assert export_with(one_stack_dirs[shape], "le chien", *argv, "--out", "f.png") == 2
    assert capsys.readouterr().err.startswith(message)
    assert not (tmp_path / "f.png").exists()
