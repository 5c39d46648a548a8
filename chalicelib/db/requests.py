"""SQL of calibration requests and their callbacks (``calibration_request`` and its attempt log).

Status of a request (domain.md): open while neither ``calibration_completed_datetime`` nor
``calibration_error_datetime`` is set. Callback state: 'none' (no URL, or not finished yet),
'pending' (to send at ``callback_next_attempt``), 'delivered', 'failed' (retries exhausted).
Storing and finishing a calibrator's requests take the same per-calibrator advisory lock, so a
request stored while its fit lands is either seen by the fit or sees the fit, never neither.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from chalicelib import db
from chalicelib.gpstime import fit_ran_sql

_REQUEST_COLUMNS = (
    "id, cal_id, realtime, bulk_request, request_added_datetime, calibration_started_datetime,"
    " calibration_completed_datetime, calibration_fit_id, calibration_error_datetime,"
    " calibration_error_message, target_obs_id, asvo_job_id, callback_url, request_key, callback_state,"
    " callback_attempts, callback_next_attempt, callback_delivered_datetime, callback_body"
)


def lock_calibrator(tx: db.Transaction, cal_id: int) -> None:
    """Serialise storing and finishing requests of one calibrator (until the transaction ends)."""
    tx.run("SELECT pg_advisory_xact_lock(hashtextextended('calibration_request:' || CAST(:cal AS text), 0))",
           {"cal": cal_id})


def insert_request(tx: db.Transaction, *, request_key: str, cal_id: int, target_obs_id: int,
                   asvo_job_id: int | None, callback_url: str | None, added: datetime) -> int | None:
    """Store a new open request for the fitting pipeline; None when the key is already stored."""
    rows = tx.run(
        "INSERT INTO calibration_request (cal_id, realtime, bulk_request, request_added_datetime,"
        " target_obs_id, asvo_job_id, callback_url, request_key, callback_state)"
        " VALUES (:cal, false, false, :added, :target, CAST(:job AS bigint), CAST(:url AS text), :key, 'none')"
        " ON CONFLICT (request_key) DO NOTHING RETURNING id",
        {"cal": cal_id, "added": added, "target": target_obs_id, "job": asvo_job_id, "url": callback_url,
         "key": request_key},
    )
    return rows[0]["id"] if rows else None


def request_by_key(tx: db.Transaction, request_key: str) -> dict[str, Any] | None:
    """The request stored under this key."""
    rows = tx.run(f"SELECT {_REQUEST_COLUMNS} FROM calibration_request WHERE request_key = :key",
                  {"key": request_key})
    return rows[0] if rows else None


def latest_fit(tx: db.Transaction, cal_id: int) -> dict[str, Any] | None:
    """The calibrator's most recent usable fit: ``{fitid, finished}``, or None when it has none.

    Usable: a calibration_fits row with at least one tile solved (get_cal_solution's rule), or a
    request of this calibrator completed by a landed solutions file (before its ingest ran).
    """
    rows = tx.run(
        f"""
        SELECT fitid, finished FROM (
            SELECT f.fitid, {fit_ran_sql("f.fit_time", "f.fitid")} AS finished
            FROM calibration_fits f
            WHERE f.obsid = :cal
              AND EXISTS (SELECT 1 FROM calibration_solutions s
                          WHERE s.fitid = f.fitid AND s.obsid = f.obsid
                            AND (s.x_delay_m <> 'NaN'::float8 OR s.y_delay_m <> 'NaN'::float8))
            UNION ALL
            SELECT r.calibration_fit_id, r.calibration_completed_datetime
            FROM calibration_request r
            WHERE r.cal_id = :cal AND r.calibration_completed_datetime IS NOT NULL
              AND r.calibration_fit_id IS NOT NULL
        ) fits
        ORDER BY finished DESC NULLS LAST, fitid DESC
        LIMIT 1
        """,
        {"cal": cal_id},
    )
    return rows[0] if rows else None


def open_requests(tx: db.Transaction, cal_id: int) -> list[dict[str, Any]]:
    """The calibrator's open requests, locked for this transaction, oldest first."""
    return tx.run(
        f"SELECT {_REQUEST_COLUMNS} FROM calibration_request"
        " WHERE cal_id = :cal AND calibration_completed_datetime IS NULL AND calibration_error_datetime IS NULL"
        " ORDER BY id FOR UPDATE",
        {"cal": cal_id},
    )


def finish_request(tx: db.Transaction, request_id: int, *, fitid: int, completed: datetime | None,
                   error_at: datetime | None, error_message: str | None, callback_body: str,
                   callback_due: datetime | None) -> None:
    """Record a request's outcome and, when it has a callback URL, make its callback due."""
    tx.run(
        "UPDATE calibration_request SET calibration_completed_datetime = CAST(:completed AS timestamptz),"
        " calibration_error_datetime = CAST(:error_at AS timestamptz),"
        " calibration_error_message = CAST(:message AS text), calibration_fit_id = :fitid,"
        " callback_body = :body,"
        " callback_state = CASE WHEN callback_url IS NULL THEN 'none' ELSE 'pending' END,"
        " callback_next_attempt = CASE WHEN callback_url IS NULL THEN NULL"
        "                              ELSE CAST(:due AS timestamptz) END"
        " WHERE id = :id",
        {"id": request_id, "completed": completed, "error_at": error_at, "message": error_message,
         "fitid": fitid, "body": callback_body, "due": callback_due},
    )


def claim_due_callback(now: datetime, lease_until: datetime, *, only: Sequence[int] | None = None,
                       skip: Sequence[int] = ()) -> dict[str, Any] | None:
    """Take the most overdue pending callback (moving its next attempt to ``lease_until``).

    The lease keeps other workers off it while it is sent; if this worker dies, it is due again
    when the lease ends. ``only`` restricts to some requests, ``skip`` leaves some out.
    """
    rows = db.execute(
        """
        UPDATE calibration_request r SET callback_next_attempt = :lease
        WHERE r.id = (
            SELECT c.id FROM calibration_request c
            WHERE c.callback_state = 'pending' AND c.callback_next_attempt <= :now
              AND (CAST(:only AS integer[]) IS NULL OR c.id = ANY(CAST(:only AS integer[])))
              AND NOT (c.id = ANY(CAST(:skip AS integer[])))
            ORDER BY c.callback_next_attempt, c.id
            LIMIT 1
            FOR UPDATE SKIP LOCKED)
        RETURNING r.id, r.cal_id, r.callback_url, r.callback_body, r.callback_attempts,
                  (SELECT min(a.attempted_at) FROM calibration_request_callback_attempt a
                   WHERE a.request_id = r.id) AS first_attempt
        """,
        {"now": now, "lease": lease_until, "only": None if only is None else list(only), "skip": list(skip)},
    )
    return rows[0] if rows else None


def record_attempt(request_id: int, *, attempted_at: datetime, http_status: int | None, error: str | None,
                   state: str, next_attempt: datetime | None, delivered_at: datetime | None) -> None:
    """Log one attempt and set the callback's state ('pending' with a next attempt, 'delivered', 'failed')."""
    with db.transaction() as tx:
        tx.run(
            "INSERT INTO calibration_request_callback_attempt (request_id, attempted_at, http_status, error)"
            " VALUES (:id, :at, CAST(:status AS integer), CAST(:error AS text))",
            {"id": request_id, "at": attempted_at, "status": http_status, "error": error},
        )
        tx.run(
            "UPDATE calibration_request SET callback_attempts = callback_attempts + 1, callback_state = :state,"
            " callback_next_attempt = CAST(:next AS timestamptz),"
            " callback_delivered_datetime = CAST(:delivered AS timestamptz)"
            " WHERE id = :id AND callback_state = 'pending'",
            {"id": request_id, "state": state, "next": next_attempt, "delivered": delivered_at},
        )


def requests_for(cal_id: int | None = None) -> list[dict[str, Any]]:
    """Requests (of one calibrator, or all), oldest first."""
    return db.query(
        f"SELECT {_REQUEST_COLUMNS} FROM calibration_request"
        " WHERE CAST(:cal AS bigint) IS NULL OR cal_id = :cal ORDER BY id",
        {"cal": cal_id},
    )


def attempts(request_id: int) -> list[dict[str, Any]]:
    """A request's callback attempts, oldest first."""
    return db.query(
        "SELECT id, request_id, attempted_at, http_status, error FROM calibration_request_callback_attempt"
        " WHERE request_id = :id ORDER BY attempted_at, id",
        {"id": request_id},
    )
