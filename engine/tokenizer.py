"""SentencePiece tokenization: one joint model, or one for the source and one for the target.

Every vocabulary the project trains uses pad = 0, unk = 1, <s> = 2, </s> = 3, which the model's
config repeats; loading checks that the file agrees.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Protocol

import sentencepiece as spm

PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3


class TokenizerError(ValueError):
    """A SentencePiece model that cannot be used."""


class TextTokenizer(Protocol):
    """What the engine asks of a model family's tokenizer: text ↔ ids for one translation direction.

    `Tokenizer` below is ours; engine/families/marian_tokenizer.py maps SentencePiece pieces through
    a vocabulary file. Ids are the model's own; pieces are what the user sees.
    """

    mask_id: int | None  # an encoder-only model's [MASK] (BERT); None for translation and GPT-2 tokenizers

    @property
    def src_vocab_size(self) -> int: ...

    @property
    def tgt_vocab_size(self) -> int: ...

    def encode_source(self, text: str, alpha: float = 0.0) -> list[int]:
        """Source ids as the encoder reads them, ending with </s>."""
        ...

    def encode_target(self, text: str, alpha: float = 0.0) -> list[int]:
        """Target ids without the decoder's start token or </s>."""
        ...

    def source_pieces(self, ids: Sequence[int]) -> list[str]: ...

    def target_pieces(self, ids: Sequence[int]) -> list[str]: ...

    def decode_target(self, ids: Iterable[int]) -> str:
        """Text of target ids, special tokens dropped."""
        ...


# Loads and uses a SentencePiece model in a child process: a file that crashes the native library
# kills the child, not the app.
CHILD_CHECK = (
    "import sys, sentencepiece as s; p = s.SentencePieceProcessor(); p.Load(sys.argv[1]); "
    "p.EncodeAsIds('Je suis étudiant. I am a student.'); p.DecodeIds([4, 5, 6])"
)
CHILD_TIMEOUT_S = 30.0


# Checks begun ahead by start_checks: file → ((size, modification time) when begun, the child).
_started: dict[Path, tuple[tuple[int, int], subprocess.Popen]] = {}


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_size, stat.st_mtime_ns


def _child(path: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", CHILD_CHECK, str(path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def start_checks(directory: Path | str) -> None:
    """Begin check_in_child for the SentencePiece files of a model directory now, without waiting.

    The app calls it before importing torch (a second of one core): the children run meanwhile on
    the other, and loading the model later collects their verdicts instead of starting its own.
    """
    for path in sorted(Path(directory).glob("*.model")) + sorted(Path(directory).glob("*.spm")):
        path = path.resolve()
        stamp = _stamp(path)
        if stamp is None or path in _started:
            continue
        try:
            _started[path] = stamp, _child(path)
        except OSError:  # no child could start: loading will try again and say so
            continue


def check_in_child(path: Path) -> None:
    """Raise TokenizerError if reading `path` crashes or hangs the SentencePiece library.

    An ordinary error (a Python exception in the child) is left to the in-process load, which
    words it; only what could take the process down is reported here. A check start_checks began
    is collected, unless the file changed since.
    """
    stamp, child = _started.pop(Path(path).resolve(), (None, None))
    if child is not None and stamp != _stamp(Path(path)):
        child.kill()
        child.wait()
        child = None
    if child is None:
        child = _child(path)
    try:
        returncode = child.wait(timeout=CHILD_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()
        raise TokenizerError(f"{path.name}: the SentencePiece library hangs reading it") from None
    if returncode < 0:
        raise TokenizerError(f"{path.name}: the SentencePiece library crashes reading it (signal {-returncode})")


def encodable(text: str) -> str:
    """`text` with lone surrogates replaced by U+FFFD: the native library refuses them with a
    RuntimeError, and Python makes them from undecodable bytes (command-line arguments, file names)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        # through UTF-16 so that a surrogate pair written as two code points becomes its character
        return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return text


def _load(path: Path) -> spm.SentencePieceProcessor:
    processor = spm.SentencePieceProcessor()
    try:
        processor.Load(str(path))
    except (OSError, RuntimeError) as error:
        raise TokenizerError(f"{path.name}: not a readable SentencePiece model ({error})") from None
    expected = {"pad": PAD_ID, "unk": UNK_ID, "bos": BOS_ID, "eos": EOS_ID}
    actual = {
        "pad": processor.pad_id(),
        "unk": processor.unk_id(),
        "bos": processor.bos_id(),
        "eos": processor.eos_id(),
    }
    if actual != expected:
        raise TokenizerError(f"{path.name}: special ids {actual} differ from the expected {expected}")
    return processor


def _encode(processor: spm.SentencePieceProcessor, text: str, alpha: float) -> list[int]:
    if alpha > 0:
        return list(processor.Encode(encodable(text), enable_sampling=True, alpha=alpha, nbest_size=-1))
    return list(processor.EncodeAsIds(encodable(text)))


class Tokenizer:
    """Text ↔ ids for a translation direction; `src_path` and `tgt_path` may be the same file."""

    mask_id: int | None = None  # no [MASK] in a translation vocabulary

    def __init__(self, src_path: Path, tgt_path: Path | None = None, isolate: bool = False) -> None:
        """With `isolate`, each file is first read in a child process (see check_in_child)."""
        self.src_path = Path(src_path)
        self.tgt_path = Path(tgt_path) if tgt_path is not None else self.src_path
        if isolate:
            for path in {self.src_path, self.tgt_path}:
                check_in_child(path)
        self.src = _load(self.src_path)
        self.tgt = self.src if self.tgt_path == self.src_path else _load(self.tgt_path)

    @property
    def src_vocab_size(self) -> int:
        return self.src.GetPieceSize()

    @property
    def tgt_vocab_size(self) -> int:
        return self.tgt.GetPieceSize()

    def encode_source(self, text: str, alpha: float = 0.0) -> list[int]:
        """Source ids ending with </s> (no <s>: the encoder needs no start marker).

        `alpha` > 0 samples a segmentation (subword regularisation, for training) instead of the best one.
        """
        return _encode(self.src, text, alpha) + [EOS_ID]

    def encode_target(self, text: str, alpha: float = 0.0) -> list[int]:
        """Target ids without <s> or </s>; decoding adds them."""
        return _encode(self.tgt, text, alpha)

    def source_pieces(self, ids: Sequence[int]) -> list[str]:
        return [self.src.IdToPiece(int(i)) for i in ids]

    def target_pieces(self, ids: Sequence[int]) -> list[str]:
        return [self.tgt.IdToPiece(int(i)) for i in ids]

    def decode_target(self, ids: Iterable[int]) -> str:
        """Text of target ids, special tokens dropped."""
        return self.tgt.DecodeIds([int(i) for i in ids if int(i) > EOS_ID])


def train_sentencepiece(texts: Iterable[str], prefix: Path, vocab_size: int) -> Path:
    """Train a unigram SentencePiece model on `texts`; writes PREFIX.model and returns its path."""
    prefix.parent.mkdir(parents=True, exist_ok=True)
    spm.SentencePieceTrainer.Train(
        sentence_iterator=iter(texts),
        model_prefix=str(prefix),
        vocab_size=vocab_size,
        model_type="unigram",
        character_coverage=1.0,
        pad_id=PAD_ID,
        unk_id=UNK_ID,
        bos_id=BOS_ID,
        eos_id=EOS_ID,
        input_sentence_size=1_000_000,
        shuffle_input_sentence=True,
        minloglevel=2,
    )
    (prefix.parent / f"{prefix.name}.vocab").unlink(missing_ok=True)  # the .model holds everything
    return prefix.with_suffix(".model")
