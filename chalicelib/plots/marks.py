"""Marks several plots draw in a tile's cell: this fit's value, earlier fits' faded points, a gains line.

Each adds to a ``figure.Batches`` (drawn later in z order); sizes and z are the plots' shared style:
earlier fits at z 2 under this fit's lines (z 3, dots 3.5) and large circles (z 4).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from chalicelib.plots.figure import Batches
from chalicelib.plots.layout import creator_colour, history_groups

GAP = np.array([np.nan])  # ends a polyline piece


def fit_value(b: Batches, row: int, x: float, value: float, colour: str) -> None:
    """This fit's value of a tile: a large black-edged circle, its value written when off scale."""
    b.add(row, x, value, color=colour, size=6.5, edge="k", z=4, annotate=True)


def earlier(b: Batches, row: int, x: np.ndarray | float, y: np.ndarray, *, creator: str, pol: str, alpha: float,
            size: float) -> None:
    """Points of earlier fits: the fit creator's colour for the pol, faded by age, under this fit's marks."""
    b.add(row, x, y, color=creator_colour(creator, pol), alpha=alpha, size=size, z=2)


def earlier_batches(history: Mapping[str, Any], window_s: float
                    ) -> Iterator[tuple[str, float, np.ndarray, np.ndarray]]:
    """(creator, alpha, mask, newness) per batch of a tile's earlier fits (``layout.history_groups``),
    newness being where those fits sit in the window, 0 oldest .. 1 newest: their x in the cell."""
    newness = 1.0 - np.clip(history["age_s"] / window_s, 0, 1)
    for creator, alpha, mask in history_groups(history):
        yield creator, alpha, mask, newness[mask]


def gain_line(b: Batches, row: int, xs: np.ndarray, gains: np.ndarray, colour: str, dot_size: float) -> None:
    """A tile's gains over the channels: a thin line (broken at NaN) with a dot per channel."""
    b.add(row, np.concatenate([xs, GAP]), np.concatenate([gains, GAP]), color=colour, size=0.9, z=3, line=True)
    b.add(row, xs, gains, color=colour, size=dot_size, z=3.5)
