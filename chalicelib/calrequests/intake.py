"""add_cal_request: validate, choose the calibrator to fit, check the callback URL, queue the request.

Parameters (service-spec): ``obs_id`` (required), ``asvo_job_id`` (integer), ``max_time_separation``
(seconds, default 86400), ``callback_url``. Answers:

* 200, empty body: one message is on the request queue (stored by ``store_request`` shortly after).
* 400: a parameter is missing or malformed, the observation is not in the schedule, or the
  callback URL is refused (see :mod:`chalicelib.calrequests.urls`).
* 404: no calibrator observation within ``max_time_separation`` (same rules as get_cal_solution --
  same gain_control_value, covers the target's channels, nearest first -- except that the
  calibrator need not have a fit yet).
* 409: the request could not be recorded: the queue refused the message, did not answer within
  the request's budget (:mod:`chalicelib.deadline`), or there was no time left to ask it. The
  caller may retry, safely: see below.
* 500: a fault of ours (e.g. no request queue configured).

One send, never repeated, and only while its budget fits in the request's deadline: so nothing is
sent after the answer, and once the queue took the message the answer is 200. A send that timed
out may still have arrived (it was sent; only the answer was missing): that is a 409, and the
message is idempotent so a retry cannot make a second request. Its ``request_key`` is derived from
the request (target, calibrator, ASVO job id, callback URL) and the :data:`IDEMPOTENCY_WINDOW_S`
window of UTC it falls in (:00, :15, :30, :45), and ``store_request`` stores one request per key:
the same request sent again in that window -- a retry after a 409, or a message that arrived
twice -- is stored once and gets one callback (a retry in the next window is a second request,
with a callback of its own).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import datetime

from chalicelib import params, storage
from chalicelib.config import settings
from chalicelib.errors import Conflict, StorageUnavailable
from chalicelib.observability import logger
from chalicelib.calrequests import callbacks, urls
from chalicelib.calrequests.store import QueuedRequest
from chalicelib.selection import service
from chalicelib.selection.rules import Criteria

IDEMPOTENCY_WINDOW_S = 900  # identical requests within one such window of UTC are one request


class QueueNotConfigured(RuntimeError):
    """CALIB_REQUEST_QUEUE_URL is empty: a deployment fault (500)."""


def parse(query: Mapping[str, str] | None) -> tuple[int, int, int | None, str | None]:
    """(obs_id, max_time_separation, asvo_job_id, callback_url), each problem a 400 naming it."""
    obs_id = params.observation_id(query)
    max_sep = params.max_time_separation(query)
    asvo_job_id = params.integer(query, "asvo_job_id", minimum=0)
    callback_url = params.text(query, "callback_url", max_length=urls.MAX_URL_LENGTH)
    return obs_id, max_sep, asvo_job_id, callback_url


def request_key(obs_id: int, cal_id: int, asvo_job_id: int | None, callback_url: str | None,
                requested_at: datetime) -> str:
    """The request's key: equal for the same request within one IDEMPOTENCY_WINDOW_S window (stored once)."""
    window = int(requested_at.timestamp() // IDEMPOTENCY_WINDOW_S)
    doc = json.dumps([obs_id, cal_id, asvo_job_id, callback_url, window], separators=(",", ":"))
    return "req-" + hashlib.sha256(doc.encode()).hexdigest()[:32]


def add(query: Mapping[str, str] | None) -> QueuedRequest:
    """Queue one calibration request; raises BadRequest / NotFound / Conflict as documented above."""
    obs_id, max_sep, asvo_job_id, callback_url = parse(query)
    outcome = service.choose(obs_id, Criteria(max_time_separation=max_sep, need_fit=False))
    calibrator = outcome.selection.best.calibrator
    if callback_url:
        urls.check(callback_url, settings().callback_allow_hosts)
    now = callbacks.utcnow()
    req = QueuedRequest(request_key=request_key(obs_id, calibrator.obsid, asvo_job_id, callback_url, now),
                        obs_id=obs_id, cal_id=calibrator.obsid, asvo_job_id=asvo_job_id, callback_url=callback_url,
                        requested_at=now)
    queue_url = settings().request_queue_url
    if not queue_url:
        raise QueueNotConfigured("CALIB_REQUEST_QUEUE_URL is not set: requests cannot be queued")
    try:
        message_id = storage.send_message(queue_url, req.to_message(), dedup_id=req.request_key)
    except StorageUnavailable as exc:
        logger.warning("request queue did not take a calibration request", extra={
            "request_key": req.request_key, "obs_id": obs_id, "cal_id": calibrator.obsid,
            "error": exc.message, "cause": str(exc.__cause__ or "")})
        raise Conflict(f"the request could not be recorded ({exc.message}); try again later: the same "
                       f"request sent again in the same {IDEMPOTENCY_WINDOW_S // 60}-minute window of UTC is stored once"
                       ) from exc
    logger.info("calibration request queued", extra={
        "request_key": req.request_key, "message_id": message_id, "obs_id": obs_id, "cal_id": calibrator.obsid,
        "asvo_job_id": asvo_job_id, "has_callback": bool(callback_url)})
    return req
