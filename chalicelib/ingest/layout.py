"""Fit files in the calibration bucket: the key layout, the manifest and the error file (formats only, no I/O).

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

Names are plain file names inside the same ``fits/<cal_id>/<fitid>/`` prefix (no ``/``).

A pipeline uploads the other files of a fit first and the manifest (or the solutions, or the
error file) last: that one object is the "fit finished" signal. A fit ingested through a manifest
must not also upload ``<cal_id>_solutions.fits`` into its prefix (that name alone already means
"finished", which would tell the requests before the rows exist). Everything else in the bucket
is ignored. What happens on arrival: :mod:`chalicelib.ingest.events` (the S3 event) and
:mod:`chalicelib.ingest.landing` (the ingest of a manifest).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from chalicelib import gpstime

PREFIX = "fits/"
SUCCESS = "solutions"
FAILURE = "error"
MANIFEST = "manifest"
OTHER = "other"
MANIFEST_NAME = "manifest.json"
MAX_MANIFEST_BYTES = 256 * 1024
MAX_SOLUTION_FILES = 512
MAX_TEXT_CHARS = 500
MAX_ERROR_FILE_BYTES = 64 * 1024
MAX_MESSAGE_CHARS = 4000

_KEY = re.compile(r"^fits/(?P<cal>[0-9]{1,19})/(?P<fit>[0-9]{1,19})/(?P<name>[^/]+)$")
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+@=,-]{0,254}$")


class LandingError(ValueError):
    """The landed fit cannot be ingested (bad manifest, missing or bad file): its requests are told why."""


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


@dataclass(frozen=True)
class LandedFit:
    """A file that finished a fit, as one S3 record announced it."""

    file: FitFile
    bucket: str
    event_time: datetime | None
    size: int | None


def fit_prefix(cal_id: int, fitid: int) -> str:
    """The prefix of every file of one fit."""
    return f"{PREFIX}{int(cal_id)}/{int(fitid)}/"


def manifest_key(cal_id: int, fitid: int) -> str:
    """The key of a fit's manifest (its landing starts the ingest)."""
    return fit_prefix(cal_id, fitid) + MANIFEST_NAME


def solutions_key(cal_id: int, fitid: int) -> str:
    """The key of a successful fit's hyperdrive solutions."""
    return f"{fit_prefix(cal_id, fitid)}{int(cal_id)}_solutions.fits"


def error_key(cal_id: int, fitid: int) -> str:
    """The key of a failed fit's error file."""
    return f"{fit_prefix(cal_id, fitid)}{int(cal_id)}_error.json"


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


def parse_time(value: Any) -> datetime | None:
    """An ISO 8601 string as an aware UTC datetime (naive = UTC); None when absent or unreadable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return gpstime.parse_iso(value)
    except ValueError:
        return None


@dataclass(frozen=True)
class Manifest:
    """What a fit's manifest.json says."""

    solutions: tuple[str, ...]
    metafits: str
    creator: str | None = None
    code_version: str | None = None
    finished: datetime | None = None

    @classmethod
    def parse(cls, raw: bytes) -> Manifest:
        """The manifest in ``raw``; LandingError says what is wrong with it."""
        if len(raw) > MAX_MANIFEST_BYTES:
            raise LandingError(f"the manifest is {len(raw)} bytes (at most {MAX_MANIFEST_BYTES})")
        try:
            doc = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise LandingError(f"the manifest is not JSON: {exc}") from None
        if not isinstance(doc, dict):
            raise LandingError("the manifest is not a JSON object")
        solutions = doc.get("solutions")
        if isinstance(solutions, str):
            solutions = [solutions]
        if not isinstance(solutions, list) or not solutions:
            raise LandingError('the manifest has no "solutions" list of file names')
        if len(solutions) > MAX_SOLUTION_FILES:
            raise LandingError(f"the manifest lists {len(solutions)} solution files (at most {MAX_SOLUTION_FILES})")
        metafits = doc.get("metafits")
        names = [*solutions, metafits]
        for name in names:
            _check_name(name)
        if len(set(names)) != len(names):
            raise LandingError("the manifest names a file twice")
        finished = None
        if doc.get("finished_datetime") is not None:
            finished = parse_time(doc["finished_datetime"])
            if finished is None:
                raise LandingError(f"the manifest's finished_datetime {doc['finished_datetime']!r} is not ISO 8601")
        return cls(solutions=tuple(solutions), metafits=metafits, creator=_optional_text(doc, "creator"),
                   code_version=_optional_text(doc, "code_version"), finished=finished)


def _check_name(name: Any) -> None:
    if not isinstance(name, str) or not name:
        raise LandingError(f"the manifest names a file by {name!r}: names are non-empty strings")
    if not _NAME.match(name) or name == MANIFEST_NAME:
        raise LandingError(f"the manifest names {name!r}: a plain file name in the fit's prefix is required")


def _optional_text(doc: Mapping[str, Any], key: str) -> str | None:
    value = doc.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise LandingError(f"the manifest's {key} must be a string")
    return value.strip()[:MAX_TEXT_CHARS] or None


def parse_error_file(raw: bytes) -> tuple[str, datetime | None]:
    """The message and (if given) finish time in a failed fit's error file (JSON object or plain text)."""
    text = raw[:MAX_ERROR_FILE_BYTES].decode("utf-8", errors="replace").strip()
    message, finished = text, None
    try:
        doc = json.loads(text)
    except ValueError:
        doc = None
    if isinstance(doc, dict):
        message = str(doc.get("message") or doc.get("error") or "").strip()
        finished = parse_time(doc.get("finished_datetime") or doc.get("finished"))
    message = message or "the fit failed (no message given)"
    return message[:MAX_MESSAGE_CHARS], finished
