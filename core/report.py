"""Analysis reports as files: a self-contained HTML page and a CSV table.

The HTML page shows the text coloured by how surprised the model was at each
character, with the totals and a colour legend on top; hovering a character
shows its surprise, probability, rank, the model's five favourites and the
state motion. It needs no script, no network and no fonts beyond the
browser's. The CSV has one row per predicted character for spreadsheets and
notebooks. Both are written atomically (:mod:`core.files`).
"""

from __future__ import annotations

import csv
import html
import io
import math
import os
from pathlib import Path

import numpy as np

from core.analysis import TOP_K, TextAnalysis
from core.files import atomic_write_text

# Surprise bins in nats (upper edges) and their colours, light to dark (ColorBrewer YlOrRd):
# 0.5 nats is a character the model gave about 60%, 5 nats one it gave under 1%.
SURPRISE_EDGES = (0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0)
SURPRISE_COLOURS = ("#ffffe5", "#ffffcc", "#ffeda0", "#fed976", "#feb24c", "#fd8d3c",
                    "#fc4e2a", "#e31a1c", "#800026")
_DARK_FROM = 7  # bins from here on get white text
REPORT_FORMATS = {".html": "html", ".htm": "html", ".csv": "csv"}


def report_format(path: str | os.PathLike) -> str:
    """``"html"`` or ``"csv"`` from the file extension; ``ValueError`` for anything else."""
    ext = Path(path).suffix.lower()
    if ext not in REPORT_FORMATS:
        raise ValueError(f"{path}: unknown report type {ext or '(no extension)'!r}; "
                         "use .html for the coloured text or .csv for a table")
    return REPORT_FORMATS[ext]


def char_label(ch: str) -> str:
    """A character as a reader can see it: quoted, with newline, tab and space spelled out."""
    return repr(ch)


def surprise_bins(surprise: np.ndarray) -> np.ndarray:
    """The colour bin (0..len(SURPRISE_COLOURS)-1) of each surprise value."""
    return np.searchsorted(np.asarray(SURPRISE_EDGES), surprise, side="right")


def _predicted_chars(analysis: TextAnalysis) -> np.ndarray:
    """Probability the model gave each actual character ``text[1:]``, ``(n-1,)`` float32."""
    rows = np.arange(len(analysis.surprise))
    return analysis.probs[rows, analysis.ids[1:]]


def _fmt_energy(summary) -> str:
    if summary.energy is None:
        return "unknown (no temperature given or recorded with the checkpoint)"
    return f"{summary.energy:.6g} (temperature {summary.temperature:g})"


def summary_rows(analysis: TextAnalysis) -> list[tuple[str, str]]:
    """The totals as (label, value) pairs, shared by the page and the command line."""
    s = analysis.summary()
    return [
        ("characters", f"{s.n_chars:,} ({s.n_predicted:,} predicted)"),
        ("bits per character", f"{s.bits_per_char:.4f}"),
        ("mean surprise (content loss)", f"{s.mean_surprise:.4f} nats"),
        ("top-1 accuracy", f"{100 * s.top1_accuracy:.2f}%"),
        ("mean motion", f"{s.mean_motion:.6g}"),
        ("energy", _fmt_energy(s)),
    ]


# --------------------------------------------------------------------------- HTML

_CSS = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; background: #fff; }
h1 { font-size: 1.3em; margin: 0 0 0.6em; }
table.summary { border-collapse: collapse; margin-bottom: 1em; }
table.summary td { padding: 0.15em 1em 0.15em 0; }
table.summary td:first-child { color: #555; }
.legend { display: flex; flex-wrap: wrap; gap: 0.2em; align-items: center; margin-bottom: 1em;
          font-size: 0.85em; }
.legend span { padding: 0.2em 0.5em; border: 1px solid #ddd; }
.text { font-family: ui-monospace, Menlo, Consolas, monospace; white-space: pre-wrap;
        line-height: 1.55; border-top: 1px solid #ccc; padding-top: 1em; }
.text span { cursor: default; }
.nl { opacity: 0.55; }
.first { background: #e8e8e8; }
""".strip()


def _css() -> str:
    bins = "\n".join(f".s{i} {{ background: {c};{' color: #fff;' if i >= _DARK_FROM else ''} }}"
                     for i, c in enumerate(SURPRISE_COLOURS))
    return _CSS + "\n" + bins


def _legend() -> str:
    parts = ["<span style='border:none'>surprise (nats):</span>"]
    lows = (0.0, *SURPRISE_EDGES)
    for i, low in enumerate(lows):
        label = f"{low:g}&ndash;{SURPRISE_EDGES[i]:g}" if i < len(SURPRISE_EDGES) else f"&ge; {low:g}"
        parts.append(f"<span class='s{i}'>{label}</span>")
    parts.append("<span class='first'>first character (not predicted)</span>")
    return "<div class='legend'>" + "".join(parts) + "</div>"


def _attr(text: str) -> str:
    """A tooltip attribute value: escaped, line breaks kept."""
    return html.escape(text, quote=True).replace("\n", "&#10;")


def _shown(ch: str) -> str:
    """The character as page content; a newline shows a faint mark and breaks the line."""
    if ch == "\n":
        return "&#8629;"  # the line break itself follows the span
    if not ch.isprintable() and ch != "\t":  # control characters are not allowed in HTML text
        return html.escape(repr(ch)[1:-1], quote=False)
    return html.escape(ch, quote=False)


def render_html(analysis: TextAnalysis, title: str = "Landauer LLM text analysis") -> str:
    """The whole page as a string (see the module docstring)."""
    itos = analysis.itos
    top_ids, top_probs = (a.tolist() for a in analysis.top_k(TOP_K))
    actual = _predicted_chars(analysis).tolist()
    bins = surprise_bins(analysis.surprise).tolist()
    surprise, rank, motion = (a.tolist() for a in (analysis.surprise, analysis.rank, analysis.motion))
    ids = analysis.ids.tolist()
    # Escaped once per vocabulary entry, not once per character of the text.
    label = {i: _attr(char_label(ch)) for i, ch in itos.items()}
    shown = {i: _shown(ch) + ("<br>" if ch == "\n" else "") for i, ch in itos.items()}
    newline = {i for i, ch in itos.items() if ch == "\n"}
    bits = 1.0 / math.log(2.0)
    br = "&#10;"  # a line break inside a tooltip
    out = [
        "<!DOCTYPE html>\n<html lang='en'>\n<head>\n<meta charset='utf-8'>\n",
        f"<title>{html.escape(title)}</title>\n<style>\n{_css()}\n</style>\n</head>\n<body>\n",
        f"<h1>{html.escape(title)}</h1>\n<table class='summary'>\n",
    ]
    out += [f"<tr><td>{html.escape(k)}</td><td>{html.escape(v)}</td></tr>\n"
            for k, v in summary_rows(analysis)]
    out.append("</table>\n" + _legend() + "\n<div class='text'>")
    out.append(f'<span class="first" title="{label[ids[0]]} (position 0){br}first character: '
               f'read, not predicted">{shown[ids[0]]}</span>')
    for i, s in enumerate(surprise):
        tok = ids[i + 1]
        alts = ", ".join(f"{label[t]} {p:.3f}" for t, p in zip(top_ids[i], top_probs[i], strict=True))
        cls = f"s{bins[i]} nl" if tok in newline else f"s{bins[i]}"
        out.append(f'<span class="{cls}" title="{label[tok]} (position {i + 1}){br}'
                   f"surprise {s:.3f} nats ({s * bits:.2f} bits){br}"
                   f"probability {actual[i]:.4f}, rank {rank[i]}{br}"
                   f"top {TOP_K}: {alts}{br}motion {motion[i]:.4g}"
                   f'">{shown[tok]}</span>')
    out.append("</div>\n</body>\n</html>\n")
    return "".join(out)


# --------------------------------------------------------------------------- CSV


def csv_header(k: int = TOP_K) -> list[str]:
    cols = ["position", "char", "surprise_nats", "prob", "rank", "motion"]
    for j in range(1, k + 1):
        cols += [f"top{j}_char", f"top{j}_prob"]
    return cols


def render_csv(analysis: TextAnalysis) -> str:
    """One row per predicted character (positions 1..n-1; position 0 is only read)."""
    top_ids, top_probs = (a.tolist() for a in analysis.top_k(TOP_K))
    actual = _predicted_chars(analysis).tolist()
    surprise, rank, motion = (a.tolist() for a in (analysis.surprise, analysis.rank, analysis.motion))
    itos, text = analysis.itos, analysis.text
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(csv_header(len(top_ids[0])))
    for i, s in enumerate(surprise):
        row = [i + 1, text[i + 1], f"{s:.6g}", f"{actual[i]:.6g}", rank[i], f"{motion[i]:.6g}"]
        for t, p in zip(top_ids[i], top_probs[i], strict=True):
            row += [itos[t], f"{p:.6g}"]
        writer.writerow(row)
    return buf.getvalue()


def write_report(analysis: TextAnalysis, path: str | os.PathLike, title: str | None = None) -> Path:
    """Write the HTML or CSV report chosen by ``path``'s extension, atomically.

    ``ValueError`` for an unknown extension (checked before any work), ``OSError``
    when the file cannot be written (nothing is left behind).
    """
    kind = report_format(path)
    if kind == "html":
        body = render_html(analysis, title or "Landauer LLM text analysis")
    else:
        body = render_csv(analysis)
    return atomic_write_text(path, body)
