"""The deprecated get_calfile_for_obsid and get_calfile_for_calid, kept so old scripts keep working.

Both answer as get_cal_solution does -- a 302 to a presigned zip in the products bucket, built once
and cached there (a 256-tile solution is far over Lambda's response size) -- on the same selection
and file writers. Scripts that fetch with ``wget``, Python ``requests`` or ``urllib`` follow the
redirect; ``curl`` needs ``-L``. Every answer of theirs that is ours to give (302 and 4xx) carries
``Deprecation`` (RFC 9745: the date they were deprecated, ``@1795478400`` = 2026-11-24) and a
``Link`` to the successor: get_cal_solution for the same observation
(for a calibrator: ``max_time_separation=0``, which asks for that calibrator's own fit).

get_calfile_for_obsid (service-spec): ``obs_id``; ``any_gain`` present with or without a value drops
the gain_control_value rule; the flags public scripts send are accepted: ``zipfile=1`` (the only
output, also the default) and ``add_request=1`` (when no fit is found, queue a calibration request
as add_cal_request does; the 400 then says what was queued). The selection parameters of
get_cal_solution (max_time_separation, allow_after, prefer_fitid, nocache) are honoured too. The zip:
``<cal_id>.bin``, ``<obs_id>_flagged_tiles.txt``, ``<obs_id>_flags.py``, ``<obs_id>.metafits`` -- the
observation's metafits (the stored ``<metadata_prefix><obs_id>_metafits.fits`` in the products
bucket, else the MWA metadata service's, else generated from the database; :mod:`chalicelib.metadata`)
with the fit applied (formats.metafits_calib).

get_calfile_for_calid: ``cal_id`` must be a calibrator observation with a fit; the zip holds
``<cal_id>.bin``, ``<cal_id>_flagged_tiles.txt``, ``<cal_id>_flags.py`` of its most recent fit (the
same zip, under the same cache key, as get_cal_solution?obs_id=<cal_id>&max_time_separation=0).

Errors are the spec's: 400 when there is no such calibration solution (or the request is malformed),
500 for faults of ours; 503 when the database or S3 cannot be reached.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from chalice import Response

from chalicelib import metadata, params, storage
from chalicelib.api.cal_solution import zip_spec
from chalicelib.config import settings
from chalicelib.db import selection as queries
from chalicelib.errors import BadRequest, Conflict, NotFound, ServiceError
from chalicelib.metadata import stored as stored_metafits
from chalicelib.observability import metrics
from chalicelib.selection.criteria import criteria
from chalicelib.selection.rules import Calibrator, Candidate, Criteria, Target, select
from chalicelib.selection.service import choose
from chalicelib.solutions import TileInfo
from chalicelib.solutions.bundle import deliver
from chalicelib.solutions.rebuild import assemble
from chalicelib.web import error_response, redirect

SUCCESSOR = "/calib/get_cal_solution"
FINE_CHAN_KHZ = 40  # the old service's AO-cal files: 40 kHz, 32 fine channels per coarse channel
GENERATED_METAFITS_TAG = "dbmeta"  # cache-key tag of zips whose metafits was generated from the database


# ---------------------------------------------------------------------------------------------
# The routes


def get_calfile_for_obsid(query: Mapping[str, str] | None) -> Response:
    """302 to a zip of the best solution for obs_id, with its metafits; 400 when there is none."""
    successor = _successor(query, "obs_id")
    return _deprecated(lambda: _for_obsid(query), successor)


def get_calfile_for_calid(query: Mapping[str, str] | None) -> Response:
    """302 to a zip of the calibrator cal_id's most recent fit; 400 when it has none."""
    successor = _successor(query, "cal_id", "&max_time_separation=0")
    return _deprecated(lambda: _for_calid(query), successor)


# When this service marked the old endpoints deprecated (2026-11-24T00:00:00Z), as RFC 9745 wants it:
# a structured-field date, "@" and Unix seconds. A date in the past means "deprecated already".
DEPRECATED_SINCE = "@1795478400"


def deprecation_headers(successor: str) -> dict[str, str]:
    """``Deprecation`` (RFC 9745) and ``Link`` (RFC 8288 rel="successor-version") headers."""
    return {"Deprecation": DEPRECATED_SINCE, "Link": f'<{successor}>; rel="successor-version"'}


def _successor(query: Mapping[str, str] | None, name: str, extra: str = "") -> str:
    """get_cal_solution for the observation the request names, read as the endpoint reads it (bare when unreadable)."""
    try:
        return f"{SUCCESSOR}?obs_id={params.observation_id(query, name)}{extra}"
    except BadRequest:
        return SUCCESSOR


def _deprecated(answer, successor: str) -> Response:
    """Run the endpoint; its answer and its 4xx errors carry the deprecation headers.

    The spec lists only 400 and 500 for these endpoints: "nothing found" (404 elsewhere) is a 400
    here, with the same body. 5xx errors go on to the app's middleware (logged, with a request id)."""
    metrics.add_metric(name="DeprecatedCalls", unit="Count", value=1)
    try:
        response = answer()
    except ServiceError as exc:
        if exc.status >= 500:
            raise
        if isinstance(exc, NotFound):
            exc = BadRequest(exc.message, parameter=exc.parameter, **exc.details)
        response = error_response(exc)
    response.headers.update(deprecation_headers(successor))
    return response


# ---------------------------------------------------------------------------------------------
# get_calfile_for_obsid


def _for_obsid(query: Mapping[str, str] | None) -> Response:
    obs = params.observation_id(query)
    if not params.flag(query, "zipfile", default=True):
        raise BadRequest("only zip output is available: zipfile must be 1 (the default)", parameter="zipfile")
    add_request = params.flag(query, "add_request", default=False)
    nocache = params.flag(query, "nocache", default=False)
    params.integer(query, "asvo_job_id", minimum=0)  # checked even without add_request: one rule for all
    wanted = criteria(query, any_gain=params.present(query, "any_gain"))
    try:
        outcome = choose(obs, wanted)
    except NotFound as exc:
        raise _no_solution(exc, query, obs, add_request) from exc
    best = outcome.selection.best

    cfg = settings()
    # the stored metafits, else the metadata service's (fetched and stored now); generated when neither has it
    stored = storage.exists(cfg.products_bucket, stored_metafits.key(obs)) or metadata.metafits(obs) is not None
    variant = ("metafits",) if stored else ("metafits", GENERATED_METAFITS_TAG)  # the zip holds <obs>.metafits
    spec = zip_spec(obs, best, outcome.target.channels, output_format="aocal", fine_chan_khz=FINE_CHAN_KHZ,
                    nocache=nocache, variant=variant)

    def extra_files() -> dict[str, bytes]:
        return {f"{obs}.metafits": target_metafits(obs, best, outcome.target.channels, spec.fine_chan_khz)}

    url = deliver(spec, download_name=f"{obs}_calfile.zip", extra_files=extra_files)
    metrics.add_metric(name="SolutionsServed", unit="Count", value=1)
    return redirect(url)


def _no_solution(exc: NotFound, query: Mapping[str, str] | None, obs: int, add_request: bool) -> BadRequest:
    """The spec's 400 for "no calibration solution", with what was searched (and queued)."""
    details: dict[str, Any] = dict(exc.details)
    if add_request and not settings().legacy_add_request:
        details["calibration_request"] = {
            "queued": False, "status": 403,
            "message": f"no calibration request was queued: add_request is turned off on this service; queue one "
                       f"with /calib/add_cal_request?obs_id={obs}, sending your API key in the x-api-key header"}
    elif add_request:
        details["calibration_request"] = _queue_request(query, obs)
    return BadRequest(f"no calibration solution for observation {obs}: {exc.message}",
                      parameter=exc.parameter or "obs_id", **details)


def _queue_request(query: Mapping[str, str] | None, obs: int) -> dict[str, Any]:
    """Queue a calibration request as add_cal_request does; what happened, for the 400's body.

    "No calibrator to fit" (404) and "could not be recorded" (409) are reported, not raised: the
    answer stays the spec's 400. Faults (no queue configured, 5xx) propagate."""
    from chalicelib.calrequests import intake

    forwarded = {k: v for k, v in (query or {}).items()
                 if k in ("max_time_separation", "asvo_job_id", "callback_url")}
    forwarded["obs_id"] = str(obs)
    try:
        queued = intake.add(forwarded)
    except (NotFound, Conflict) as exc:
        return {"queued": False, "status": exc.status, "message": exc.message}
    except ServiceError as exc:
        if exc.status >= 500:
            raise
        return {"queued": False, "status": exc.status, "message": exc.message,
                **({"parameter": exc.parameter} if exc.parameter else {})}
    return {"queued": True, "cal_id": queued.cal_id, "obs_id": queued.obs_id}


def target_metafits(obs: int, cand: Candidate, target_channels: Sequence[int], fine_chan_khz: int) -> bytes:
    """The target's metafits with the candidate's fit applied: the stored (or fetched) file, else one generated."""
    from chalicelib.formats import metafits_calib, metafits_generate

    cal, fit = cand.calibrator, cand.fit
    rows = queries.solution_rows(fit.fitid, cal.obsid, quality=True)
    if not rows:
        raise NotFound(f"fit {fit.fitid} of calibrator {cal.obsid} has no solution rows")
    record = queries.fit_record(fit.fitid, cal.obsid) or {"fitid": fit.fitid, "obsid": cal.obsid}
    applied = metafits_calib.AppliedFit.from_record(record, target_obsid=obs, filename=fit.solution_key)
    fine_chan_hz = fine_chan_khz * 1e3

    found = metadata.metafits(obs)  # checked: a readable metafits of obs (an unusable stored one is ignored)
    if found is not None:
        failed = failed_tiles(rows, cal, found.info.tiles, found.info.channels, fine_chan_hz)
        return metafits_calib.apply_calibration_bytes(found.body, applied, rows, cal.channels, failed)

    observation = queries.observation(obs)
    if observation is None:
        raise NotFound(f"observation {obs} is no longer in the schedule database")
    # No tile rows for the target: describe the calibrator's tiles, as the .bin beside it does.
    tiles = observation.tiles or metadata.observation_tiles(cal.obsid)
    if not tiles:
        raise NotFound(f"no tile list is recorded for observation {obs} or its calibrator {cal.obsid}")
    channels = observation.channels or list(target_channels)
    failed = failed_tiles(rows, cal, tiles, channels, fine_chan_hz)
    hdus = metafits_generate.generate_metafits(observation, tiles)
    return metafits_calib.to_bytes(metafits_calib.apply_calibration(hdus, applied, rows, cal.channels, failed))


def failed_tiles(rows: Sequence[Mapping[str, Any]], cal: Calibrator, tiles: Sequence[TileInfo], channels: Sequence[int],
                 fine_chan_hz: float) -> set[int]:
    """Tile ids whose solution is NaN throughout: the same rule (and code) as the flagged-tiles file."""
    usable = sorted(set(int(c) for c in channels) & set(int(c) for c in cal.channels))
    if not usable:
        return {t.tile_id for t in tiles}
    sol = assemble(rows, cal.channels, tiles, usable, fine_chan_hz, (float(cal.obsid), float(cal.stoptime)),
                   cal.obsid, 0)
    flagged = set(sol.flagged_antennas())
    return {t.tile_id for t in tiles if t.antenna in flagged}


# ---------------------------------------------------------------------------------------------
# get_calfile_for_calid


def _for_calid(query: Mapping[str, str] | None) -> Response:
    cal_id = params.integer(query, "cal_id", required=True, minimum=0)
    nocache = params.flag(query, "nocache", default=False)
    best = calibrator_fit(cal_id)
    spec = zip_spec(cal_id, best, best.calibrator.channels, output_format="aocal", fine_chan_khz=FINE_CHAN_KHZ,
                    nocache=nocache)
    url = deliver(spec, download_name=f"{cal_id}_calfile.zip")
    metrics.add_metric(name="SolutionsServed", unit="Count", value=1)
    return redirect(url)


def calibrator_fit(cal_id: int) -> Candidate:
    """The calibrator observation's most recent usable fit; 400 (the spec's) when there is none."""
    found = queries.calibrators_near(cal_id, cal_id, cal_id)
    if not found:
        if queries.target(cal_id) is None:
            raise BadRequest(f"observation {cal_id} does not exist in the schedule database", parameter="cal_id")
        raise BadRequest(f"observation {cal_id} is not marked as a calibrator observation", parameter="cal_id")
    cal = found[0]
    if not cal.channels:
        raise BadRequest(f"calibrator observation {cal_id} has no receiver channels recorded", parameter="cal_id")
    if not cal.fits:
        raise BadRequest(f"calibrator observation {cal_id} has no calibration solution in the database",
                         parameter="cal_id")
    target = Target(obsid=cal_id, channels=cal.channels, gain_control_value=cal.gain_control_value)
    selection = select(target, [cal], Criteria(max_time_separation=0, any_gain=True))
    if not selection.candidates and selection.rejected and selection.rejected[0].code == "retired":
        raise BadRequest(f"calibrator observation {cal_id}: {selection.rejected[0].reason}", parameter="cal_id",
                         fits=[f.fitid for f in cal.fits])
    if not selection.candidates:
        raise BadRequest(f"every calibration fit of calibrator observation {cal_id} failed on every tile",
                         parameter="cal_id", fits=[f.fitid for f in cal.fits])
    return selection.best
