"""Broken model directories, shared by tests/engine/test_checkpoint.py and benchmarks/broken_models.py.

Each `break_*` function damages a copy of a good model directory in place and returns a fragment
that the one-line ModelLoadError must contain. The pickle variants plant a payload that, if ever
unpickled, would create a marker file: the proof that code ran.
"""

from __future__ import annotations

import json
import pickle
import struct
from collections.abc import Callable
from pathlib import Path

WEIGHTS = "model.safetensors"
PAYLOAD_MARKER = "payload-ran"  # created beside the model directory if a payload ever runs


class Payload:
    """Unpickling this would create a marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def payload_marker(d: Path) -> Path:
    return d.parent / PAYLOAD_MARKER


def _edit_config(d: Path, edit: Callable[[dict], None]) -> None:
    config = json.loads((d / "config.json").read_text())
    edit(config)
    (d / "config.json").write_text(json.dumps(config))


def _edit_tensors(d: Path, edit: Callable[[dict], None]) -> None:
    from safetensors.torch import load_file, save_file

    tensors = load_file(d / WEIGHTS)
    edit(tensors)
    save_file(tensors, d / WEIGHTS)


def _write_header(d: Path, header: object, padding: int = 100) -> None:
    data = json.dumps(header).encode()
    (d / WEIGHTS).write_bytes(struct.pack("<Q", len(data)) + data + b"\0" * padding)


# --- weights ---


def break_truncate(d: Path) -> str:
    data = (d / WEIGHTS).read_bytes()
    (d / WEIGHTS).write_bytes(data[: len(data) // 2])
    return "truncated"


def break_random_bytes(d: Path) -> str:
    (d / WEIGHTS).write_bytes(bytes(range(256)) * 64)
    return "oversized or corrupt"


def break_tiny_file(d: Path) -> str:
    (d / WEIGHTS).write_bytes(b"\x01\x02")
    return "truncated"


def break_header_json(d: Path) -> str:
    (d / WEIGHTS).write_bytes(struct.pack("<Q", 10) + b"not json!!" + b"\0" * 100)
    return "corrupt safetensors header"


def break_header_entries(d: Path) -> str:
    """Valid JSON whose entries are not tensor descriptions."""
    _write_header(d, {"src_embed.weight": 1, "output.weight": {"dtype": "F32"}})
    return "corrupt safetensors header"


def break_deep_header(d: Path) -> str:
    """A header nested deeper than Python's json parser can recurse (it raised RecursionError)."""
    data = b"[" * 200_000
    (d / WEIGHTS).write_bytes(struct.pack("<Q", len(data)) + data)
    return "corrupt safetensors header"


def break_oversized_header(d: Path) -> str:
    (d / WEIGHTS).write_bytes(struct.pack("<Q", 2**40) + b"{}")
    return "oversized"


def break_missing_tensor(d: Path) -> str:
    _edit_tensors(d, lambda t: t.pop("encoder_layers.0.self_attn.w_q.weight"))
    return "missing tensor"


def break_nan_weights(d: Path) -> str:
    import torch

    name = "decoder_layers.0.feed_forward.w_1.bias"
    _edit_tensors(d, lambda t: t.__setitem__(name, torch.full_like(t[name], float("nan"))))
    return "NaN"


def break_missing_weights(d: Path) -> str:
    (d / WEIGHTS).unlink()
    return "missing model.safetensors"


# --- pickles carrying a payload ---


def break_pickle_pt(d: Path) -> str:
    """The weights replaced by a model.pt pickle whose payload would create the marker."""
    (d / WEIGHTS).unlink()
    with open(d / "model.pt", "wb") as handle:
        pickle.dump({"weights": Payload(payload_marker(d))}, handle)
    return "pickle"


def break_pickle_renamed(d: Path) -> str:
    """The same pickle under the safetensors name."""
    with open(d / WEIGHTS, "wb") as handle:
        pickle.dump({"weights": Payload(payload_marker(d))}, handle)
    return "pickle"


def break_torch_save_zip(d: Path) -> str:
    """torch.save's zip format (a pickle inside) under the safetensors name."""
    import torch

    torch.save({"x": Payload(payload_marker(d))}, d / WEIGHTS)
    return "pickle"


# --- config ---


def break_wrong_shapes(d: Path) -> str:
    _edit_config(d, lambda c: c["model"].__setitem__("d_ff", 48))
    return "shape"


def break_lying_vocab(d: Path) -> str:
    _edit_config(d, lambda c: c["model"].update(src_vocab_size=120, tgt_vocab_size=120))
    return "vocabulary sizes"


def break_lying_sizes(d: Path) -> str:
    """A config claiming a model of about 4 GB for a file of a few kB: refused before anything is allocated."""
    _edit_config(d, lambda c: c["model"].update(d_model=8192, d_ff=32768, n_encoder_layers=4, n_decoder_layers=4))
    return "shape"


def break_huge_positions(d: Path) -> str:
    _edit_config(d, lambda c: c["model"].__setitem__("max_positions", 10**9))
    return "max_positions"


def break_config_json(d: Path) -> str:
    (d / "config.json").write_text("{ not json")
    return "not valid JSON"


def break_foreign_config(d: Path) -> str:
    (d / "config.json").write_text(json.dumps({"architectures": ["MarianMTModel"]}))
    return "not an Attention Studio model config"


def break_oversized_config(d: Path) -> str:
    (d / "config.json").write_bytes(b" " * (8 * 1024 * 1024) + b"{}")
    return "oversized"


def break_deep_config(d: Path) -> str:
    """Nested deeper than Python's json parser can recurse (it raised RecursionError)."""
    (d / "config.json").write_bytes(b"[" * 200_000)
    return "nested too deeply"


def break_no_config(d: Path) -> str:
    """A directory that is not a model: no config.json."""
    (d / "config.json").unlink()
    return "not a model directory"


# --- tokenizer ---


def break_missing_tokenizer(d: Path) -> str:
    (d / "spm.model").unlink()
    return "missing tokenizer file"


def break_corrupt_tokenizer(d: Path) -> str:
    (d / "spm.model").write_bytes(b"\xff\x00garbage" * 50)
    return "not a readable SentencePiece model"


def break_tokenizer_path_escape(d: Path) -> str:
    _edit_config(d, lambda c: c["tokenizer"].__setitem__("source", "../../etc/passwd"))
    return "plain file name"


BREAKERS: list[Callable[[Path], str]] = [
    break_truncate,
    break_random_bytes,
    break_tiny_file,
    break_header_json,
    break_header_entries,
    break_deep_header,
    break_oversized_header,
    break_missing_tensor,
    break_nan_weights,
    break_missing_weights,
    break_pickle_pt,
    break_pickle_renamed,
    break_torch_save_zip,
    break_wrong_shapes,
    break_lying_vocab,
    break_lying_sizes,
    break_huge_positions,
    break_config_json,
    break_foreign_config,
    break_oversized_config,
    break_deep_config,
    break_no_config,
    break_missing_tokenizer,
    break_corrupt_tokenizer,
    break_tokenizer_path_escape,
]


def variant_name(breaker: Callable[[Path], str]) -> str:
    return breaker.__name__.removeprefix("break_")
