"""Finishing requests and delivering their callbacks: nothing asked for is lost.

When a fit of a calibrator finishes (:func:`fit_finished`, called for a landed fit file; the
ingest calls it too), every open request of that calibrator is completed (or marked failed) with
the fit id, in one transaction, and the callback of each that has a URL becomes due. The body is
fixed then and stored (``callback_body``), so every attempt sends the same bytes::

    {"cal_id": 1234567890, "asvo_job_id": 42, "target_obs_id": 1234567000,
     "finished_datetime": "2025-06-01T12:34:56Z", "success": true, "message": "..."}

(``asvo_job_id`` is null when the request had none; ``finished_datetime`` is ISO 8601 UTC.)

Delivery: a JSON POST with headers

    Content-Type: application/json
    X-MWA-Calib-Delivery: <request id>        the same on every retry: receivers can drop repeats
    X-MWA-Calib-Signature: sha256=<hex>       HMAC-SHA256 of the exact body bytes with the secret in
                                              CALIB_CALLBACK_SIGNING_SECRET (only when it is set)

A 2xx answer is a delivery. Anything else (another status, a redirect, a refused or timed-out
connection, a URL that no longer passes the check) is a failed attempt: it is logged in
``calibration_request_callback_attempt`` and retried after ``callback_retry_base_s`` (30 s),
doubling up to ``callback_retry_max_s`` (1 h), until ``callback_retry_hours`` (24) after the first
attempt; the last attempt is made at that deadline and, failing, the callback is 'failed'.

Callbacks are sent right away (by the handler that finished the request) and by the schedule
:func:`retry_due` (every 5 minutes), each within its Lambda's remaining time; whatever is not sent
stays due in the database. Each send first leases the row, so two workers never send the same
callback at once. Delivery is at least once: if recording a delivered attempt fails, the callback
is sent again later (hence the delivery header).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from chalicelib import db, gpstime, observability
from chalicelib.config import Settings, settings
from chalicelib.db import requests as queries
from chalicelib.errors import BadRequest
from chalicelib.observability import logger
from chalicelib.calrequests import transport, urls

SIGNATURE_HEADER = "X-MWA-Calib-Signature"
DELIVERY_HEADER = "X-MWA-Calib-Delivery"
# A send's lease: its total timeout plus this; a worker that dies mid-send frees the row then.
LEASE_MARGIN_S = 30.0
# Time kept free at the end of a Lambda invocation, and the budget when there is no Lambda context.
SAFETY_MARGIN_S = 2.0
DEFAULT_BUDGET_S = 60.0


def utcnow() -> datetime:
    """Now, from the one clock (gpstime.now), so tests can pin it."""
    return gpstime.now()


def as_utc(value: datetime | None) -> datetime | None:
    """An aware UTC datetime (a naive one is taken as UTC); None stays None."""
    return None if value is None else gpstime.as_utc(value)


def iso_utc(value: datetime) -> str:
    """ISO 8601 in UTC with a Z, to the second (``2025-06-01T12:34:56Z``)."""
    return as_utc(value).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def callback_body(*, cal_id: int, asvo_job_id: int | None, target_obs_id: int | None, finished: datetime,
                  success: bool, message: str) -> str:
    """The callback's JSON: exactly the six documented keys."""
    return json.dumps({
        "cal_id": int(cal_id),
        "asvo_job_id": None if asvo_job_id is None else int(asvo_job_id),
        "target_obs_id": None if target_obs_id is None else int(target_obs_id),
        "finished_datetime": iso_utc(finished),
        "success": bool(success),
        "message": str(message),
    }, separators=(",", ":"))


def signature(body: bytes, secret: str) -> str:
    """The signature header's value: ``sha256=`` + hex HMAC-SHA256 of the body with the secret."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def next_attempt_at(first_attempt: datetime, attempts_made: int, now: datetime, cfg: Settings) -> datetime | None:
    """When to try again after ``attempts_made`` failed attempts; None when the retry window is over."""
    deadline = first_attempt + timedelta(hours=cfg.callback_retry_hours)
    if now >= deadline:
        return None
    delay = min(cfg.callback_retry_base_s * 2 ** min(max(attempts_made - 1, 0), 40), cfg.callback_retry_max_s)
    return min(now + timedelta(seconds=max(delay, 0.0)), deadline)


@dataclass(frozen=True)
class FitOutcome:
    """How a calibrator's fit ended, as its requests are told."""

    cal_id: int
    fitid: int
    success: bool
    message: str
    finished: datetime


def finish(tx: db.Transaction, request: dict[str, Any], outcome: FitOutcome, now: datetime) -> bool:
    """Record the outcome on one request (inside the caller's transaction); True when a callback is due."""
    body = callback_body(cal_id=request["cal_id"], asvo_job_id=request["asvo_job_id"],
                         target_obs_id=request["target_obs_id"], finished=outcome.finished,
                         success=outcome.success, message=outcome.message)
    queries.finish_request(
        tx, request["id"], fitid=outcome.fitid,
        completed=outcome.finished if outcome.success else None,
        error_at=None if outcome.success else outcome.finished,
        error_message=None if outcome.success else outcome.message,
        callback_body=body, callback_due=now if request["callback_url"] else None,
    )
    return bool(request["callback_url"])


def fit_finished(cal_id: int, fitid: int, success: bool, message: str, finished: datetime | None = None, *,
                 context: Any = None, send: bool = True) -> dict[str, Any]:
    """A fit of ``cal_id`` finished: finish its open requests, then send their callbacks.

    Safe to call again for the same fit (a repeated S3 event): requests finished before are not
    open any more, so nothing is sent twice. ``send=False`` leaves delivery to the schedule.
    """
    now = utcnow()
    outcome = FitOutcome(cal_id=int(cal_id), fitid=int(fitid), success=bool(success),
                         message=str(message or ("fit succeeded" if success else "fit failed")),
                         finished=as_utc(finished) or now)
    with db.transaction() as tx:
        queries.lock_calibrator(tx, outcome.cal_id)
        open_requests = queries.open_requests(tx, outcome.cal_id)
        due = [r["id"] for r in open_requests if finish(tx, r, outcome, now)]
    logger.info("requests finished by a fit", extra={
        "cal_id": outcome.cal_id, "fitid": outcome.fitid, "success": outcome.success,
        "requests": [r["id"] for r in open_requests], "callbacks_due": due})
    sent = deliver(only=due, context=context) if (send and due) else []
    return {"cal_id": outcome.cal_id, "fitid": outcome.fitid, "success": outcome.success,
            "requests": [r["id"] for r in open_requests], "callbacks": sent}


def _budget_end(context: Any, budget_s: float | None) -> float:
    now = time.monotonic()
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if callable(remaining):
        try:
            return now + remaining() / 1000.0 - SAFETY_MARGIN_S
        except Exception:  # noqa: BLE001 - a context without a usable clock: use the default
            pass
    return now + (budget_s if budget_s is not None else DEFAULT_BUDGET_S)


def deliver(*, only: list[int] | None = None, context: Any = None, budget_s: float | None = None,
            limit: int | None = None) -> list[dict[str, Any]]:
    """Send due callbacks (of ``only``, or all) while the time lasts; each request at most once per call."""
    cfg = settings()
    end = _budget_end(context, budget_s)
    tried: list[int] = []
    results: list[dict[str, Any]] = []
    while limit is None or len(results) < limit:
        if time.monotonic() + cfg.callback_total_timeout_s > end:
            break  # not enough time for a full attempt: the rest stays due for the schedule
        now = utcnow()
        row = queries.claim_due_callback(
            now, now + timedelta(seconds=cfg.callback_total_timeout_s + LEASE_MARGIN_S), only=only, skip=tried)
        if row is None:
            break
        tried.append(row["id"])
        results.append(attempt(row, cfg))
    return results


def attempt(row: dict[str, Any], cfg: Settings | None = None) -> dict[str, Any]:
    """One delivery attempt of a claimed request, logged and scheduled."""
    cfg = cfg or settings()
    started = utcnow()
    body = (row["callback_body"] or "").encode("utf-8")
    headers = {DELIVERY_HEADER: str(row["id"])}
    if cfg.callback_signing_secret:
        from chalicelib import secrets

        # a Terraform deployment passes an unresolved {{resolve:...}} reference: fetch the real key
        headers[SIGNATURE_HEADER] = signature(body, secrets.resolve(cfg.callback_signing_secret))
    try:
        target = urls.check(row["callback_url"], cfg.callback_allow_hosts)
        result = transport.post(target, body, headers, connect_timeout_s=cfg.callback_connect_timeout_s,
                                total_timeout_s=cfg.callback_total_timeout_s)
    except BadRequest as exc:
        result = transport.PostResult(None, f"callback URL refused: {exc.message}"[:500])
    except Exception as exc:  # noqa: BLE001 - a fault of ours is a failed attempt too, never a lost one
        logger.exception("callback attempt failed unexpectedly", extra={"calibration_request_id": row["id"]})
        result = transport.PostResult(None, f"internal error: {type(exc).__name__}")
    done = utcnow()
    attempts_made = (row["callback_attempts"] or 0) + 1
    if result.ok:
        state, next_at = "delivered", None
    else:
        next_at = next_attempt_at(as_utc(row["first_attempt"]) or started, attempts_made, done, cfg)
        state = "pending" if next_at else "failed"
    queries.record_attempt(row["id"], attempted_at=started, http_status=result.status, error=result.error,
                           state=state, next_attempt=next_at, delivered_at=done if result.ok else None)
    observability.count(observability.CALLBACK_SENT if result.ok else observability.CALLBACK_FAILED)
    if state == "failed":
        observability.count(observability.CALLBACK_GAVE_UP)  # someone waits for this callback in vain
    log = logger.info if result.ok else logger.warning
    log("callback attempt", extra={"calibration_request_id": row["id"], "cal_id": row["cal_id"],
                                   "attempt": attempts_made, "http_status": result.status, "error": result.error,
                                   "state": state, "next_attempt": next_at.isoformat() if next_at else None})
    return {"request_id": row["id"], "attempt": attempts_made, "http_status": result.status,
            "error": result.error, "state": state}


def retry_due(context: Any = None) -> dict[str, Any]:
    """The scheduled run: send every due callback that fits in the time left."""
    results = deliver(context=context)
    summary = {"attempted": len(results), "delivered": sum(r["state"] == "delivered" for r in results),
               "failed": sum(r["state"] == "failed" for r in results)}
    if results:
        logger.info("callback retries", extra=summary)
    return summary
