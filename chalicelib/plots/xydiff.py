"""xydiff: each tile's X minus Y residual delay in this fit (large circle) over the same difference
in the other fits of observations from the previous 30 days (small points).

Window and fading as in timediff (observations starting in [obsid - 30 days, obsid], this fit
excluded; older = fainter and further left in the cell). Colours by creator: 'mwa' blue, 'calvin'
red (their X colours). ``compute`` takes ``history`` blocks as timediff does. Its data, per tile:
``xy`` (NaN when X or Y is missing) and ``history`` columns ``fitid``, ``obsid``, ``creator``,
``age_s``, ``alpha``, ``xy`` (finite only). Validity epochs in the window: as timediff
(``plots.epochs``), a line across the earlier points' time axis.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from chalicelib.plots import epochs as epoch_marks
from chalicelib.plots import figure, layout, legend, marks

KIND = "xydiff"
WINDOW_S = 30 * 86400
DEPENDS_ON_WINDOW_S = WINDOW_S


def _xy(block: Mapping[str, Any]) -> np.ndarray:
    return np.asarray(block["x_delay_m"], dtype=np.float64) - np.asarray(block["y_delay_m"], dtype=np.float64)


def compute(tile_rows: Iterable[Mapping[str, Any]], solution_rows: Iterable[Mapping[str, Any]],
            history: Iterable[Mapping[str, Any]], *, fitid: int, obsid: int, creator: str | None = None,
            window_s: int = WINDOW_S, meta: Mapping[str, Any] | None = None,
            epochs: Iterable[Mapping[str, Any]] = ()) -> dict[str, Any]:
    delays = layout.delays_by_tile(solution_rows)
    refs = layout.tile_refs(tile_rows, delays)
    hist = layout.window_history(history, fitid=fitid, obsid=obsid, window_s=window_s, values={"xy": _xy})
    drawn = epoch_marks.in_window(epochs, obsid, window_s)
    tiles = []
    for t in refs:
        x, y = delays.get(t.tileid, (np.nan, np.nan))
        h = hist.get(t.tileid) or layout.empty_history({"xy": 0})
        shown = epoch_marks.tile_epochs(drawn, t.tileid, t.rx)
        tiles.append(layout.tile_entry(t, epochs=shown, xy=x - y, no_data=not np.isfinite(x - y), history=h))
    return {"kind": KIND, "fitid": fitid, "obsid": obsid, "creator": creator, "window_s": window_s, "units": "m",
            "meta": dict(meta or {}), "epochs": drawn, "tiles": tiles}


def render(data: Mapping[str, Any]) -> bytes:
    """The xydiff PNG of ``compute``'s data."""
    window_s = data["window_s"]
    canvas = figure.plot_canvas(
        KIND, data, ylabel="X − Y residual delay (m)", values=layout.plotted_values(data["tiles"], ("xy",), ("xy",)),
        note=(f"Each cell: small points, this tile's X − Y in other fits of the previous {window_s / 86400:g} days "
              f"(oldest left and faintest); large circle, this fit."),
        legend=[legend.this_fit(), *legend.creators(data, ("x",)), *epoch_marks.legend_entries(data)],
    )
    colour = layout.creator_colour(data.get("creator"), "x")
    b = figure.Batches()
    for t, p in canvas.cells(data["tiles"]):
        h = t["history"]
        for c, a, m, new in marks.earlier_batches(h, window_s):
            marks.earlier(b, p.row, p.x - 0.44 + 0.6 * new, h["xy"][m], creator=c, pol="x", alpha=a, size=2.4)
        marks.fit_value(b, p.row, p.x + 0.3, t["xy"], colour)
    epoch_marks.draw(b, canvas, data, ((-0.44, 0.6),))  # the earlier points' time axis
    b.draw(canvas)
    return canvas.png()
