"""Small hand-built calibration data for the Grafana tests (no tests here), and Grafana-shaped bodies.

The expected numbers are computed here from the Python objects that were written (never from the
service's SQL): ``expected_points`` walks fits -> observations -> tiles the plain way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timezone

import numpy as np
import pytest

from chalicelib import db
from chalicelib.db import writes
from chalicelib.records import Fit, Observation, SolutionRow
from tests.factories import flat_row, tile

GPS_TO_UNIX = 315964782  # GPS - UTC = 18 s: true for every obsid here (all after 2017-01-01)
NAN = float("nan")


def ms(obsid: int) -> int:
    """An obsid's start as epoch ms (the observations here are all after the last leap second)."""
    assert obsid >= 1167264018, "the fixed offset holds after 2017-01-01 only"
    return (obsid + GPS_TO_UNIX) * 1000


def iso(epoch_ms: int) -> str:
    return datetime.fromtimestamp(epoch_ms / 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def contiguous(centre: int) -> list[int]:
    return list(range(centre - 12, centre + 12))


@dataclass
class Data:
    observations: dict[int, Observation] = field(default_factory=dict)
    fits: list[tuple[Fit, dict[int, SolutionRow]]] = field(default_factory=list)  # rows by tileid

    def centre(self, obsid: int) -> int:
        return sorted(self.observations[obsid].channels)[12]


def _row(tileid: int, x: float, y: float, qx: float, qy: float) -> SolutionRow:
    """A tile with X and Y delays x, y and phase-fit qualities qx, qy (intercepts +-0.1, flat gains)."""
    return flat_row(tileid, x, 0.1, y_delay_m=y, y_intercept=-0.1, x_phase_fit_quality=qx, y_phase_fit_quality=qy)


# Observations (GPS s). A, B, C, E are in the test range; D is after it.
A, B, C, D, E = 1400000000, 1400003600, 1400007200, 1500000000, 1400010800
FIT1, FIT2, FIT3, FIT4 = 1_700_000_000_000_001, 1_700_000_000_000_002, 1_500_000_000, 1_700_000_000_000_004

RANGE_FROM = ms(A) - 60_000
RANGE_TO = ms(E) + 60_000


def build(seed: int = 7) -> Data:
    """rec01 has tiles 11, 12, 13 (13 flagged in B); rec03 has 31, 32, and tile 12 moves there in C.

    Fits: FIT1 and FIT2 both fit A (two points at A's time); FIT3 is one 'mwa' fit spanning B and C
    (one point per observation); FIT4 fits D (outside the range). E is a calibrator without a fit.
    A and C observe HydA; B observes PicA on a picket-fence channel set; D observes HydA.
    """
    rng = np.random.default_rng(seed)
    data = Data()
    base = [tile(0, 11, 1, 1), tile(1, 12, 1, 2), tile(2, 13, 1, 3), tile(3, 31, 3, 1), tile(4, 32, 3, 2)]
    moved = [tile(0, 11, 1, 1), tile(1, 12, 3, 4), tile(2, 13, 1, 3), tile(3, 31, 3, 1), tile(4, 32, 3, 2)]
    flagged_b = [tile(0, 11, 1, 1), tile(1, 12, 1, 2), tile(2, 13, 1, 3, flagged=True), tile(3, 31, 3, 1),
                 tile(4, 32, 3, 2)]
    picket = [57, 62, 67, 72, 77, 82, 87, 92, 97, 102, 107, 112, 117, 122, 127, 132, 137, 142, 147, 152,
              157, 162, 167, 172]
    specs = [
        (A, "HydA", contiguous(121), base),
        (B, "PicA", picket, flagged_b),
        (C, "HydA", contiguous(145), moved),
        (D, "HydA", contiguous(121), base),
        (E, "HydA", contiguous(121), base),
    ]
    for obsid, source, chans, tiles in specs:
        data.observations[obsid] = Observation(
            obsid=obsid, stoptime=obsid + 120, obsname=f"{source}_{obsid}", channels=list(reversed(chans)),
            gain_control_value=1.0, calibration=True, calibrators=source, creator="test", tiles=tiles)

    def rows_for(obsid: int) -> dict[int, SolutionRow]:
        out = {}
        for t in data.observations[obsid].tiles:
            if t.flagged:
                out[t.tile_id] = _row(t.tile_id, NAN, NAN, NAN, NAN)
            else:
                x, y = rng.normal(0.0, 0.8, 2)
                qx, qy = rng.uniform(0.5, 1.0, 2)
                out[t.tile_id] = _row(t.tile_id, float(x), float(y), float(qx), float(qy))
        return out

    t0 = datetime(2024, 5, 1, tzinfo=timezone.utc)
    for fitid, obsid in ((FIT1, A), (FIT2, A), (FIT3, B), (FIT3, C), (FIT4, D)):
        rows = rows_for(obsid)
        data.fits.append((Fit(fitid=fitid, obsid=obsid, fit_time=t0, creator="calvin"), rows))
    # One extreme tile value, for clip and recmean, and one half-NaN row (Y only missing).
    fit, rows = data.fits[0]
    rows[12].x_delay_m = 25.0
    rows[11].y_delay_m = NAN
    return data


def seed(data: Data) -> None:
    with db.transaction() as tx:
        for obs in data.observations.values():
            writes.insert_observation(tx, obs)
        for fit, rows in data.fits:
            writes.insert_fit(tx, fit, list(rows.values()))


def expected_points(data: Data, rx: int, *, lo_ms: int = RANGE_FROM, hi_ms: int = RANGE_TO,
                    sources: set[str] | None = None, channels: set[int] | None = None):
    """[(time_ms, fitid, obsid, TileInfo, SolutionRow)] for tiles on rx, ordered by time, fitid, slot."""
    out = []
    for fit, rows in data.fits:
        obs = data.observations[fit.obsid]
        if not lo_ms <= ms(obs.obsid) <= hi_ms:
            continue
        if sources is not None and obs.calibrators not in sources:
            continue
        if channels is not None and data.centre(obs.obsid) not in channels:
            continue
        for t in obs.tiles:
            if t.rx == rx:
                out.append((ms(obs.obsid), fit.fitid, obs.obsid, t, rows[t.tile_id]))
    out.sort(key=lambda p: (p[0], p[1], p[3].slot, p[3].tile_id))
    return out


def finite(v: float) -> bool:
    return v is not None and math.isfinite(v)


def keep(v, clip=None):
    """A value as the service should send it: None when NaN or beyond the clip."""
    if v is None or not math.isfinite(v) or (clip is not None and abs(v) > clip):
        return None
    return v


def expected_tile_rows(data: Data, rx: int, value, *, clip=None, **filters) -> dict[str, list[tuple]]:
    """{tile name: [(time, v...)]} from the written objects; value(row) -> tuple of values."""
    out: dict[str, list[tuple]] = {}
    for time_ms, _fitid, _obsid, t, row in expected_points(data, rx, **filters):
        vals = tuple(keep(v, clip) for v in value(row))
        out.setdefault(t.name, [])
        if any(v is not None for v in vals):
            out[t.name].append((time_ms, *vals))
    return out


def expected_recmean(data: Data, rx: int, clip=None, **filters) -> list[tuple]:
    """[(time, mean X, mean Y)] per (fit, observation): the mean of the tiles' values kept by the clip."""
    groups: dict[tuple, list] = {}
    for time_ms, fitid, obsid, _t, row in expected_points(data, rx, **filters):
        groups.setdefault((time_ms, fitid, obsid), []).append(row)
    out = []
    for (time_ms, _fitid, _obsid), rs in sorted(groups.items()):
        xs = [v for v in (keep(r.x_delay_m, clip) for r in rs) if v is not None]
        ys = [v for v in (keep(r.y_delay_m, clip) for r in rs) if v is not None]
        if xs or ys:
            out.append((time_ms, sum(xs) / len(xs) if xs else None, sum(ys) / len(ys) if ys else None))
    return out


def rows(frame: dict) -> list[tuple]:
    """A data frame's rows: (time, value...)."""
    return list(zip(*frame["data"]["values"]))


def approx_rows(actual: list[tuple], expected: list[tuple]) -> None:
    """Same times, values equal to 1e-12 (None where None)."""
    assert len(actual) == len(expected), (actual, expected)
    for a, e in zip(actual, expected):
        assert a[0] == e[0]
        for av, ev in zip(a[1:], e[1:]):
            assert (av is None and ev is None) or av == pytest.approx(ev, rel=1e-12, abs=1e-15), (a, e)


# ---- request bodies, as Grafana 10/11 with simpod-json-datasource 0.6.x sends them -------------


def query_body(*targets: dict, frm: int = RANGE_FROM, to: int = RANGE_TO, max_points: int = 1323,
               **extra) -> dict:
    body = {
        "app": "dashboard",
        "requestId": "Q115",
        "timezone": "browser",
        "panelId": 2,
        "dashboardUID": "mwa-calib-trends",
        "range": {"from": iso(frm), "to": iso(to), "raw": {"from": "now-30d", "to": "now"}},
        "timeInfo": "",
        "interval": "30m",
        "intervalMs": 1800000,
        "targets": list(targets),
        "maxDataPoints": max_points,
        "scopedVars": {"__interval": {"text": "30m", "value": "30m"},
                       "__interval_ms": {"text": "1800000", "value": 1800000}},
        "startTime": 1714521600000,
        "rangeRaw": {"from": "now-30d", "to": "now"},
        "adhocFilters": [],
    }
    body.update(extra)
    return body


def target(metric: str, ref: str = "A", *, channel: str = "ANY", source: str = "ANY", style: str = "full",
           clip: str = "None", hide: bool = False, payload: dict | str | None = None) -> dict:
    """A builder-mode target: every payload value a string, as the plugin sends them."""
    return {
        "datasource": {"type": "simpod-json-datasource", "uid": "mwa-calib"},
        "editorMode": "builder",
        "payload": payload if payload is not None else
        {"channel": channel, "source": source, "style": style, "clip": clip},
        "refId": ref,
        "target": metric,
        "hide": hide,
    }
