"""phasefit: each tile's phase from the fit's own solution file (relative to the reference tile)
against frequency, with the table's straight phase line over it, X and Y.

Data (``compute``): ``freqs_hz`` (the file's chanblocks, ascending; without files the band of the
observation's receiver channels, two points), ``reference_tile_id``, ``has_files`` and
``model_error_threshold_rad``; per tile ``x_phase``, ``y_phase`` (rad to 5 decimals, wrapped, NaN where unusable;
empty without files), the row's line ``x_intercept``, ``x_delay_m`` (and Y), ``x_model_error_rad``,
``y_model_error_rad`` (:func:`chalicelib.ingest.modelerror.model_error`) and ``model_error_over``
(either above the threshold). In each cell frequency runs left to right; dots are the file's
phases, the line the row's (wrapped, broken at each wrap); a tile over the threshold has its
model error written in bold at the top of its cell.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from chalicelib.angles import wrap_phase
from chalicelib.instrument import COARSE_CHAN_HZ
from chalicelib.plots import figure, layout, legend

KIND = "phasefit"
DEPENDS_ON_WINDOW_S = 0  # this fit (and its files) only
HALF_CELL = 0.44


def _f(v: Any) -> float:
    return np.nan if v is None else float(v)


def band_of(channels: Sequence[int] | None) -> np.ndarray:
    """The band edges (Hz) of receiver channels, for the lines of a fit without files."""
    if not channels:
        return np.array([], dtype=np.float64)
    return np.array([min(channels) * COARSE_CHAN_HZ - COARSE_CHAN_HZ / 2,
                     max(channels) * COARSE_CHAN_HZ + COARSE_CHAN_HZ / 2])


def compute(tile_rows: Iterable[Mapping[str, Any]], solution_rows: Iterable[Mapping[str, Any]], curves: Any, *,
            fitid: int, obsid: int, channels: Sequence[int] | None = None, threshold_rad: float = 0.3,
            creator: str | None = None, meta: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The plot's data from observation_tile rows, the fit's rows (delays and intercepts) and its PhaseCurves (or None)."""
    from chalicelib.ingest.modelerror import model_error

    rows = {int(r["tileid"]): r for r in solution_rows}
    lines = {t: (_f(r.get("x_intercept")), _f(r.get("x_delay_m")), _f(r.get("y_intercept")), _f(r.get("y_delay_m")))
             for t, r in rows.items()}
    refs = layout.tile_refs(tile_rows, rows)
    phase_of: dict[int, np.ndarray] = {}
    error_of: dict[int, tuple[float, float]] = {}
    if curves is not None:
        err = model_error(curves, lines)
        for i, t in enumerate(curves.tile_ids):
            phase_of[int(t)] = curves.phase[i]
            error_of[int(t)] = (float(err.x_rms[i]), float(err.y_rms[i]))
        freqs = np.asarray(curves.freqs_hz, dtype=np.float64)
    else:
        freqs = band_of(sorted(int(c) for c in channels) if channels else None)
    tiles = []
    for t in refs:
        ph = phase_of.get(t.tileid)
        xi, xd, yi, yd = lines.get(t.tileid, (np.nan,) * 4)
        ex, ey = error_of.get(t.tileid, (np.nan, np.nan))
        known = [e for e in (ex, ey) if np.isfinite(e)]
        has_phase = ph is not None and np.isfinite(ph).any()
        tiles.append(layout.tile_entry(
            t, x_phase=np.round(ph[:, 0], 5) if ph is not None else np.array([]),
            y_phase=np.round(ph[:, 1], 5) if ph is not None else np.array([]),
            x_intercept=xi, x_delay_m=xd, y_intercept=yi, y_delay_m=yd,
            x_model_error_rad=ex, y_model_error_rad=ey,
            model_error_over=(any(e > threshold_rad for e in known) if known else None),
            no_data=not (has_phase or np.isfinite([xd, yd]).any()),
        ))
    return {"kind": KIND, "fitid": fitid, "obsid": obsid, "creator": creator, "units": "rad",
            "meta": dict(meta or {}), "freqs_hz": freqs, "has_files": curves is not None,
            "reference_tile_id": None if curves is None else int(curves.reference_tile_id),
            "model_error_threshold_rad": float(threshold_rad), "tiles": tiles}


def _wrapped_line(xs: np.ndarray, phase: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A wrapped phase line as a polyline broken (NaN) at each wrap, and ended by a NaN (the next tile's is apart)."""
    w = wrap_phase(phase)
    jumps = np.flatnonzero(np.abs(np.diff(w)) > np.pi)
    return np.append(np.insert(xs, jumps + 1, np.nan), np.nan), np.append(np.insert(w, jumps + 1, np.nan), np.nan)


def render(data: Mapping[str, Any]) -> bytes:
    """The phasefit PNG of ``compute``'s data."""
    from chalicelib.ingest.modelerror import line_phase

    cx, cy = layout.creator_colours(data.get("creator"))
    freqs = np.asarray(data["freqs_hz"], dtype=np.float64)
    limit = data["model_error_threshold_rad"]
    note = ("Each cell: the fit file's phase relative to the reference tile (dots) and the table's line, "
            f"over frequency left to right; bold: line error above {limit:g} rad.")
    if not data.get("has_files"):
        note = "The fit's solution files are not in the calibration bucket: the table's lines only."
    canvas = figure.plot_canvas(
        KIND, data, ylabel="phase (rad)", values=np.array([-np.pi, np.pi]), note=note,
        legend=[*legend.pol_lines(data.get("creator"), ("X file, X line", "Y file, Y line"))])
    b = figure.Batches()
    span = (freqs.max() - freqs.min()) if freqs.size > 1 else 1.0
    offsets = (freqs - freqs.min()) / span * 2 * HALF_CELL - HALF_CELL if freqs.size else freqs
    dense = np.linspace(-HALF_CELL, HALF_CELL, 200)
    dense_f = freqs.min() + (dense + HALF_CELL) / (2 * HALF_CELL) * span if freqs.size else dense
    for t, p in canvas.cells(data["tiles"]):
        for pol, colour in (("x", cx), ("y", cy)):
            ph = np.asarray(t[f"{pol}_phase"], dtype=np.float64)
            if ph.size:
                b.add(p.row, p.x + offsets, ph, color=colour, alpha=0.35, size=1.0, z=2)
            if freqs.size and np.isfinite(t[f"{pol}_delay_m"]) and np.isfinite(t[f"{pol}_intercept"]):
                lx, ly = _wrapped_line(p.x + dense, line_phase(t[f"{pol}_intercept"], t[f"{pol}_delay_m"], dense_f))
                b.add(p.row, lx, ly, color=colour, size=1.1, z=3, line=True)
    b.draw(canvas)
    for t, p in canvas.cells(data["tiles"]):
        if t["model_error_over"]:
            worst = np.nanmax([t["x_model_error_rad"], t["y_model_error_rad"]])
            ax = canvas.axes[p.row]
            ax.text(p.x, 0.98, f"{worst:.2f}", transform=ax.get_xaxis_transform(), ha="center", va="top",
                    fontsize=6.5, fontweight="bold", color="#1d2430", zorder=5)
    return canvas.png()
