"""Write one ingested fit to the database: the calibrator observation, the fit, its rows, its file -- atomically.

:func:`fit_record` turns what the hyperdrive files say (PRIMARY header of the lowest-frequency
file) plus what the caller knows (fit id, creator, finish time) into the ``calibration_fits`` row:

==================== =======================================================================
fitid                the caller's (the bucket key's ``<fitid>``; the CLI's ``--fitid``, default now in Unix us)
obsid                the calibrator (metafits GPSTIME)
fit_time             the given finish time (manifest ``finished_datetime``), else now; aware UTC
creator              the given creator, else :data:`DEFAULT_CREATOR`
code_version         the given one (manifest ``code_version``), else hyperdrive ``SOFTWARE``
                     (``Created by mwa_hyperdrive v0.2.1``)
fit_niter            hyperdrive ``MAXITER`` (its iteration cap per chanblock) when present
fit_limit            hyperdrive ``S_THRESH`` (the precision it stops at) when present
source_list          the ``--source-list`` argument of hyperdrive ``CMDLINE`` when present
calibration_command  hyperdrive ``CMDLINE`` of the lowest-frequency file
==================== =======================================================================

:func:`store_fit` then writes, in ONE transaction (all or nothing), under an advisory lock on
(fitid, obsid) so two deliveries of the same S3 event cannot both write:

1. nothing at all when ``calibration_fits`` already has (fitid, obsid) (``written=False``);
2. the calibrator observation from its metafits when ``mwa_setting`` does not have it
   (``mwa_setting``, ``schedule_metadata`` with ``calibration`` true -- it has been fitted as a
   calibrator, and get_cal_solution only serves calibrators --, ``rf_stream``, ``observation_tile``);
   an observation already there is left as it is, except that its ``observation_tile`` rows are
   added when it has none (get_cal_solution needs the tile list);
3. the ``calibration_fits`` row and one ``calibration_solutions`` row per tile;
4. the fit's hyperdrive file (``calibration_fit_file``, kind ``hyperdrive``) when a bucket key is given,
   and every solution file of the fit with what it covers (``calibration_fit_solution_file``).
5. the rows' line-model error (``calibration_model_error``, :mod:`chalicelib.ingest.modelerror`) when given.
"""

from __future__ import annotations

import math
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from chalicelib import db, gpstime
from chalicelib.db import ingest as queries
from chalicelib.db import solution_files as file_queries
from chalicelib.db import writes
from chalicelib.formats.headers import header_text as _text
from chalicelib.records import Fit, Observation, SolutionRow
from chalicelib.solutions.files import SolutionFile

DEFAULT_CREATOR = "mwa-calib-ingest"


@dataclass(frozen=True)
class StoredFit:
    """What :func:`store_fit` did with one fit (written, or found in the database already)."""

    fitid: int
    obsid: int
    written: bool  # False: the fit was in the database already, nothing was written
    rows: int  # calibration_solutions rows written (0 when not written)
    nan_rows: int  # of which all-NaN (flagged tiles)
    observation_inserted: bool = False  # the calibrator observation was new
    tiles_inserted: bool = False  # its observation_tile rows were written
    bucket_key: str | None = None


def now_utc() -> datetime:
    """Now, from the one clock (gpstime.now)."""
    return gpstime.now()


def _number(value: Any, kind: type) -> Any:
    """``kind(value)`` when it is a finite number, else None (absent or unreadable header keys)."""
    try:
        out = kind(value)
        return out if math.isfinite(float(out)) else None
    except (TypeError, ValueError, OverflowError):
        return None


def source_list_of(cmdline: str | None) -> str | None:
    """The ``--source-list`` / ``-s`` argument of a hyperdrive command line, if any."""
    if not cmdline:
        return None
    try:
        words = shlex.split(cmdline)
    except ValueError:
        words = cmdline.split()
    for i, word in enumerate(words):
        if word in ("--source-list", "-s") and i + 1 < len(words):
            return words[i + 1]
        if word.startswith("--source-list="):
            return word.split("=", 1)[1] or None
    return None


def fit_record(hyperdrive_header: dict[str, Any] | None, *, fitid: int, obsid: int, creator: str | None = None,
               code_version: str | None = None, fit_time: datetime | None = None) -> Fit:
    """The calibration_fits row of an ingested fit (see the module docstring for where each value comes from)."""
    h = hyperdrive_header or {}
    cmdline = _text(h.get("CMDLINE"))
    when = fit_time or now_utc()
    when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    return Fit(
        fitid=int(fitid),
        obsid=int(obsid),
        fit_time=when,
        creator=_text(creator) or DEFAULT_CREATOR,
        code_version=_text(code_version) or _text(h.get("SOFTWARE")),
        fit_niter=_number(h.get("MAXITER"), int),
        fit_limit=_number(h.get("S_THRESH"), float),
        source_list=source_list_of(cmdline),
        calibration_command=cmdline,
    )


def is_nan_row(row: SolutionRow) -> bool:
    """An all-NaN (flagged tile) row: both delays NaN (the fit flags whole rows)."""
    return math.isnan(row.x_delay_m) and math.isnan(row.y_delay_m)


def store_fit(fit: Fit, rows: list[SolutionRow], observation: Observation | None = None,
              bucket_key: str | None = None, solution_files: Sequence[SolutionFile] = (),
              model_error: Any = None) -> StoredFit:
    """Write the fit, its rows, the calibrator observation (if new), its files and model error in one transaction.

    Writes nothing when (fitid, obsid) is in calibration_fits already. Raises whatever the database
    raises; then nothing is written.
    """
    if observation is not None and observation.obsid != fit.obsid:
        raise ValueError(f"the observation {observation.obsid} is not the fitted calibrator {fit.obsid}")
    obs_inserted = tiles_inserted = False
    with db.transaction() as tx:
        queries.lock_fit(tx, fit.fitid, fit.obsid)
        if writes.fit_exists(tx, fit.fitid, fit.obsid):
            return StoredFit(fitid=fit.fitid, obsid=fit.obsid, written=False, rows=0, nan_rows=0)
        if observation is not None:
            known, has_tiles = queries.observation_state(tx, observation.obsid)
            if not known:
                writes.insert_observation(tx, replace(observation, calibration=True))
                obs_inserted, tiles_inserted = True, bool(observation.tiles)
            elif not has_tiles and observation.tiles:
                writes.insert_observation_tiles(tx, observation.obsid, observation.tiles)
                tiles_inserted = True
        writes.insert_fit(tx, fit, rows)
        if bucket_key:
            queries.register_fit_file(tx, fit.fitid, fit.obsid, bucket_key)
        file_queries.record(tx, fit.fitid, fit.obsid, solution_files)
        if model_error is not None:
            from chalicelib.db.modelerror import write_model_error

            write_model_error(tx, fit.fitid, fit.obsid, model_error)
    return StoredFit(fitid=fit.fitid, obsid=fit.obsid, written=True, rows=len(rows),
                     nan_rows=sum(is_nan_row(r) for r in rows), observation_inserted=obs_inserted,
                     tiles_inserted=tiles_inserted, bucket_key=bucket_key)
