"""gains: each tile's X and Y gain amplitude (``x_gains``/``y_gains``, 1/|J|) over the coarse
channels of the fit, as two lines across the tile's cell (channels ascending, left to right).

Data (``compute``), per tile: ``x_gains``, ``y_gains`` (arrays, one per coarse channel, NaN where
missing); and ``channels``: the observation's receiver channel numbers (ascending = gains order),
or None when unknown.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from chalicelib.plots import layout

KIND = "gains"
DEPENDS_ON_WINDOW_S = 0


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


def compute(tile_rows: Iterable[Mapping[str, Any]], solution_rows: Iterable[Mapping[str, Any]], *,
            channels: Sequence[int] | None, fitid: int, obsid: int, creator: str | None = None,
            meta: Mapping[str, Any] | None = None) -> dict[str, Any]:
    rows = list(solution_rows)
    channels = sorted(int(c) for c in channels) if channels else None
    n = channel_count(rows, channels)
    by_tile = {int(r["tileid"]): r for r in rows}
    refs = layout.tile_refs(tile_rows, by_tile)
    tiles = []
    for t in refs:
        r = by_tile.get(t.tileid, {})
        gx, gy = gains_array(r.get("x_gains"), n), gains_array(r.get("y_gains"), n)
        tiles.append(layout.tile_entry(t, x_gains=gx, y_gains=gy,
                                       no_data=not (np.isfinite(gx).any() or np.isfinite(gy).any())))
    return {"kind": KIND, "fitid": fitid, "obsid": obsid, "creator": creator, "channels": channels, "n_channels": n,
            "units": "1/|J|", "meta": dict(meta or {}), "tiles": tiles}


def channel_offsets(n: int) -> np.ndarray:
    """x offsets of n channels inside a cell, ascending left to right."""
    return layout.cell_spread(n, -0.42, 0.42)


def render(data: Mapping[str, Any]) -> bytes:
    tiles = data["tiles"]
    n = data["n_channels"]
    refs = [layout.TileRef(t["tileid"], t["name"], t["rx"], t["slot"], t["flagged"]) for t in tiles]
    values = np.concatenate([np.concatenate([t["x_gains"], t["y_gains"]]) for t in tiles]) if tiles else np.zeros(0)
    cx, cy = layout.creator_colour(data.get("creator"), "x"), layout.creator_colour(data.get("creator"), "y")
    canvas = layout.Canvas(
        refs, title=layout.title(KIND, data.get("meta"), data["fitid"], data["obsid"]),
        ylabel="gain amplitude (1/|J|)", ylim=layout.robust_limits(values), zero_line=False,
        note=f"Each cell: the tile's gains over the {layout.channel_note(data.get('channels'), n)}, left to right.",
        legend=[("X", dict(marker=".", ls="-", ms=4, color=cx)), ("Y", dict(marker=".", ls="-", ms=4, color=cy)),
                ("flagged tile", dict(marker="s", ls="", ms=8, color=layout.FLAG_BAND))],
        no_data=[t["tileid"] for t in tiles if t["no_data"]],
    )
    off = channel_offsets(n)
    b = layout.Batches()
    gap = np.array([np.nan])
    for t in tiles:
        p = canvas.where[t["tileid"]]
        xs = p.x + off
        for key, colour in (("x_gains", cx), ("y_gains", cy)):
            g = t[key]
            b.add(p.row, np.concatenate([xs, gap]), np.concatenate([g, gap]), color=colour, size=0.9, z=3, line=True)
            b.add(p.row, xs, g, color=colour, size=1.8, z=3.5)
    b.draw(canvas)
    return canvas.png()
