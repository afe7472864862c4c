"""The character corpus: loading, vocabulary, train/validation split and batches.

Everything here follows the data contract of the published ``train.py`` (see
SPEC.md, "Data") so that vocabularies, checkpoints and batch streams stay
interchangeable with it. The extra work is in the error messages: a person who
picks the wrong file in the studio should learn what is wrong with it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

TRAIN_FRACTION = 0.9


class CorpusError(ValueError):
    """The corpus cannot be used; the message is written for a person to read."""


@dataclass(frozen=True, eq=False)
class Corpus:
    """A text with its vocabulary and its token ids, split as the published code splits it."""

    path: str
    stoi: dict[str, int] = field(repr=False)
    itos: dict[int, str] = field(repr=False)
    data: torch.Tensor = field(repr=False)
    train_data: torch.Tensor = field(repr=False)
    val_data: torch.Tensor = field(repr=False)
    sha256: str = ""  # of the text as UTF-8 with LF line ends, so a CRLF twin hashes the same

    @property
    def vocab_size(self) -> int:
        return len(self.itos)

    @property
    def characters(self) -> int:
        return len(self.data)

    @property
    def text(self) -> str:
        """The text, decoded from the token ids on demand (it is not kept twice in memory)."""
        table = np.array([ord(self.itos[i]) for i in range(self.vocab_size)], dtype="<u4")
        return table[self.data.numpy()].tobytes().decode("utf-32-le", "surrogatepass")

    @classmethod
    def from_text(cls, text: str, path: str | Path = "") -> Corpus:
        """Build a corpus from text already in memory (line ends are taken as given)."""
        where = f"{path}: " if str(path) else ""
        if not text:
            raise CorpusError(f"{where}the text is empty; a corpus needs at least a few sentences")
        vocab, ids = _tokenize(text)
        if len(vocab) < 2:
            raise CorpusError(
                f"{where}the text consists of one character ({vocab[0]!r}) repeated; "
                "there is nothing for a language model to learn"
            )
        data = torch.from_numpy(ids)
        n = int(TRAIN_FRACTION * len(data))
        return cls(
            path=str(path),
            stoi={ch: i for i, ch in enumerate(vocab)},
            itos=dict(enumerate(vocab)),
            data=data,
            train_data=data[:n],
            val_data=data[n:],
            sha256=_sha256(text),
        )

    def encode(self, text: str) -> list[int]:
        return encode(text, self.stoi)

    def decode(self, ids: Iterable[int] | torch.Tensor) -> str:
        return decode(ids, self.itos)

    def check_seq_len(self, seq_len: int, need_val: bool = True) -> None:
        """Raise :class:`CorpusError` unless a batch of ``seq_len`` can be drawn.

        Drawing needs ``len(part) - seq_len - 1 > 0`` (SPEC: offsets are uniform in
        ``[0, len - T - 1)``); validation is checked only when it will be used.
        """
        if isinstance(seq_len, bool) or not isinstance(seq_len, int) or seq_len < 1:
            raise CorpusError(f"the sequence length must be a whole number of at least 1 (got {seq_len!r})")
        parts = [("training", self.train_data)]
        if need_val:
            parts.append(("validation", self.val_data))
        for name, part in parts:
            if len(part) - seq_len - 1 <= 0:
                fix = (
                    f"use a sequence length of at most {len(part) - 2} or a longer text"
                    if len(part) >= 3
                    else "use a longer text"
                )
                if name == "validation":
                    fix += ", or turn evaluation off"
                raise CorpusError(
                    f"{self._label()} is too short for sequences of {seq_len} characters: "
                    f"its {name} part has {len(part)} characters, but a batch needs at least "
                    f"{seq_len + 2}; {fix}"
                )

    def summary(self) -> dict[str, Any]:
        """Facts shown in the studio and stored with checkpoints."""
        return {
            "path": self.path,
            "characters": self.characters,
            "vocab_size": self.vocab_size,
            "train_tokens": len(self.train_data),
            "val_tokens": len(self.val_data),
            "sha256": self.sha256,
        }

    def summary_text(self) -> str:
        """One line for logs and the status bar."""
        s = self.summary()
        return (
            f"{self._label()}: {s['characters']:,} characters, vocabulary {s['vocab_size']}, "
            f"{s['train_tokens']:,} train / {s['val_tokens']:,} validation tokens, "
            f"sha256 {s['sha256'][:12]}"
        )

    def _label(self) -> str:
        return Path(self.path).name if self.path else "the corpus"


CHUNK_CHARS = 1 << 20  # characters encoded at a time: bounded temporary memory for any corpus size
MAX_CODE_POINT = 0x10FFFF


def id_dtype(vocab_size: int) -> np.dtype:
    """The smallest integer type for token ids: uint8 up to 256 symbols, then int16, then int32
    (torch has no general unsigned 16-bit support)."""
    if vocab_size <= 256:
        return np.dtype(np.uint8)
    return np.dtype(np.int16) if vocab_size <= 2**15 else np.dtype(np.int32)


def _chunks(text: str) -> Iterable[tuple[int, np.ndarray]]:
    """``(start, code points)`` of ``text`` in slices of :data:`CHUNK_CHARS`."""
    for start in range(0, len(text), CHUNK_CHARS):
        piece = text[start:start + CHUNK_CHARS].encode("utf-32-le", "surrogatepass")
        yield start, np.frombuffer(piece, dtype="<u4")


def _tokenize(text: str) -> tuple[list[str], np.ndarray]:
    """``sorted(set(text))`` and the token ids in :func:`id_dtype`, vectorised in chunks.

    Memory: the ids (one byte per character for up to 256 symbols) plus one chunk's
    temporaries; a 200 MB text tokenises in seconds without a multi-GB peak.
    """
    present = np.zeros(MAX_CODE_POINT + 1, dtype=bool)
    for _, codes in _chunks(text):
        present[codes] = True
    vocab_codes = np.flatnonzero(present)  # ascending code points = sorted(set(text))
    dtype = id_dtype(len(vocab_codes))
    lookup = np.zeros(MAX_CODE_POINT + 1, dtype=dtype)
    lookup[vocab_codes] = np.arange(len(vocab_codes), dtype=dtype)
    ids = np.empty(len(text), dtype=dtype)
    for start, codes in _chunks(text):
        np.take(lookup, codes, out=ids[start:start + len(codes)])
    return [chr(c) for c in vocab_codes.tolist()], ids


def _sha256(text: str) -> str:
    """SHA-256 of ``text`` as UTF-8, encoded a chunk at a time (no second copy of the text)."""
    h = hashlib.sha256()
    for start in range(0, len(text), CHUNK_CHARS):
        h.update(text[start:start + CHUNK_CHARS].encode("utf-8", "surrogatepass"))
    return h.hexdigest()


def read_corpus_text(path: str | Path) -> str:
    """The text of ``path`` exactly as ``Path.read_text(encoding="utf-8")`` gives it.

    Universal newlines: ``\\r\\n`` and a lone ``\\r`` both become ``\\n``, so a file
    saved on Windows trains the same model as its LF twin. Every way a file can
    be unusable raises :class:`CorpusError` naming the file and the problem.
    """
    p = Path(path)
    if not p.exists():
        raise CorpusError(f"corpus file not found: {p}")
    if p.is_dir():
        raise CorpusError(f"{p} is a folder; choose a UTF-8 text file inside it")
    try:
        raw = p.read_bytes()
    except PermissionError:
        raise CorpusError(f"{p} cannot be read: permission denied") from None
    except OSError as e:
        raise CorpusError(f"{p} cannot be read: {e.strerror or e}") from None
    if not raw:
        raise CorpusError(f"{p} is empty; a corpus needs some text to learn from")
    nul = raw.find(b"\x00")
    if nul >= 0:
        utf16 = raw[:2] in (b"\xff\xfe", b"\xfe\xff")
        raise CorpusError(
            f"{p} looks like a binary file, not text (a NUL byte at offset {nul})"
            + ("; it seems to be UTF-16: save it as UTF-8" if utf16 else "")
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise CorpusError(
            f"{p} is not valid UTF-8 text (byte 0x{raw[e.start]:02x} at offset {e.start}); "
            "save it with UTF-8 encoding"
        ) from None
    del raw  # the text is the one copy from here on
    if "\r" not in text:
        return text
    # Same result as the text-mode reader's universal newlines.
    return text.replace("\r\n", "\n").replace("\r", "\n")


def load_corpus(path: str | Path) -> Corpus:
    """Read a UTF-8 text file and build its :class:`Corpus`."""
    text = read_corpus_text(path)
    return Corpus.from_text(text, path=str(path))


def encode(text: str, stoi: dict[str, int]) -> list[int]:
    """Token ids of ``text``; unknown characters are named in the :class:`CorpusError`."""
    try:
        return [stoi[c] for c in text]
    except KeyError:
        unknown = sorted({c for c in text if c not in stoi})
        raise CorpusError(
            "characters not in the vocabulary: " + ", ".join(repr(c) for c in unknown)
        ) from None


def decode(ids: Iterable[int] | torch.Tensor, itos: dict[int, str]) -> str:
    if isinstance(ids, torch.Tensor):
        ids = ids.reshape(-1).tolist()
    return "".join(itos[int(i)] for i in ids)


def draw_offsets(length: int, batch_size: int, seq_len: int,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """The ``B`` window starts of one batch: ``torch.randint(length - T - 1, (B,), generator=...)``,
    exactly the published call, so a seeded CPU generator replays the published batch stream."""
    high = length - seq_len - 1
    if high <= 0:
        raise CorpusError(
            f"{length} tokens are too few for sequences of {seq_len}: "
            f"a batch needs at least {seq_len + 2}"
        )
    return torch.randint(high, (batch_size,), generator=generator)


def batch_at(data: torch.Tensor, offsets: torch.Tensor, seq_len: int,
             device: torch.device | str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The windows of ``data`` starting at ``offsets``: int64 inputs ``(B, T)`` and targets ``(B, T)``.

    Gathered with one index tensor, moved to ``device`` in a single transfer in the
    corpus's compact id type, and widened to int64 there.
    """
    window = torch.arange(seq_len + 1)
    chunk = data[(offsets[:, None] + window).to(data.device)]  # (B, T+1)
    if device is not None:
        chunk = chunk.to(device)
    chunk = chunk.long()
    return chunk[:, :-1].contiguous(), chunk[:, 1:].contiguous()


def get_batch(
    data: torch.Tensor,
    batch_size: int,
    seq_len: int,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``B`` random windows of ``data``: inputs ``(B, T)`` and next-character targets ``(B, T)``.

    Offsets from :func:`draw_offsets` (the published sampling), windows from :func:`batch_at`.
    """
    return batch_at(data, draw_offsets(len(data), batch_size, seq_len, generator), seq_len, device)
