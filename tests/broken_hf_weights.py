"""Ways to break the weights of a Hugging Face folder, the same for every family (Marian, BERT,
GPT-2): each damages a copy of a good folder and names a fragment of the one-line error. A family's
builders import these next to its own `break_*` functions, so its BREAKERS picks them up."""

from __future__ import annotations

import pickle
from pathlib import Path

from broken_model_builders import (  # noqa: F401 (break_missing_weights: the same for our folders)
    WEIGHTS,
    Payload,
    break_missing_weights,
    break_truncate,
    payload_marker,
)


def break_truncated_weights(d: Path) -> str:
    break_truncate(d)
    return "model.safetensors: truncated"


def break_bin_only(d: Path) -> str:
    (d / WEIGHTS).unlink()
    (d / "pytorch_model.bin").write_bytes(pickle.dumps(Payload(payload_marker(d))))
    return "pytorch_model.bin: pickled weights are refused"


def break_sharded(d: Path) -> str:
    (d / WEIGHTS).rename(d / "model-00001-of-00001.safetensors")
    (d / f"{WEIGHTS}.index.json").write_text("{}")
    return "sharded safetensors weights are not supported"
