"""gaintimes: each tile's X and Y gains per coarse channel in this fit (lines with dots) over the
same tile and channel in other fits of observations from the previous 7 days (small points),
coloured by creator ('mwa' X blue / Y green, 'calvin' X red / Y orange), older fainter.

Channels are matched by receiver channel number (``rf_stream.frequencies``, ascending = gains
order), so an earlier fit at other channels adds points only where it shares channels; when an
observation's channels are unknown its gains are matched by position if it has as many.

``compute`` takes ``history`` blocks as timediff does, with ``x_gains`` and ``y_gains`` 2-D (one
row per tile, one column per channel of that observation). Its data, per tile: ``x_gains``,
``y_gains`` (this fit) and ``history`` columns
``fitid``, ``obsid``, ``creator``, ``age_s``, ``alpha`` and ``x_gains``, ``y_gains`` (2-D: one row
per earlier fit, one column per channel of this fit, NaN where that fit has no value).
Validity epochs in the window (``plots.epochs``, listed as in timediff): a cell's x is the channel,
so each is a tick along the cell's top edge at its time in the window (left: the window's start).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from chalicelib.plots import epochs as epoch_marks
from chalicelib.plots import figure, layout, legend, marks
from chalicelib.plots.channels import channel_count, channel_note, channel_offsets, gains_array

KIND = "gaintimes"
WINDOW_S = 7 * 86400
DEPENDS_ON_WINDOW_S = WINDOW_S


def aligner(channels: Sequence[int] | None, n: int, channels_by_obs: Mapping[int, Sequence[int]]):
    """A function block -> (pol -> gains on this fit's channels, one row per tile, NaN where that
    fit has no value for a channel)."""
    cur = list(channels) if channels else None

    def align(block: Mapping[str, Any], key: str) -> np.ndarray:
        g = np.asarray(block.get(key) if block.get(key) is not None else np.zeros((0, 0)), dtype=np.float64)
        n_tiles = len(block["tileid"])
        if g.ndim != 2 or g.shape[0] != n_tiles:
            g = g.reshape(n_tiles, -1) if g.size and g.size % max(n_tiles, 1) == 0 else np.full((n_tiles, 0), np.nan)
        theirs = channels_by_obs.get(int(block["obsid"]))
        if cur is not None and theirs and len(theirs) == g.shape[1]:
            pos = {int(c): i for i, c in enumerate(sorted(theirs))}
            idx = np.array([pos.get(c, -1) for c in cur], dtype=np.int64)
            out = np.full((n_tiles, n), np.nan)
            ok = idx >= 0
            out[:, ok] = g[:, idx[ok]]
            return out
        if g.shape[1] == n and (cur is None or not theirs):
            return g
        return np.full((n_tiles, n), np.nan)

    return align


def compute(tile_rows: Iterable[Mapping[str, Any]], solution_rows: Iterable[Mapping[str, Any]],
            history: Iterable[Mapping[str, Any]], *, channels: Sequence[int] | None,
            channels_by_obs: Mapping[int, Sequence[int]], fitid: int, obsid: int, creator: str | None = None,
            window_s: int = WINDOW_S, meta: Mapping[str, Any] | None = None,
            epochs: Iterable[Mapping[str, Any]] = ()) -> dict[str, Any]:
    rows = list(solution_rows)
    channels = sorted(int(c) for c in channels) if channels else None
    n = channel_count(rows, channels)
    by_tile = {int(r["tileid"]): r for r in rows}
    refs = layout.tile_refs(tile_rows, by_tile)
    align = aligner(channels, n, channels_by_obs)
    hist = layout.window_history(history, fitid=fitid, obsid=obsid, window_s=window_s, values={
        "x_gains": lambda b: align(b, "x_gains"), "y_gains": lambda b: align(b, "y_gains")})
    drawn = epoch_marks.in_window(epochs, obsid, window_s)
    tiles = []
    for t in refs:
        r = by_tile.get(t.tileid, {})
        gx, gy = gains_array(r.get("x_gains"), n), gains_array(r.get("y_gains"), n)
        h = hist.get(t.tileid) or layout.empty_history({"x_gains": n, "y_gains": n})
        shown = epoch_marks.tile_epochs(drawn, t.tileid, t.rx)
        tiles.append(layout.tile_entry(t, epochs=shown, x_gains=gx, y_gains=gy, history=h,
                                       no_data=not (np.isfinite(gx).any() or np.isfinite(gy).any())))
    return {"kind": KIND, "fitid": fitid, "obsid": obsid, "creator": creator, "channels": channels, "n_channels": n,
            "window_s": window_s, "units": "1/|J|", "meta": dict(meta or {}), "epochs": drawn, "tiles": tiles}


def render(data: Mapping[str, Any]) -> bytes:
    """The gaintimes PNG of ``compute``'s data."""
    n = data["n_channels"]
    creator = data.get("creator")
    canvas = figure.plot_canvas(
        KIND, data, ylabel="gain amplitude (1/|J|)", zero_line=False,
        values=layout.plotted_values(data["tiles"], ("x_gains", "y_gains"), ("x_gains", "y_gains")),
        note=(f"Each cell: the tile's gains over the {channel_note(data.get('channels'), n)}, left to right; "
              f"lines: this fit; points: other fits of the previous {data['window_s'] / 86400:g} days, older fainter."
              + (" Top ticks: epochs, by time." if data.get("epochs") else "")),
        legend=[*legend.pol_lines(creator, ("this fit X", "this fit Y")), *legend.creators(data, ("x", "y")),
                *epoch_marks.legend_entries(data)],
    )
    off = channel_offsets(n)
    b = figure.Batches()
    for t, p in canvas.cells(data["tiles"]):
        xs = p.x + off
        h = t["history"]
        for c, a, m in layout.history_groups(h):
            k = int(m.sum())
            for key, pol in (("x_gains", "x"), ("y_gains", "y")):
                marks.earlier(b, p.row, np.tile(xs, k), h[key][m].ravel(), creator=c, pol=pol, alpha=a, size=1.6)
        for key, colour in zip(("x_gains", "y_gains"), layout.creator_colours(creator)):
            marks.gain_line(b, p.row, xs, t[key], colour, dot_size=2.6)
    # x in a cell is the channel, so the window's time runs along the top edge instead
    epoch_marks.draw(b, canvas, data, ((-0.42, 0.84),), top_only=True)
    b.draw(canvas)
    return canvas.png()
