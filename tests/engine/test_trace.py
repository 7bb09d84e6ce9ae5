"""The Trace's files: .npz and JSON load back to an equal Trace; writes are atomic."""

import json

import numpy as np
import pytest

from engine.trace import Trace
from engine.translator import TraceOptions, Translator


@pytest.fixture(scope="module")
def trace(tiny_model_dir):
    return Translator.from_directory(tiny_model_dir, "cpu").trace("Je suis étudiant.", TraceOptions(with_qkv=True))


@pytest.mark.parametrize("suffix", [".npz", ".json"])
def test_round_trip(trace, tmp_path, suffix):
    path = tmp_path / f"trace{suffix}"
    trace.save(path)
    loaded = Trace.load(path)
    assert loaded.equals(trace)
    assert loaded.timings == trace.timings
    assert loaded.src_pieces == trace.src_pieces


@pytest.mark.parametrize("suffix", [".npz", ".json"])
def test_a_lone_surrogate_in_the_text_saves_and_loads_back(trace, tmp_path, suffix):
    """Python makes lone surrogates from undecodable bytes; JSON export raised UnicodeEncodeError."""
    from dataclasses import replace

    odd = replace(trace, source_text="caf\udce9 \ud800")
    path = tmp_path / f"trace{suffix}"
    odd.save(path)
    assert Trace.load(path).source_text == odd.source_text


def test_json_is_documented_and_plain(trace, tmp_path):
    raw = json.loads(trace.to_json())
    assert raw["schema"] == "attention-studio-trace" and raw["schema_version"] == 4
    assert raw["out_positions"] == list(range(len(trace.tgt_pieces))) and raw["positions"] == "sinusoidal"
    assert raw["src_sentence"] == [0] * len(trace.src_pieces)  # one sentence
    assert raw["src_pieces"][-1] == "</s>"
    assert np.asarray(raw["cross"]).shape == trace.cross.shape
    assert raw["loop_guard"] is True  # our models never complete a loop


def test_a_version_1_file_still_loads_as_a_translation(trace, tmp_path):
    """Files saved before encoder-only and decoder-only models had no out_positions nor positions,
    and none before version 3 said which sentence a piece belongs to, nor before 4 whether the loop
    guard was on (it was not: it came with version 4)."""
    from dataclasses import replace

    raw = json.loads(trace.to_json())
    raw["schema_version"] = 1
    del raw["out_positions"], raw["positions"], raw["src_sentence"], raw["tgt_sentence"], raw["loop_guard"]
    path = tmp_path / "old.json"
    path.write_text(json.dumps(raw), encoding="utf-8")
    loaded = Trace.load(path)
    assert loaded.equals(replace(trace, loop_guard=False)) and not loaded.equals(trace)


def test_trace_is_read_only(trace):
    with pytest.raises(ValueError):
        trace.enc_self[0, 0, 0, 0] = 2.0
    with pytest.raises(AttributeError):
        trace.translation = "x"


def test_shapes_are_validated(trace):
    from dataclasses import replace

    with pytest.raises(ValueError, match="cross"):
        replace(trace, cross=np.zeros((1, 1, 1, 1), dtype=np.float32))


def test_unwritable_path_leaves_no_file(trace, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(OSError):
        trace.save(blocker / "t.npz")  # a path under a regular file cannot be written, even by root
    assert blocker.read_text() == "x"


def test_full_disk_leaves_no_partial_file(trace, tmp_path, monkeypatch):
    import errno

    import engine.files

    def no_space(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(engine.files.os, "fsync", no_space)
    with pytest.raises(OSError, match="No space"):
        trace.save(tmp_path / "t.npz")
    assert list(tmp_path.iterdir()) == []


def test_missing_folder_fails_cleanly(trace, tmp_path):
    with pytest.raises(OSError):
        trace.save(tmp_path / "no" / "such" / "t.npz")
    assert not (tmp_path / "no").exists()


def test_foreign_npz_is_refused(tmp_path):
    np.savez(tmp_path / "other.npz", a=np.zeros(3))
    with pytest.raises(ValueError, match="not an Attention Studio trace"):
        Trace.load(tmp_path / "other.npz")
