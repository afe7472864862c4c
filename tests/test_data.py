"""The corpus contract of SPEC.md ("Data"), the error messages, and the bundled corpus."""

from __future__ import annotations

import hashlib
import importlib.util
import re
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from core.data import (
    Corpus,
    CorpusError,
    batch_at,
    decode,
    draw_offsets,
    encode,
    get_batch,
    load_corpus,
    read_corpus_text,
)
from core.resources import bundled_corpus

REPO = Path(__file__).resolve().parents[1]
CANONICAL_SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
BUNDLED_SHA256 = "1b085d92531339c1746177c993405e53c84b43ffcc2fe643514fb8b431492d3c"

TEXT = "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n"


def published_get_batch(data, batch_size, seq_len):
    """The published sampler, written out: a Python loop over the offsets."""
    ix = torch.randint(len(data) - seq_len - 1, (batch_size,))
    x = torch.stack([data[i : i + seq_len] for i in ix])
    y = torch.stack([data[i + 1 : i + seq_len + 1] for i in ix])
    return x, y


# --- vocabulary and split -------------------------------------------------------------


def test_vocabulary_and_ids_follow_spec():
    c = Corpus.from_text(TEXT)
    vocab = sorted(set(TEXT))
    assert c.vocab_size == len(vocab)
    assert c.stoi == {ch: i for i, ch in enumerate(vocab)}
    assert c.itos == dict(enumerate(vocab))
    assert c.data.dtype == torch.uint8  # the smallest type for up to 256 symbols
    assert c.data.tolist() == [c.stoi[ch] for ch in TEXT]
    assert c.decode(c.data) == TEXT


def test_split_is_first_ninety_percent():
    text = "abcdefghij" * 7 + "xyz"  # N = 73: int(0.9 * 73) = 65
    c = Corpus.from_text(text)
    n = int(0.9 * len(text))
    assert len(c.train_data) == n == 65
    assert len(c.val_data) == len(text) - n
    assert torch.equal(torch.cat([c.train_data, c.val_data]), c.data)


@settings(max_examples=40, deadline=None)
@given(st.text(min_size=2, max_size=200).filter(lambda s: len(set(s)) > 1))
def test_vectorised_tokenizer_matches_the_obvious_one(text):
    c = Corpus.from_text(text)
    vocab = sorted(set(text))
    assert list(c.itos.values()) == vocab
    assert c.data.tolist() == [vocab.index(ch) for ch in text]


def test_encode_decode_and_unknown_characters():
    c = Corpus.from_text(TEXT)
    assert decode(encode("Speak", c.stoi), c.itos) == "Speak"
    assert c.decode(torch.tensor([[c.stoi["a"], c.stoi["e"]]])) == "ae"
    with pytest.raises(CorpusError, match=r"'Z'.*'é'|'é'.*'Z'"):
        c.encode("Zé a")


def test_summary_reports_the_facts():
    c = Corpus.from_text(TEXT, path="some/dir/play.txt")
    s = c.summary()
    assert s == {
        "path": "some/dir/play.txt",
        "characters": len(TEXT),
        "vocab_size": len(set(TEXT)),
        "train_tokens": int(0.9 * len(TEXT)),
        "val_tokens": len(TEXT) - int(0.9 * len(TEXT)),
        "sha256": hashlib.sha256(TEXT.encode()).hexdigest(),
    }
    line = c.summary_text()
    assert "play.txt" in line and f"vocabulary {len(set(TEXT))}" in line
    assert TEXT not in repr(c)  # the repr must not dump a megabyte of text


# --- reading files -------------------------------------------------------------------


def test_crlf_file_equals_its_lf_twin(tmp_path):
    lf, crlf = tmp_path / "lf.txt", tmp_path / "crlf.txt"
    lf.write_bytes(TEXT.encode())
    crlf.write_bytes(TEXT.replace("\n", "\r\n").encode())
    a, b = load_corpus(lf), load_corpus(crlf)
    assert a.text == b.text == TEXT
    assert a.stoi == b.stoi and torch.equal(a.data, b.data)
    assert a.sha256 == b.sha256
    assert "\r" not in b.stoi


@settings(max_examples=40, deadline=None)
@given(st.lists(st.sampled_from(["a", "b", "\r", "\n", "\r\n", "é", "\u2028", " "]), min_size=1, max_size=40))
def test_reads_exactly_like_path_read_text(tmp_path_factory, pieces):
    path = tmp_path_factory.mktemp("nl") / "t.txt"
    path.write_bytes("".join(pieces).encode())
    assert read_corpus_text(path) == path.read_text(encoding="utf-8")


def test_load_corpus_records_path(tmp_path):
    p = tmp_path / "t.txt"
    p.write_text(TEXT, encoding="utf-8")
    c = load_corpus(str(p))
    assert c.path == str(p) and c.text == TEXT


@pytest.mark.parametrize(
    "content, pattern",
    [
        (b"", r"is empty"),
        (b"hello\x00world", r"binary file.*NUL byte at offset 5"),
        ("hi there".encode("utf-16"), r"UTF-16"),
        (b"caf\xc3\xa9 ok \xff\xfe more", r"not valid UTF-8.*0xff at offset 9"),
        (b"aaaaaaaaaa", r"one character \('a'\) repeated"),
    ],
    ids=["empty", "nul", "utf16", "latin1", "single-char"],
)
def test_bad_files_explain_themselves(tmp_path, content, pattern):
    p = tmp_path / "bad.txt"
    p.write_bytes(content)
    with pytest.raises(CorpusError, match=pattern) as info:
        load_corpus(p)
    assert "bad.txt" in str(info.value)


def test_missing_file_names_the_path(tmp_path):
    p = tmp_path / "nowhere" / "corpus.txt"
    with pytest.raises(CorpusError, match="not found") as info:
        load_corpus(p)
    assert str(p) in str(info.value)


def test_folder_is_refused(tmp_path):
    with pytest.raises(CorpusError, match="is a folder"):
        load_corpus(tmp_path)


def test_unreadable_file(tmp_path, monkeypatch):
    p = tmp_path / "locked.txt"
    p.write_text(TEXT)

    def denied(self):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "read_bytes", denied)  # chmod does not stop root
    with pytest.raises(CorpusError, match="locked.txt cannot be read: permission denied"):
        load_corpus(p)


def test_corpus_error_is_a_value_error():
    assert issubclass(CorpusError, ValueError)
    with pytest.raises(ValueError):
        Corpus.from_text("")


# --- sequence length -----------------------------------------------------------------


def test_check_seq_len_limits():
    c = Corpus.from_text("ab" * 50)  # 90 train, 10 val
    c.check_seq_len(88, need_val=False)  # 90 - 88 - 1 = 1 > 0
    c.check_seq_len(8)  # 10 - 8 - 1 = 1 > 0
    with pytest.raises(CorpusError, match=r"training part has 90 characters.*at least 91.*at most 88"):
        c.check_seq_len(89)
    c.check_seq_len(9, need_val=False)
    with pytest.raises(CorpusError, match=r"validation part has 10 characters.*turn evaluation off"):
        c.check_seq_len(9)
    for bad in (0, -3, 2.5, True):
        with pytest.raises(CorpusError, match="whole number"):
            c.check_seq_len(bad)


# --- batches --------------------------------------------------------------------------


def test_batch_matches_the_published_sampler():
    data = Corpus.from_text(TEXT * 5).train_data
    torch.manual_seed(7)
    want_x, want_y = published_get_batch(data, 8, 16)
    torch.manual_seed(7)
    x, y = get_batch(data, 8, 16)  # generator=None: the global RNG, as published
    assert torch.equal(x, want_x) and torch.equal(y, want_y)

    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    ix = torch.randint(len(data) - 16 - 1, (8,), generator=g2)
    x, y = get_batch(data, 8, 16, generator=g1, device="cpu")
    assert x.shape == y.shape == (8, 16) and x.dtype == y.dtype == torch.long
    assert x.is_contiguous() and y.is_contiguous()
    for b, i in enumerate(ix.tolist()):
        assert torch.equal(x[b], data[i : i + 16])
        assert torch.equal(y[b], data[i + 1 : i + 17])


def test_batches_are_the_same_whatever_the_id_type():
    """Compact ids give the same int64 batches, from the same generator state, as int64 ids."""
    c = Corpus.from_text(TEXT * 5)
    wide = c.train_data.long()
    for device in (None, "cpu"):
        a = get_batch(c.train_data, 6, 12, torch.Generator().manual_seed(5), device)
        b = get_batch(wide, 6, 12, torch.Generator().manual_seed(5), device)
        assert all(t.dtype == torch.long for t in a)
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    g = torch.Generator().manual_seed(5)
    offsets = draw_offsets(len(wide), 6, 12, g)
    x, y = batch_at(c.train_data, offsets, 12)
    assert torch.equal(x, get_batch(wide, 6, 12, torch.Generator().manual_seed(5))[0])


@pytest.mark.parametrize("symbols, dtype", [(256, torch.uint8), (257, torch.int16),
                                            (40_000, torch.int32)])
def test_ids_use_the_smallest_type_that_fits(symbols, dtype):
    text = "".join(chr(0x20 + i) if 0x20 + i < 0xD800 else chr(0x10000 + i) for i in range(symbols))
    c = Corpus.from_text(text * 2)
    assert c.vocab_size == symbols and c.data.dtype == dtype
    assert c.data.tolist() == [c.stoi[ch] for ch in text * 2]
    assert c.text == text * 2


def test_chunked_tokenizer_agrees_across_chunk_borders(monkeypatch):
    import core.data as data_mod

    monkeypatch.setattr(data_mod, "CHUNK_CHARS", 7)
    text = "ab\ncdé€𝄞" * 11 + "\ud800"  # multi-byte, astral and a lone surrogate
    c = Corpus.from_text(text)
    assert c.itos == dict(enumerate(sorted(set(text))))
    assert c.text == text
    assert c.sha256 == hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


PEAK_PROBE = """
import re, sys
from core.data import load_corpus

def status(key):
    return int(re.search(key + r":\\s+(\\d+)", open("/proc/self/status").read()).group(1)) * 1024

open("/proc/self/clear_refs", "w").write("5")  # restart the peak (VmHWM) after the imports
before = status("VmRSS")
c = load_corpus(sys.argv[1])
print(status("VmHWM") - before, c.characters)
"""


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc peak reset")
def test_corpus_memory_stays_near_the_file_size(tmp_path):
    """Loading a 20 MB corpus peaks at under 2x its size plus 32 MB of fixed chunk temporaries
    (bytes and text briefly coexist while decoding; then text and ids while tokenising).
    Measured in a fresh process; the 200 MB case is in benchmarks/bench_speed.py."""
    import os
    import subprocess
    import sys

    path = tmp_path / "big.txt"
    line = "The quick brown fox jumps over the lazy dog; 0123456789!\n"
    path.write_text(line * (20_000_000 // len(line)), encoding="utf-8")
    out = subprocess.run([sys.executable, "-c", PEAK_PROBE, str(path)], cwd=REPO, capture_output=True,
                         text=True, check=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    peak, chars = map(int, out.stdout.split())
    size = path.stat().st_size
    assert chars == size
    assert peak < 2 * size + (32 << 20), peak / size


def test_batch_offsets_cover_exactly_the_allowed_range():
    n, t = 30, 5
    data = torch.arange(n)
    g = torch.Generator().manual_seed(0)
    starts = set()
    for _ in range(50):
        x, y = get_batch(data, 16, t, generator=g)
        assert torch.equal(y, x + 1)
        starts.update(x[:, 0].tolist())
    assert starts == set(range(n - t - 1))  # uniform in [0, len - T - 1)


def test_seeded_generator_is_deterministic():
    data = Corpus.from_text(TEXT * 3).data
    a = get_batch(data, 4, 8, generator=torch.Generator().manual_seed(11))
    b = get_batch(data, 4, 8, generator=torch.Generator().manual_seed(11))
    c = get_batch(data, 4, 8, generator=torch.Generator().manual_seed(12))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])


def test_batch_from_too_short_data():
    with pytest.raises(CorpusError, match="at least 12"):
        get_batch(torch.arange(11), 2, 10)


# --- the corpora ----------------------------------------------------------------------


def test_bundled_corpus_is_our_documented_build():
    path = bundled_corpus()
    raw = path.read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    assert digest == BUNDLED_SHA256
    assert digest != CANONICAL_SHA256
    assert BUNDLED_SHA256 in (REPO / "resources" / "CORPUS_LICENSE.md").read_text(encoding="utf-8")
    assert b"\r" not in raw and 1_000_000 <= len(raw) <= 1_200_000
    c = load_corpus(path)
    assert c.sha256 == digest  # LF-only file: text hash == file hash
    assert 60 <= c.vocab_size <= 80
    c.check_seq_len(64)
    assert re.match(r"[A-Z][a-z]+( [A-Za-z]+)*:\n", c.text)


def test_canonical_corpus_reference_numbers(canonical_corpus):
    raw = canonical_corpus.read_bytes()
    assert hashlib.sha256(raw).hexdigest() == CANONICAL_SHA256
    c = load_corpus(canonical_corpus)
    assert len(c.text) == 1_115_394 and c.vocab_size == 65
    assert len(c.train_data) == int(0.9 * 1_115_394) == 1_003_854
    assert len(c.val_data) == 111_540
    assert c.itos[0] == "\n" and c.itos[1] == " " and c.itos[64] == "z"
    assert c.data[:14].tolist() == [c.stoi[ch] for ch in "First Citizen:"]


def _load_builder():
    spec = importlib.util.spec_from_file_location("build_corpus", REPO / "scripts" / "build_corpus.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_builder_turns_play_markup_into_speeches():
    play = (
        "THE TRAGEDY OF NOTHING\n\nPERSONS REPRESENTED.\n\nFIRST CITIZEN, a Roman\n\n\n"
        "ACT I.\n\nSCENE I. Rome. A street.\n\n[Enter citizens, with staves, clubs, and\nother weapons.]\n\n"
        "FIRST CITIZEN.\nBefore we proceed any further,  [Shouts within.]\nhear me speak.\n\n"
        "ALL.\n[Aside.]\n\nSpeak, speak.\n\n"
        "       II.\n   A song line\n\n"
        "FIRST CITIZEN. Well met.\n\n[Exeunt.]\n\nTHE END\n"
    )
    b = _load_builder()
    speeches = b.play_to_speeches(play.replace("\n", "\r\n"))
    assert b.format_speeches(speeches) == (
        "First Citizen:\nBefore we proceed any further,\nhear me speak.\n\n"
        "All:\nSpeak, speak.\nII.\nA song line\n\n"  # indented: verse, not a speaker
        "First Citizen:\nWell met.\n\n"  # a heading run into the speech's first line
    )
    assert b.speaker_name("DUKE OF YORK") == "Duke of York"
