"""tilediff: each tile's X and Y residual delay (large circles) over small points showing the
residuals of every other tile of the same observation, in the same fit.

Data (``compute``), per tile: ``x``, ``y`` (metres, NaN when missing) and ``others_x``,
``others_y``: the finite residuals of every other tile of the observation that is not flagged
(a flagged tile's values are never background). A tile's own values are drawn even when flagged.
In each tile's cell the other tiles spread over the left (X) and right (Y) halves, the tile itself
is the large X circle at left and Y circle at right; colours are the fit creator's.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from chalicelib.plots import figure, layout, marks

KIND = "tilediff"
DEPENDS_ON_WINDOW_S = 0  # this fit only


def compute(tile_rows: Iterable[Mapping[str, Any]], solution_rows: Iterable[Mapping[str, Any]], *,
            fitid: int, obsid: int, creator: str | None = None, meta: Mapping[str, Any] | None = None
            ) -> dict[str, Any]:
    solution_rows = list(solution_rows)
    delays = layout.delays_by_tile(solution_rows)
    refs = layout.tile_refs(tile_rows, delays)
    x = np.array([delays.get(t.tileid, (np.nan, np.nan))[0] for t in refs], dtype=np.float64)
    y = np.array([delays.get(t.tileid, (np.nan, np.nan))[1] for t in refs], dtype=np.float64)
    flagged = np.array([t.flagged for t in refs], dtype=bool)
    use_x = np.isfinite(x) & ~flagged
    use_y = np.isfinite(y) & ~flagged
    index = np.arange(len(refs))
    tiles = []
    for i, t in enumerate(refs):
        tiles.append(layout.tile_entry(
            t, x=float(x[i]), y=float(y[i]), no_data=not (np.isfinite(x[i]) or np.isfinite(y[i])),
            others_x=x[use_x & (index != i)], others_y=y[use_y & (index != i)],
        ))
    return {"kind": KIND, "fitid": fitid, "obsid": obsid, "creator": creator, "units": "m",
            "meta": dict(meta or {}), "tiles": tiles}


def render(data: Mapping[str, Any]) -> bytes:
    """The tilediff PNG of ``compute``'s data."""
    cx, cy = layout.creator_colours(data.get("creator"))
    canvas = figure.plot_canvas(
        KIND, data, ylabel="residual delay (m)", values=layout.plotted_values(data["tiles"], ("x", "y")),
        note="Each cell: left, the tile's X residual (large circle) over every other tile's X (small points); "
             "right, the same for Y.",
        legend=[("X, this tile", dict(marker="o", ls="", ms=7, color=cx, mec="k")),
                ("Y, this tile", dict(marker="o", ls="", ms=7, color=cy, mec="k")),
                ("X, other tiles", dict(marker="o", ls="", ms=3, color=cx, alpha=0.4)),
                ("Y, other tiles", dict(marker="o", ls="", ms=3, color=cy, alpha=0.4))],
    )
    b = figure.Batches()
    for t, p in canvas.cells(data["tiles"]):
        ox, oy = np.asarray(t["others_x"]), np.asarray(t["others_y"])
        b.add(p.row, p.x + layout.cell_spread(ox.size, -0.44, -0.06), ox, color=cx, alpha=0.35, size=1.6, z=2)
        b.add(p.row, p.x + layout.cell_spread(oy.size, 0.06, 0.44), oy, color=cy, alpha=0.35, size=1.6, z=2)
        marks.fit_value(b, p.row, p.x - 0.25, t["x"], cx)
        marks.fit_value(b, p.row, p.x + 0.25, t["y"], cy)
    b.draw(canvas)
    return canvas.png()
