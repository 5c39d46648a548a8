"""A fit's gains per coarse channel, as the gains and gaintimes plots read and place them.

Gains columns as float arrays of the fit's channel count, that count, the x of each channel in a
tile's cell (ascending left to right) and the note saying which channels those are.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from chalicelib.plots.layout import cell_spread


def gains_array(values: Any, n: int | None = None) -> np.ndarray:
    """A gains column as float64 (NULL -> empty, or NaN x n when n is given)."""
    if values is None:
        return np.full(n, np.nan) if n else np.zeros(0)
    a = np.asarray(values, dtype=np.float64).ravel()
    if n is not None and a.size != n:
        out = np.full(n, np.nan)
        out[: min(n, a.size)] = a[: min(n, a.size)]
        return out
    return a


def channel_count(solution_rows: Sequence[Mapping[str, Any]], channels: Sequence[int] | None) -> int:
    """Channels of the fit: the observation's, else the longest gains array."""
    if channels:
        return len(channels)
    return max([len(r.get("x_gains") or []) for r in solution_rows]
               + [len(r.get("y_gains") or []) for r in solution_rows] + [0])


def channel_offsets(n: int) -> np.ndarray:
    """x offsets of n channels inside a cell, ascending left to right."""
    return cell_spread(n, -0.42, 0.42)


def channel_note(channels: Sequence[int] | None, n: int) -> str:
    """How the channels of a gains cell run, e.g. 'channels 109–132 (24)' or a picket fence."""
    if not channels or len(channels) != n:
        return f"{n} coarse channels"
    ch = list(channels)
    if all(b - a == 1 for a, b in zip(ch, ch[1:])):
        return f"coarse channels {ch[0]}–{ch[-1]} ({n})"
    if len(ch) > 6:
        return f"coarse channels {ch[0]}, {ch[1]}, {ch[2]} … {ch[-1]} ({n})"
    return "coarse channels " + ", ".join(map(str, ch))
