"""The calibration bucket's S3 event (``on_cal_file``): which fits a notification finishes, and what it then does.

A manifest runs :func:`chalicelib.ingest.landing.ingest_manifest` (which ends in ``fit_finished``);
a solutions file is first recorded in ``calibration_fit_solution_file`` (:mod:`chalicelib.ingest.solution_files`)
and its rows' model error stored (:mod:`chalicelib.ingest.sitefit`); it and an error file call
:func:`chalicelib.calrequests.callbacks.fit_finished` directly
(key layout and file formats: :mod:`chalicelib.ingest.layout`). A fit that is in the database then
has its plots drawn (:mod:`chalicelib.plots.prerender`; never fails the landing). Other keys, other buckets and
other event kinds are ignored. S3 delivers notifications at least once: a repeated manifest finds
its fit in the database and writes nothing; a repeat of any of them finds no open request and
sends nothing.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any
from urllib.parse import unquote_plus

from chalicelib import storage
from chalicelib.calrequests import callbacks
from chalicelib.config import settings
from chalicelib.ingest import landing, layout, solution_files
from chalicelib.observability import logger


def finished_fits(event: Mapping[str, Any]) -> Iterator[layout.LandedFit]:
    """The finished-fit files (manifest, solutions or error) created in the calibration bucket by this event."""
    if not isinstance(event, Mapping) or not event.get("Records"):
        return
    from aws_lambda_powertools.utilities.data_classes import S3Event

    cal_bucket = settings().cal_bucket
    for record in S3Event(dict(event)).records:
        if record.get("eventSource") != "aws:s3" or not str(record.get("eventName", "")).startswith("ObjectCreated"):
            continue
        # S3 sends the key URL-encoded (``fits%2F123%2F...``, spaces as ``+``): decode it once
        bucket, key = record.s3.bucket.name, unquote_plus(str(record["s3"]["object"]["key"]))
        if bucket != cal_bucket:
            logger.warning("S3 event for another bucket ignored", extra={"bucket": bucket, "key": key})
            continue
        parsed = layout.parse_key(key)
        if parsed is None or not parsed.finishes_fit:
            logger.debug("calibration bucket file does not finish a fit", extra={"key": key})
            continue
        yield layout.LandedFit(file=parsed, bucket=bucket, event_time=layout.parse_time(record.get("eventTime")),
                               size=record.s3.get_object.size)


def read_error_file(bucket: str, key: str, size: int | None = None) -> tuple[str, datetime | None]:
    """The message and (if given) finish time of a failed fit's error file in the bucket."""
    if size is not None and size > layout.MAX_ERROR_FILE_BYTES:
        return f"the fit failed (its error file {key} is {size} bytes, too large to read)", None
    raw = storage.get_object(bucket, key)
    if raw is None:
        return f"the fit failed (its error file {key} is gone)", None
    return layout.parse_error_file(raw)


def describe(landed: layout.LandedFit) -> tuple[bool, str, datetime | None]:
    """(success, message, finished) of a landed solutions or error file."""
    f = landed.file
    if f.kind == layout.SUCCESS:
        return True, f"calibration fit {f.fitid} of calibrator observation {f.cal_id} succeeded", landed.event_time
    message, finished = read_error_file(landed.bucket, f.key, landed.size)
    return False, message, finished or landed.event_time


def handle_event(event: Mapping[str, Any], context: Any = None) -> list[dict]:
    """Ingest every landed manifest, complete the open requests of every fit this event finishes
    and send their callbacks.

    A manifest whose files are bad or missing is a failed fit (told to its requests), never an
    error here. Raises (after handling the event's other records) when the database or S3 fails,
    so the event is delivered again; fits already handled then are found in the database or find
    no open request, so nothing is written or sent twice.
    """
    out = []
    errors: list[Exception] = []
    for landed in finished_fits(event):
        f = landed.file
        try:
            if f.kind == layout.MANIFEST:
                report = landing.ingest_manifest(landed, context=context)
            else:
                if f.kind == layout.SUCCESS:  # the site pipeline's whole-band file: what it holds, its model error
                    from chalicelib.ingest.sitefit import record_model_error

                    solution_files.record_landed_solutions(landed)
                    record_model_error(landed)
                success, message, finished = describe(landed)
                logger.info("fit finished", extra={"cal_id": f.cal_id, "fitid": f.fitid, "success": success,
                                                   "key": f.key})
                report = callbacks.fit_finished(f.cal_id, f.fitid, success, message, finished, context=context)
        except Exception as exc:  # noqa: BLE001 - the other records still run; raised below for a retry
            logger.exception("fit file not handled; the event will be retried",
                             extra={"key": f.key, "error": f"{type(exc).__name__}: {exc}"})
            errors.append(exc)
            continue
        if report.get("success") and f.kind in (layout.MANIFEST, layout.SUCCESS) and settings().plots_at_landing:
            from chalicelib.plots.prerender import after_landing

            report = {**report, "plots": after_landing(f.fitid, f.cal_id, context=context)}
        out.append({"key": f.key, **report})
    if errors:
        raise errors[0]
    return out
