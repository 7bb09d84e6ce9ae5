"""GPT-2's byte-level BPE: vocab.json numbers the pieces, merges.txt orders the merges.

What transformers' GPT2TokenizerFast does, without transformers, through the `tokenizers` package:
the text is cut into words by GPT-2's pattern (no space added in front), each word's UTF-8 bytes
are written as printable stand-in characters (a space is "Ġ", a newline "Ċ") and merged by BPE.
No token is added around the prompt: a GPT-2 continues the text exactly as typed. The end-of-text
piece typed in the text is that token, as in transformers.

Pieces are shown to the user as text: the stand-ins become their bytes again, a space becomes
SentencePiece's word mark "▁" (which the app's labels already show), and a piece that holds part
of a character (an emoji is often split) is shown as its bytes, "<0xF0><0x9F>", as SentencePiece
shows its byte pieces.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Sequence

from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

from engine.tokenizer import TokenizerError, encodable

# whitespace a label cannot show as such; the space becomes SentencePiece's word mark
VISIBLE = {" ": "▁", "\n": "↵", "\t": "⇥", "\r": "␍"}


def byte_characters() -> dict[str, int]:
    """GPT-2's stand-in character for each byte, inverted: printable Latin-1 bytes stand for themselves,
    the 68 others (controls, space, soft hyphen …) take U+0100 onward in byte order."""
    printable = {*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)}
    characters: dict[str, int] = {}
    shifted = 0
    for byte in range(256):
        if byte in printable:
            characters[chr(byte)] = byte
        else:
            characters[chr(256 + shifted)] = byte
            shifted += 1
    return characters


BYTE_OF = byte_characters()


def readable(piece: str) -> str:
    """A byte-level piece as the user reads it: "Ġcat" → "▁cat", "Ċ" → "↵", half an emoji → "<0xF0><0x9F>"."""
    if not all(character in BYTE_OF for character in piece):
        return piece  # a special token such as <|endoftext|>
    # bytes that are not whole UTF-8 characters come back as lone surrogates U+DC80..U+DCFF
    text = bytes(BYTE_OF[character] for character in piece).decode("utf-8", errors="surrogateescape")
    return "".join(_visible(character) for character in text)


def _visible(character: str) -> str:
    if "\udc80" <= character <= "\udcff":
        return f"<0x{ord(character) - 0xDC00:02X}>"  # one byte of a character split across pieces
    if character in VISIBLE:
        return VISIBLE[character]
    return f"<0x{ord(character):02X}>" if unicodedata.category(character) == "Cc" else character


def parse_merges(text: str) -> list[tuple[str, str]]:
    """merges.txt's pairs, in priority order; TokenizerError naming the first line that is not a pair."""
    merges = []
    for number, line in enumerate(text.split("\n"), 1):
        if not line or (number == 1 and line.startswith("#version")):
            continue
        parts = line.split(" ")
        if len(parts) != 2 or not all(parts):
            raise TokenizerError(f"merges.txt: line {number} is not two pieces separated by a space: {line[:40]!r}")
        merges.append((parts[0], parts[1]))
    return merges


class Gpt2Tokenizer:
    """Text ↔ ids of a GPT-2 folder (engine.tokenizer.TextTokenizer). Source and target are the same
    text: the prompt, then its continuation."""

    mask_id: int | None = None  # a GPT-2 has no [MASK]

    def __init__(self, vocab: dict[str, int], merges: list[tuple[str, str]], eos_id: int) -> None:
        self.pieces = {i: piece for piece, i in vocab.items()}
        if eos_id not in self.pieces:
            raise TokenizerError(f"vocab.json: no piece has the end-of-text id {eos_id}")
        try:
            model = models.BPE(vocab=vocab, merges=merges, fuse_unk=False)
        except Exception as error:  # the tokenizers package raises plain Exception for a bad vocabulary
            raise TokenizerError(f"vocab.json and merges.txt do not agree ({error})") from None
        self.backend = Tokenizer(model)
        self.backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        self.backend.decoder = decoders.ByteLevel()
        self.backend.add_special_tokens([AddedToken(self.pieces[eos_id], special=True)])
        self.eos_id = self.pad_id = self.unk_id = eos_id  # GPT-2 has one special token; no pad, no unknown
        self.vocab_size = max(self.pieces) + 1

    @property
    def src_vocab_size(self) -> int:
        return self.vocab_size

    @property
    def tgt_vocab_size(self) -> int:
        return self.vocab_size

    def encode_source(self, text: str, alpha: float = 0.0) -> list[int]:
        """The prompt's ids, nothing added (`alpha`: no sampled segmentations for byte-level BPE)."""
        return list(self.backend.encode(encodable(text), add_special_tokens=False).ids)

    def encode_target(self, text: str, alpha: float = 0.0) -> list[int]:
        return self.encode_source(text, alpha)

    def source_pieces(self, ids: Sequence[int]) -> list[str]:
        return [readable(self.pieces[int(i)]) if int(i) in self.pieces else f"<id {int(i)}>" for i in ids]

    def target_pieces(self, ids: Sequence[int]) -> list[str]:
        return self.source_pieces(ids)

    def decode_target(self, ids: Iterable[int]) -> str:
        """The continuation's text, <|endoftext|> dropped (transformers' decode(skip_special_tokens=True))."""
        kept = [int(i) for i in ids if int(i) != self.eos_id and int(i) in self.pieces]
        return self.backend.decode(kept, skip_special_tokens=True)
