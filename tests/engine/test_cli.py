"""The command line, run as a user would: python -m engine ..."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run(*args, stdin=None):
    return subprocess.run(
        [sys.executable, "-m", "engine", *map(str, args)],
        cwd=ROOT,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_translate_one_sentence(tiny_model_dir):
    from engine.translator import Translator

    result = run("translate", "Je suis étudiant.", "--model", tiny_model_dir)
    assert result.returncode == 0, result.stderr
    expected = Translator.from_directory(tiny_model_dir, "cpu").trace("Je suis étudiant.").translation
    assert result.stdout == expected + "\n"


def test_file_gives_one_line_per_input_line(tiny_model_dir, tmp_path):
    source = tmp_path / "in.txt"
    source.write_text("Bonjour.\n\nLe chat dort.\n", encoding="utf-8")
    from_file = run("translate", "--file", source, "--model", tiny_model_dir)
    from_stdin = run("translate", "--model", tiny_model_dir, stdin=source.read_text())
    assert from_file.returncode == 0, from_file.stderr
    lines = from_file.stdout.split("\n")
    assert len(lines) == 4 and lines[1] == "" and lines[3] == ""  # three translations, the middle one empty
    assert from_stdin.stdout == from_file.stdout


def test_undecodable_bytes_are_translated_not_a_traceback(tiny_model_dir, tmp_path):
    """Bytes that are not UTF-8, in a file or in argv (where Python turns them into lone surrogates),
    used to end in UnicodeDecodeError or a RuntimeError from the SentencePiece binding."""
    source = tmp_path / "latin1.txt"
    source.write_bytes("Caf\u00e9 au lait.\n".encode("latin-1"))
    from_file = run("translate", "--file", source, "--model", tiny_model_dir)
    assert from_file.returncode == 0, from_file.stderr
    assert len(from_file.stdout.split("\n")) == 2
    from_argv = subprocess.run(
        [
            sys.executable.encode(),
            b"-m",
            b"engine",
            b"translate",
            b"Caf\xe9",
            b"--model",
            bytes(tiny_model_dir),
            b"--json",
        ],
        cwd=ROOT,
        capture_output=True,
        timeout=300,
    )
    assert from_argv.returncode == 0, from_argv.stderr.decode(errors="replace")
    assert json.loads(from_argv.stdout)["src_pieces"][-1] == "</s>"


def test_json_summary(tiny_model_dir):
    result = run("translate", "Le chien dort.", "--model", tiny_model_dir, "--json", "--top-k", "3")
    summary = json.loads(result.stdout)
    S, T = len(summary["src_pieces"]), len(summary["tgt_pieces"])
    assert summary["shapes"]["cross"] == [3, 4, T, S]
    assert len(summary["steps"]) == T and len(summary["steps"][0]["candidates"]) == 3


def test_long_text_warns_and_still_translates(tiny_model_dir):
    result = run("translate", "le chat " * 3000, "--model", tiny_model_dir)
    assert result.returncode == 0
    assert "was cut" in result.stderr and result.stdout.strip()


def test_bad_model_is_one_clear_line(tmp_path):
    result = run("translate", "Bonjour", "--model", tmp_path)
    assert result.returncode != 0
    assert (
        result.stderr.strip()
        == f"error: cannot load model {tmp_path}: {tmp_path}: not a model directory (no config.json)"
    )


def test_evaluate_prints_scores_and_signatures(tiny_model_dir, tmp_path):
    test = tmp_path / "test.tsv"
    test.write_text("Je suis étudiant.\tI am a student.\nLe chien dort.\tThe dog sleeps.\n", encoding="utf-8")
    result = run("evaluate", "--model", tiny_model_dir, "--test", test)
    assert result.returncode == 0, result.stderr
    assert "BLEU" in result.stdout and "nrefs:1|case:mixed" in result.stdout and "chrF" in result.stdout


def test_degenerate_outputs_are_repetition_loops_only():
    from engine.loops import is_degenerate

    assert is_degenerate("Je votre votre votre votre aide.")
    assert is_degenerate("jouer du mahhhhhhhhh")
    assert is_degenerate("Ils n'ont pas de prédidididididididid") and is_degenerate("Le Bamatatatatat")
    assert not is_degenerate("Il a dit « dididi ».")  # three times
    assert is_degenerate("Non, non, non, non !")
    assert not is_degenerate("Non, non, non !")  # three times is still a sentence
    assert not is_degenerate("Il est très, très fatigué.")
    assert not is_degenerate("Appelle le 555-1111.") and not is_degenerate("Zzzzz.")
