"""Builders of the records the tests seed (observations, tiles, solution rows), so each test states only what matters.

Every value here is deterministic: the tests compare what comes back from the service with these numbers.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable
from datetime import datetime, timezone
from typing import Any

from chalicelib import db
from chalicelib.db import writes
from chalicelib.records import Fit, Observation, SolutionRow
from chalicelib.solutions import TileInfo

N_CHAN = 24  # coarse channels of an observation: the length of every per-channel gain list
NAN = math.nan


def tile(antenna: int, tile_id: int, rx: int | None = None, slot: int | None = None, *,
         flagged: bool = False) -> TileInfo:
    """One tile named as the metafits names it (Tile011); rx and slot default to 8 tiles a receiver in Antenna order."""
    return TileInfo(antenna=antenna, tile_id=tile_id, name=f"Tile{tile_id:03d}",
                    rx=1 + antenna // 8 if rx is None else rx, slot=1 + antenna % 8 if slot is None else slot,
                    flagged=flagged)


def tiles(n_or_ids: int | Iterable[int], *, first_id: int = 11, flagged: Collection[int] = ()) -> list[TileInfo]:
    """n tiles with ids first_id, first_id + 1, ... (or the given tile ids) in Antenna order; flagged are tile ids."""
    ids = range(first_id, first_id + n_or_ids) if isinstance(n_or_ids, int) else n_or_ids
    return [tile(i, t, flagged=t in flagged) for i, t in enumerate(ids)]


_tiles = tiles  # observation() has a parameter named tiles


def observation(obsid: int, *, calibration: bool = False, gain: float = 1.0,
                channels: Iterable[int] = range(109, 133), tiles: list[TileInfo] | None = None,
                name: str | None = None, calibrators: str | None = None, creator: str | None = None,
                projectid: str | None = None, mode: str | None = None) -> Observation:
    """A 120 s observation (by default of 16 tiles); a calibrator observes HydA, so name and calibrators follow it."""
    return Observation(obsid=obsid, stoptime=obsid + 120, obsname=name or ("HydA_121" if calibration else "EoR0_121"),
                       channels=list(channels), gain_control_value=gain, calibration=calibration,
                       calibrators=calibrators or ("HydA" if calibration else None), creator=creator,
                       projectid=projectid, mode=mode, tiles=tiles if tiles is not None else _tiles(16))


def flat_row(tileid: int, delay_m: float, intercept: float = 0.0, *, gain: float = 1.0, **fields: Any) -> SolutionRow:
    """A tile with the same delay, intercept and flat gains in X and Y; fields override any other column."""
    values: dict[str, Any] = dict(x_delay_m=delay_m, x_intercept=intercept, x_gains=[gain] * N_CHAN,
                                  y_delay_m=delay_m, y_intercept=intercept, y_gains=[gain] * N_CHAN)
    values.update(fields)
    return SolutionRow(tileid=tileid, **values)


def flagged_row(tileid: int, **fields: Any) -> SolutionRow:
    """A tile the fit failed on: NaN delays, intercepts and gains (fields set any other column)."""
    return flat_row(tileid, NAN, NAN, gain=NAN, **fields)


def solution_row(tileid: int, k: int = 0, *, delay_scale: float = 1.0, y_gain_slope: float = 0.0,
                 **fields: Any) -> SolutionRow:
    """The k-th solved tile of a fit: delays and intercepts ramp with k and X gains with channel, so tiles differ."""
    values: dict[str, Any] = dict(x_delay_m=delay_scale * k * 0.5, x_intercept=0.1 * k,
                                  x_gains=[1.0 + 0.01 * c for c in range(N_CHAN)], y_delay_m=-0.25 * k,
                                  y_intercept=-0.05 * k, y_gains=[2.0 + y_gain_slope * c for c in range(N_CHAN)])
    values.update(fields)
    return SolutionRow(tileid=tileid, **values)


def solution_rows(tileids: Iterable[int], *, delay_scale: float = 1.0, nan_tiles: Collection[int] = (),
                  y_gain_slope: float = 0.0, pols_and_quality: bool = False) -> list[SolutionRow]:
    """One fit's rows: solution_row for each tile in order, flagged_row for nan_tiles.

    pols_and_quality also fills the pol0/pol1 gains (zero on a failed tile) and the fit-quality figures,
    which the legacy scripts read.
    """
    rows = []
    for k, t in enumerate(tileids):
        if t in nan_tiles:
            pols = ("x_gains_pol0", "x_gains_pol1", "y_gains_pol0", "y_gains_pol1") if pols_and_quality else ()
            rows.append(flagged_row(t, **{c: [0.0] * N_CHAN for c in pols}))
        elif pols_and_quality:
            rows.append(solution_row(t, k, delay_scale=delay_scale, y_gain_slope=y_gain_slope,
                                     x_gains_pol0=[1.0] * N_CHAN, x_gains_pol1=[1e-10 * c for c in range(N_CHAN)],
                                     x_phase_fit_quality=0.5 + 0.01 * k, y_phase_fit_quality=0.25 + 0.01 * k,
                                     x_gains_fit_quality=1.0, y_gains_fit_quality=0.875))
        else:
            rows.append(solution_row(t, k, delay_scale=delay_scale, y_gain_slope=y_gain_slope))
    return rows


def fit(fitid: int, obsid: int, *, creator: str = "calvin", fit_niter: int | None = None,
        fit_limit: float | None = None) -> Fit:
    """A calibration_fits row timed by its id (microseconds, or seconds for an old short id), as real fit ids are."""
    return Fit(fitid=fitid, obsid=obsid, creator=creator, code_version="1.1.3", fit_niter=fit_niter,
               fit_limit=fit_limit,
               fit_time=datetime.fromtimestamp(fitid / 1e6 if fitid > 1e11 else fitid, tz=timezone.utc))


def seed(observations: Iterable[Observation], fits: Iterable[tuple[Fit, list[SolutionRow]]] = ()) -> None:
    """Write the observations, then each fit with its rows, in one transaction as the ingest does."""
    with db.transaction() as tx:
        for o in observations:
            writes.insert_observation(tx, o)
        for f, rows in fits:
            writes.insert_fit(tx, f, rows)
