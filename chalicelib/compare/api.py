"""GET /calib/compare: two solutions, each a named fit or an observation's served one, compared per tile.

``fitid_a`` + ``obsid_a`` names a fit of calibrator observation ``obsid_a``; ``obsid_a`` alone is a
target whose served solution (the normal selection) is side a; the same for b. The Jones of both are
rebuilt on side a's tiles (its Antenna order) over the coarse channels both cover.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from chalice import Response

from chalicelib import params
from chalicelib.compare.stats import compare
from chalicelib.db import selection as queries
from chalicelib.errors import BadRequest
from chalicelib.selection.criteria import criteria
from chalicelib.selection.service import choose
from chalicelib.solutions import TileInfo
from chalicelib.solutions.rebuild import assemble
from chalicelib.web import json_response

FORMATS = ("json",)
FINE_CHAN_HZ = 160e3  # 8 points per coarse channel: enough to follow a phase line, cheap to build


@dataclass(frozen=True)
class Side:
    """One solution of the comparison: the fit and its calibrator."""

    fitid: int
    cal_obsid: int
    cal_stoptime: int
    cal_channels: tuple[int, ...]
    obsid: int  # the observation asked for (the calibrator itself when a fit was named)
    served: bool  # chosen by the selection for a target


def side(query: Mapping[str, str] | None, tag: str) -> Side:
    """Side ``a`` or ``b`` of the query: a named fit, or the observation's served solution."""
    obsid = params.integer(query, f"obsid_{tag}", required=True, minimum=0)
    fitid = params.integer(query, f"fitid_{tag}", minimum=0)
    if fitid is None:
        try:
            best = choose(obsid, criteria(query)).selection.best
        except BadRequest as exc:
            if exc.parameter == "obs_id":
                exc.parameter = f"obsid_{tag}"
            raise
        cal = best.calibrator
        return Side(best.fit.fitid, cal.obsid, cal.stoptime, tuple(cal.channels), obsid, True)
    obs = queries.observation(obsid)
    if obs is None:
        raise BadRequest(f"observation {obsid} does not exist in the schedule database", parameter=f"obsid_{tag}")
    if queries.fit_record(fitid, obsid) is None:
        raise BadRequest(f"fit {fitid} is not a fit of observation {obsid}", parameter=f"fitid_{tag}")
    return Side(fitid, obsid, obs.stoptime, tuple(obs.channels), obsid, False)


def _jones(s: Side, tiles: list[TileInfo], channels: list[int]) -> np.ndarray:
    rows = queries.solution_rows(s.fitid, s.cal_obsid)
    sol = assemble(rows, s.cal_channels, tiles, channels, FINE_CHAN_HZ, (float(s.cal_obsid), float(s.cal_stoptime)),
                   s.cal_obsid, s.fitid)
    return sol.jones[0]


def comparison(query: Mapping[str, str] | None) -> dict:
    """The JSON body: both sides, the channels compared, and the per-tile statistics."""
    a, b = side(query, "a"), side(query, "b")
    channels = sorted(set(a.cal_channels) & set(b.cal_channels))
    if not channels:
        raise BadRequest(f"the two solutions share no coarse channel ({list(a.cal_channels)} vs "
                         f"{list(b.cal_channels)})", parameter="obsid_b")
    tiles = queries.observation_tiles(a.obsid) or queries.observation_tiles(a.cal_obsid)
    if not tiles:
        raise BadRequest(f"no tile list is recorded for observation {a.obsid}", parameter="obsid_a")
    ja, jb = _jones(a, tiles, channels), _jones(b, tiles, channels)
    per_tile = compare(ja, jb, [t.name for t in tiles])
    for t, row in zip(tiles, per_tile):
        row.update(tileid=t.tile_id, rx=t.rx, slot=t.slot)
    return {"a": a.__dict__, "b": b.__dict__, "channels": channels,
            "statistics": "median and rms over fine channels (160 kHz) where both are finite; phase in radians",
            "tiles": per_tile}


def compare_response(query: Mapping[str, str] | None) -> Response:
    """GET /calib/compare (JSON)."""
    params.choice(query, "format", FORMATS, default="json")
    return json_response(comparison(query))
