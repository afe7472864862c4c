"""Draw the app icon and write it as PNG, ICO (Windows) and ICNS (macOS).

The icon is a golden-angle spiral (each dot turned by the angle the model's
first layer rotates by) on a dark rounded square. It is drawn with QPainter
offscreen, so it can be rebuilt on any machine without an image editor, and
the ICO/ICNS containers are written here by hand (both simply hold PNGs), so
no Qt image plugin beyond PNG is needed.

Usage::

    python scripts/make_icon.py            # writes resources/icons/landauer-studio.{png,ico,icns}
    python scripts/make_icon.py --out DIR
"""

from __future__ import annotations

import argparse
import math
import os
import struct
import sys
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from PySide6.QtCore import QBuffer, QByteArray, QIODevice, QPointF, QRectF, Qt  # noqa: E402
from PySide6.QtGui import (  # noqa: E402
    QColor,
    QGuiApplication,
    QImage,
    QLinearGradient,
    QPainter,
    QRadialGradient,
)

import landauer_gui  # noqa: E402, F401 (guards None's refcount under PySide6 6.12 on Python 3.11)

GOLDEN_ANGLE = 2.39996322972865332  # radians, the model's PHI0
NAME = "landauer-studio"
ICO_SIZES = (16, 24, 32, 48, 64, 128, 256)
# ICNS entry types that may hold PNG data, by pixel size.
ICNS_TYPES = {16: b"icp4", 32: b"icp5", 64: b"icp6", 128: b"ic07", 256: b"ic08", 512: b"ic09"}


def render(size: int) -> QImage:
    """The icon at ``size`` pixels, drawn afresh so small sizes stay crisp."""
    img = QImage(size, size, QImage.Format.Format_ARGB32_Premultiplied)
    img.fill(Qt.GlobalColor.transparent)
    p = QPainter(img)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    s = float(size)
    margin = s * 0.04
    tile = QRectF(margin, margin, s - 2 * margin, s - 2 * margin)
    bg = QLinearGradient(tile.topLeft(), tile.bottomRight())
    bg.setColorAt(0.0, QColor("#1d2b4f"))
    bg.setColorAt(1.0, QColor("#0b1120"))
    p.setPen(Qt.PenStyle.NoPen)
    p.setBrush(bg)
    p.drawRoundedRect(tile, s * 0.2, s * 0.2)

    centre = tile.center()
    radius = tile.width() * 0.42
    dots = 89 if size >= 64 else 34 if size >= 32 else 13  # Fibonacci counts close the spiral evenly
    spacing = radius * math.sqrt(math.pi / dots)  # mean distance between neighbouring dots
    for i in range(dots, 0, -1):  # outer dots first, so inner ones sit on top
        frac = math.sqrt(i / dots)
        angle = i * GOLDEN_ANGLE
        pos = QPointF(centre.x() + radius * frac * math.cos(angle),
                      centre.y() + radius * frac * math.sin(angle))
        dot = max(0.75, spacing * 0.46 * (0.45 + 0.55 * frac))
        glow = QRadialGradient(pos, dot)
        glow.setColorAt(0.0, QColor.fromHsvF(0.11 - 0.05 * frac, 0.55 + 0.4 * frac, 1.0))
        glow.setColorAt(1.0, QColor.fromHsvF(0.09 - 0.05 * frac, 0.85, 0.85 - 0.2 * frac))
        p.setBrush(glow)
        p.drawEllipse(pos, dot, dot)
    p.end()
    return img


def png_bytes(img: QImage) -> bytes:
    data = QByteArray()
    buf = QBuffer(data)
    buf.open(QIODevice.OpenModeFlag.WriteOnly)
    if not img.save(buf, "PNG"):
        raise RuntimeError("Qt could not encode a PNG")
    buf.close()
    return bytes(data)


def ico_bytes(pngs: dict[int, bytes]) -> bytes:
    """An ICO holding one PNG per size (readable since Windows Vista)."""
    sizes = sorted(pngs)
    header = struct.pack("<HHH", 0, 1, len(sizes))
    offset = len(header) + 16 * len(sizes)
    entries, blobs = b"", b""
    for size in sizes:
        blob = pngs[size]
        dim = 0 if size >= 256 else size  # 0 means 256 in the ICO directory
        entries += struct.pack("<BBBBHHII", dim, dim, 0, 0, 1, 32, len(blob), offset)
        offset += len(blob)
        blobs += blob
    return header + entries + blobs


def icns_bytes(pngs: dict[int, bytes]) -> bytes:
    """An ICNS holding PNG entries (readable since macOS 10.7)."""
    body = b"".join(ICNS_TYPES[size] + struct.pack(">I", 8 + len(blob)) + blob
                    for size, blob in sorted(pngs.items()))
    return b"icns" + struct.pack(">I", 8 + len(body)) + body


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path,
                        default=Path(__file__).resolve().parent.parent / "resources" / "icons")
    args = parser.parse_args(argv)
    app = QGuiApplication.instance() or QGuiApplication(sys.argv[:1])  # noqa: F841 (fonts, raster engine)
    args.out.mkdir(parents=True, exist_ok=True)
    pngs = {size: png_bytes(render(size)) for size in sorted(set(ICO_SIZES) | set(ICNS_TYPES))}
    (args.out / f"{NAME}.png").write_bytes(pngs[256])
    (args.out / f"{NAME}.ico").write_bytes(ico_bytes({s: pngs[s] for s in ICO_SIZES}))
    (args.out / f"{NAME}.icns").write_bytes(icns_bytes({s: pngs[s] for s in ICNS_TYPES}))
    for name in (f"{NAME}.png", f"{NAME}.ico", f"{NAME}.icns"):
        print(f"wrote {args.out / name} ({(args.out / name).stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
