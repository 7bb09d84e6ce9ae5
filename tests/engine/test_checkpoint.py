"""Save → load round trip, and a clear one-line error for every kind of broken model directory."""

import json
import pickle
import shutil
import struct

import pytest
import torch

from engine.checkpoint import ModelLoadError, load_model, resolve_device
from engine.translator import Translator


class Payload:
    """Unpickling this would create a marker file: the proof that code ran."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


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


def break_truncate(d):
    data = (d / "model.safetensors").read_bytes()
    (d / "model.safetensors").write_bytes(data[: len(data) // 2])
    return "truncated"


def break_random_bytes(d):
    (d / "model.safetensors").write_bytes(bytes(range(256)) * 64)
    return "oversized or corrupt"


def break_tiny_file(d):
    (d / "model.safetensors").write_bytes(b"\x01\x02")
    return "truncated"


def break_header_json(d):
    (d / "model.safetensors").write_bytes(struct.pack("<Q", 10) + b"not json!!" + b"\0" * 100)
    return "corrupt safetensors header"


def break_oversized_header(d):
    (d / "model.safetensors").write_bytes(struct.pack("<Q", 2**40) + b"{}")
    return "oversized"


def break_wrong_shapes(d):
    config = json.loads((d / "config.json").read_text())
    config["model"]["d_ff"] = 48
    (d / "config.json").write_text(json.dumps(config))
    return "shape"


def break_lying_vocab(d):
    config = json.loads((d / "config.json").read_text())
    config["model"]["src_vocab_size"] = config["model"]["tgt_vocab_size"] = 120
    (d / "config.json").write_text(json.dumps(config))
    return "vocabulary sizes"


def break_missing_tensor(d):
    from safetensors.torch import load_file, save_file

    tensors = load_file(d / "model.safetensors")
    tensors.pop("encoder_layers.0.self_attn.w_q.weight")
    save_file(tensors, d / "model.safetensors")
    return "missing tensor"


def break_missing_weights(d):
    (d / "model.safetensors").unlink()
    return "missing model.safetensors"


def break_missing_tokenizer(d):
    (d / "spm.model").unlink()
    return "missing tokenizer file"


def break_corrupt_tokenizer(d):
    (d / "spm.model").write_bytes(b"\xff\x00garbage" * 50)
    return "not a readable SentencePiece model"


def break_config_json(d):
    (d / "config.json").write_text("{ not json")
    return "not valid JSON"


def break_foreign_config(d):
    (d / "config.json").write_text(json.dumps({"architectures": ["MarianMTModel"]}))
    return "not an Attention Studio model config"


def break_no_config(d):
    (d / "config.json").unlink()
    return "not a model directory"


def break_tokenizer_path_escape(d):
    config = json.loads((d / "config.json").read_text())
    config["tokenizer"]["source"] = "../../etc/passwd"
    (d / "config.json").write_text(json.dumps(config))
    return "plain file name"


def break_nan_weights(d):
    from safetensors.torch import load_file, save_file

    tensors = load_file(d / "model.safetensors")
    name = "decoder_layers.0.feed_forward.w_1.bias"
    tensors[name] = torch.full_like(tensors[name], float("nan"))
    save_file(tensors, d / "model.safetensors")
    return "NaN"


BREAKERS = [
    break_truncate,
    break_random_bytes,
    break_tiny_file,
    break_header_json,
    break_oversized_header,
    break_wrong_shapes,
    break_lying_vocab,
    break_missing_tensor,
    break_missing_weights,
    break_missing_tokenizer,
    break_corrupt_tokenizer,
    break_config_json,
    break_foreign_config,
    break_no_config,
    break_tokenizer_path_escape,
    break_nan_weights,
]


@pytest.mark.parametrize("breaker", BREAKERS, ids=lambda f: f.__name__[6:])
def test_broken_model_gives_one_clear_line(model_copy, breaker):
    expected = breaker(model_copy)
    with pytest.raises(ModelLoadError) as info:
        load_model(model_copy, "cpu")
    message = str(info.value)
    assert expected in message
    assert "\n" not in message


def test_not_a_directory(tmp_path):
    with pytest.raises(ModelLoadError, match="not a directory"):
        load_model(tmp_path / "nowhere")
    with pytest.raises(ModelLoadError, match="not a model directory"):
        load_model(tmp_path)


@pytest.mark.parametrize("as_name", ["model.safetensors", "model.pt"])
def test_pickle_is_refused_and_never_run(model_copy, tmp_path, as_name):
    marker = tmp_path / "payload-ran"
    (model_copy / "model.safetensors").unlink()
    with open(model_copy / as_name, "wb") as handle:
        pickle.dump({"weights": Payload(marker)}, handle)
    with pytest.raises(ModelLoadError, match="pickle"):
        load_model(model_copy, "cpu")
    assert not marker.exists()


def test_torch_save_zip_is_refused(model_copy, tmp_path):
    marker = tmp_path / "payload-ran"
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
