"""The routes under /calib/grafana: health and one POST per plugin action, JSON in and out.

Errors are answered here rather than by the app's middleware so the answer still carries the
route's CORS headers (Chalice adds them only to responses a view returns): a browser-mode
datasource then shows the ``message`` in the panel instead of a CORS failure.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from chalice import Response

from chalicelib import db
from chalicelib.errors import BadRequest, ServiceError
from chalicelib.grafana import options, query
from chalicelib.grafana import body as gbody
from chalicelib.grafana import request as rq
from chalicelib.grafana import timerange as tr
from chalicelib.observability import logger
from chalicelib.web import error_response, json_response

NO_STORE = {"Cache-Control": "no-store"}

ACTIONS: dict[str, Callable[[Mapping[str, Any]], Any]] = {
    "metrics": lambda body: options.metrics(),
    "metric-payload-options": options.payload_options,
    "query": lambda body: query.run(rq.query_request(body)),
    "variable": options.variable,
    "tag-keys": lambda body: options.tag_keys(),
    "tag-values": options.tag_values,
}


def _answer(fn: Callable[[], Any], request_id: str | None) -> Response:
    try:
        return json_response(fn(), headers=NO_STORE)
    except ServiceError as exc:
        if exc.status >= 500:
            logger.warning("grafana: service unavailable", extra={"error": exc.message, "status": exc.status})
        return error_response(exc, request_id)


def _ping() -> dict[str, str]:
    db.query("SELECT 1 AS one")  # DatabaseUnavailable (503) when it does not answer
    return {"status": "ok", "service": "mwa-calib grafana"}


def health(request_id: str | None = None) -> Response:
    """GET /calib/grafana: 200 when the database answers (Grafana's "Save & test")."""
    return _answer(_ping, request_id)


def check_shared_fields(data: Mapping[str, Any]) -> Mapping[str, Any]:
    """The body fields the OpenAPI document describes for every action are checked on every action:
    a malformed ``range``, ``key`` or ``targets`` is a 400 even where the action does not use it."""
    if "range" in data:
        if data["range"] is None:
            raise BadRequest("range must be an object with from and to, got null", parameter="range")
        tr.time_range(data, required=False)
    if "key" in data and data["key"] not in rq.ADHOC_KEYS:
        raise BadRequest(f"key must be one of {', '.join(rq.ADHOC_KEYS)}, got {str(data['key'])[:40]!r}",
                         parameter="key")
    targets = data.get("targets") or []
    if not isinstance(targets, list):
        raise BadRequest(f"targets must be a list, got {type(targets).__name__}", parameter="targets")
    for i, target in enumerate(targets):
        if not isinstance(target, Mapping):
            raise BadRequest(f"targets[{i}] must be an object", parameter=f"targets[{i}]")
    return data


def action(name: str, raw_body: bytes | str | None, request_id: str | None = None) -> Response:
    """POST /calib/grafana/{name}: one of ACTIONS, with the request body as Grafana sent it."""
    def run() -> Any:
        handler = ACTIONS.get(name)
        if handler is None:
            raise BadRequest(f"unknown action {name[:40]!r}; POST one of: {', '.join(ACTIONS)}",
                             parameter="action")
        return handler(check_shared_fields(gbody.body(raw_body)))

    return _answer(run, request_id)
