"""Fit files in the calibration bucket: the key layout, and what a landed file means.

Key layout (``<cal_id>`` = the calibrator's obsid, ``<fitid>`` = the fit id, both decimal integers;
current fit ids are Unix microseconds of the fit run, old ones Unix seconds)::

    fits/<cal_id>/<fitid>/manifest.json             INGEST this fit: the service reads the files the
                                                    manifest lists (same prefix), fits them, writes the
                                                    calibration rows, then tells the waiting requests
                                                    (success, or failure with the reason). Lands LAST.
    fits/<cal_id>/<fitid>/<cal_id>_solutions.fits   the fit's hyperdrive solutions (all channels), for a
                                                    fit whose rows the site pipeline writes itself.
                                                    Its arrival means: the fit SUCCEEDED (callbacks only).
    fits/<cal_id>/<fitid>/<cal_id>_error.json       a FAILED fit: a small JSON object
                                                    {"message": "...", "finished_datetime": "<ISO 8601>"}
                                                    (finished_datetime optional; plain text is also
                                                    accepted and used as the message).
    fits/<cal_id>/<fitid>/<anything else>           other files of the same fit (per-channel
                                                    hyperdrive files ``hyp_soln_<cal_id>_ch<NNN>_solutions.fits``,
                                                    the metafits, logs): stored, nothing happens.

The manifest (UTF-8 JSON object, at most 256 KiB; unknown keys are ignored)::

    {"solutions": ["hyp_soln_1369821496_ch55_solutions.fits", ...],   required: 1..512 hyperdrive
                                                                      files of ONE calibrator (per
                                                                      coarse channel or per band)
     "metafits": "1369821496_metafits.fits",                          required: the calibrator's metafits
     "creator": "calvin",                                             optional (default "mwa-calib-ingest")
     "code_version": "hyperdrive 0.4.1 / calvin 1.2",                 optional (default: hyperdrive SOFTWARE)
     "finished_datetime": "2025-06-01T12:34:56Z"}                     optional ISO 8601 (default: now);
                                                                      naive = UTC

Names are plain file names inside the same ``fits/<cal_id>/<fitid>/`` prefix (no ``/``). See
:mod:`chalicelib.ingest.landing` for what the ingest writes and how it fails.

A pipeline uploads the other files of a fit first and the manifest (or the solutions, or the
error file) last: that one object is the "fit finished" signal. A fit ingested through a manifest
must not also upload ``<cal_id>_solutions.fits`` into its prefix (that name alone already means
"finished", which would tell the requests before the rows exist). Everything else in the bucket
is ignored here.

:func:`handle_event` reads an S3 notification (the raw Lambda event dict, as the calibration
bucket's notification delivers it): a manifest runs :func:`chalicelib.ingest.landing.ingest_manifest`
(which ends in ``fit_finished``); a solutions or error file calls
:func:`chalicelib.calrequests.callbacks.fit_finished` directly. S3 delivers notifications at least
once: a repeated manifest finds its fit in the database and writes nothing; a repeat of any of
them finds no open request and sends nothing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote_plus

from chalicelib import storage
from chalicelib.config import settings
from chalicelib.observability import logger

PREFIX = "fits/"
SUCCESS = "solutions"
FAILURE = "error"
MANIFEST = "manifest"
OTHER = "other"
MANIFEST_NAME = "manifest.json"
MAX_ERROR_FILE_BYTES = 64 * 1024
MAX_MESSAGE_CHARS = 4000

_KEY = re.compile(r"^fits/(?P<cal>[0-9]{1,19})/(?P<fit>[0-9]{1,19})/(?P<name>[^/]+)$")


@dataclass(frozen=True)
class FitFile:
    """A key of the layout above: the calibrator, the fit, and which file of the fit it is."""

    key: str
    cal_id: int
    fitid: int
    kind: str  # SUCCESS, FAILURE, MANIFEST or OTHER

    @property
    def finishes_fit(self) -> bool:
        """Whether this file's arrival means the fit finished (succeeded, failed, or is to be ingested)."""
        return self.kind in (SUCCESS, FAILURE, MANIFEST)

    @property
    def prefix(self) -> str:
        """The fit's prefix ``fits/<cal_id>/<fitid>/`` (the files a manifest names live there)."""
        return fit_prefix(self.cal_id, self.fitid)


def fit_prefix(cal_id: int, fitid: int) -> str:
    """The prefix of every file of one fit."""
    return f"{PREFIX}{int(cal_id)}/{int(fitid)}/"


def manifest_key(cal_id: int, fitid: int) -> str:
    """The key of a fit's manifest (its landing starts the ingest)."""
    return fit_prefix(cal_id, fitid) + MANIFEST_NAME


def solutions_key(cal_id: int, fitid: int) -> str:
    """The key of a successful fit's hyperdrive solutions."""
    return f"{PREFIX}{int(cal_id)}/{int(fitid)}/{int(cal_id)}_solutions.fits"


def error_key(cal_id: int, fitid: int) -> str:
    """The key of a failed fit's error file."""
    return f"{PREFIX}{int(cal_id)}/{int(fitid)}/{int(cal_id)}_error.json"


def parse_key(key: str) -> FitFile | None:
    """The fit file a key names, or None when the key is outside the layout."""
    m = _KEY.match(key)
    if not m:
        return None
    cal_id, fitid, name = int(m["cal"]), int(m["fit"]), m["name"]
    if name == f"{cal_id}_solutions.fits":
        kind = SUCCESS
    elif name == f"{cal_id}_error.json":
        kind = FAILURE
    elif name == MANIFEST_NAME:
        kind = MANIFEST
    else:
        kind = OTHER
    return FitFile(key=key, cal_id=cal_id, fitid=fitid, kind=kind)


@dataclass(frozen=True)
class LandedFit:
    """A finished fit read from one S3 record."""

    file: FitFile
    bucket: str
    event_time: datetime | None
    size: int | None


def parse_time(value: Any) -> datetime | None:
    """An ISO 8601 string as an aware UTC datetime (naive = UTC); None when absent or unreadable."""
    return _parse_time(value)


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        t = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def finished_fits(event: Mapping[str, Any]) -> Iterator[LandedFit]:
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
        parsed = parse_key(key)
        if parsed is None or not parsed.finishes_fit:
            logger.debug("calibration bucket file does not finish a fit", extra={"key": key})
            continue
        yield LandedFit(file=parsed, bucket=bucket, event_time=_parse_time(record.get("eventTime")),
                        size=record.s3.get_object.size)


def read_error_file(bucket: str, key: str, size: int | None = None) -> tuple[str, datetime | None]:
    """The message and (if given) finish time of a failed fit's error file."""
    if size is not None and size > MAX_ERROR_FILE_BYTES:
        return f"the fit failed (its error file {key} is {size} bytes, too large to read)", None
    raw = storage.get_object(bucket, key)
    if raw is None:
        return f"the fit failed (its error file {key} is gone)", None
    text = raw[:MAX_ERROR_FILE_BYTES].decode("utf-8", errors="replace").strip()
    message, finished = text, None
    try:
        doc = json.loads(text)
    except ValueError:
        doc = None
    if isinstance(doc, dict):
        message = str(doc.get("message") or doc.get("error") or "").strip()
        finished = _parse_time(doc.get("finished_datetime") or doc.get("finished"))
    message = message or "the fit failed (no message given)"
    return message[:MAX_MESSAGE_CHARS], finished


def describe(landed: LandedFit) -> tuple[bool, str, datetime | None]:
    """(success, message, finished) of a landed fit file."""
    f = landed.file
    if f.kind == SUCCESS:
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
    from chalicelib.calrequests import callbacks

    out = []
    errors: list[Exception] = []
    for landed in finished_fits(event):
        f = landed.file
        try:
            if f.kind == MANIFEST:
                from chalicelib.ingest import landing

                report = landing.ingest_manifest(landed, context=context)
            else:
                success, message, finished = describe(landed)
                logger.info("fit finished", extra={"cal_id": f.cal_id, "fitid": f.fitid, "success": success,
                                                   "key": f.key})
                report = callbacks.fit_finished(f.cal_id, f.fitid, success, message, finished, context=context)
        except Exception as exc:  # noqa: BLE001 - the other records still run; raised below for a retry
            logger.exception("fit file not handled; the event will be retried",
                             extra={"key": f.key, "error": f"{type(exc).__name__}: {exc}"})
            errors.append(exc)
            continue
        out.append({"key": f.key, **report})
    if errors:
        raise errors[0]
    return out
