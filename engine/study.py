"""A study: what a user set up in the app — model, text, decoding they steered, what the views
select — and the Trace on screen, in one file, so it can be reopened exactly (or shown read-only
when its model is not on this machine).

The file (`.study`) is a NumPy .npz archive without pickles: ``study_json`` (the state, versioned)
and ``trace_npz`` (the Trace's own .npz bytes, engine/trace.py). Every problem reading one is a
StudyError with a one-line message.
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engine.files import write_atomic
from engine.trace import Trace

SCHEMA = "attention-studio-study"
SCHEMA_VERSION = 1
SUFFIX = ".study"
MAX_BYTES = 512 * 1024 * 1024


class StudyError(ValueError):
    """A study file that cannot be read; str() is one line."""


@dataclass(frozen=True)
class Study:
    model_directory: str  # where the model was when the study was saved
    model_name: str
    text: str
    trace: Trace
    beam_size: int = 1
    forced_prefix: tuple[int, ...] = ()
    beam_selection: tuple[int, ...] | None = None
    new_tokens: int | None = None  # a decoder-only model's continuation length
    view: dict[str, Any] = field(default_factory=dict)  # the views' selection, as the app writes it
    embedding_norms: np.ndarray | None = None  # (P,) what the positional view draws, for a read-only reopening

    def state(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "schema_version": SCHEMA_VERSION,
            "model": {"directory": self.model_directory, "name": self.model_name},
            "text": self.text,
            "decoding": {
                "beam_size": self.beam_size,
                "forced_prefix": list(self.forced_prefix),
                "beam_selection": None if self.beam_selection is None else list(self.beam_selection),
                "new_tokens": self.new_tokens,
            },
            "view": self.view,
        }

    def save(self, path: Path | str) -> None:
        """Write the study atomically (a temporary file renamed into place)."""
        buffer = io.BytesIO()
        state = json.dumps(self.state(), ensure_ascii=False)
        trace = np.frombuffer(self.trace.to_npz_bytes(), dtype=np.uint8)
        extra = (
            {} if self.embedding_norms is None else {"embedding_norms": np.asarray(self.embedding_norms, np.float64)}
        )
        np.savez(buffer, study_json=np.array(state), trace_npz=trace, **extra)
        write_atomic(Path(path), buffer.getvalue())

    @classmethod
    def load(cls, path: Path | str) -> Study:
        path = Path(path)
        try:
            if path.stat().st_size > MAX_BYTES:
                raise StudyError(f"{path.name}: {path.stat().st_size:,} bytes, refused as oversized")
            with np.load(path, allow_pickle=False) as data:
                if "study_json" not in data.files or "trace_npz" not in data.files:
                    raise StudyError(f"{path.name}: not an Attention Studio study (no study_json/trace_npz)")
                state = json.loads(str(data["study_json"]))
                trace_bytes = data["trace_npz"].tobytes()
                norms = data["embedding_norms"] if "embedding_norms" in data.files else None
        except StudyError:
            raise
        except FileNotFoundError:
            raise StudyError(f"{path}: no such file") from None
        except (OSError, ValueError, zipfile.BadZipFile, EOFError, KeyError) as error:
            raise StudyError(f"{path.name}: not a readable study file ({_first_line(error)})") from None
        _check_schema(path.name, state)
        try:
            trace = Trace.from_npz(io.BytesIO(trace_bytes))
            decoding = state["decoding"]
            selection = decoding.get("beam_selection")
            return cls(
                model_directory=str(state["model"]["directory"]),
                model_name=str(state["model"]["name"]),
                text=str(state["text"]),
                trace=trace,
                beam_size=int(decoding["beam_size"]),
                forced_prefix=tuple(int(t) for t in decoding["forced_prefix"]),
                beam_selection=None if selection is None else tuple(int(i) for i in selection),
                new_tokens=None if decoding.get("new_tokens") is None else int(decoding["new_tokens"]),
                view=dict(state.get("view") or {}),
                embedding_norms=norms,
            )
        except (KeyError, TypeError, ValueError, zipfile.BadZipFile, OSError) as error:
            raise StudyError(f"{path.name}: a damaged study ({_first_line(error)})") from None


def _check_schema(name: str, state: object) -> None:
    if not isinstance(state, dict) or state.get("schema") != SCHEMA:
        raise StudyError(f"{name}: not an Attention Studio study")
    version = state.get("schema_version")
    if not isinstance(version, int) or version < 1:
        raise StudyError(f"{name}: a study without a valid schema version")
    if version > SCHEMA_VERSION:
        raise StudyError(
            f"{name}: written by a newer Attention Studio (study version {version}; this one reads up to "
            f"{SCHEMA_VERSION}); update the app to open it"
        )


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0][:200] if text else type(error).__name__
