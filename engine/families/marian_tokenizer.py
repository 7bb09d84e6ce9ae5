"""A Marian (opus-mt) tokenizer: source.spm and target.spm segment, vocab.json numbers the pieces.

What transformers' MarianTokenizer does, without transformers: the source text is cut into pieces
by source.spm (a leading language code such as ``>>fr<<`` is kept whole), each piece is looked up
in vocab.json (unknown pieces become <unk>) and </s> is appended; target text is cut by target.spm;
output ids go back to pieces through the same vocabulary and to text through target.spm.
A model with ``separate_vocabs`` numbers target pieces with target_vocab.json instead.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import sentencepiece as spm

from engine.tokenizer import TokenizerError, check_in_child, encodable

SPIECE_UNDERLINE = "▁"


@dataclass(frozen=True)
class MarianVocabulary:
    """Pieces → ids for one side, and the special pieces' ids."""

    ids: dict[str, int]
    pieces: dict[int, str]  # the inverse (the last piece wins for a duplicated id, as in transformers)

    @classmethod
    def from_mapping(cls, mapping: dict[str, int]) -> MarianVocabulary:
        return cls(dict(mapping), {i: piece for piece, i in mapping.items()})


def load_processor(path: Path, isolate: bool) -> spm.SentencePieceProcessor:
    if isolate:
        check_in_child(path)
    processor = spm.SentencePieceProcessor()
    try:
        processor.Load(str(path))
    except (OSError, RuntimeError) as error:
        raise TokenizerError(f"{path.name}: not a readable SentencePiece model ({error})") from None
    return processor


def split_language_code(text: str) -> tuple[list[str], str]:
    """A leading ``>>xx<<`` (which multilingual models read as the target language) and the rest."""
    if text.startswith(">>") and (end := text.find("<<")) != -1:
        return [text[: end + 2]], text[end + 2 :]
    return [], text


class MarianTokenizer:
    """Text ↔ ids of a Marian folder (engine.tokenizer.TextTokenizer)."""

    mask_id: int | None = None  # no [MASK] in a translation vocabulary

    def __init__(
        self,
        source_spm: Path,
        target_spm: Path,
        source_vocab: MarianVocabulary,
        target_vocab: MarianVocabulary,
        special: dict[str, int],  # "unk", "eos", "pad" → id
        isolate: bool = True,
    ) -> None:
        self.src = load_processor(Path(source_spm), isolate)
        self.tgt = load_processor(Path(target_spm), isolate)
        self.source_vocab, self.target_vocab = source_vocab, target_vocab
        self.unk_id, self.eos_id, self.pad_id = special["unk"], special["eos"], special["pad"]
        self.special_ids = frozenset(special.values())

    @property
    def src_vocab_size(self) -> int:
        return max(self.source_vocab.pieces, default=-1) + 1

    @property
    def tgt_vocab_size(self) -> int:
        return max(self.target_vocab.pieces, default=-1) + 1

    def _ids(self, vocab: MarianVocabulary, pieces: list[str]) -> list[int]:
        return [vocab.ids.get(piece, self.unk_id) for piece in pieces]

    def _pieces(self, processor: spm.SentencePieceProcessor, text: str, alpha: float) -> list[str]:
        if alpha > 0:
            return list(processor.Encode(text, out_type=str, enable_sampling=True, alpha=alpha, nbest_size=-1))
        return list(processor.EncodeAsPieces(text))

    def encode_source(self, text: str, alpha: float = 0.0) -> list[int]:
        code, rest = split_language_code(encodable(text))
        return self._ids(self.source_vocab, code + self._pieces(self.src, rest, alpha)) + [self.eos_id]

    def encode_target(self, text: str, alpha: float = 0.0) -> list[int]:
        code, rest = split_language_code(encodable(text))  # as transformers does on either side
        return self._ids(self.target_vocab, code + self._pieces(self.tgt, rest, alpha))

    def source_pieces(self, ids: Sequence[int]) -> list[str]:
        return [self.source_vocab.pieces.get(int(i), "<unk>") for i in ids]

    def target_pieces(self, ids: Sequence[int]) -> list[str]:
        return [self.target_vocab.pieces.get(int(i), "<unk>") for i in ids]

    def decode_target(self, ids: Iterable[int]) -> str:
        """Text of target ids, special tokens dropped (MarianTokenizer.decode(skip_special_tokens=True))."""
        pieces = self.target_pieces([i for i in ids if int(i) not in self.special_ids])
        return self.tgt.DecodePieces(pieces).replace(SPIECE_UNDERLINE, " ").strip()
