"""The comparison plot: per tile, |J_a|/|J_b| and arg(J_a conj(J_b)) against frequency, laid out by receiver and slot.

Two figures stacked in one PNG (1440 px wide, as every plot): on top the amplitude ratio, below the
phase difference in degrees (wrapped to [-180, 180)), each with one cell per tile of side a's
observation placed by receiver and slot as the fit plots are (``plots.layout``), XX and YY as two
lines across the cell, frequency rising left to right (each coarse channel an equal share of the
cell, the line broken between channels that are not adjacent and where the phase wraps). Flagged
tiles get the red band, tiles with no finite value in either pol the grey "no data" band, as in
the other plots.

The ratio and difference read a against b, as the JSON statistics (``stats``) do: an a whose
stored gains (1/|J|) are twice b's reads 0.5, an a whose phase is ahead of b's reads positive.

``compute`` is pure: Jones of both sides (``compare.api.pair``) to the plotted data; ``render``
draws it; ``cache_key`` names everything the drawing depends on: side a's observation (its tiles),
each side's observation, calibrator and fit (a served side's chosen fitid), and ``VERSION``, the
drawing version (bump it when the look changes).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from chalicelib.compare.stats import POLS, ratio_and_phase
from chalicelib.plots import figure, layout, legend, marks, pngs
from chalicelib.plots.channels import channel_note
from chalicelib.solutions import TileInfo

KIND = "compare"
VERSION = "v2"  # v1 read b against a
CELL_HALF = 0.42  # the frequency axis spans [-0.42, 0.42] of a cell (as gains' channels do)
POL_COLOURS = layout.creator_colours("mwa")  # XX blue, YY green
RATIO = "|J_a|/|J_b|"  # a against b, as the JSON statistics (stats.ratio_and_phase)
PHASE = "arg(J_a conj(J_b))"
VALUES = {"ratio": RATIO, "phase_deg": f"{PHASE} in degrees, wrapped to [-180, 180)"}


def cache_key(a: Any, b: Any, width: int = pngs.FULL_WIDTH) -> str:
    """The products-bucket key of the comparison of sides ``a`` and ``b`` (``compare.api.Side``) at ``width``."""
    def part(s: Any) -> str:
        return f"{int(s.obsid)}-{int(s.cal_obsid)}-{int(s.fitid)}"

    return f"plots/{KIND}/{VERSION}/{int(a.obsid)}/a{part(a)}/b{part(b)}/{int(width)}px.png"


def _side(s: Any) -> dict[str, Any]:
    return {"obsid": int(s.obsid), "cal_obsid": int(s.cal_obsid), "fitid": int(s.fitid), "served": bool(s.served)}


def compute(tiles: Sequence[TileInfo], ja: np.ndarray, jb: np.ndarray, freqs_hz: np.ndarray, *, a: Any, b: Any,
            channels: Sequence[int]) -> dict[str, Any]:
    """The plotted data: per tile of side a (its order) ``ratio_xx``/``ratio_yy`` and ``phase_xx_deg``/
    ``phase_yy_deg`` over ``freq_mhz`` (NaN where either side has no finite value)."""
    out = []
    for i, t in enumerate(tiles):
        ref = layout.TileRef(tileid=int(t.tile_id), name=t.name, rx=t.rx, slot=t.slot, flagged=bool(t.flagged))
        values: dict[str, Any] = {}
        for pol, k in POLS.items():
            ratio, phase = ratio_and_phase(ja[i, :, k], jb[i, :, k])
            values[f"ratio_{pol.lower()}"] = ratio
            values[f"phase_{pol.lower()}_deg"] = np.degrees(phase)
        finite = any(np.isfinite(v).any() for v in values.values())
        out.append(layout.tile_entry(ref, **values, no_data=not finite))
    return {"kind": KIND, "a": _side(a), "b": _side(b), "channels": list(channels),
            "freq_mhz": np.asarray(freqs_hz, dtype=np.float64) / 1e6, "values": dict(VALUES), "tiles": out}


def cell_offsets(n_points: int, channels: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """The x in a cell of each of ``n_points`` fine channels (frequency rising left to right, each coarse
    channel an equal share, as the gains plots space them: a picket fence stays readable) and where
    the line breaks (True after point i: the next coarse channel is not adjacent)."""
    ch = sorted(int(c) for c in channels)
    if n_points == 0:
        return np.zeros(0), np.zeros(0, dtype=bool)
    x = -CELL_HALF + 2 * CELL_HALF * (np.arange(n_points) + 0.5) / n_points
    cut = np.zeros(n_points - 1, dtype=bool)
    if ch and n_points % len(ch) == 0:
        per = n_points // len(ch)
        for k in range(len(ch) - 1):
            cut[(k + 1) * per - 1] = ch[k + 1] - ch[k] > 1
    return x, cut


def broken(x: np.ndarray, y: np.ndarray, cut: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """x and y with a NaN after each point i where ``cut[i]``: the line is drawn in pieces."""
    at = np.flatnonzero(cut) + 1
    return np.insert(x, at, np.nan), np.insert(np.asarray(y, dtype=np.float64), at, np.nan)


def _title(what: str, data: Mapping[str, Any]) -> str:
    def say(tag: str) -> str:
        s = data[tag]
        served = f", served for {s['obsid']}" if s["served"] else ""
        return f"{tag}: fit {s['fitid']} (cal {s['cal_obsid']}{served})"

    return f"compare {what} — {say('a')} — {say('b')}"


def _canvas(data: Mapping[str, Any], what: str, ylabel: str, keys: tuple[str, str], zero_line: bool,
            note: str) -> tuple[figure.Canvas, figure.Batches]:
    tiles = data["tiles"]
    canvas = figure.Canvas(figure.tile_refs_of(data), title=_title(what, data), ylabel=ylabel,
                           ylim=layout.robust_limits(layout.plotted_values(tiles, keys)), note=note,
                           legend=[*legend.pol_lines("mwa", ("XX", "YY")), legend.flagged()],
                           no_data=[t["tileid"] for t in tiles if t["no_data"]], zero_line=zero_line)
    x, gaps = cell_offsets(len(data["freq_mhz"]), data["channels"])
    b = figure.Batches()
    for t, p in canvas.cells(tiles):
        for key, colour in zip(keys, POL_COLOURS):
            y = np.asarray(t[key], dtype=np.float64)
            with np.errstate(invalid="ignore"):
                cut = gaps | (np.abs(np.diff(y)) > 180.0) if key.startswith("phase") else gaps
            xs, ys = broken(p.x + x, y, cut)
            b.add(p.row, np.concatenate([xs, marks.GAP]), np.concatenate([ys, marks.GAP]), color=colour, size=1.0,
                  z=3, line=True)  # a line only: 8 points a coarse channel are too dense for dots
    return canvas, b


def _pixels(canvas: figure.Canvas, batches: figure.Batches) -> np.ndarray:
    """The drawn figure's RGBA pixels."""
    batches.draw(canvas)
    canvas.fig.canvas.draw()
    return np.asarray(canvas.fig.canvas.buffer_rgba())


def render(data: Mapping[str, Any]) -> bytes:
    """The comparison PNG of ``compute``'s data: the ratio figure above the phase one."""
    f = np.asarray(data["freq_mhz"])
    band = (f"{f[0]:.2f}–{f[-1]:.2f} MHz over the {channel_note(data['channels'], len(data['channels']))}"
            if f.size else "no channels")
    ratio, rb = _canvas(data, RATIO, f"amplitude ratio {RATIO}", ("ratio_xx", "ratio_yy"), False,
                        f"Each cell: the tile's ratio from {band}, left to right.")
    for ax in ratio.axes:
        if ratio.ylim[0] < 1.0 < ratio.ylim[1]:
            ax.axhline(1.0, color="#9aa1ab", lw=0.6, zorder=0.7)
    top = _pixels(ratio, rb)
    phase, pb = _canvas(data, PHASE, "phase difference (deg)", ("phase_xx_deg", "phase_yy_deg"), True,
                        f"Each cell: the tile's phase difference from {band}, left to right.")
    bottom = _pixels(phase, pb)
    if top.shape[1] != bottom.shape[1]:  # a renderer rounding one figure's width differently
        raise ValueError(f"the two figures differ in width: {top.shape[1]} and {bottom.shape[1]} px")
    size = (pngs.FULL_WIDTH, ratio.size[1] + phase.size[1])
    return pngs.from_rgba(np.concatenate([top, bottom]), size)

