"""Validity epochs on the time-window plots (timediff, xydiff, gaintimes): which are drawn, where, in what colour.

An epoch in force whose boundary falls inside a plot's window, (obsid - window, obsid], is drawn
in the cells of the tiles it covers (every tile for a whole-solution epoch; else the tiles of the
receivers it names and the tiles it names) at its place on the cell's time axis: the same
oldest-left, newest-right scale the earlier fits' points use (``marks.earlier_batches``), so the
points left of the line are the fits on the old side of the boundary. Each epoch has its own
colour (none a creator's) and a legend entry "epoch <id>: <reason, shortened>". Ended epochs are
never given to the plots (``db.summary.plot_context`` reads only those in force).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from chalicelib.plots.figure import Batches, Canvas
from chalicelib.plots.legend import Entry

COLOURS = ("#e377c2", "#17becf", "#bcbd22", "#000000", "#9edae5")  # magenta, cyan, olive, black, pale cyan
REASON_CHARS = 28  # of an epoch's reason in the legend
LEGEND_MAX = 3  # epochs named in the legend


def in_window(epochs: Iterable[Mapping[str, Any]] | None, obsid: int, window_s: int) -> list[dict[str, Any]]:
    """The epochs with a boundary in (obsid - window_s, obsid], by boundary, each with ``age_s``
    (obsid - boundary) and ``newness`` (its place in the window: 0 oldest .. 1 this observation)."""
    out = []
    for e in epochs or ():
        boundary = int(e["boundary_gps"])
        if not obsid - window_s < boundary <= obsid:
            continue
        age = obsid - boundary
        out.append({"epoch_id": int(e["epoch_id"]), "boundary_gps": boundary, "reason": str(e.get("reason") or ""),
                    "receivers": [int(r) for r in e.get("receivers") or ()],
                    "tiles": [int(t) for t in e.get("tiles") or ()],
                    "age_s": age, "newness": 1.0 - age / window_s})
    return sorted(out, key=lambda e: (e["boundary_gps"], e["epoch_id"]))


def applies(epoch: Mapping[str, Any], tileid: int, rx: int | None) -> bool:
    """Whether the epoch covers the tile: a whole-solution one covers every tile."""
    if not epoch["receivers"] and not epoch["tiles"]:
        return True
    return int(tileid) in epoch["tiles"] or (rx is not None and int(rx) in epoch["receivers"])


def tile_epochs(epochs: Sequence[Mapping[str, Any]], tileid: int, rx: int | None) -> list[int]:
    """The ids of the epochs drawn in this tile's cell."""
    return [e["epoch_id"] for e in epochs if applies(e, tileid, rx)]


def colour(i: int) -> str:
    """The colour of the i-th epoch of a plot (by boundary)."""
    return COLOURS[i % len(COLOURS)]


def label(epoch: Mapping[str, Any]) -> str:
    """'epoch 12: receiver 3 swapped for…' (the reason cut to REASON_CHARS)."""
    reason = " ".join(epoch["reason"].split())
    if len(reason) > REASON_CHARS:
        reason = reason[:REASON_CHARS - 1].rstrip() + "…"
    scope = "" if not epoch["receivers"] and not epoch["tiles"] else " (some tiles)"
    return f"epoch {epoch['epoch_id']}{scope}: {reason}" if reason else f"epoch {epoch['epoch_id']}{scope}"


def legend_entries(data: Mapping[str, Any]) -> list[Entry]:
    """A line per epoch drawn, in its colour (the first LEGEND_MAX; then one "+n more" entry, so the
    legend keeps to its row: every epoch is still drawn and listed in the data)."""
    drawn = list(data.get("epochs") or ())
    out: list[Entry] = [(label(e), dict(ls="-", lw=2.0, color=colour(i))) for i, e in enumerate(drawn[:LEGEND_MAX])]
    if len(drawn) > LEGEND_MAX:
        out.append((f"+{len(drawn) - LEGEND_MAX} more epochs", dict(ls="-", lw=2.0, color=colour(LEGEND_MAX))))
    return out


def draw(b: Batches, canvas: Canvas, data: Mapping[str, Any], axes: Sequence[tuple[float, float]],
         top_only: bool = False) -> None:
    """Each epoch as a line in the cells it covers, at ``left + width * newness`` for each (left, width)
    time axis of a cell (offsets from the cell centre); ``top_only``: a short tick at the top edge
    (a plot whose cells have no time axis across them)."""
    epochs = list(data.get("epochs") or ())
    if not epochs:
        return
    lo, hi = canvas.ylim
    y = np.array([hi - 0.14 * (hi - lo) if top_only else lo, hi, np.nan])
    for t, p in canvas.cells(data["tiles"]):
        mine = set(t.get("epochs") or ())
        for i, e in enumerate(epochs):
            if e["epoch_id"] not in mine:
                continue
            for left, width in axes:
                x = p.x + left + width * e["newness"]
                b.add(p.row, np.array([x, x, np.nan]), y, color=colour(i), size=1.0, z=1.5, line=True)
