"""A figure as a PNG file small enough to publish: every report page embeds its plots, and a report is
committed beside its results.

matplotlib's antialiased PNGs hold tens of thousands of colours that a plot of a few series does not need:
reduced to a palette of 256 (median cut, no dithering: flat areas stay flat), a plot keeps its look at about a
third of the bytes.
"""

from __future__ import annotations

import io
from pathlib import Path

from matplotlib.figure import Figure
from PIL import Image

from bench_lib.atomic import atomic_write_bytes

__all__ = ["DPI", "save_png"]

DPI = 110
_COLORS = 256


def save_png(fig: Figure, path: Path) -> Path:
    """Write `fig` to `path` (atomically) as a palette PNG."""
    rendered = io.BytesIO()
    fig.savefig(rendered, format="png", dpi=DPI)
    rendered.seek(0)
    with Image.open(rendered) as image:
        palette = image.convert("RGB").quantize(colors=_COLORS, method=Image.Quantize.MEDIANCUT,
                                                dither=Image.Dither.NONE)
    out = io.BytesIO()
    palette.save(out, format="PNG", optimize=True)
    atomic_write_bytes(path, out.getvalue())
    return path
