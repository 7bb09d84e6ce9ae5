"""Study files: the app's state and its Trace, saved and read back exactly; bad files get one line."""

from __future__ import annotations

import io
import json
import os
import stat

import numpy as np
import pytest

from engine.study import Study, StudyError
from engine.translator import TraceOptions, Translator


@pytest.fixture(scope="module")
def study(tiny_model_dir):
    translator = Translator.from_directory(tiny_model_dir, "cpu")
    trace = translator.trace("Je suis étudiant.", TraceOptions(with_qkv=True))
    view = {"kind": "cross", "layer": 1, "head": "avg", "step": 2, "tab": "Walkthrough", "lines": True}
    return Study(str(tiny_model_dir), "tiny", "Je suis étudiant.", trace, 3, (5, 6), (0, 1, 1), None, view)


def test_a_study_reads_back_as_it_was_saved(study, tmp_path):
    path = tmp_path / "s.study"
    study.save(path)
    again = Study.load(path)
    assert again.trace.equals(study.trace) and again.trace.qkv is not None
    assert (again.model_directory, again.model_name, again.text) == (study.model_directory, "tiny", study.text)
    assert (again.beam_size, again.forced_prefix, again.beam_selection) == (3, (5, 6), (0, 1, 1))
    assert again.view == study.view and again.new_tokens is None
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o666 & ~_umask()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _state_file(study: Study, path, **changes) -> None:
    state = {**study.state(), **changes}
    trace = np.frombuffer(study.trace.to_npz_bytes(), dtype=np.uint8)
    buffer = io.BytesIO()  # np.savez would add ".npz" to a path
    np.savez(buffer, study_json=np.array(json.dumps(state)), trace_npz=trace)
    path.write_bytes(buffer.getvalue())


@pytest.mark.parametrize(
    "write, message",
    [
        (lambda s, p: p.write_bytes(b"not a zip at all"), "not a readable study file"),
        (lambda s, p: (s.save(p), p.write_bytes(p.read_bytes()[:300])), "not a readable study file"),
        (lambda s, p: p.write_bytes(s.trace.to_npz_bytes()), "not an Attention Studio study"),
        (lambda s, p: _state_file(s, p, schema_version=7), "written by a newer Attention Studio (study version 7"),
        (lambda s, p: _state_file(s, p, schema="something else"), "not an Attention Studio study"),
        (lambda s, p: _state_file(s, p, decoding={"beam_size": "many"}), "a damaged study"),
    ],
)
def test_bad_files_get_one_line(study, tmp_path, write, message):
    path = tmp_path / "bad.study"
    write(study, path)
    with pytest.raises(StudyError) as error:
        Study.load(path)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(StudyError, match="no such file"):
        Study.load(tmp_path / "gone.study")


def test_no_pickle_is_ever_read(study, tmp_path):
    """An object array (which only pickle can hold) in place of the state is refused, not unpickled."""
    path = tmp_path / "pickled.study"
    buffer = io.BytesIO()
    np.savez(buffer, study_json=np.array([{"schema": "x"}], dtype=object), trace_npz=np.zeros(3, np.uint8))
    path.write_bytes(buffer.getvalue())
    with pytest.raises(StudyError, match="not a readable study file"):
        Study.load(path)
