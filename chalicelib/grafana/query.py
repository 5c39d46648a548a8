"""POST /query: data frames of residual delays (or fit quality) per tile of a receiver.

A point is one (fit, observation) in the range: time = the observation start (obsid GPS -> UTC, leap
seconds counted, as Unix ms).
Per style, for each tile of the receiver (its receiver and slot as in that observation):

- ``full``      fields X, Y: x_delay_m, y_delay_m (m)
- ``Y-X``       field Y-X: y_delay_m - x_delay_m (m)
- ``tilemean``  field mean: (x_delay_m + y_delay_m) / 2 (m)
- ``recmean``   ONE frame for the receiver, fields X, Y: the mean over its tiles of x_delay_m and
                y_delay_m per (fit, observation)
- ``quality``   fields X, Y: x_phase_fit_quality, y_phase_fit_quality (0..1)

NaN values (flagged tiles) are never sent. ``clip`` drops values whose absolute value exceeds it
(for ``recmean`` before averaging, so an outlying tile does not drag the mean; it does not apply to
``quality``, which is not in metres). In a two-field frame a value missing from one field is null;
a row with no value left is dropped. When a series has more points than ``maxDataPoints`` it is
averaged into ``maxDataPoints`` equal time buckets over the range (time = mean time of the bucket).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from chalicelib.db import grafana as sql
from chalicelib.errors import BadRequest
from chalicelib.grafana import timerange as tr
from chalicelib.grafana import request as rq
from chalicelib.grafana.options import Facets

METRES = "lengthm"
FRACTION = "percentunit"

# Columns of the point rows sql.points returns.
OBSID, FITID, TILEID, SLOT, A, B = range(6)


@dataclass(frozen=True)
class Style:
    fields: tuple[str, ...]
    unit: str
    columns: tuple[str, ...]
    value: Callable[[np.ndarray, np.ndarray], list[np.ndarray]]  # (a, b) columns -> one per field
    clipped: bool = True


STYLES: dict[str, Style] = {
    "full": Style(("X", "Y"), METRES, sql.DELAYS, lambda x, y: [x, y]),
    "Y-X": Style(("Y-X",), METRES, sql.DELAYS, lambda x, y: [y - x]),
    "tilemean": Style(("mean",), METRES, sql.DELAYS, lambda x, y: [(x + y) / 2]),
    "recmean": Style(("X", "Y"), METRES, sql.DELAYS, lambda x, y: [x, y]),
    "quality": Style(("X", "Y"), FRACTION, sql.QUALITY, lambda x, y: [x, y], clipped=False),
}


@dataclass
class Series:
    """One frame before encoding: times (epoch ms, int64) and values (rows x fields, NaN = none)."""

    name: str
    labels: dict[str, str]
    fields: tuple[str, ...]
    times: np.ndarray
    values: np.ndarray

    @classmethod
    def of(cls, name: str, labels: dict[str, str], fields: tuple[str, ...], times: np.ndarray,
           values: np.ndarray) -> Series:
        """The series of the rows that have a value in at least one field."""
        keep = ~np.isnan(values).all(axis=1)
        return cls(name, labels, fields, times[keep], values[keep])


def downsample(series: Series, max_points: int | None, rng: tr.TimeRange) -> None:
    """Average the series into at most max_points equal time buckets over the range.

    A bucket's time is the mean time of its points; each field's value the mean of its values.
    """
    n = len(series.times)
    if max_points is None or n <= max_points:
        return
    width = (rng.to_ms - rng.from_ms + 1) / max_points
    offset = series.times - rng.from_ms  # small enough to sum exactly in float64
    bucket = np.clip((offset / width).astype(np.int64), 0, max_points - 1)
    used, inverse = np.unique(bucket, return_inverse=True)
    count = np.bincount(inverse)
    times = np.round(np.bincount(inverse, weights=offset) / count).astype(np.int64) + rng.from_ms
    values = np.full((len(used), series.values.shape[1]), np.nan)
    for k in range(series.values.shape[1]):
        col = series.values[:, k]
        ok = ~np.isnan(col)
        total = np.bincount(inverse[ok], weights=col[ok], minlength=len(used))
        have = np.bincount(inverse[ok], minlength=len(used))
        np.divide(total, have, out=values[:, k], where=have > 0)
    series.times, series.values = times, values


def _nulls(values: np.ndarray) -> list[float | None]:
    return [None if v != v else v for v in values.tolist()]


def frame(series: Series, ref_id: str, unit: str) -> dict[str, Any]:
    """The data frame JSON Grafana's toDataFrame reads (schema + data.values, time in epoch ms)."""
    fields: list[dict[str, Any]] = [{"name": "time", "type": "time", "config": {}}]
    for name in series.fields:
        fields.append({"name": name, "type": "number", "labels": series.labels,
                       "config": {"unit": unit, "displayNameFromDS": f"{series.name} {name}"}})
    columns = [series.times.tolist()] + [_nulls(series.values[:, k]) for k in range(len(series.fields))]
    return {"schema": {"name": series.name, "refId": ref_id, "fields": fields}, "data": {"values": columns}}


def receiver_frames(target: rq.Target, rng: tr.TimeRange, max_points: int | None,
                    sources: frozenset[str] | None, channels: frozenset[int] | None) -> list[dict[str, Any]]:
    p = target.payload
    style = STYLES[p.style]
    rows, tiles = sql.points(target.receiver, rng.obsid_low, rng.obsid_high, style.columns,
                             sources=sources, channels=channels)
    if not rows and not sql.receiver_exists(target.receiver):
        raise BadRequest(f"unknown metric {target.metric!r}: no such receiver in the data",
                         parameter="target")
    points = np.array(rows, dtype=np.float64).reshape(-1, 6)  # None (NaN, missing) -> NaN
    times = _obsid_ms(points[:, OBSID].astype(np.int64))
    values = np.column_stack(style.value(points[:, A], points[:, B])) if len(points) else \
        np.empty((0, len(style.fields)))
    if style.clipped and p.clip is not None:
        values[np.abs(values) > p.clip] = np.nan
    if p.style == "recmean":
        series = [_receiver_mean(target.metric, points, times, values)]
    else:
        series = _tile_series(target.metric, points, times, values, tiles, style)
    out = []
    for s in series:
        downsample(s, max_points, rng)
        out.append(frame(s, target.ref_id, style.unit))
    return out


def _obsid_ms(obsids: np.ndarray) -> np.ndarray:
    """Observation start times as epoch ms (int64), converted once per distinct obsid."""
    distinct, inverse = np.unique(obsids, return_inverse=True)
    return np.array([tr.obsid_ms(o) for o in distinct.tolist()], dtype=np.int64)[inverse]


def _tile_series(rec: str, points: np.ndarray, times: np.ndarray, values: np.ndarray,
                 tiles: dict[int, tuple[str, int]], style: Style) -> list[Series]:
    """One series per tile seen on the receiver (even with no value left), labelled with its latest
    name and slot, in slot order."""
    tileids = points[:, TILEID].astype(np.int64)
    out = []
    for tileid in sorted(tiles, key=lambda t: (tiles[t][1], t)):
        name, slot = tiles[tileid]
        mine = tileids == tileid
        out.append(Series.of(name, {"tile": name, "tileid": str(tileid), "receiver": rec, "slot": str(slot)},
                             style.fields, times[mine], values[mine]))
    return out


def _receiver_mean(rec: str, points: np.ndarray, times: np.ndarray, values: np.ndarray) -> Series:
    """Per (fit, observation): the mean X and mean Y over the receiver's tiles that have one."""
    fields = ("X", "Y")
    if not len(points):
        return Series(f"{rec} mean", {"receiver": rec}, fields, times, values)
    obsid, fitid = points[:, OBSID], points[:, FITID]
    starts = np.flatnonzero(np.r_[True, (obsid[1:] != obsid[:-1]) | (fitid[1:] != fitid[:-1])])
    ok = ~np.isnan(values)
    total = np.add.reduceat(np.where(ok, values, 0.0), starts, axis=0)
    have = np.add.reduceat(ok.astype(np.int64), starts, axis=0)
    means = np.full(total.shape, np.nan)
    np.divide(total, have, out=means, where=have > 0)
    return Series.of(f"{rec} mean", {"receiver": rec}, fields, times[starts], means)


def sources_frame(target: rq.Target, rng: tr.TimeRange, sources: frozenset[str] | None,
                  channels: frozenset[int] | None) -> dict[str, Any]:
    """The ``sources`` target: one table of source, observations, fitted, first and last time."""
    rows = sql.sources_summary(rng.obsid_low, rng.obsid_high, sources=sources, channels=channels)
    fields = [
        {"name": "source", "type": "string", "config": {}},
        {"name": "observations", "type": "number", "config": {"displayNameFromDS": "Observations"}},
        {"name": "fitted", "type": "number", "config": {"displayNameFromDS": "Fitted observations"}},
        {"name": "first", "type": "time", "config": {"displayNameFromDS": "First"}},
        {"name": "last", "type": "time", "config": {"displayNameFromDS": "Last"}},
    ]
    values = [
        [r["source"] for r in rows],
        [r["observations"] for r in rows],
        [r["fitted"] for r in rows],
        [tr.obsid_ms(r["first_obsid"]) for r in rows],
        [tr.obsid_ms(r["last_obsid"]) for r in rows],
    ]
    return {"schema": {"name": "sources", "refId": target.ref_id, "fields": fields,
                       "meta": {"preferredVisualisationType": "table"}},
            "data": {"values": values}}


def _intersect(a: frozenset | None, b: frozenset | None) -> frozenset | None:
    if a is None:
        return b
    if b is None:
        return a
    return a & b


class _Adhoc:
    """Ad hoc filters resolved against the sources and channels in the range (queried once, lazily)."""

    def __init__(self, req: rq.QueryRequest) -> None:
        self.by_key = {k: [f for f in req.filters if f.key == k] for k in rq.ADHOC_KEYS}
        self._rng = req.range
        self._facets: Facets | None = None
        self.sources: frozenset[str] | None = None
        self.channels: frozenset[int] | None = None
        if self.by_key["source"] or self.by_key["channel"]:
            self._facets = Facets(self._rng)
        if self.by_key["source"]:
            self.sources = frozenset(s for s in self._facets.sources()
                                     if all(f.matches(s) for f in self.by_key["source"]))
        if self.by_key["channel"]:
            self.channels = frozenset(c for c in self._facets.channels()
                                      if all(f.matches(str(c)) for f in self.by_key["channel"]))

    def receiver_ok(self, metric: str) -> bool:
        return all(f.matches(metric) for f in self.by_key["receiver"])


def run(req: rq.QueryRequest) -> list[dict[str, Any]]:
    """Every visible target's frames, in target order, each frame carrying its target's refId."""
    adhoc = _Adhoc(req)
    frames: list[dict[str, Any]] = []
    for t in req.targets:
        sources = _intersect(t.payload.sources, adhoc.sources)
        channels = _intersect(t.payload.channels, adhoc.channels)
        if t.receiver is None:
            frames.append(sources_frame(t, req.range, sources, channels))
        elif adhoc.receiver_ok(t.metric):
            frames.extend(receiver_frames(t, req.range, req.max_points, sources, channels))
    return frames
