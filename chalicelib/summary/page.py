"""The summary page's data: the fits of observations in a time range, newest first, paged.

Form parameters (all optional, GET):

- ``start``, ``end``: AWST date-times as <input type=datetime-local> sends them
  ('2026-03-18T09:30'), a date alone ('2026-03-18', an ``end`` date includes that day), or GPS
  seconds (an obsid). Default: the last 7 days. A fit is listed when any of its observations
  starts (obsid) in [start, end].
- ``page`` (1-based) and ``per_page`` (default 100, at most 1000).

Order: by the latest observation of the fit in the range (newest first), then by when the fit ran
(newest first), so re-fits of one observation sit together. Links are relative (``fit?...``,
``plot/<kind>?...``, ``get_cal_solution?...``) so the pages work under any API Gateway stage prefix.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from chalicelib import gpstime, params
from chalicelib.config import settings
from chalicelib.db import summary as sql
from chalicelib.errors import BadRequest
from chalicelib.summary.selection import selection_url

DEFAULT_DAYS = 7
DEFAULT_PER_PAGE = 100
MAX_PER_PAGE = 1000
PLOT_KINDS = ("tilediff", "timediff", "xydiff", "gains", "gaintimes", "phasefit")


@dataclass(frozen=True)
class SummaryQuery:
    """The validated form."""

    start_gps: int
    end_gps: int
    start_text: str  # what the form shows
    end_text: str
    page: int
    per_page: int
    defaulted: bool  # no range was given: the last 7 days


def parse_query(query: Mapping[str, str] | None, now: datetime | None = None) -> SummaryQuery:
    """Read the form; BadRequest (naming the field) when a value is unusable.

    The form shows the range back in AWST minutes (whatever was sent: a date, a date-time or GPS
    seconds), so submitting it again asks for the same range.
    """
    now = now or gpstime.now()
    raw_start = params.text(query, "start", max_length=64)
    raw_end = params.text(query, "end", max_length=64)
    end_gps = _parse(raw_end if raw_end is not None else gpstime.form_value(now), "end", end=True)
    if raw_start is not None:
        start_gps = _parse(raw_start, "start", end=False)
    else:
        start_gps = _parse(gpstime.form_value(now - timedelta(days=DEFAULT_DAYS)), "start", end=False)
    if start_gps > end_gps:
        raise BadRequest("start must not be after end", parameter="start")
    page = params.integer(query, "page", default=1, minimum=1, maximum=1_000_000)
    per_page = params.integer(query, "per_page", default=DEFAULT_PER_PAGE, minimum=1, maximum=MAX_PER_PAGE)
    return SummaryQuery(start_gps=start_gps, end_gps=end_gps,
                        start_text=gpstime.form_value(gpstime.gps_to_datetime(start_gps)),
                        end_text=gpstime.form_value(gpstime.gps_to_datetime(end_gps)),
                        page=page, per_page=per_page, defaulted=raw_start is None and raw_end is None)


def _parse(text: str, name: str, *, end: bool) -> int:
    try:
        return gpstime.parse_form_time(text, end=end)
    except ValueError as exc:
        raise BadRequest(f"{name}: {exc}", parameter=name) from None


def solution_url(obsid: int, fitid: int) -> str:
    """The download of this fit's solution for the observation (get_cal_solution)."""
    return "get_cal_solution?" + urlencode({"obs_id": obsid, "prefer_fitid": fitid, "max_time_separation": 0})


def fit_url(fitid: int, **extra: Any) -> str:
    return "fit?" + urlencode({"fitid": fitid, **{k: v for k, v in extra.items() if v is not None}})


def plot_url(kind: str, fitid: int, obsid: int, width: int | None = None) -> str:
    """The plot's address (``width``: one of the served pixel widths; none: the full drawing)."""
    query: dict[str, int] = {"fitid": fitid, "obsid": obsid}
    if width is not None:
        query["width"] = width
    return f"plot/{kind}?" + urlencode(query)


def plot_image(kind: str, fitid: int, obsid: int, size: tuple[int, int]) -> dict[str, Any]:
    """What an <img> of a plot needs: every served width as a ``srcset``, ``src`` for browsers
    without one, and the full drawing's pixel ``width`` and ``height`` (so the page keeps its
    place before the image arrives). ``url`` is the full drawing, for the link around it."""
    from chalicelib.plots import pngs

    return {
        "kind": kind,
        "url": plot_url(kind, fitid, obsid),
        "src": plot_url(kind, fitid, obsid, pngs.WIDTHS[len(pngs.WIDTHS) // 2]),
        "srcset": ", ".join(f"{plot_url(kind, fitid, obsid, w)} {w}w" for w in pngs.WIDTHS),
        "width": int(size[0]),
        "height": int(size[1]),
    }


def observation_url(obsid: int) -> str:
    """The observation's information page (base URL from config, the obsid appended)."""
    return f"{settings().obs_page_base_url}{obsid}"


def niter_limit(niter: Any, limit: Any) -> str:
    def fmt(v: Any) -> str:
        if v is None or (isinstance(v, float) and not math.isfinite(v)):
            return "–"
        if isinstance(v, float) and v.is_integer():
            return str(int(v))
        return f"{v:g}" if isinstance(v, float) else str(v)

    return f"{fmt(niter)}/{fmt(limit)}"


def observation_entry(fitid: int, obsid: int, obsname: str | None) -> dict[str, Any]:
    return {
        "obsid": obsid,
        "obsname": obsname if obsname is not None else "(not in schedule)",
        "obs_time_utc": gpstime.format_utc(gpstime.gps_to_datetime(obsid)),
        "solution_url": solution_url(obsid, fitid),
        "selection_url": selection_url(obsid),
        "obs_url": observation_url(obsid),
        "plots": [{"kind": k, "url": plot_url(k, fitid, obsid)} for k in PLOT_KINDS],
    }


def group_fits(rows: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """(fitid, obsid) rows, in page order, as one entry per fit with its observations."""
    fits: dict[int, dict[str, Any]] = {}
    for r in rows:
        fitid = int(r["fitid"])
        fit = fits.get(fitid)
        if fit is None:
            ran = gpstime.fit_ran_at(r.get("fit_time"), fitid)
            fit = fits[fitid] = {
                "fitid": fitid,
                "fit_url": fit_url(fitid),
                "creator": r.get("creator") or "",
                "code_version": r.get("code_version") or "",
                "ran": ran,
                "ran_awst": gpstime.format_awst(ran),
                "ran_utc": gpstime.format_utc(ran),
                "niter_limit": niter_limit(r.get("fit_niter"), r.get("fit_limit")),
                "retired": r.get("retired"),  # an operator retired it: the reason (struck through on the page)
                "observations": [],
            }
        fit["observations"].append(observation_entry(fitid, int(r["obsid"]), r.get("obsname")))
    return list(fits.values())


def summary_data(q: SummaryQuery) -> dict[str, Any]:
    """Everything the summary template shows."""
    rows = sql.fits_page(q.start_gps, q.end_gps, q.per_page, (q.page - 1) * q.per_page)
    total = int(rows[0]["total"]) if rows else (sql.count_fits(q.start_gps, q.end_gps) if q.page > 1 else 0)
    pages = max(1, math.ceil(total / q.per_page))
    base: dict[str, object] = {"start": q.start_gps, "end": q.end_gps}  # exact, whatever the form showed
    if q.per_page != DEFAULT_PER_PAGE:
        base["per_page"] = q.per_page

    def page_url(n: int) -> str:
        return "summary?" + urlencode({**base, "page": n})

    return {
        "query": q,
        "start_awst": gpstime.format_awst(gpstime.gps_to_datetime(q.start_gps), seconds=False),
        "end_awst": gpstime.format_awst(gpstime.gps_to_datetime(q.end_gps), seconds=False),
        "fits": group_fits(rows),
        "total": total,
        "page": q.page,
        "pages": pages,
        "first_index": (q.page - 1) * q.per_page + 1,
        "prev_url": page_url(q.page - 1) if q.page > 1 else None,
        "next_url": page_url(q.page + 1) if q.page < pages else None,
        "page_urls": [(n, page_url(n)) for n in _page_numbers(q.page, pages)],
        "plot_kinds": PLOT_KINDS,
        "newest": newest_fit(q) if total == 0 else None,
    }


def newest_fit(q: SummaryQuery) -> dict[str, Any] | None:
    """For a range that holds no fit: when the newest fit ran, and the link to the week up to its observation."""
    newest = sql.newest_fit()
    if newest is None:
        return None
    obsid = int(newest["obsid"])
    ran = gpstime.fit_ran_at(newest.get("fit_time"), int(newest["fitid"]))
    base: dict[str, object] = {"start": obsid - DEFAULT_DAYS * 86400, "end": obsid}
    if q.per_page != DEFAULT_PER_PAGE:
        base["per_page"] = q.per_page
    return {"fitid": int(newest["fitid"]), "obsid": obsid, "ran_awst": gpstime.format_awst(ran),
            "obs_awst": gpstime.format_awst(gpstime.gps_to_datetime(obsid), seconds=False),
            "url": "summary?" + urlencode(base)}


def _page_numbers(page: int, pages: int) -> list[int]:
    """A short pager: first, last, and two either side of the current page."""
    keep = {1, pages, *range(max(1, page - 2), min(pages, page + 2) + 1)}
    return sorted(keep)
