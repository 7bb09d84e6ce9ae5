"""The Trace: everything the app shows about one pass of a model, as numpy arrays in a frozen dataclass.

Numpy only (no torch, no Qt), so the GUI imports it freely. One contract for the three shapes of
the family tree: the encoder–decoder translator, an encoder-only model (BERT) and a decoder-only
one (GPT-2). A part a model does not have is empty (a zero-length axis), never missing.

Encoder–decoder, with S source pieces (ending with </s>), T decoder steps, L layers, H heads, k
candidates, G = T outputs:

| field                  | shape        | meaning                                                       |
|------------------------|--------------|---------------------------------------------------------------|
| src_ids, src_pieces    | S            | source pieces as shown to the user                            |
| tgt_ids, tgt_pieces    | T            | decoder input at each step: <s>, y1 … y(T-1)                  |
| out_ids, out_pieces    | G            | the token chosen at each step: y1 … yT (yT is </s> normally)  |
| out_positions          | G            | the query row each output was predicted at (here 0 … T-1)     |
| enc_self               | L×H×S×S      | encoder self-attention; rows sum to 1                         |
| dec_self               | L×H×T×T      | masked decoder self-attention; strictly upper triangle is 0   |
| cross                  | L×H×T×S      | encoder–decoder attention; row t = what step t looked at      |
| topk_ids, topk_probs   | G×k          | the k most probable next tokens at each step, best first      |
| topk_pieces            | G×k          | their pieces                                                  |
| positional             | P×d_model    | positional rows added to the input embeddings (P = S here)    |
| positions              | scalar       | "sinusoidal" (the paper's table) or "learned" (a trained one) |
| loop_guard             | scalar       | True: no output completes a repetition loop (engine/loops.py) |
| src_sentence           | S            | which sentence of the text each source piece belongs to (0 …) |
| tgt_sentence           | T            | which sentence each decoder step translates (0 …)             |
| qkv                    | name → array | optional: per attention, q/k/v/scores/z per head (see below)  |

Encoder-only (BERT): `src_*` hold the input with its special tokens ([CLS] … [SEP]) and `enc_self`
is L×H×S×S; `tgt_*`, `dec_self` and `cross` are empty (T = 0, no decoder layers). When the input
has [MASK] tokens and the model its MLM head, `out_*` hold the best filler of each mask,
`out_positions` the masks' indices in `src_ids`, and `topk_*` the candidates; otherwise G = 0.

Decoder-only (GPT-2): `tgt_ids` holds the sequence fed to the model (the prompt and every generated
token but the last), `out_ids` the G generated tokens, with `out_ids[j]` chosen after reading
`tgt_ids[T − G + j]` (`out_positions`); `dec_self` is L×H×T×T; `src_*`, `enc_self` and `cross` are
empty; `positional` has T rows.

A text of several sentences is translated sentence by sentence (engine/sentences.py): `src_*` hold
the sentences' pieces one after another, each ending with its </s>; `tgt_*` and `out_*` their
translations, each starting again at <s>; every map is block diagonal (a piece attends only within
its sentence) and `positional` holds the row of each piece's position *within its sentence*. For one
sentence both arrays are all 0.

`qkv` keys are ``<encoder|decoder>.<layer>.<self_attn|cross_attn>.<what>`` with ``what`` one of
query_input (Tq×d_model), key_input (Tk×d_model), q, k, v (H×T×d_k), scores (H×Tq×Tk, before
scaling), z (H×Tq×d_k), output (Tq×d_model), plus ``encoder.embed`` and ``decoder.embed``.

The JSON form (`to_json`) is one object: every scalar and list field by name, arrays as nested
lists, ``"schema": "attention-studio-trace"`` and ``"schema_version"``.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from engine.architecture import ATTENTION_KINDS, SHAPE_KINDS, AttentionKind, ModelShape, check_kind
from engine.files import write_atomic
from engine.sentences import positions_within

SCHEMA = "attention-studio-trace"
SCHEMA_VERSION = 4  # 2: out_positions and positions, for encoder-only and decoder-only models; 3: sentences;
# 4: loop_guard
READABLE_VERSIONS = (1, 2, 3, 4)  # a version-1 file is an encoder–decoder trace; before 3, one sentence
_ARRAY_FIELDS = (
    "src_ids",
    "tgt_ids",
    "out_ids",
    "out_positions",
    "enc_self",
    "dec_self",
    "cross",
    "topk_ids",
    "topk_probs",
    "positional",
    "src_sentence",
    "tgt_sentence",
)
_LIST_FIELDS = ("src_pieces", "tgt_pieces", "out_pieces", "topk_pieces")
_SCALAR_FIELDS = (
    "source_text",
    "translation",
    "model_name",
    "device",
    "decoding",
    "truncated",
    "decoder_passes",
    "positions",
    "loop_guard",
)
# what an older file lacks
_DEFAULTS: dict[str, Any] = {"positions": "sinusoidal", "loop_guard": False}


@dataclass(frozen=True, eq=False)
class Trace:
    source_text: str
    translation: str
    model_name: str
    src_ids: np.ndarray
    src_pieces: list[str]
    tgt_ids: np.ndarray
    tgt_pieces: list[str]
    out_ids: np.ndarray
    out_pieces: list[str]
    enc_self: np.ndarray
    dec_self: np.ndarray
    cross: np.ndarray
    topk_ids: np.ndarray
    topk_probs: np.ndarray
    topk_pieces: list[list[str]]
    positional: np.ndarray
    qkv: dict[str, np.ndarray] | None = None
    timings: dict[str, float] = field(default_factory=dict)  # milliseconds per stage
    device: str = "cpu"
    decoding: str = "greedy"
    truncated: bool = False  # the source was cut to the model's maximum length
    decoder_passes: int = 0  # decoder forward calls this trace cost (decode + capture)
    positions: str = "sinusoidal"  # or "learned": what `positional` holds
    loop_guard: bool = False  # the decoder never completed a repetition loop (engine/loops.py)
    out_positions: np.ndarray | None = None  # None: the last G rows of tgt (encoder–decoder, decoder-only)
    src_sentence: np.ndarray | None = None  # None: one sentence (all 0)
    tgt_sentence: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.out_positions is None:
            T, G = len(self.tgt_pieces), len(self.out_pieces)
            object.__setattr__(self, "out_positions", np.arange(T - G, T, dtype=np.int64))
        for name, pieces in (("src_sentence", self.src_pieces), ("tgt_sentence", self.tgt_pieces)):
            if getattr(self, name) is None:
                object.__setattr__(self, name, np.zeros(len(pieces), dtype=np.int64))
        for name in _ARRAY_FIELDS:
            getattr(self, name).setflags(write=False)
        for array in (self.qkv or {}).values():
            array.setflags(write=False)
        self.validate()

    def validate(self) -> None:
        """Raise ValueError if the shapes disagree with the token counts or with one another."""
        S, T, G = len(self.src_pieces), len(self.tgt_pieces), len(self.out_pieces)
        L_enc, H = self.enc_self.shape[:2]
        L_dec = self.dec_self.shape[0]
        if L_enc == 0 and L_dec == 0:
            raise ValueError("a trace needs encoder layers, decoder layers or both")
        L_cross = L_dec if L_enc and L_dec else 0  # only a translator has cross-attention
        P = T if L_enc == 0 else S  # the input the positional rows were added to
        expected = {
            "src_ids": (S,),
            "tgt_ids": (T,),
            "out_ids": (G,),
            "out_positions": (G,),
            "enc_self": (L_enc, H, S, S),
            "dec_self": (L_dec, H, T, T),
            "cross": (L_cross, H, T, S),
            "topk_ids": self.topk_probs.shape,
            "positional": (P, self.positional.shape[1]),
            "src_sentence": (S,),
            "tgt_sentence": (T,),
        }
        for name, shape in expected.items():
            if getattr(self, name).shape != shape:
                raise ValueError(f"trace field {name} has shape {getattr(self, name).shape}, expected {shape}")
        if self.topk_probs.shape[0] != G or len(self.topk_pieces) != G:
            raise ValueError("trace step fields disagree with the number of outputs")
        if L_dec == 0 and T:
            raise ValueError("an encoder-only trace has no decoder input")
        if L_enc == 0 and S:
            raise ValueError("a decoder-only trace has no source")
        if L_dec and not np.array_equal(self.out_positions, np.arange(T - G, T)):
            raise ValueError("a decoder's outputs are predicted at the last rows of its input")
        if L_enc and L_dec and G != T:
            raise ValueError("a translation has one output per decoder step")
        if G and not (0 <= self.out_positions.min() and self.out_positions.max() < (T if L_dec else S)):
            raise ValueError("trace out_positions point outside the input")
        for name in ("src_sentence", "tgt_sentence"):
            values = getattr(self, name)
            if len(values) and (values[0] != 0 or not np.isin(np.diff(values), (0, 1)).all()):
                raise ValueError(f"trace {name} must count sentences 0, 1, … in order")
        if self.sentences > 1 and (self.src_sentence[-1:] != self.tgt_sentence[-1:]).any():
            raise ValueError("a translated text has as many target sentences as source sentences")
        if self.positions not in ("sinusoidal", "learned"):
            raise ValueError(f"trace positions must be 'sinusoidal' or 'learned', got {self.positions!r}")

    # --- what the views ask for ---

    @property
    def n_layers(self) -> dict[str, int]:
        return {kind: self.attention(kind).shape[0] for kind in ATTENTION_KINDS}

    @property
    def sentences(self) -> int:
        """How many sentences the text was translated as (1 for BERT, GPT-2 and a single sentence)."""
        return int(max(self.src_sentence.max(initial=0), self.tgt_sentence.max(initial=0))) + 1

    def same_sentence(self, kind: str) -> np.ndarray:
        """queries × keys of `kind`, True where the query and the key belong to the same sentence."""
        check_kind(kind)
        rows, columns = {
            "enc_self": (self.src_sentence, self.src_sentence),
            "dec_self": (self.tgt_sentence, self.tgt_sentence),
            "cross": (self.tgt_sentence, self.src_sentence),
        }[kind]
        return rows[:, None] == columns[None, :]

    def sentence_keys(self, kind: str, row: int) -> np.ndarray:
        """Indices of the keys query `row` of `kind` may attend to: its own sentence's (every key for
        one sentence). Views draw a step of a text of several sentences over its sentence only."""
        return np.flatnonzero(self.same_sentence(kind)[row])

    @property
    def n_heads(self) -> int:
        return self.enc_self.shape[1]

    @property
    def shape(self) -> ModelShape:
        if self.enc_self.shape[0] == 0:
            return "decoder-only"
        return "encoder-only" if self.dec_self.shape[0] == 0 else "encoder-decoder"

    @property
    def kinds(self) -> tuple[AttentionKind, ...]:
        """The attention kinds this model has, in the usual order."""
        return SHAPE_KINDS[self.shape]

    @property
    def input_pieces(self) -> list[str]:
        """The pieces the positional rows belong to: the source, or a decoder-only model's input."""
        return self.tgt_pieces if self.shape == "decoder-only" else self.src_pieces

    @property
    def input_positions(self) -> np.ndarray:
        """The position each input piece was encoded at: its index, counted from its sentence's start
        in a text of several sentences (`positional`'s rows are these positions' encodings)."""
        return positions_within(self.tgt_sentence if self.shape == "decoder-only" else self.src_sentence)

    @property
    def input_ids(self) -> np.ndarray:
        return self.tgt_ids if self.shape == "decoder-only" else self.src_ids

    def prediction_at(self, kind: str, row: int) -> str | None:
        """The piece predicted from query row `row` of `kind` (None where that row predicts nothing:
        an encoder row of a translator, a prompt row of GPT-2 but its last, a BERT row without [MASK])."""
        if kind == "enc_self" and self.shape != "encoder-only":
            return None
        hits = np.flatnonzero(self.out_positions == row)
        return self.out_pieces[int(hits[0])] if hits.size else None

    def attention(self, kind: str) -> np.ndarray:
        """L×H×queries×keys for kind 'enc_self', 'dec_self' or 'cross'."""
        check_kind(kind)
        return getattr(self, kind)

    def axis_pieces(self, kind: str) -> tuple[list[str], list[str]]:
        """(query pieces, key pieces) labelling the rows and columns of `kind`."""
        check_kind(kind)
        return {
            "enc_self": (self.src_pieces, self.src_pieces),
            "dec_self": (self.tgt_pieces, self.tgt_pieces),
            "cross": (self.tgt_pieces, self.src_pieces),
        }[kind]

    # --- files ---

    def to_npz_bytes(self) -> bytes:
        arrays = {name: getattr(self, name) for name in _ARRAY_FIELDS}
        for name, array in (self.qkv or {}).items():
            arrays[f"qkv/{name}"] = array
        meta = {name: getattr(self, name) for name in _SCALAR_FIELDS + _LIST_FIELDS}
        meta.update(timings=self.timings, schema=SCHEMA, schema_version=SCHEMA_VERSION)
        arrays["meta_json"] = np.array(json.dumps(meta, ensure_ascii=False))
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **arrays)
        return buffer.getvalue()

    @classmethod
    def from_npz(cls, path: Path | str) -> Trace:
        with np.load(path, allow_pickle=False) as data:
            if "meta_json" not in data.files:
                raise ValueError(f"{Path(path).name}: not an Attention Studio trace (no meta_json entry)")
            meta = json.loads(str(data["meta_json"]))
            _check_schema(meta)
            arrays: dict[str, Any] = {name: data[name] for name in _ARRAY_FIELDS if name in data.files}
            qkv = {key[4:]: data[key] for key in data.files if key.startswith("qkv/")} or None
        return cls(**arrays, qkv=qkv, **_meta_fields(meta))

    def to_json_dict(self) -> dict:
        out: dict = {"schema": SCHEMA, "schema_version": SCHEMA_VERSION}
        out.update({name: getattr(self, name) for name in _SCALAR_FIELDS + _LIST_FIELDS})
        out["timings"] = self.timings
        out.update({name: getattr(self, name).tolist() for name in _ARRAY_FIELDS})
        # nested lists lose the axes after a zero-length one (a GPT-2's empty enc_self is 0×H×0×0)
        out["shapes"] = {name: list(getattr(self, name).shape) for name in _ARRAY_FIELDS}
        out["qkv"] = {k: v.tolist() for k, v in self.qkv.items()} if self.qkv else None
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_json_dict(), ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> Trace:
        raw = json.loads(text)
        _check_schema(raw)
        dtypes = {
            name: np.int64
            for name in ("src_ids", "tgt_ids", "out_ids", "out_positions", "topk_ids", "src_sentence", "tgt_sentence")
        }
        arrays: dict[str, Any] = {
            name: np.asarray(raw[name], dtype=dtypes.get(name, np.float32)) for name in _ARRAY_FIELDS if name in raw
        }
        for name, shape in raw.get("shapes", {}).items():
            if name in arrays and arrays[name].size == 0:
                arrays[name] = arrays[name].reshape(shape)
        qkv = {k: np.asarray(v, dtype=np.float32) for k, v in raw["qkv"].items()} if raw.get("qkv") else None
        return cls(**arrays, qkv=qkv, **_meta_fields(raw))

    def save(self, path: Path | str) -> None:
        """Write .npz or .json (by suffix) atomically: a temporary file renamed into place."""
        path = Path(path)
        if path.suffix == ".npz":
            data = self.to_npz_bytes()
        elif path.suffix == ".json":
            # a lone surrogate in a text field becomes a JSON escape (\udXXX) that loads back as it was
            data = self.to_json().encode("utf-8", errors="backslashreplace")
        else:
            raise ValueError(f"{path.name}: a trace is saved as .npz or .json")
        write_atomic(path, data)

    @classmethod
    def load(cls, path: Path | str) -> Trace:
        path = Path(path)
        if path.suffix == ".json":
            return cls.from_json(path.read_text(encoding="utf-8"))
        return cls.from_npz(path)

    def equals(self, other: Trace) -> bool:
        """Same tokens, texts and arrays (timings aside)."""
        if not isinstance(other, Trace):
            return False
        for f in fields(self):
            if f.name == "timings":
                continue
            a, b = getattr(self, f.name), getattr(other, f.name)
            if isinstance(a, np.ndarray):
                if not (a.shape == b.shape and np.array_equal(a, b)):
                    return False
            elif f.name == "qkv":
                if (a is None) != (b is None) or (
                    a and (a.keys() != b.keys() or any(not np.array_equal(a[k], b[k]) for k in a))
                ):
                    return False
            elif a != b:
                return False
        return True


def _check_schema(meta: dict) -> None:
    if meta.get("schema") != SCHEMA:
        raise ValueError(f"not an Attention Studio trace (schema is {meta.get('schema')!r})")
    if meta.get("schema_version") not in READABLE_VERSIONS:
        raise ValueError(
            f"trace schema version {meta.get('schema_version')} is not supported (expected {SCHEMA_VERSION})"
        )


def _meta_fields(meta: dict) -> dict[str, Any]:
    out = {name: meta[name] if name in meta else _DEFAULTS[name] for name in _SCALAR_FIELDS + _LIST_FIELDS}
    out["timings"] = dict(meta.get("timings", {}))
    return out
