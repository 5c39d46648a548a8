"""SQL of the fit ingest (beside :mod:`chalicelib.db.writes`): the fit lock, what is there, the fit's files."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from chalicelib import db

HYPERDRIVE_FILE = "hyperdrive"  # calibration_fit_file.kind of the fit's hyperdrive solution file


def lock_fit(tx: db.Transaction, fitid: int, obsid: int) -> None:
    """Serialise ingests of one (fitid, obsid) until the transaction ends (two deliveries of one S3 event)."""
    tx.run("SELECT pg_advisory_xact_lock(hashtextextended('calibration_fit:' || CAST(:f AS text) || ':'"
           " || CAST(:o AS text), 0))", {"f": fitid, "o": obsid})


def recorded_fit(fitid: int, obsid: int) -> dict[str, Any] | None:
    """The calibration_fits row ``{fitid, obsid, fit_time}`` when this fit is in the database, else None."""
    rows = db.query("SELECT fitid, obsid, fit_time FROM calibration_fits WHERE fitid = :f AND obsid = :o",
                    {"f": fitid, "o": obsid})
    return rows[0] if rows else None


def observation_state(tx: db.Transaction, obsid: int) -> tuple[bool, bool]:
    """(the observation is in mwa_setting, it has observation_tile rows)."""
    rows = tx.run(
        "SELECT EXISTS (SELECT 1 FROM mwa_setting WHERE starttime = :o) AS known,"
        " EXISTS (SELECT 1 FROM observation_tile WHERE obsid = :o) AS tiles",
        {"o": obsid},
    )
    return bool(rows[0]["known"]), bool(rows[0]["tiles"])


def register_fit_file(tx: db.Transaction, fitid: int, obsid: int, bucket_key: str,
                      kind: str = HYPERDRIVE_FILE) -> None:
    """Record the fit's file in the calibration bucket (the one ``get_cal_fits`` names for kind 'hyperdrive')."""
    tx.run(
        "INSERT INTO calibration_fit_file (fitid, obsid, kind, bucket_key) VALUES (:f, :o, :k, :key)"
        " ON CONFLICT (fitid, obsid, kind) DO UPDATE SET bucket_key = EXCLUDED.bucket_key",
        {"f": fitid, "o": obsid, "k": kind, "key": bucket_key},
    )


def fit_summary(fitid: int, obsid: int) -> dict[str, Any]:
    """Counts of a stored fit: ``rows``, ``nan_rows`` (flagged tiles) and its ``fit_time`` (None if absent)."""
    rows = db.query(
        "SELECT f.fit_time,"
        " (SELECT count(*) FROM calibration_solutions s WHERE s.fitid = f.fitid AND s.obsid = f.obsid) AS n,"
        " (SELECT count(*) FROM calibration_solutions s WHERE s.fitid = f.fitid AND s.obsid = f.obsid"
        "   AND s.x_delay_m = 'NaN'::float8 AND s.y_delay_m = 'NaN'::float8) AS nan"
        " FROM calibration_fits f WHERE f.fitid = :f AND f.obsid = :o",
        {"f": fitid, "o": obsid},
    )
    if not rows:
        return {"rows": 0, "nan_rows": 0, "fit_time": None}
    r = rows[0]
    fit_time: datetime | None = r["fit_time"]
    return {"rows": int(r["n"]), "nan_rows": int(r["nan"]), "fit_time": fit_time}
