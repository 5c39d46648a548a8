"""SQL of the line-model error (``calibration_model_error``, migration 0005): write at landing, read for pages and plots."""

from __future__ import annotations

import math
from typing import Any

from chalicelib import db


def _value(v: float) -> float | None:
    """NULL for NaN (no line or no usable chanblock), else the float."""
    f = float(v)
    return f if math.isfinite(f) else None


def write_model_error(tx: db.Transaction, fitid: int, obsid: int, error: Any) -> int:
    """Replace the fit's model error for one observation with ``error`` (a ModelError); returns the rows written."""
    tx.run("DELETE FROM calibration_model_error WHERE fitid = :f AND obsid = :o", {"f": fitid, "o": obsid})
    tiles = [int(t) for t in error.tile_ids]
    if tiles:  # one statement for all tiles
        tx.run("INSERT INTO calibration_model_error (fitid, obsid, tileid, x_phase_rms, y_phase_rms)"
               " SELECT :f, :o, t, x, y FROM unnest(CAST(:t AS integer[]), CAST(:x AS float8[]),"
               " CAST(:y AS float8[])) AS u(t, x, y)",
               {"f": fitid, "o": obsid, "t": tiles, "x": [_value(v) for v in error.x_rms],
                "y": [_value(v) for v in error.y_rms]})
    return len(tiles)


def fit_model_error(fitid: int, obsid: int | None = None) -> list[dict[str, Any]]:
    """The fit's model error rows (obsid, tileid, x_phase_rms, y_phase_rms), of one observation or all."""
    where = "fitid = :f" + (" AND obsid = :o" if obsid is not None else "")
    return db.query(f"SELECT obsid, tileid, x_phase_rms, y_phase_rms FROM calibration_model_error WHERE {where}"
                    " ORDER BY obsid, tileid", {"f": fitid, "o": obsid})


def fit_lines(fitid: int, obsid: int) -> dict[int, tuple[float, float, float, float]]:
    """The fit's rows as lines: tileid -> (x_intercept, x_delay_m, y_intercept, y_delay_m)."""
    rows = db.query("SELECT tileid, x_intercept, x_delay_m, y_intercept, y_delay_m FROM calibration_solutions"
                    " WHERE fitid = :f AND obsid = :o", {"f": fitid, "o": obsid})
    return {int(r["tileid"]): (r["x_intercept"], r["x_delay_m"], r["y_intercept"], r["y_delay_m"]) for r in rows}


def fit_line_rows(fitid: int, obsid: int) -> list[dict[str, Any]]:
    """The fit's rows of one observation as dicts: tileid, x/y_intercept, x/y_delay_m (the phasefit plot)."""
    return db.query("SELECT tileid, x_intercept, x_delay_m, y_intercept, y_delay_m FROM calibration_solutions"
                    " WHERE fitid = :f AND obsid = :o ORDER BY tileid", {"f": fitid, "o": obsid})
