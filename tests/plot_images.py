"""Reading the plots a test got: the products-bucket key of a redirect, and a check that a PNG is a real drawing."""

from __future__ import annotations

import io
from urllib.parse import urlparse

import numpy as np


def key_of(location: str) -> str:
    return urlparse(location).path.lstrip("/")


def check_png(png: bytes, *, colours: tuple[str, ...] = (), min_height: int = 300) -> None:
    """A real image: PNG, the layout's width, not blank, with the expected colours in it."""
    from PIL import Image

    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    im = Image.open(io.BytesIO(png)).convert("RGB")
    w, h = im.size
    assert w == 1440 and h >= min_height, im.size
    px = np.asarray(im).reshape(-1, 3).astype(int)
    assert (px.min(axis=1) < 235).mean() > 0.02  # ink on more than 2 % of the image
    assert len(np.unique(px[::7], axis=0)) > 50
    for hexcol in colours:
        rgb = np.array([int(hexcol[i:i + 2], 16) for i in (1, 3, 5)])
        assert (np.abs(px - rgb).sum(axis=1) < 30).sum() > 20, f"no {hexcol} points drawn"
