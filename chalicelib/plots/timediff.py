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
or Y are kept. ``epochs`` (validity epochs in force, ``plots.epochs``): those with a boundary in the
window are the data's ``epochs`` and drawn as lines across the X and Y time axes of the cells they
cover (each tile's ``epochs`` lists their ids).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from chalicelib.plots import epochs as epoch_marks
from chalicelib.plots import figure, layout, legend, marks

KIND = "timediff"
WINDOW_S = 7 * 86400
DEPENDS_ON_WINDOW_S = WINDOW_S


def compute(tile_rows: Iterable[Mapping[str, Any]], solution_rows: Iterable[Mapping[str, Any]],
            history: Iterable[Mapping[str, Any]], *, fitid: int, obsid: int, creator: str | None = None,
            window_s: int = WINDOW_S, meta: Mapping[str, Any] | None = None,
            epochs: Iterable[Mapping[str, Any]] = ()) -> dict[str, Any]:
    delays = layout.delays_by_tile(solution_rows)
    refs = layout.tile_refs(tile_rows, delays)
    hist = layout.window_history(history, fitid=fitid, obsid=obsid, window_s=window_s,
                                 values={"x": lambda b: b["x_delay_m"], "y": lambda b: b["y_delay_m"]})
    drawn = epoch_marks.in_window(epochs, obsid, window_s)
    tiles = []
    for t in refs:
        x, y = delays.get(t.tileid, (np.nan, np.nan))
        h = hist.get(t.tileid) or layout.empty_history({"x": 0, "y": 0})
        shown = epoch_marks.tile_epochs(drawn, t.tileid, t.rx)
        tiles.append(layout.tile_entry(t, epochs=shown, x=x, y=y, no_data=not (np.isfinite(x) or np.isfinite(y)),
                                       history=h))
    return {"kind": KIND, "fitid": fitid, "obsid": obsid, "creator": creator, "window_s": window_s, "units": "m",
            "meta": dict(meta or {}), "epochs": drawn, "tiles": tiles}


def render(data: Mapping[str, Any]) -> bytes:
    """The timediff PNG of ``compute``'s data."""
    window_s = data["window_s"]
    cx, cy = layout.creator_colours(data.get("creator"))
    canvas = figure.plot_canvas(
        KIND, data, ylabel="residual delay (m)", values=layout.plotted_values(data["tiles"], ("x", "y"), ("x", "y")),
        note=(f"Each cell: X then Y. Small points: this tile in other fits of the previous {window_s / 86400:g} days, "
              f"oldest left and faintest; large circle: this fit."),
        legend=[legend.this_fit(), *legend.creators(data, ("x", "y")), *epoch_marks.legend_entries(data)],
    )
    b = figure.Batches()
    for t, p in canvas.cells(data["tiles"]):
        h = t["history"]
        for c, a, m, new in marks.earlier_batches(h, window_s):
            marks.earlier(b, p.row, p.x - 0.45 + 0.27 * new, h["x"][m], creator=c, pol="x", alpha=a, size=2.4)
            marks.earlier(b, p.row, p.x + 0.03 + 0.27 * new, h["y"][m], creator=c, pol="y", alpha=a, size=2.4)
        marks.fit_value(b, p.row, p.x - 0.1, t["x"], cx)
        marks.fit_value(b, p.row, p.x + 0.4, t["y"], cy)
    epoch_marks.draw(b, canvas, data, ((-0.45, 0.27), (0.03, 0.27)))  # the X and the Y points' time axes
    b.draw(canvas)
    return canvas.png()
