"""Drawing a fit's plots when it lands, so the first view of its fit page finds them stored.

The S3-event function (:mod:`chalicelib.ingest.events`) calls :func:`after_landing` once a fit is
in the database (a manifest ingest, or the site pipeline's ``<cal_id>_solutions.fits``): every kind
(``KINDS``, what the fit page shows) of that observation, each stored at every width by
:func:`chalicelib.plots.service.ensure_stored` (a plot already stored is not drawn again, so a
repeated event costs one HEAD per kind). Drawing is a convenience: a failure is logged and
counted, never raised, and the landing and its callbacks are unaffected (the page then draws the
plot on demand, as before). Window plots of OTHER fits whose window the new fit enters get new
keys and are left to their first view (README, "Summary page, fit page and plots").
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from chalicelib.observability import logger
from chalicelib.plots import KINDS

# Stop drawing when the function has less than this left: the landing's own work is done, and a
# plot not drawn now is drawn on its first view.
RESERVE_MS = 30_000


@dataclass
class Drawn:
    """What drawing a fit's plots did: plots drawn now, found stored, failed, skipped for time; seconds."""

    fitid: int
    obsid: int
    drawn: int = 0
    stored: int = 0
    failed: int = 0
    skipped: int = 0
    seconds: float = 0.0


def _time_left_ms(context: Any) -> float:
    """The Lambda's remaining milliseconds (no context: unlimited)."""
    get = getattr(context, "get_remaining_time_in_millis", None)
    return float(get()) if callable(get) else float("inf")


def draw_fit(fitid: int, obsid: int, kinds: Sequence[str] = KINDS, context: Any = None) -> Drawn:
    """Store every plot of ``kinds`` of the fit's observation at every width; failures are logged and counted."""
    from chalicelib.plots import service

    from chalicelib.db import summary as sql

    out = Drawn(fitid=int(fitid), obsid=int(obsid))
    t0 = time.perf_counter()
    if int(obsid) not in {int(r["obsid"]) for r in sql.fit_observations(int(fitid))}:
        logger.info("plots not drawn: the fit is not in the database (yet)", extra={"fitid": fitid, "obs_id": obsid})
        out.skipped = len(kinds)
        return out
    for kind in kinds:
        if _time_left_ms(context) < RESERVE_MS:
            out.skipped += 1
            continue
        try:
            _, drawn_now = service.ensure_stored(kind, service.context(kind, int(fitid), int(obsid)))
        except Exception as exc:  # noqa: BLE001 - a plot not drawn now is drawn on its first view
            logger.warning("plot not drawn at landing; it will be drawn on its first view", extra={
                "fitid": fitid, "obs_id": obsid, "kind": kind, "error": f"{type(exc).__name__}: {exc}"})
            out.failed += 1
            continue
        if drawn_now:
            out.drawn += 1
        else:
            out.stored += 1
    out.seconds = round(time.perf_counter() - t0, 3)
    return out


def after_landing(fitid: int, obsid: int, context: Any = None) -> dict[str, Any]:
    """Draw the landed fit's plots (:func:`draw_fit`); never raises. A small report for the event's answer."""
    try:
        drawn = draw_fit(fitid, obsid, context=context)
    except Exception as exc:  # noqa: BLE001 - never fail a landing for its pictures
        logger.warning("plots not drawn at landing", extra={"fitid": fitid, "obs_id": obsid,
                                                            "error": f"{type(exc).__name__}: {exc}"})
        return {"drawn": 0, "error": f"{type(exc).__name__}: {exc}"}
    report = asdict(drawn)
    logger.info("plots drawn at landing", extra=report)
    return {k: v for k, v in report.items() if k not in ("fitid", "obsid")}
