"""The PNGs a plot is served as: one drawing at 1440 px wide, and that drawing at 960 and 480 px.

Pages show a plot ~400 px wide (a phone ~360 px, at 2-3 device pixels per CSS pixel), so they
offer all three widths in a ``srcset`` and the browser takes the one that fills the space; the
link on the picture opens the full width. Each width is palette-quantised to 256 colours without
dithering (the plots are flat colours, anti-aliased text and faded points: a palette keeps them,
and dithering would only add noise) and zlib-compressed at level 9: about a third of matplotlib's
RGBA PNG at 1440 px, a twentieth of it at 480. The same pixels always give the same bytes.

Pillow (a dependency of matplotlib) is imported only when a PNG is made.
"""

from __future__ import annotations

import io

import numpy as np

FULL_WIDTH = 1440  # px: the width plots are drawn at (figure.FIG_WIDTH_IN at figure.DPI)
WIDTHS: tuple[int, ...] = (480, 960, FULL_WIDTH)  # every width a plot is served at
PALETTE_COLOURS = 256


def scaled_size(size: tuple[int, int], width: int) -> tuple[int, int]:
    """The (width, height) of an image of ``size`` scaled to ``width`` pixels, aspect kept."""
    w, h = size
    return int(width), max(1, round(h * int(width) / w))


def encode(image) -> bytes:
    """A PIL image as a compact PNG: 256-colour palette, no dithering, zlib level 9, no metadata."""
    from PIL import Image

    rgb = image.convert("RGB") if image.mode != "RGB" else image
    palette = rgb.quantize(colors=PALETTE_COLOURS, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE)
    buf = io.BytesIO()
    palette.save(buf, format="PNG", compress_level=9)
    return buf.getvalue()


def from_rgba(pixels: np.ndarray, size: tuple[int, int]) -> bytes:
    """An (h, w, 4) uint8 RGBA array on an opaque white background (a drawn figure) as a compact
    PNG of ``size`` (width, height) pixels: the size the pages announced (resampled in case a
    renderer rounded differently)."""
    from PIL import Image

    image = Image.fromarray(np.ascontiguousarray(pixels[..., :3]))
    if image.size != tuple(size):
        image = image.resize(tuple(size), Image.Resampling.LANCZOS)
    return encode(image)


def scaled(png: bytes, width: int) -> bytes:
    """A PNG downscaled to ``width`` pixels (Lanczos; aspect kept), encoded as ``encode`` does."""
    from PIL import Image

    with Image.open(io.BytesIO(png)) as im:
        rgb = im.convert("RGB")
    if rgb.width != width:
        rgb = rgb.resize(scaled_size(rgb.size, width), Image.Resampling.LANCZOS)
    return encode(rgb)
