"""The request queue's message, and storing it (the SQS handler's work).

The route sends one JSON message per accepted request::

    {"version": 1, "request_key": "req-<uuid4>", "obs_id": <target>, "cal_id": <calibrator>,
     "asvo_job_id": <int or null>, "callback_url": <str or null>, "requested_at": "<ISO 8601 UTC>"}

Storing writes one ``calibration_request`` row (cal_id = the calibrator, realtime false, our
target obs id, ASVO job id and callback URL) that the fitting pipeline picks up. The row's
``request_key`` (unique) is the message's key, so a message delivered twice -- or sent twice by a
retried SQS call -- stores one request. A message without a key (written by hand) is keyed by its
SQS message id. If the calibrator already has a usable fit, the request is completed at once and
its callback sent. Any failure raises: the message stays on the queue, is retried, and after the
queue's maxReceiveCount lands in the dead-letter queue.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from chalicelib import db, gpstime
from chalicelib.db import requests as queries
from chalicelib.observability import logger
from chalicelib.calrequests import callbacks

MESSAGE_VERSION = 1


class BadMessage(ValueError):
    """A queued message that is not a request (left to the dead-letter queue)."""


class StoreFailed(RuntimeError):
    """Some messages of a batch were not stored; raising keeps them on the queue."""


@dataclass(frozen=True)
class QueuedRequest:
    """One accepted add_cal_request, as it travels through the queue."""

    request_key: str
    obs_id: int
    cal_id: int
    asvo_job_id: int | None
    callback_url: str | None
    requested_at: datetime

    def to_message(self) -> dict[str, Any]:
        return {"version": MESSAGE_VERSION, "request_key": self.request_key, "obs_id": self.obs_id,
                "cal_id": self.cal_id, "asvo_job_id": self.asvo_job_id, "callback_url": self.callback_url,
                "requested_at": callbacks.iso_utc(self.requested_at)}

    @classmethod
    def from_message(cls, body: str, message_id: str | None = None) -> QueuedRequest:
        try:
            doc = json.loads(body)
        except (TypeError, ValueError) as exc:
            raise BadMessage(f"message body is not JSON: {exc}") from None
        if not isinstance(doc, dict):
            raise BadMessage("message body is not a JSON object")

        def _int(name: str, required: bool) -> int | None:
            value = doc.get(name)
            if value is None and not required:
                return None
            if isinstance(value, bool) or not isinstance(value, int):
                raise BadMessage(f"message field {name} must be an integer, got {value!r}")
            return value

        key = doc.get("request_key") or (f"sqs-{message_id}" if message_id else None)
        if not isinstance(key, str) or not key:
            raise BadMessage("message has no request_key and no message id")
        url = doc.get("callback_url")
        if url is not None and not isinstance(url, str):
            raise BadMessage("message field callback_url must be a string")
        requested = doc.get("requested_at")
        try:
            requested_at = gpstime.parse_iso(requested) if requested else callbacks.utcnow()
        except (TypeError, ValueError):
            requested_at = callbacks.utcnow()
        return cls(request_key=key[:200], obs_id=_int("obs_id", True), cal_id=_int("cal_id", True),
                   asvo_job_id=_int("asvo_job_id", False), callback_url=url or None, requested_at=requested_at)


@dataclass(frozen=True)
class StoredRequest:
    """What storing one queued request did (a new calibration_request row, or a repeat)."""

    request_id: int
    created: bool  # False: the message was a repeat of one stored before
    completed: bool  # completed at once (the calibrator already had a fit)
    callbacks: tuple[dict[str, Any], ...] = ()


def store(req: QueuedRequest, context: Any = None) -> StoredRequest:
    """Store one request (once per key); complete it at once when its calibrator has a fit."""
    now = callbacks.utcnow()
    completed = due = False
    with db.transaction() as tx:
        queries.lock_calibrator(tx, req.cal_id)
        request_id = queries.insert_request(
            tx, request_key=req.request_key, cal_id=req.cal_id, target_obs_id=req.obs_id,
            asvo_job_id=req.asvo_job_id, callback_url=req.callback_url, added=req.requested_at)
        created = request_id is not None
        if not created:
            request_id = queries.request_by_key(tx, req.request_key)["id"]
        else:
            fit = queries.latest_fit(tx, req.cal_id)
            if fit is not None:
                outcome = callbacks.FitOutcome(
                    cal_id=req.cal_id, fitid=fit["fitid"], success=True,
                    message=(f"calibration fit {fit['fitid']} of calibrator observation {req.cal_id} "
                             "was already available"),
                    finished=callbacks.as_utc(fit["finished"]) or now)
                row = {"id": request_id, "cal_id": req.cal_id, "asvo_job_id": req.asvo_job_id,
                       "target_obs_id": req.obs_id, "callback_url": req.callback_url}
                due = callbacks.finish(tx, row, outcome, now)
                completed = True
    logger.info("calibration request stored" if created else "repeated request message ignored",
                extra={"calibration_request_id": request_id, "request_key": req.request_key, "cal_id": req.cal_id,
                       "target_obs_id": req.obs_id, "completed_at_once": completed})
    sent: list[dict[str, Any]] = []
    # A repeat may find the first delivery's callback still due (its handler died): send it too.
    if due or not created:
        try:
            sent = callbacks.deliver(only=[request_id], context=context)
        except Exception:  # noqa: BLE001 - stored and due: the schedule sends it
            logger.exception("immediate callback failed; left to the schedule",
                             extra={"calibration_request_id": request_id})
    return StoredRequest(request_id=request_id, created=created, completed=completed, callbacks=tuple(sent))


def handle_records(records: Iterable[Mapping[str, Any]], context: Any = None) -> list[StoredRequest]:
    """Store each SQS record's request; raise StoreFailed naming those that failed."""
    from aws_lambda_powertools.utilities.data_classes import SQSEvent

    out: list[StoredRequest] = []
    failed: list[str] = []
    for record in SQSEvent({"Records": [dict(r) for r in records]}).records:
        message_id = record.message_id
        try:
            out.append(store(QueuedRequest.from_message(record.body, message_id), context=context))
        except Exception as exc:  # noqa: BLE001 - every failure keeps its message queued
            logger.exception("request message not stored; it stays queued",
                             extra={"message_id": message_id, "error": f"{type(exc).__name__}: {exc}"})
            failed.append(str(message_id))
    if failed:
        raise StoreFailed(f"{len(failed)} request message(s) not stored: {', '.join(failed)}")
    return out
