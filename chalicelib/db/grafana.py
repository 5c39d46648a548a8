"""SQL behind the Grafana JSON datasource: receivers, facets (sources, centre channels), points.

Times are obsid ranges (GPS seconds, both ends included). The centre coarse channel of an
observation is its CENTCHAN: element [12] of its 24 receiver channels sorted ascending (``CENTRE``).
A calibrator's source name is ``schedule_metadata.calibrators`` with surrounding blanks trimmed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from chalicelib import db

CENTRE = "(SELECT c FROM unnest(r.frequencies) AS c ORDER BY c OFFSET 12 LIMIT 1)"
SOURCE = "NULLIF(btrim(sm.calibrators), '')"

ALL_TIME = (-(2**62), 2**62)

# The columns each kind of point needs.
DELAYS = ("x_delay_m", "y_delay_m")
QUALITY = ("x_phase_fit_quality", "y_phase_fit_quality")


def receivers() -> list[int]:
    """Every receiver number in observation_tile, ascending (a loose index scan on (rx, obsid))."""
    rows = db.query(
        """
        WITH RECURSIVE r AS (
            (SELECT rx FROM observation_tile ORDER BY rx LIMIT 1)
            UNION ALL
            SELECT (SELECT t.rx FROM observation_tile t WHERE t.rx > r.rx ORDER BY t.rx LIMIT 1)
            FROM r WHERE r.rx IS NOT NULL
        )
        SELECT rx FROM r WHERE rx IS NOT NULL
        """
    )
    return [r["rx"] for r in rows]


def receiver_exists(rx: int) -> bool:
    return bool(db.query("SELECT 1 AS one FROM observation_tile WHERE rx = :rx LIMIT 1", {"rx": rx}))


def _filters(sources: Iterable[str] | None, channels: Iterable[int] | None,
             params: dict[str, Any], obsid: str) -> tuple[str, str]:
    """Joins and WHERE clauses restricting observations (column ``obsid``) to sources and channels."""
    joins, where = [], []
    if sources is not None:
        joins.append(f"JOIN schedule_metadata sm ON sm.observation_number = {obsid}")
        where.append(f"{SOURCE} = ANY(CAST(:sources AS text[]))")
        params["sources"] = sorted(sources)
    if channels is not None:
        joins.append(f"JOIN rf_stream r ON r.starttime = {obsid} AND r.number = 0")
        where.append(f"{CENTRE} = ANY(CAST(:channels AS integer[]))")
        params["channels"] = sorted(channels)
    return " ".join(joins), "".join(f" AND {w}" for w in where)


def facets(low: int | None = None, high: int | None = None) -> list[tuple[str | None, int | None]]:
    """The distinct (source, centre channel) pairs of fitted observations with obsid in [low, high]."""
    lo, hi = ALL_TIME if low is None else (low, high)
    rows = db.query(
        f"""
        SELECT DISTINCT {SOURCE} AS source, {CENTRE} AS channel
        FROM (SELECT DISTINCT obsid FROM calibration_fits WHERE obsid BETWEEN :lo AND :hi) f
        LEFT JOIN schedule_metadata sm ON sm.observation_number = f.obsid
        LEFT JOIN rf_stream r ON r.starttime = f.obsid AND r.number = 0
        """,
        {"lo": lo, "hi": hi},
    )
    return [(r["source"], r["channel"]) for r in rows]


def _finite(column: str) -> str:
    """The column's value when finite, else NULL (JSON has no NaN; PostgreSQL sorts NaN above Infinity)."""
    return f"CASE WHEN {column} > '-Infinity' AND {column} < 'Infinity' THEN {column} END"


def points(rx: int, low: int, high: int, columns: tuple[str, ...], *,
           sources: Iterable[str] | None = None, channels: Iterable[int] | None = None
           ) -> tuple[list[list], dict[int, tuple[str, int]]]:
    """Every (fit, observation, tile on receiver rx) with obsid in [low, high], and the tiles seen.

    Returns ``(rows, tiles)``: rows are ``[obsid, fitid, tileid, slot, *columns]`` ordered by obsid,
    fitid, slot, tileid, a value None where it is NaN, infinite or NULL; the receiver and slot are
    those of that observation. ``tiles`` maps each tileid to its latest (name, slot).
    """
    params: dict[str, Any] = {"rx": rx, "lo": low, "hi": high}
    joins, where = _filters(sources, channels, params, "f.obsid")
    cols = ", ".join(f"{_finite('s.' + c)} AS {c}" for c in columns)
    # The fits' tiles on the receiver first (few), then one primary-key lookup per solution row.
    # MATERIALIZED fixes that order: the planner, estimating one solution row per (fitid, obsid)
    # (the two are correlated), would otherwise read every tile of every fit and hash-join them.
    # The rows come back as one JSON text: pg8000 decodes ~10 us per row, json.loads far less.
    sql = (
        "WITH ft AS MATERIALIZED ("
        " SELECT f.obsid, f.fitid, t.tileid, t.tile_name, t.slot"
        " FROM calibration_fits f"
        " JOIN observation_tile t ON t.obsid = f.obsid AND t.rx = :rx"
        f" {joins}"
        f" WHERE f.obsid BETWEEN :lo AND :hi AND t.obsid BETWEEN :lo AND :hi{where}),"
        f" p AS (SELECT ft.*, {cols} FROM ft JOIN calibration_solutions s"
        "  ON s.fitid = ft.fitid AND s.obsid = ft.obsid AND s.tileid = ft.tileid)"
        " SELECT (SELECT json_agg(json_build_array(obsid, fitid, tileid, slot, "
        f"{', '.join(columns)}) ORDER BY obsid, fitid, slot, tileid) FROM p)::text AS rows,"
        " (SELECT json_agg(json_build_array(tileid, tile_name, slot))"
        "  FROM (SELECT DISTINCT ON (tileid) tileid, tile_name, slot FROM p"
        "        ORDER BY tileid, obsid DESC, fitid DESC) latest)::text AS tiles"
    )
    got = db.query(sql, params)[0]
    rows = json.loads(got["rows"]) if got["rows"] else []
    tiles = {t[0]: (t[1], t[2]) for t in json.loads(got["tiles"])} if got["tiles"] else {}
    return rows, tiles


def sources_summary(low: int, high: int, *, sources: Iterable[str] | None = None,
                    channels: Iterable[int] | None = None) -> list[dict[str, Any]]:
    """Per calibrator source with an observation in [low, high]: observations, fitted ones, first, last."""
    params: dict[str, Any] = {"lo": low, "hi": high}
    where = ""
    joins = ""
    if sources is not None:
        where += f" AND {SOURCE} = ANY(CAST(:sources AS text[]))"
        params["sources"] = sorted(sources)
    if channels is not None:
        joins = "JOIN rf_stream r ON r.starttime = sm.observation_number AND r.number = 0"
        where += f" AND {CENTRE} = ANY(CAST(:channels AS integer[]))"
        params["channels"] = sorted(channels)
    return db.query(
        f"""
        SELECT {SOURCE} AS source, count(*) AS observations,
               count(*) FILTER (WHERE EXISTS (SELECT 1 FROM calibration_fits f
                                              WHERE f.obsid = sm.observation_number)) AS fitted,
               min(sm.observation_number) AS first_obsid, max(sm.observation_number) AS last_obsid
        FROM schedule_metadata sm {joins}
        WHERE sm.observation_number BETWEEN :lo AND :hi AND {SOURCE} IS NOT NULL{where}
        GROUP BY 1 ORDER BY 1
        """,
        params,
    )
