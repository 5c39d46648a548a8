"""SQL behind the summary page, the fit page and the diagnostic plots (read-only)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from chalicelib import db
from chalicelib.gpstime import fit_ran_sql

_RAN = fit_ran_sql("f.fit_time", "f.fitid")  # when the fit ran: fit_time, else read from the fitid


def fits_page(low_gps: int, high_gps: int, limit: int, offset: int) -> list[dict[str, Any]]:
    """One page of the fits with an observation starting in [low, high], newest observation first.

    A fit is ordered by the latest of its observations in the range, then by when it ran (newest
    first). Every observation of a chosen fit is returned (one row per (fitid, obsid), in obsid
    order), each with the page's ``total`` count of fits.
    """
    return db.query(
        f"""
        WITH chosen AS (
            SELECT f.fitid, max(f.obsid) AS last_obsid, max({_RAN}) AS ran
            FROM calibration_fits f
            WHERE f.obsid BETWEEN :low AND :high
            GROUP BY f.fitid
        ), page AS (
            SELECT fitid, last_obsid, ran, count(*) OVER () AS total
            FROM chosen
            ORDER BY last_obsid DESC, ran DESC, fitid DESC
            LIMIT :lim OFFSET :off
        )
        SELECT p.total, p.fitid, f.obsid, m.obsname, f.creator, f.code_version, f.fit_time,
               f.fit_niter, f.fit_limit, rt.reason AS retired
        FROM page p
        JOIN calibration_fits f ON f.fitid = p.fitid
        LEFT JOIN mwa_setting m ON m.starttime = f.obsid
        LEFT JOIN calibration_fit_retirement rt ON rt.fitid = p.fitid
        ORDER BY p.last_obsid DESC, p.ran DESC, p.fitid DESC, f.obsid
        """,
        {"low": low_gps, "high": high_gps, "lim": limit, "off": offset},
    )


def count_fits(low_gps: int, high_gps: int) -> int:
    """How many fits have an observation starting in [low, high]."""
    rows = db.query("SELECT count(DISTINCT fitid) AS n FROM calibration_fits WHERE obsid BETWEEN :low AND :high",
                    {"low": low_gps, "high": high_gps})
    return int(rows[0]["n"]) if rows else 0


def fit_observations(fitid: int) -> list[dict[str, Any]]:
    """The calibration_fits rows of one fit (one per observation), with the observation's name."""
    return db.query(
        "SELECT f.fitid, f.obsid, m.obsname, f.creator, f.code_version, f.fit_time, f.fit_niter,"
        " f.fit_limit, f.source_list, f.num_sources, rt.reason AS retired"
        " FROM calibration_fits f LEFT JOIN mwa_setting m ON m.starttime = f.obsid"
        " LEFT JOIN calibration_fit_retirement rt ON rt.fitid = f.fitid"
        " WHERE f.fitid = :fitid ORDER BY f.obsid",
        {"fitid": fitid},
    )


def fit_delays(fitid: int) -> list[dict[str, Any]]:
    """Every tile's residual delays in every observation of the fit, with its receiver, slot and line-model error."""
    return db.query(
        "SELECT s.obsid, s.tileid, s.x_delay_m, s.y_delay_m, t.tile_name, t.rx, t.slot, t.flagged,"
        " e.x_phase_rms, e.y_phase_rms"
        " FROM calibration_solutions s"
        " LEFT JOIN observation_tile t ON t.obsid = s.obsid AND t.tileid = s.tileid"
        " LEFT JOIN calibration_model_error e ON e.fitid = s.fitid AND e.obsid = s.obsid AND e.tileid = s.tileid"
        " WHERE s.fitid = :fitid ORDER BY s.obsid, s.tileid",
        {"fitid": fitid},
    )


def plot_context(fitid: int, obsid: int, window_s: int) -> dict[str, Any] | None:
    """The fit of one observation (None if there is none) and the fingerprint of its window: the fits
    of observations starting in [obsid - window_s, obsid] (their count, max fitid and an md5 of the
    sorted (fitid, obsid) pairs) and the validity epochs in force with a boundary in
    (obsid - window_s, obsid] (``epochs``: epoch_id, boundary_gps, receivers, tiles, reason, by
    boundary; their count and an md5 of them). Both go into a time-window plot's cache key."""
    rows = db.query(
        """
        SELECT f.fitid, f.obsid, f.creator, f.code_version, f.fit_time, m.obsname, r.frequencies,
               w.n AS window_fits, w.max_fitid AS window_max_fitid, w.digest AS window_digest,
               ep.n AS window_epochs, md5(COALESCE(ep.epochs::text, '')) AS window_epochs_digest, ep.epochs
        FROM calibration_fits f
        LEFT JOIN mwa_setting m ON m.starttime = f.obsid
        LEFT JOIN rf_stream r ON r.starttime = f.obsid AND r.number = 0
        CROSS JOIN LATERAL (
            SELECT count(*) AS n, max(c.fitid) AS max_fitid,
                   md5(COALESCE(string_agg(c.fitid::text || ':' || c.obsid::text, ','
                                           ORDER BY c.fitid, c.obsid), '')) AS digest
            FROM calibration_fits c
            WHERE c.obsid BETWEEN f.obsid - :window AND f.obsid
        ) w
        CROSS JOIN LATERAL (
            SELECT count(*) AS n,
                   json_agg(json_build_object('epoch_id', e.epoch_id, 'boundary_gps', e.boundary_gps,
                                              'receivers', e.receivers, 'tiles', e.tiles, 'reason', e.reason)
                            ORDER BY e.boundary_gps, e.epoch_id) AS epochs
            FROM validity_epoch e
            WHERE e.ended_at IS NULL AND e.boundary_gps > f.obsid - :window AND e.boundary_gps <= f.obsid
        ) ep
        WHERE f.fitid = :fitid AND f.obsid = :obsid
        """,
        {"fitid": fitid, "obsid": obsid, "window": window_s},
    )
    return rows[0] if rows else None


def observation_tiles(obsid: int) -> list[dict[str, Any]]:
    """The observation's tiles (metafits TILEDATA): tileid, tile_name, rx, slot, flagged."""
    return db.query(
        "SELECT tileid, tile_name, antenna, rx, slot, flagged FROM observation_tile"
        " WHERE obsid = :obsid ORDER BY rx, slot, tileid",
        {"obsid": obsid},
    )


def fit_solutions(fitid: int, obsid: int, gains: bool = False) -> list[dict[str, Any]]:
    """One fit's rows for one observation: tileid, x/y_delay_m (and x/y_gains)."""
    cols = "tileid, x_delay_m, y_delay_m" + (", x_gains, y_gains" if gains else "")
    return db.query(
        f"SELECT {cols} FROM calibration_solutions WHERE fitid = :fitid AND obsid = :obsid ORDER BY tileid",
        {"fitid": fitid, "obsid": obsid},
    )


def window_delay_blocks(low_gps: int, high_gps: int, tileids: Sequence[int]) -> list[dict[str, Any]]:
    """x/y_delay_m of the given tiles in every fit of an observation starting in [low, high].

    One block per (fitid, obsid): ``fitid``, ``obsid``, ``creator`` and numpy arrays ``tileid``,
    ``x_delay_m``, ``y_delay_m`` (NaN for NULL). The values travel as packed big-endian binary:
    a month of 256-tile fits is ~50,000 rows, which pg8000 would parse value by value.
    """
    rows = db.query(
        """
        SELECT f.fitid, f.obsid, f.creator,
               string_agg(int4send(s.tileid), ''::bytea ORDER BY s.tileid) AS tileid_be,
               string_agg(float8send(COALESCE(s.x_delay_m, 'NaN'::float8)), ''::bytea ORDER BY s.tileid) AS x_be,
               string_agg(float8send(COALESCE(s.y_delay_m, 'NaN'::float8)), ''::bytea ORDER BY s.tileid) AS y_be
        FROM calibration_fits f
        JOIN calibration_solutions s ON s.fitid = f.fitid AND s.obsid = f.obsid
        WHERE f.obsid BETWEEN :low AND :high AND s.tileid = ANY(CAST(:tiles AS integer[]))
        GROUP BY f.fitid, f.obsid, f.creator
        ORDER BY f.obsid, f.fitid
        """,
        {"low": low_gps, "high": high_gps, "tiles": [int(t) for t in tileids]},
    )
    return [{"fitid": int(r["fitid"]), "obsid": int(r["obsid"]), "creator": r["creator"],
             "tileid": decode_int4(r["tileid_be"]), "x_delay_m": decode_float8(r["x_be"]),
             "y_delay_m": decode_float8(r["y_be"])} for r in rows]


def window_gain_blocks(low_gps: int, high_gps: int, tileids: Sequence[int]) -> list[dict[str, Any]]:
    """x/y_gains of the given tiles in every fit of an observation starting in [low, high].

    One block per (fitid, obsid): ``fitid``, ``obsid``, ``creator``, numpy ``tileid`` and 2-D
    ``x_gains``, ``y_gains`` (one row per tile, one column per channel of that observation;
    a shorter or NULL array is padded with NaN). Packed binary, as ``window_delay_blocks``.
    """
    rows = db.query(
        """
        SELECT f.fitid, f.obsid, f.creator,
               string_agg(int4send(s.tileid), ''::bytea ORDER BY s.tileid) AS tileid_be,
               string_agg(int4send(COALESCE(cardinality(s.x_gains), 0)), ''::bytea ORDER BY s.tileid) AS nx_be,
               string_agg(int4send(COALESCE(cardinality(s.y_gains), 0)), ''::bytea ORDER BY s.tileid) AS ny_be,
               string_agg(COALESCE((SELECT string_agg(float8send(COALESCE(v, 'NaN'::float8)), ''::bytea ORDER BY o)
                                    FROM unnest(s.x_gains) WITH ORDINALITY AS u(v, o)), ''::bytea),
                          ''::bytea ORDER BY s.tileid) AS x_be,
               string_agg(COALESCE((SELECT string_agg(float8send(COALESCE(v, 'NaN'::float8)), ''::bytea ORDER BY o)
                                    FROM unnest(s.y_gains) WITH ORDINALITY AS u(v, o)), ''::bytea),
                          ''::bytea ORDER BY s.tileid) AS y_be
        FROM calibration_fits f
        JOIN calibration_solutions s ON s.fitid = f.fitid AND s.obsid = f.obsid
        WHERE f.obsid BETWEEN :low AND :high AND s.tileid = ANY(CAST(:tiles AS integer[]))
        GROUP BY f.fitid, f.obsid, f.creator
        ORDER BY f.obsid, f.fitid
        """,
        {"low": low_gps, "high": high_gps, "tiles": [int(t) for t in tileids]},
    )
    out = []
    for r in rows:
        tid = decode_int4(r["tileid_be"])
        out.append({"fitid": int(r["fitid"]), "obsid": int(r["obsid"]), "creator": r["creator"], "tileid": tid,
                    "x_gains": _ragged(decode_float8(r["x_be"]), decode_int4(r["nx_be"])),
                    "y_gains": _ragged(decode_float8(r["y_be"]), decode_int4(r["ny_be"]))})
    return out


def _ragged(flat: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenated per-tile arrays as a 2-D array (rows padded with NaN to the longest)."""
    width = int(lengths.max()) if lengths.size else 0
    if lengths.size and np.all(lengths == width):
        return flat.reshape(lengths.size, width)
    out = np.full((lengths.size, width), np.nan)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    for i, (start, n) in enumerate(zip(starts, lengths)):
        out[i, :n] = flat[start:start + n]
    return out


def window_channels(low_gps: int, high_gps: int) -> dict[int, list[int]]:
    """The receiver channels (ascending = the order of gains) of each observation starting in
    [low, high] that has a fit."""
    rows = db.query(
        "SELECT r.starttime, r.frequencies FROM rf_stream r"
        " WHERE r.number = 0 AND r.starttime BETWEEN :low AND :high"
        " AND EXISTS (SELECT 1 FROM calibration_fits f WHERE f.obsid = r.starttime)",
        {"low": low_gps, "high": high_gps},
    )
    return {int(r["starttime"]): sorted(r["frequencies"] or []) for r in rows}


def decode_int4(raw: bytes | None) -> np.ndarray:
    """Big-endian int4 bytes (``int4send``) as an int64 array (empty for NULL)."""
    if not raw:
        return np.zeros(0, dtype=np.int64)
    return np.frombuffer(bytes(raw), dtype=">i4").astype(np.int64)


def decode_float8(raw: bytes | None) -> np.ndarray:
    """Big-endian float8 bytes (``float8send``) as a float64 array (empty for NULL)."""
    if not raw:
        return np.zeros(0)
    return np.frombuffer(bytes(raw), dtype=">f8").astype(np.float64)


def latest_fitted_obsid() -> int | None:
    """The newest observation that has a fit (where the summary page has something to show)."""
    rows = db.query("SELECT max(obsid) AS obsid FROM calibration_fits")
    return rows[0]["obsid"] if rows else None


def newest_fit() -> dict[str, Any] | None:
    """The fit of the newest fitted observation (the latest run of it): fitid, obsid, fit_time; None without fits."""
    rows = db.query("SELECT fitid, obsid, fit_time FROM calibration_fits"
                    " ORDER BY obsid DESC, fit_time DESC NULLS LAST, fitid DESC LIMIT 1")
    return rows[0] if rows else None


def comparison_partners(fitid: int, obsid: int) -> dict[str, Any]:
    """The fit page's comparison links: the previous fit of this calibrator, and the newest fit of its source."""
    ran_other = fit_ran_sql("o.fit_time", "o.fitid")
    prev = db.query(
        f"SELECT o.fitid, o.obsid FROM calibration_fits f JOIN calibration_fits o ON o.obsid = f.obsid"
        f" WHERE f.fitid = :fitid AND f.obsid = :obsid AND o.fitid <> f.fitid AND {ran_other} < {_RAN}"
        f" ORDER BY {ran_other} DESC, o.fitid DESC LIMIT 1", {"fitid": fitid, "obsid": obsid})
    newest = db.query(
        f"SELECT o.fitid, o.obsid FROM schedule_metadata sm"
        f" JOIN schedule_metadata so ON so.calibrators = sm.calibrators AND so.calibration"
        f" JOIN calibration_fits o ON o.obsid = so.observation_number"
        f" WHERE sm.observation_number = :obsid AND sm.calibrators IS NOT NULL AND o.fitid <> :fitid"
        f" ORDER BY o.obsid DESC, {ran_other} DESC LIMIT 1", {"fitid": fitid, "obsid": obsid})
    return {"previous": prev[0] if prev else None, "newest_of_source": newest[0] if newest else None}
