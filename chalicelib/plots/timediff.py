"""timediff: each tile's X and Y residual delay in this fit (large circles) over its residuals in the
other fits of observations from the previous 7 days (small points).

"Previous 7 days": fits of observations starting in [obsid - 7 days, obsid], this fit excluded
(other fits of the same observation, e.g. a re-fit, are included: age 0). Colours by the creator of
each fit: 'mwa' X blue / Y green, 'calvin' X red / Y orange; older points are more transparent
(``layout.fade_alpha`` of the observation's age). In each tile's cell the X points run left to
right from oldest to newest in the left half, then this fit's X circle; then the same for Y.

``compute`` takes the observation's tile rows, this fit's solution rows and ``history``: one
block per (fitid, obsid) in the window (``fitid``, ``obsid``, ``creator``, and per tile
``tileid``, ``x_delay_m``, ``y_delay_m`` arrays; NaN = missing). Its data, per tile: ``x``, ``y``,
and ``history``: columns ``fitid``, ``obsid``, ``creator``, ``age_s`` (obsid difference, seconds),
``alpha``, ``x``, ``y`` (NaN when missing), oldest first; only fits where the tile has a finite X
or Y are kept.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from chalicelib.plots import layout

KIND = "timediff"
WINDOW_S = 7 * 86400
DEPENDS_ON_WINDOW_S = WINDOW_S


def compute(tile_rows: Iterable[Mapping[str, Any]], solution_rows: Iterable[Mapping[str, Any]],
            history: Iterable[Mapping[str, Any]], *, fitid: int, obsid: int, creator: str | None = None,
            window_s: int = WINDOW_S, meta: Mapping[str, Any] | None = None) -> dict[str, Any]:
    delays = layout.delays_by_tile(solution_rows)
    refs = layout.tile_refs(tile_rows, delays)
    hist = layout.window_history(history, fitid=fitid, obsid=obsid, window_s=window_s,
                                 values={"x": lambda b: b["x_delay_m"], "y": lambda b: b["y_delay_m"]})
    tiles = []
    for t in refs:
        x, y = delays.get(t.tileid, (np.nan, np.nan))
        h = hist.get(t.tileid) or layout.empty_history({"x": 0, "y": 0})
        tiles.append(layout.tile_entry(t, x=x, y=y, no_data=not (np.isfinite(x) or np.isfinite(y)), history=h))
    return {"kind": KIND, "fitid": fitid, "obsid": obsid, "creator": creator, "window_s": window_s, "units": "m",
            "meta": dict(meta or {}), "tiles": tiles}


def creators_legend(data: Mapping[str, Any], pols: tuple[str, ...]) -> list[tuple[str, dict[str, Any]]]:
    """Legend entries for the creators present (this fit's and the history's)."""
    present = {(data.get("creator") or "")}
    for t in data["tiles"]:
        present.update(t["history"]["creator"])
    known = ("mwa", "calvin")
    names = [c for c in known if c in present] + sorted(c for c in present if c not in (*known, ""))
    out = []
    for c in names:
        for p in pols:
            out.append((f"{c} {p.upper()}", dict(marker="o", ls="", ms=5, color=layout.creator_colour(c, p))))
    return out


def render(data: Mapping[str, Any]) -> bytes:
    tiles = data["tiles"]
    window_d = data["window_s"] / 86400
    refs = [layout.TileRef(t["tileid"], t["name"], t["rx"], t["slot"], t["flagged"]) for t in tiles]
    values = np.concatenate([np.concatenate([[t["x"], t["y"]], t["history"]["x"], t["history"]["y"]])
                             for t in tiles]) if tiles else np.zeros(0)
    creator = data.get("creator")
    canvas = layout.Canvas(
        refs, title=layout.title(KIND, data.get("meta"), data["fitid"], data["obsid"]),
        ylabel="residual delay (m)", ylim=layout.robust_limits(values),
        note=(f"Each cell: X then Y. Small points: this tile in other fits of the previous {window_d:g} days, oldest "
              f"left and faintest; large circle: this fit."),
        legend=[("this fit", dict(marker="o", ls="", ms=7, color="white", mec="k"))] + creators_legend(data, ("x", "y"))
        + [("flagged tile", dict(marker="s", ls="", ms=8, color=layout.FLAG_BAND))],
        no_data=[t["tileid"] for t in tiles if t["no_data"]],
    )
    b = layout.Batches()
    for t in tiles:
        p = canvas.where[t["tileid"]]
        h = t["history"]
        frac = 1.0 - np.clip(h["age_s"] / data["window_s"], 0, 1)  # 0 oldest .. 1 newest
        for c, a, m in layout.history_groups(h):
            b.add(p.row, p.x - 0.45 + 0.27 * frac[m], h["x"][m], color=layout.creator_colour(c, "x"),
                  alpha=a, size=2.4, z=2)
            b.add(p.row, p.x + 0.03 + 0.27 * frac[m], h["y"][m], color=layout.creator_colour(c, "y"),
                  alpha=a, size=2.4, z=2)
        b.add(p.row, p.x - 0.1, t["x"], color=layout.creator_colour(creator, "x"), size=6.5, edge="k", z=4,
              annotate=True)
        b.add(p.row, p.x + 0.4, t["y"], color=layout.creator_colour(creator, "y"), size=6.5, edge="k", z=4,
              annotate=True)
    b.draw(canvas)
    return canvas.png()
