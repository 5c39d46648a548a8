"""The HTTP answers of the summary page and the fit page: HTML (jinja2, autoescaped), CSV, JSON.

Pages are server-rendered, work without JavaScript and load nothing from elsewhere (inline CSS,
no scripts, no fonts, no CDN); a Content-Security-Policy says so to the browser. Bad parameters
answer 400 and an unknown fit 404, as an HTML page with the message (JSON for format=json).
"""

from __future__ import annotations

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


def html_error(exc: BadRequest | NotFound, back_url: str = "summary") -> Response:
    return html(render("error.html", status=exc.status, message=exc.message, back_url=back_url,
                       parameter=exc.parameter), exc.status)


def summary_page(query: Mapping[str, str] | None, now: datetime | None = None) -> Response:
    """GET /calib/summary."""
    try:
        q = page.parse_query(query, now)
    except BadRequest as exc:
        return html(render("summary.html", data=None, error=exc.message,
                           start=(query or {}).get("start", ""), end=(query or {}).get("end", "")), 400)
    data = page.summary_data(q)
    return html(render("summary.html", data=data, error=None, start=q.start_text, end=q.end_text))


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
            return html_error(exc)
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
        return html_error(exc)
    return html(render("selection.html", d=data))
