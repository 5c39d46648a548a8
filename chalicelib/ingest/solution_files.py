"""Recording a fit's hyperdrive solution files (which coarse channels each holds) from the calibration bucket.

Used when the site pipeline's ``<cal_id>_solutions.fits`` lands (its rows are written by the
pipeline itself) and by the backfill (:mod:`chalicelib.ingest.backfill`). A manifest's files are
recorded by the manifest ingest itself, in the fit's transaction (:mod:`chalicelib.ingest.store`).
"""

from __future__ import annotations

from collections.abc import Sequence

from chalicelib import storage
from chalicelib.db import solution_files as queries
from chalicelib.ingest.layout import LandedFit
from chalicelib.observability import logger
from chalicelib.solutions.files import SolutionFile, describe_bytes

FETCH_THREADS = 8


def describe_keys(bucket: str, keys: Sequence[str]) -> tuple[list[SolutionFile], list[str]]:
    """(what each readable file covers, the keys missing or not hyperdrive solutions); files fetched in parallel."""
    bodies = storage.get_objects(bucket, keys, threads=FETCH_THREADS)
    described, bad = [], []
    for key in keys:
        raw = bodies.get(key)
        if raw is None:
            bad.append(key)
            continue
        try:
            described.append(describe_bytes(key, raw))
        except Exception as exc:  # noqa: BLE001 - astropy raises many kinds for a bad file
            logger.warning("not a hyperdrive solution file", extra={"key": key, "error": f"{type(exc).__name__}: {exc}"})
            bad.append(key)
    return described, bad


def record_landed_solutions(landed: LandedFit) -> int:
    """Record the site pipeline's landed ``<cal_id>_solutions.fits``; returns the files recorded (0: fit unknown or bad file).

    S3 and database outages are raised (the event is retried); an unreadable file is logged and skipped.
    """
    f = landed.file
    described, bad = describe_keys(landed.bucket, [f.key])
    written = queries.record_now(f.fitid, f.cal_id, described) if described else 0
    if bad or not written:
        logger.warning("solution file not recorded", extra={
            "key": f.key, "reason": "missing or unreadable" if bad else "the fit is not in calibration_fits"})
    return written
