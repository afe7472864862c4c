"""Colour scales for per-character values: what the text pane, legend and export share.

A scale maps a float array to RGB rows (``uint8 (k, 3)``) in one vectorised
call, so the text pane can colour only the characters it is about to paint.
NaN (a character with no value, e.g. the first one, which nothing predicts)
is drawn without colour.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

NO_VALUE = (255, 255, 255)
SAMPLE = 65_536  # values a percentile is estimated from
DARK_LUMA = 115  # text on a background darker than this is drawn white

# GLTR's four rank buckets: the model's favourite, its top 5, top 20, anything else.
RANK_EDGES = (1, 5, 20)
RANK_COLOURS = ((181, 230, 166), (255, 237, 150), (255, 190, 150), (224, 170, 235))
RANK_LABELS = ("top 1", "top 5", "top 20", "beyond")

# Sequential (low = pale, high = strong) and diverging (blue below 0, red above) ramps.
SEQUENTIAL = ((255, 255, 255), (255, 236, 179), (253, 174, 97), (230, 85, 13), (158, 1, 66))
DIVERGING = ((49, 54, 149), (116, 173, 209), (255, 255, 255), (244, 109, 67), (165, 0, 38))


def ramp(stops: tuple[tuple[int, int, int], ...], t: np.ndarray) -> np.ndarray:
    """Piecewise-linear interpolation of ``stops`` at ``t`` in [0, 1]."""
    stops_a = np.asarray(stops, dtype=np.float64)
    xs = np.linspace(0.0, 1.0, len(stops_a))
    out = np.empty((len(t), 3), dtype=np.float64)
    for c in range(3):
        out[:, c] = np.interp(t, xs, stops_a[:, c])
    return out


@dataclass
class ColourScale:
    """Maps values to colours; ``kind`` is "sequential", "diverging" or "buckets".

    Sequential scales run from ``low`` to ``high``; diverging ones are centred on
    0 and saturate at ``+-high``; bucket scales colour ``value <= edges[i]`` with
    ``colours[i]`` and anything above the last edge with the final colour.
    """

    kind: str
    title: str
    low: float = 0.0
    high: float = 1.0
    unit: str = ""
    edges: tuple[float, ...] = ()
    colours: tuple[tuple[int, int, int], ...] = ()
    labels: tuple[str, ...] = field(default_factory=tuple)

    def rgb(self, values: np.ndarray) -> np.ndarray:
        v = np.asarray(values, dtype=np.float64)
        out = np.empty((len(v), 3), dtype=np.float64)
        missing = ~np.isfinite(v)
        vv = np.where(missing, 0.0, v)
        if self.kind == "buckets":
            idx = np.searchsorted(np.asarray(self.edges, dtype=np.float64), vv, side="left")
            out[:] = np.asarray(self.colours, dtype=np.float64)[np.minimum(idx, len(self.colours) - 1)]
        elif self.kind == "diverging":
            span = self.high if self.high > 0 else 1.0
            out[:] = ramp(DIVERGING, np.clip(0.5 + 0.5 * vv / span, 0.0, 1.0))
        else:
            span = self.high - self.low if self.high > self.low else 1.0
            out[:] = ramp(SEQUENTIAL, np.clip((vv - self.low) / span, 0.0, 1.0))
        out[missing] = NO_VALUE
        return out.round().astype(np.uint8)

    def legend(self, steps: int = 5) -> list[tuple[str, tuple[int, int, int]]]:
        """``(label, colour)`` pairs to draw as the legend's swatches."""
        if self.kind == "buckets":
            return [(label, tuple(c)) for label, c in zip(self.labels, self.colours, strict=True)]
        if self.kind == "diverging":
            values = np.linspace(-self.high, self.high, steps)
        else:
            values = np.linspace(self.low, self.high, steps)
        colours = self.rgb(values)
        return [(_fmt(v) + self.unit, tuple(int(x) for x in c)) for v, c in zip(values, colours, strict=True)]


def luma(rgb: np.ndarray) -> np.ndarray:
    """Perceived brightness (0-255) of ``rgb (..., 3)`` rows."""
    c = np.asarray(rgb, dtype=np.float64)
    return c[..., 0] * 0.299 + c[..., 1] * 0.587 + c[..., 2] * 0.114


def is_dark(rgb) -> bool:
    """Whether text on this background should be white."""
    return bool(luma(rgb) < DARK_LUMA)


def _fmt(v: float) -> str:
    if abs(v) >= 100 or v == 0:
        return f"{v:.0f}"
    if abs(v) >= 1:
        return f"{v:.1f}"
    return f"{v:.2g}"


def robust_high(values: np.ndarray, q: float = 99.0, absolute: bool = False) -> float:
    """A saturation point that one outlier cannot set: the ``q``-th percentile of finite values.

    Estimated from an evenly strided sample of at most ``SAMPLE`` values (the
    same answer to a few digits), so it costs the same for a layer's states
    over a megabyte as for a sentence; ``absolute`` uses ``|values|``.
    """
    v = np.asarray(values).reshape(-1)
    if v.size > SAMPLE:
        v = v[:: v.size // SAMPLE]
    v = v.astype(np.float64)
    if absolute:
        v = np.abs(v)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return 1.0
    top = float(np.percentile(v, q))
    return top if top > 0 else float(v.max()) if v.max() > 0 else 1.0


def surprise_scale(surprise: np.ndarray) -> ColourScale:
    """Surprise in bits, pale (expected) to dark red (surprising)."""
    bits = np.asarray(surprise) / np.log(2.0)
    return ColourScale("sequential", "surprise (bits)", 0.0, max(1.0, robust_high(bits)), " b")


def rank_scale() -> ColourScale:
    return ColourScale("buckets", "rank of the actual character", edges=RANK_EDGES,
                       colours=RANK_COLOURS, labels=RANK_LABELS)


def motion_scale(motion: np.ndarray) -> ColourScale:
    return ColourScale("sequential", "state motion", 0.0, robust_high(motion))


def diverging_scale(values: np.ndarray, title: str, unit: str = "") -> ColourScale:
    """Centred on 0, saturating at the 99th percentile of ``|values|``."""
    return ColourScale("diverging", title, high=robust_high(values, absolute=True), unit=unit)


# Characters streamed with their probability (the Generate view's "colour by probability"):
# a fixed scale, since the whole text is not known in advance; 8 bits is p = 1/256.
STREAM_SCALE = ColourScale("sequential", "surprise (bits)", 0.0, 8.0, " b")
STREAM_LEVELS = 9


def runs_by_surprise(text: str, probs: list[float] | np.ndarray,
                     scale: ColourScale = STREAM_SCALE) -> list[tuple[str, tuple[int, int, int]]]:
    """``text`` cut into runs of one colour, each character coloured by ``-log2 p``.

    Colours are quantised to ``STREAM_LEVELS`` steps so that neighbouring
    characters share runs and a stream is inserted in a few edits, not one per character.
    """
    p = np.clip(np.asarray(probs, dtype=np.float64), 1e-12, 1.0)
    bits = -np.log2(p)
    step = (scale.high - scale.low) / (STREAM_LEVELS - 1)
    level = np.clip(np.rint((bits - scale.low) / step), 0, STREAM_LEVELS - 1)
    colours = scale.rgb(scale.low + level * step)
    runs: list[tuple[str, tuple[int, int, int]]] = []
    start = 0
    for i in range(1, len(text) + 1):
        if i == len(text) or level[i] != level[start]:
            runs.append((text[start:i], tuple(int(c) for c in colours[start])))
            start = i
    return runs
