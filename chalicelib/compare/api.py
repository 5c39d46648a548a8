"""GET /calib/compare: two solutions, each a named fit or an observation's served one, compared per tile.

``fitid_a`` + ``obsid_a`` names a fit of calibrator observation ``obsid_a``; ``obsid_a`` alone is a
target whose served solution (the normal selection) is side a; the same for b. The Jones of both are
rebuilt on side a's tiles (its Antenna order) over the coarse channels both cover. ``format=json``
(the default) answers the per-tile statistics; ``format=png`` (with ``width``, as the plot route)
a 302 to the stored comparison plot (``compare.plot``).
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
from chalicelib.solutions import CalibrationSolution, TileInfo
from chalicelib.solutions.rebuild import assemble
from chalicelib.web import json_response

FORMATS = ("json", "png")
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


@dataclass(frozen=True)
class Pair:
    """Both sides resolved: the sides, the channels both cover, side a's tiles, and each one's Jones on them."""

    a: Side
    b: Side
    channels: list[int]
    tiles: list[TileInfo]
    ja: np.ndarray  # (tiles, fine channels, 4)
    jb: np.ndarray
    freqs_hz: np.ndarray  # the fine channels' centres


def _solution(s: Side, tiles: list[TileInfo], channels: list[int]) -> CalibrationSolution:
    rows = queries.solution_rows(s.fitid, s.cal_obsid)
    return assemble(rows, s.cal_channels, tiles, channels, FINE_CHAN_HZ, (float(s.cal_obsid), float(s.cal_stoptime)),
                    s.cal_obsid, s.fitid)


def sides(query: Mapping[str, str] | None) -> tuple[Side, Side, list[int]]:
    """Both sides of the query and the coarse channels they share (400 when none)."""
    a, b = side(query, "a"), side(query, "b")
    channels = sorted(set(a.cal_channels) & set(b.cal_channels))
    if not channels:
        raise BadRequest(f"the two solutions share no coarse channel ({list(a.cal_channels)} vs "
                         f"{list(b.cal_channels)})", parameter="obsid_b")
    return a, b, channels


def pair(a: Side, b: Side, channels: list[int]) -> Pair:
    """Both solutions rebuilt on side a's tiles over ``channels`` (400 when a has no tile list)."""
    tiles = queries.observation_tiles(a.obsid) or queries.observation_tiles(a.cal_obsid)
    if not tiles:
        raise BadRequest(f"no tile list is recorded for observation {a.obsid}", parameter="obsid_a")
    sa, sb = _solution(a, tiles, channels), _solution(b, tiles, channels)
    return Pair(a, b, channels, list(tiles), sa.jones[0], sb.jones[0], sa.freqs_hz)


def comparison(query: Mapping[str, str] | None) -> dict:
    """The JSON body: both sides, the channels compared, and the per-tile statistics."""
    p = pair(*sides(query))
    per_tile = compare(p.ja, p.jb, [t.name for t in p.tiles])
    for t, row in zip(p.tiles, per_tile):
        row.update(tileid=t.tile_id, rx=t.rx, slot=t.slot)
    return {"a": p.a.__dict__, "b": p.b.__dict__, "channels": p.channels,
            "statistics": "median and rms over fine channels (160 kHz) where both are finite; phase in radians",
            "tiles": per_tile}


def plot_data(a: Side, b: Side, channels: list[int]) -> dict:
    """The comparison plot's data (``compare.plot.compute``) of the two sides."""
    from chalicelib.compare import plot

    p = pair(a, b, channels)
    return plot.compute(p.tiles, p.ja, p.jb, p.freqs_hz, a=a, b=b, channels=channels)


def compare_response(query: Mapping[str, str] | None) -> Response:
    """GET /calib/compare: the statistics (JSON), or with format=png a 302 to the stored comparison plot."""
    from chalicelib.plots.service import width_of

    fmt = params.choice(query, "format", FORMATS, default="json")
    width = width_of(query)
    if fmt == "png":
        from chalicelib.compare import plot
        from chalicelib.plots.service import stored_png_redirect

        a, b, channels = sides(query)
        return stored_png_redirect(lambda w: plot.cache_key(a, b, w), lambda: plot.render(plot_data(a, b, channels)),
                                   width)
    return json_response(comparison(query))
