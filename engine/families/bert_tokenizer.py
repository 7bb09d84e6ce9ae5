"""BERT's WordPiece: vocab.txt numbers the pieces (one a line, the line's index is the id), and
tokenizer_config.json says whether the text is lower-cased and stripped of accents.

What transformers' BertTokenizerFast does, without transformers, through the `tokenizers` package:
the text is cleaned (control characters dropped, whitespace made spaces), optionally lower-cased
and stripped of accents, cut into words and punctuation (each CJK character its own word), and each
word split into the longest pieces vocab.txt knows, a continuation piece written "##ing"; a word it
cannot split is [UNK]. [CLS] and [SEP] go around the input. The special tokens typed in the text,
"[MASK]" above all, are those tokens and nothing else.

Pieces are shown to the user as BERT writes them ("play", "##ing"); `decode_target` joins them
back into text without [CLS], [SEP] and [PAD].
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers

from engine.tokenizer import TokenizerError, encodable

MAX_CHARS_PER_WORD = 100  # a longer word is [UNK], as in BERT


@dataclass(frozen=True)
class SpecialTokens:
    """The special pieces' text, as tokenizer_config.json may rename them."""

    unk: str = "[UNK]"
    cls: str = "[CLS]"
    sep: str = "[SEP]"
    pad: str = "[PAD]"
    mask: str = "[MASK]"


@dataclass(frozen=True)
class Normalization:
    """tokenizer_config.json's do_lower_case, strip_accents (None: as do_lower_case) and
    tokenize_chinese_chars."""

    lowercase: bool = True
    strip_accents: bool | None = None
    chinese_chars: bool = True


def parse_vocab(text: str) -> list[str]:
    """vocab.txt's pieces in id order; TokenizerError for an empty file."""
    pieces = text.split("\n")
    if pieces and pieces[-1] == "":
        pieces.pop()  # the file's final new line ends the last piece, it does not start one
    pieces = [piece.rstrip("\r") for piece in pieces]
    if not pieces:
        raise TokenizerError("vocab.txt: no pieces")
    return pieces


class BertTokenizer:
    """Text ↔ ids of a BERT folder (engine.tokenizer.TextTokenizer). Source and target are the same
    text: the input with its [MASK]s, then the input with each [MASK] filled."""

    def __init__(self, pieces: list[str], special: SpecialTokens, normalization: Normalization) -> None:
        self.pieces = dict(enumerate(pieces))
        ids = {piece: i for i, piece in enumerate(pieces)}  # a repeated piece keeps its last id, as in BERT
        for name in ("unk", "cls", "sep"):
            if getattr(special, name) not in ids:
                raise TokenizerError(f"vocab.txt: has no {getattr(special, name)!r} ({name}_token)")
        self.unk_id, self.cls_id, self.sep_id = ids[special.unk], ids[special.cls], ids[special.sep]
        self.pad_id: int | None = ids.get(special.pad)
        self.mask_id: int | None = ids.get(special.mask)  # None: a folder without [MASK] shows maps only
        self.vocab_size = len(pieces)
        self.backend = Tokenizer(
            models.WordPiece(ids, unk_token=special.unk, max_input_chars_per_word=MAX_CHARS_PER_WORD)
        )
        self.backend.normalizer = normalizers.BertNormalizer(
            clean_text=True,
            handle_chinese_chars=normalization.chinese_chars,
            strip_accents=normalization.strip_accents,
            lowercase=normalization.lowercase,
        )
        self.backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        self.backend.decoder = decoders.WordPiece(prefix="##")
        specials = [getattr(special, name) for name in ("pad", "unk", "cls", "sep", "mask")]
        self.backend.add_special_tokens([AddedToken(piece, special=True) for piece in specials if piece in ids])
        self.unshown = {self.cls_id, self.sep_id} | ({self.pad_id} if self.pad_id is not None else set())

    @property
    def src_vocab_size(self) -> int:
        return self.vocab_size

    @property
    def tgt_vocab_size(self) -> int:
        return self.vocab_size

    def encode_source(self, text: str, alpha: float = 0.0) -> list[int]:
        """[CLS], the text's ids, [SEP] (`alpha`: WordPiece has no sampled segmentations)."""
        return [self.cls_id, *self.encode_target(text, alpha), self.sep_id]

    def encode_target(self, text: str, alpha: float = 0.0) -> list[int]:
        """The text's ids without [CLS] and [SEP]."""
        return list(self.backend.encode(encodable(text), add_special_tokens=False).ids)

    def source_pieces(self, ids: Sequence[int]) -> list[str]:
        return [self.pieces.get(int(i), f"<id {int(i)}>") for i in ids]

    def target_pieces(self, ids: Sequence[int]) -> list[str]:
        return self.source_pieces(ids)

    def decode_target(self, ids: Iterable[int]) -> str:
        """The text of `ids`: continuation pieces joined to their word, [CLS], [SEP] and [PAD] dropped
        ([MASK] and [UNK] stay, so an unfilled mask is still seen)."""
        kept = [int(i) for i in ids if int(i) not in self.unshown and int(i) in self.pieces]
        return self.backend.decode(kept, skip_special_tokens=False)
