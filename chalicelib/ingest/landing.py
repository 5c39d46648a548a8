"""The ingest of a fit landed in the calibration bucket: manifest -> files -> fit -> rows -> callbacks.

When ``fits/<cal_id>/<fitid>/manifest.json`` lands (layout and manifest format:
:mod:`chalicelib.ingest.layout`; the S3 event: :mod:`chalicelib.ingest.events`), :func:`ingest_manifest`:

1. looks the fit up: when ``calibration_fits`` has (fitid, cal_id) already -- a repeated S3
   event, or a fit the site pipeline wrote -- nothing is fetched or written; ``fit_finished`` is
   called once more, which finds no open request after a completed first landing (so no second
   callback), but does finish requests a crashed first run left open;
2. reads the manifest and fetches the files it names from the same prefix (in parallel);
3. reads the metafits (its GPSTIME must be ``<cal_id>``) and the hyperdrive files
   (:func:`chalicelib.ingest.fit.load_fit_inputs`; their OBSID must match), and fits them
   (:func:`chalicelib.ingest.fit.fit_result`);
4. writes, in ONE transaction (:func:`chalicelib.ingest.store.store_fit`): the calibrator
   observation from the metafits when the database lacks it, the ``calibration_fits`` row, one
   ``calibration_solutions`` row per tile, and ``calibration_fit_file`` (kind ``hyperdrive``,
   ``bucket_key`` = the FIRST solution file the manifest lists: list a whole-band file first if
   there is one; the bucket holds no combined file, and this Lambda only reads it), and
   ``calibration_fit_solution_file``: EVERY solution file the manifest lists, with the coarse
   channels, chanblocks and timeblocks it holds (what get_cal_solution?source=file fetches);
   and the rows'
   line-model error per tile (``calibration_model_error``: :mod:`chalicelib.ingest.modelerror`);
5. calls :func:`chalicelib.calrequests.callbacks.fit_finished` (success, the message names the fit
   and its tile counts, finished = the fit's ``fit_time``).

Failures: a missing or malformed manifest, a missing file, a file that is not a hyperdrive
solution / metafits of this calibrator, a fit that finds no usable tile, or a write the database
refuses -> ``fit_finished(success=False, message=<why>)`` and no rows (the transaction is all
or nothing); never an exception out of the handler. S3 or database *outages*
(``StorageUnavailable``, ``DatabaseUnavailable``, a dropped connection) are raised instead, so the
event is delivered again and the ingest retried -- rather than failing the requests for an outage.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pg8000.exceptions import InterfaceError

from chalicelib import storage
from chalicelib.calrequests import callbacks
from chalicelib.errors import DatabaseUnavailable, StorageUnavailable
from chalicelib.ingest.layout import LandedFit, LandingError, Manifest
from chalicelib.observability import logger

FETCH_THREADS = 8

# An outage, not a bad fit: raised, so S3 delivers the event again.
TRANSIENT_STORAGE = (StorageUnavailable,)
TRANSIENT_DATABASE = (DatabaseUnavailable, InterfaceError, OSError)


def fetch(bucket: str, keys: Sequence[str]) -> dict[str, bytes]:
    """The objects' bytes by key, fetched in parallel; LandingError names the missing ones."""
    bodies = storage.get_objects(bucket, keys, threads=FETCH_THREADS)
    missing = [k for k, body in bodies.items() if body is None]
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise LandingError(f"{len(missing)} file(s) named by the manifest are not in s3://{bucket}: {shown}")
    return bodies  # type: ignore[return-value]


def success_message(fitid: int, cal_id: int, rows: int, nan_rows: int) -> str:
    """The callback message of an ingested fit (names the fit and its tile counts)."""
    return (f"calibration fit {fitid} of calibrator observation {cal_id} succeeded: "
            f"{rows} tiles, {rows - nan_rows} solved, {nan_rows} flagged")


def failure_message(fitid: int, cal_id: int, reason: str) -> str:
    return f"calibration fit {fitid} of calibrator observation {cal_id} could not be ingested: {reason}"


@dataclass
class _Fitted:
    manifest: Manifest
    info: Any  # MetafitsInfo
    fit: Any  # records.Fit
    rows: list
    reference_tile_id: int
    solution_files: list  # SolutionFile of every file the manifest lists (what each covers)
    model_error: Any  # modelerror.ModelError of the rows against these files


def _read_and_fit(landed: LandedFit) -> _Fitted:
    """Steps 2-3: manifest, files, fit. LandingError / any parse or fit error = a bad fit; outages raise as they are."""
    from chalicelib.formats.metafits import read_metafits
    from chalicelib.ingest.fit_inputs import load_fit_inputs
    from chalicelib.ingest.fitting import fit_result
    from chalicelib.ingest.store import fit_record
    from chalicelib.solutions.files import describe_bytes

    f = landed.file
    raw = storage.get_object(landed.bucket, f.key)
    if raw is None:
        raise LandingError(f"the manifest {f.key} is gone")
    manifest = Manifest.parse(raw)
    keys = [f.prefix + n for n in (manifest.metafits, *manifest.solutions)]
    files = fetch(landed.bucket, keys)
    try:
        info = read_metafits(files[keys[0]])
    except Exception as exc:  # noqa: BLE001 - astropy raises many kinds for a bad file
        raise LandingError(f"{manifest.metafits} is not a metafits file ({type(exc).__name__}: {exc})") from exc
    if info.obsid != f.cal_id:
        raise LandingError(f"{manifest.metafits} is the metafits of observation {info.obsid}, not of {f.cal_id}")
    try:
        inputs = load_fit_inputs([files[k] for k in keys[1:]], info)
    except Exception as exc:  # noqa: BLE001
        raise LandingError(f"the solution files cannot be read: {type(exc).__name__}: {exc}") from exc
    try:
        described = [describe_bytes(k, files[k]) for k in keys[1:]]
    except Exception as exc:  # noqa: BLE001
        raise LandingError(f"the solution files cannot be described: {type(exc).__name__}: {exc}") from exc
    try:
        result = fit_result(inputs)
    except Exception as exc:  # noqa: BLE001
        raise LandingError(f"the solutions cannot be fitted: {type(exc).__name__}: {exc}") from exc
    from chalicelib.ingest.modelerror import line_model_error

    rows = result.rows()
    error = line_model_error(inputs.jones, inputs.weights > 0, inputs.freqs_hz, inputs.tile_ids,
                             result.reference_tile_id, rows)
    fit = fit_record(inputs.hyperdrive_header, fitid=f.fitid, obsid=f.cal_id, creator=manifest.creator,
                     code_version=manifest.code_version, fit_time=manifest.finished)
    return _Fitted(manifest=manifest, info=info, fit=fit, rows=rows,
                   reference_tile_id=result.reference_tile_id, solution_files=described, model_error=error)


def ingest_manifest(landed: LandedFit, context: Any = None) -> dict[str, Any]:
    """Ingest the fit whose manifest landed, then tell its requests; returns a report (see the module docstring)."""
    from chalicelib.db import ingest as queries
    from chalicelib.formats.metafits import observation_from_metafits
    from chalicelib.ingest.store import now_utc, store_fit

    f = landed.file
    log = {"cal_id": f.cal_id, "fitid": f.fitid, "key": f.key}
    t0 = time.perf_counter()

    recorded = queries.recorded_fit(f.fitid, f.cal_id)
    if recorded is not None:
        summary = queries.fit_summary(f.fitid, f.cal_id)
        logger.info("fit already in the database: nothing ingested", extra=log)
        report = callbacks.fit_finished(f.cal_id, f.fitid, True,
                                        success_message(f.fitid, f.cal_id, summary["rows"], summary["nan_rows"]),
                                        recorded["fit_time"], context=context)
        return {**report, "ingest": {"written": False, "reason": "fit already in the database"}}

    try:
        fitted = _read_and_fit(landed)
        stored = store_fit(fitted.fit, fitted.rows, observation_from_metafits(fitted.info),
                           bucket_key=f.prefix + fitted.manifest.solutions[0],
                           solution_files=fitted.solution_files, model_error=fitted.model_error)
    except (*TRANSIENT_STORAGE, *TRANSIENT_DATABASE):
        raise  # an outage: the event is delivered again
    except Exception as exc:  # noqa: BLE001 - a bad fit is told to its requests, never raised
        reason = str(exc) if isinstance(exc, LandingError) else f"{type(exc).__name__}: {exc}"
        message = failure_message(f.fitid, f.cal_id, reason)
        if isinstance(exc, LandingError):
            logger.warning("fit not ingested", extra={**log, "reason": reason})
        else:
            logger.exception("fit not ingested", extra={**log, "reason": reason})
        report = callbacks.fit_finished(f.cal_id, f.fitid, False, message, landed.event_time or now_utc(),
                                        context=context)
        return {**report, "ingest": {"written": False, "error": message}}

    elapsed = time.perf_counter() - t0
    if stored.written:
        rows, nan_rows = stored.rows, stored.nan_rows
    else:  # another delivery of this event wrote it a moment ago
        summary = queries.fit_summary(f.fitid, f.cal_id)
        rows, nan_rows = summary["rows"], summary["nan_rows"]
    logger.info("fit ingested" if stored.written else "fit written concurrently: nothing ingested", extra={
        **log, "rows": rows, "nan_rows": nan_rows, "reference_tile": fitted.reference_tile_id,
        "observation_inserted": stored.observation_inserted, "seconds": round(elapsed, 3)})
    report = callbacks.fit_finished(f.cal_id, f.fitid, True, success_message(f.fitid, f.cal_id, rows, nan_rows),
                                    fitted.fit.fit_time, context=context)
    return {**report, "ingest": {"written": stored.written, "rows": rows, "nan_rows": nan_rows,
                                 "reference_tile": fitted.reference_tile_id,
                                 "observation_inserted": stored.observation_inserted,
                                 "bucket_key": stored.bucket_key, "seconds": round(elapsed, 3)}}
