"""The HTTP answers of the summary page and the fit page: HTML (jinja2, autoescaped), CSV, JSON.

Pages are server-rendered, work without JavaScript and load nothing from elsewhere (inline CSS,
no scripts, no fonts, no CDN); a Content-Security-Policy says so to the browser. Bad parameters
answer 400 and an unknown fit 404, as an HTML page with the message (JSON for format=json).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from chalice import Response

from chalicelib import params
from chalicelib.errors import BadRequest, NotFound
from chalicelib.summary import fitpage, fitstats, page, selection
from chalicelib.web import json_response

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"

# Images come from the products bucket through presigned redirects (any host), styles are inline.
HTML_HEADERS = {
    "Content-Type": "text/html; charset=utf-8",
    "Content-Security-Policy": ("default-src 'none'; style-src 'unsafe-inline'; img-src 'self' https: http:;"
                                " form-action 'self'; base-uri 'none'; frame-ancestors 'none'"),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

_env_lock = threading.Lock()
_env = None


def environment():
    """The jinja2 environment (made once per container): autoescape on for every template."""
    global _env
    with _env_lock:
        if _env is None:
            import jinja2

            _env = jinja2.Environment(
                loader=jinja2.FileSystemLoader(str(TEMPLATES)),
                autoescape=True,
                trim_blocks=True,
                lstrip_blocks=True,
                undefined=jinja2.StrictUndefined,
            )
            _env.filters["metres"] = _metres
        return _env


def _metres(value: Any) -> str:
    return "–" if value is None else f"{value:.3f}"


def render(template: str, **context: Any) -> str:
    return environment().get_template(template).render(**context)


def html(body: str, status: int = 200) -> Response:
    return Response(body=body, status_code=status, headers=dict(HTML_HEADERS))


RAW_SHOWN = 200  # characters of a refused value shown back
_DATETIME_LOCAL = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d{1,3})?)?")
SUMMARY_FIELDS = (("start", "Observations from (AWST)"), ("end", "to (AWST)"))


def refused(exc: BadRequest | NotFound, query: Mapping[str, str] | None) -> dict[str, Any]:
    """What an error page says: the message, the parameter at fault and the value it was sent
    (None when it sent none), cut to ``RAW_SHOWN`` characters; the template escapes it."""
    raw = (query or {}).get(exc.parameter) if exc.parameter else None
    if isinstance(raw, str) and len(raw) > RAW_SHOWN:
        raw = raw[:RAW_SHOWN] + "…"
    return {"message": exc.message, "parameter": exc.parameter, "raw": raw, "status": exc.status}


def datetime_local_holds(value: str) -> bool:
    """Whether an <input type=datetime-local> keeps this value (a browser empties one that it cannot)."""
    if not _DATETIME_LOCAL.fullmatch(value):
        return False
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


def form_fields(values: Mapping[str, str], invalid: str | None = None) -> list[dict[str, Any]]:
    """The summary form's inputs: a value a date-time input cannot hold (GPS seconds, a date, a
    typo) is shown in a text input instead, so the field shows what was sent; the field at fault
    is marked (aria-invalid, described by the message)."""
    out = []
    for name, label in SUMMARY_FIELDS:
        value = str(values.get(name) or "")
        out.append({"name": name, "label": label, "value": value, "invalid": name == invalid,
                    "type": "datetime-local" if not value or datetime_local_holds(value) else "text"})
    return out


def html_error(exc: BadRequest | NotFound, query: Mapping[str, str] | None = None,
               back_url: str = "summary") -> Response:
    """The HTML error page of the fit page: the message, the refused value, and for a bad fit id
    a form to try another (its field marked as the one at fault)."""
    return html(render("error.html", error=refused(exc, query), back_url=back_url), exc.status)


def summary_page(query: Mapping[str, str] | None, now: datetime | None = None) -> Response:
    """GET /calib/summary."""
    try:
        q = page.parse_query(query, now)
    except BadRequest as exc:
        values = {name: str((query or {}).get(name) or "") for name, _ in SUMMARY_FIELDS}
        return html(render("summary.html", data=None, error=refused(exc, query),
                           fields=form_fields(values, exc.parameter)), 400)
    data = page.summary_data(q)
    return html(render("summary.html", data=data, error=None,
                       fields=form_fields({"start": q.start_text, "end": q.end_text})))


def fit_page(query: Mapping[str, str] | None) -> Response:
    """GET /calib/fit?fitid=...[&format=csv|json][&table=receivers|tiles][&rx_sort=..][&tile_sort=..]."""
    fmt = params.choice(query, "format", fitpage.FORMATS, default="html")
    try:
        fitid = params.integer(query, "fitid", required=True, minimum=0)
        table = params.choice(query, "table", fitpage.TABLES, default="")
        if fmt == "csv" and not table:
            raise BadRequest("a CSV holds one table: add table=receivers or table=tiles", parameter="table")
        fit = fitpage.load(fitid)
    except (BadRequest, NotFound) as exc:
        if fmt == "html":
            return html_error(exc, query)
        raise
    if fmt == "json":
        return json_response(fitpage.json_body(fit, table or None))
    if fmt == "csv":
        columns = fitstats.RECEIVER_COLUMNS if table == "receivers" else fitstats.TILE_COLUMNS
        return Response(body=fitstats.to_csv(fit[table], columns), status_code=200, headers={
            "Content-Type": "text/csv; charset=utf-8",
            "Content-Disposition": f'attachment; filename="fit_{fitid}_{table}.csv"',
            "Cache-Control": "no-store",
        })
    return html(render("fit.html", fit=fitpage.html_data(query, fit)))


def selection_page(query: Mapping[str, str] | None) -> Response:
    """GET /calib/selection?obs_id=...: the explanation of the selection as a page, with a form to change it."""
    try:
        data = selection.page_data(query)
    except (BadRequest, NotFound) as exc:
        return html_error(exc, query)
    return html(render("selection.html", d=data))
