"""xydiff: each tile's X minus Y residual delay in this fit (large circle) over the same difference
in the other fits of observations from the previous 30 days (small points).

Window and fading as in timediff (observations starting in [obsid - 30 days, obsid], this fit
excluded; older = fainter and further left in the cell). Colours by creator: 'mwa' blue, 'calvin'
red (their X colours). ``compute`` takes ``history`` blocks as timediff does. Its data, per tile:
``xy`` (NaN when X or Y is missing) and ``history`` columns ``fitid``, ``obsid``, ``creator``,
``age_s``, ``alpha``, ``xy`` (finite only).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from chalicelib.plots import layout
from chalicelib.plots.timediff import creators_legend

KIND = "xydiff"
WINDOW_S = 30 * 86400
DEPENDS_ON_WINDOW_S = WINDOW_S


def _xy(block: Mapping[str, Any]) -> np.ndarray:
    return np.asarray(block["x_delay_m"], dtype=np.float64) - np.asarray(block["y_delay_m"], dtype=np.float64)


def compute(tile_rows: Iterable[Mapping[str, Any]], solution_rows: Iterable[Mapping[str, Any]],
            history: Iterable[Mapping[str, Any]], *, fitid: int, obsid: int, creator: str | None = None,
            window_s: int = WINDOW_S, meta: Mapping[str, Any] | None = None) -> dict[str, Any]:
    delays = layout.delays_by_tile(solution_rows)
    refs = layout.tile_refs(tile_rows, delays)
    hist = layout.window_history(history, fitid=fitid, obsid=obsid, window_s=window_s, values={"xy": _xy})
    tiles = []
    for t in refs:
        x, y = delays.get(t.tileid, (np.nan, np.nan))
        h = hist.get(t.tileid) or layout.empty_history({"xy": 0})
        tiles.append(layout.tile_entry(t, xy=x - y, no_data=not np.isfinite(x - y), history=h))
    return {"kind": KIND, "fitid": fitid, "obsid": obsid, "creator": creator, "window_s": window_s, "units": "m",
            "meta": dict(meta or {}), "tiles": tiles}


def render(data: Mapping[str, Any]) -> bytes:
    tiles = data["tiles"]
    window_d = data["window_s"] / 86400
    refs = [layout.TileRef(t["tileid"], t["name"], t["rx"], t["slot"], t["flagged"]) for t in tiles]
    values = np.concatenate([np.concatenate([[t["xy"]], t["history"]["xy"]]) for t in tiles]) if tiles else np.zeros(0)
    canvas = layout.Canvas(
        refs, title=layout.title(KIND, data.get("meta"), data["fitid"], data["obsid"]),
        ylabel="X − Y residual delay (m)", ylim=layout.robust_limits(values),
        note=(f"Each cell: small points, this tile's X − Y in other fits of the previous {window_d:g} days (oldest "
              f"left and faintest); large circle, this fit."),
        legend=[("this fit", dict(marker="o", ls="", ms=7, color="white", mec="k"))] + creators_legend(data, ("x",))
        + [("flagged tile", dict(marker="s", ls="", ms=8, color=layout.FLAG_BAND))],
        no_data=[t["tileid"] for t in tiles if t["no_data"]],
    )
    b = layout.Batches()
    for t in tiles:
        p = canvas.where[t["tileid"]]
        h = t["history"]
        frac = 1.0 - np.clip(h["age_s"] / data["window_s"], 0, 1)
        for c, a, m in layout.history_groups(h):
            b.add(p.row, p.x - 0.44 + 0.6 * frac[m], h["xy"][m], color=layout.creator_colour(c, "x"),
                  alpha=a, size=2.4, z=2)
        b.add(p.row, p.x + 0.3, t["xy"], color=layout.creator_colour(data.get("creator"), "x"), size=6.5,
              edge="k", z=4, annotate=True)
    b.draw(canvas)
    return canvas.png()
