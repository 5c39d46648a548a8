"""add_cal_request: validate, choose the calibrator to fit, check the callback URL, queue the request.

Parameters (service-spec): ``obs_id`` (required), ``asvo_job_id`` (integer), ``max_time_separation``
(seconds, default 86400), ``callback_url``. Answers:

* 200, empty body: one message is on the request queue (stored by ``store_request`` shortly after).
* 400: a parameter is missing or malformed, the observation is not in the schedule, or the
  callback URL is refused (see :mod:`chalicelib.calrequests.urls`).
* 404: no calibrator observation within ``max_time_separation`` (same rules as get_cal_solution --
  same gain_control_value, covers the target's channels, nearest first -- except that the
  calibrator need not have a fit yet).
* 409: the request could not be recorded (the queue refused the message); the caller may retry.
* 500: a fault of ours (e.g. no request queue configured).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping

from chalicelib import params, storage
from chalicelib.config import settings
from chalicelib.errors import Conflict, StorageUnavailable
from chalicelib.observability import logger
from chalicelib.calrequests import callbacks, urls
from chalicelib.calrequests.store import QueuedRequest
from chalicelib.selection import service
from chalicelib.selection.rules import Criteria

class QueueNotConfigured(RuntimeError):
    """CALIB_REQUEST_QUEUE_URL is empty: a deployment fault (500)."""


def parse(query: Mapping[str, str] | None) -> tuple[int, int, int | None, str | None]:
    """(obs_id, max_time_separation, asvo_job_id, callback_url), each problem a 400 naming it."""
    obs_id = params.observation_id(query)
    max_sep = params.max_time_separation(query)
    asvo_job_id = params.integer(query, "asvo_job_id", minimum=0)
    callback_url = params.text(query, "callback_url", max_length=urls.MAX_URL_LENGTH)
    return obs_id, max_sep, asvo_job_id, callback_url


def add(query: Mapping[str, str] | None) -> QueuedRequest:
    """Queue one calibration request; raises BadRequest / NotFound / Conflict as documented above."""
    obs_id, max_sep, asvo_job_id, callback_url = parse(query)
    outcome = service.choose(obs_id, Criteria(max_time_separation=max_sep, need_fit=False))
    calibrator = outcome.selection.best.calibrator
    if callback_url:
        urls.check(callback_url, settings().callback_allow_hosts)
    req = QueuedRequest(request_key=f"req-{uuid.uuid4()}", obs_id=obs_id, cal_id=calibrator.obsid,
                        asvo_job_id=asvo_job_id, callback_url=callback_url, requested_at=callbacks.utcnow())
    queue_url = settings().request_queue_url
    if not queue_url:
        raise QueueNotConfigured("CALIB_REQUEST_QUEUE_URL is not set: requests cannot be queued")
    try:
        message_id = storage.send_message(queue_url, req.to_message(), dedup_id=req.request_key)
    except StorageUnavailable as exc:
        logger.warning("request queue refused a calibration request",
                       extra={"obs_id": obs_id, "cal_id": calibrator.obsid, "error": str(exc.__cause__ or exc)})
        raise Conflict("the request could not be recorded (the request queue refused it); try again later") from exc
    logger.info("calibration request queued", extra={
        "request_key": req.request_key, "message_id": message_id, "obs_id": obs_id, "cal_id": calibrator.obsid,
        "asvo_job_id": asvo_job_id, "has_callback": bool(callback_url)})
    return req
