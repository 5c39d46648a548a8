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

from chalicelib.plots import figure, layout, legend, marks
from chalicelib.plots.channels import channel_count, channel_note, channel_offsets, gains_array

KIND = "gains"
DEPENDS_ON_WINDOW_S = 0


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


def render(data: Mapping[str, Any]) -> bytes:
    """The gains PNG of ``compute``'s data."""
    n = data["n_channels"]
    creator = data.get("creator")
    canvas = figure.plot_canvas(
        KIND, data, ylabel="gain amplitude (1/|J|)", zero_line=False,
        values=layout.plotted_values(data["tiles"], ("x_gains", "y_gains")),
        note=f"Each cell: the tile's gains over the {channel_note(data.get('channels'), n)}, left to right.",
        legend=legend.pol_lines(creator),
    )
    off = channel_offsets(n)
    b = figure.Batches()
    for t, p in canvas.cells(data["tiles"]):
        for key, colour in zip(("x_gains", "y_gains"), layout.creator_colours(creator)):
            marks.gain_line(b, p.row, p.x + off, t[key], colour, dot_size=1.8)
    b.draw(canvas)
    return canvas.png()
