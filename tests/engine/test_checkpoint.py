"""Save → load round trip, and a clear one-line error for every kind of broken model directory."""

import json
import os
import pickle
import shutil

import pytest
import torch
from broken_model_builders import BREAKERS, Payload, break_lying_sizes, payload_marker, variant_name

from engine.checkpoint import ModelLoadError, all_finite, load_model, resolve_device
from engine.translator import Translator


@pytest.fixture
def model_copy(tiny_model_dir, tmp_path):
    return shutil.copytree(tiny_model_dir, tmp_path / "copy")


def test_save_load_gives_identical_outputs(tiny_model_dir, tmp_path):
    from engine.checkpoint import ModelInfo, save_model

    first = Translator.from_directory(tiny_model_dir, "cpu")
    save_model(first.model, tmp_path / "again", ModelInfo("again", "fr", "en", "spm.model", "spm.model"))
    shutil.copyfile(tiny_model_dir / "spm.model", tmp_path / "again" / "spm.model")
    second = Translator.from_directory(tmp_path / "again", "cpu")
    src = torch.tensor([[5, 6, 7, 3]])
    tgt = torch.tensor([[2, 9, 10]])
    torch.testing.assert_close(first.model(src, tgt), second.model(src, tgt), rtol=0, atol=0)
    assert first.trace("Je suis.").translation == second.trace("Je suis.").translation


def test_auto_device_is_cpu_here_and_bad_choices_are_refused():
    if not torch.cuda.is_available():
        assert resolve_device("auto").type in ("cpu", "mps")
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda")
    with pytest.raises(ValueError, match="unknown device"):
        resolve_device("tpu")


@pytest.mark.parametrize("breaker", BREAKERS, ids=variant_name)
def test_broken_model_gives_one_clear_line(model_copy, breaker):
    expected = breaker(model_copy)
    with pytest.raises(ModelLoadError) as info:
        load_model(model_copy, "cpu")
    message = str(info.value)
    assert expected in message
    assert "\n" not in message
    assert not payload_marker(model_copy).exists()


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"n_heads": 0}, "n_heads must be positive"),  # was an uncaught ZeroDivisionError
        ({"d_model": 32.0}, "whole number"),  # was an uncaught TypeError from torch.empty
        ({"n_heads": True}, "whole number"),  # was loaded as one head
        ({"pe_base": float("nan")}, "finite number"),  # loaded, then every trace failed
        ({"pad_id": 500}, "pad_id is 500"),  # was an uncaught AssertionError from nn.Embedding
        ({"bos_id": 99999}, "bos_id is 99999"),  # loaded, then every trace raised IndexError
        ({"eos_id": -1}, "eos_id is -1"),  # loaded, then decoding never stopped before the length limit
        ({"tie_output": "no"}, "true or false"),
    ],
)
def test_config_values_of_the_wrong_type_or_range_are_refused(model_copy, change, expected):
    config = json.loads((model_copy / "config.json").read_text())
    config["model"].update(change)
    (model_copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match="invalid model description") as info:
        load_model(model_copy, "cpu")
    assert expected in str(info.value)


def test_a_config_lying_about_sizes_is_refused_before_the_model_is_built(model_copy, monkeypatch):
    """Building first would allocate and initialise gigabytes (or get the app killed) before the
    first shape check; the sizes are compared with the weights file's size beforehand."""
    import engine.checkpoint

    def refuse_to_build(cfg):
        raise AssertionError(f"the model was built: {cfg}")

    break_lying_sizes(model_copy)
    monkeypatch.setattr(engine.checkpoint, "Transformer", refuse_to_build)
    with pytest.raises(ModelLoadError, match="parameters"):
        load_model(model_copy, "cpu")


def test_not_a_directory(tmp_path):
    with pytest.raises(ModelLoadError, match="not a directory"):
        load_model(tmp_path / "nowhere")
    with pytest.raises(ModelLoadError, match="not a model directory"):
        load_model(tmp_path)


@pytest.mark.parametrize("as_name", ["model.safetensors", "model.pt"])
def test_pickle_is_refused_and_never_run(model_copy, as_name):
    marker = payload_marker(model_copy)
    (model_copy / "model.safetensors").unlink()
    with open(model_copy / as_name, "wb") as handle:
        pickle.dump({"weights": Payload(marker)}, handle)
    with pytest.raises(ModelLoadError, match="pickle"):
        load_model(model_copy, "cpu")
    assert not marker.exists()


def test_torch_save_zip_is_refused(model_copy):
    marker = payload_marker(model_copy)
    torch.save({"x": Payload(marker)}, model_copy / "model.safetensors")
    with pytest.raises(ModelLoadError, match="pickle"):
        load_model(model_copy, "cpu")
    assert not marker.exists()


def test_a_tokenizer_that_crashes_the_native_library_is_refused(model_copy, monkeypatch):
    """The tokenizer is first read in a child process; if that process dies, loading is refused
    and this process lives on. (A real crashing file is library-version specific, so the child's
    code is replaced by one that aborts, as a crashing library would.)"""
    import engine.tokenizer

    monkeypatch.setattr(engine.tokenizer, "CHILD_CHECK", "import os; os.abort()")
    with pytest.raises(ModelLoadError, match="crashes reading it"):
        load_model(model_copy, "cpu")


def test_a_tokenizer_that_hangs_the_native_library_is_refused(model_copy, monkeypatch):
    import engine.tokenizer

    monkeypatch.setattr(engine.tokenizer, "CHILD_CHECK", "import time; time.sleep(60)")
    monkeypatch.setattr(engine.tokenizer, "CHILD_TIMEOUT_S", 1.0)
    with pytest.raises(ModelLoadError, match="hangs"):
        load_model(model_copy, "cpu")


def counting_children(monkeypatch) -> list:
    """Patch the tokenizer's child-process starter to record the files it is started for."""
    import engine.tokenizer

    started, start = [], engine.tokenizer._child
    monkeypatch.setattr(engine.tokenizer, "_child", lambda path: started.append(path.name) or start(path))
    return started


def test_a_check_begun_ahead_is_collected_by_the_load(model_copy, monkeypatch):
    """The app begins the tokenizer's crash check before importing torch; loading then waits for
    that child instead of starting a second one."""
    from engine.tokenizer import _started, start_checks

    started = counting_children(monkeypatch)
    start_checks(model_copy)
    assert started == ["spm.model"]
    load_model(model_copy, "cpu")
    assert started == ["spm.model"] and not _started


def test_a_crash_found_by_a_check_begun_ahead_is_still_refused(model_copy, monkeypatch):
    import engine.tokenizer

    monkeypatch.setattr(engine.tokenizer, "CHILD_CHECK", "import os; os.abort()")
    engine.tokenizer.start_checks(model_copy)
    with pytest.raises(ModelLoadError, match="crashes reading it"):
        load_model(model_copy, "cpu")


def test_a_file_changed_after_its_check_began_is_checked_again(model_copy, monkeypatch):
    import engine.tokenizer

    started = counting_children(monkeypatch)
    engine.tokenizer.start_checks(model_copy)
    stat = (model_copy / "spm.model").stat()  # rewritten since: a new modification time
    os.utime(model_copy / "spm.model", ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    monkeypatch.setattr(engine.tokenizer, "CHILD_CHECK", "import os; os.abort()")  # what the new file does
    with pytest.raises(ModelLoadError, match="crashes reading it"):
        load_model(model_copy, "cpu")
    assert started == ["spm.model", "spm.model"]


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_one_bad_value_anywhere_is_not_finite(bad):
    weights = torch.randn(1000)
    assert all_finite(weights)
    for index in (0, 517, 999):
        broken = weights.clone()
        broken[index] = bad
        assert not all_finite(broken)
