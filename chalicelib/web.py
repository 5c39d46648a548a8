"""Building HTTP answers: JSON, redirects, and the one mapping from errors to status codes."""

from __future__ import annotations

import json
import math
from typing import Any

from chalice import CORSConfig, Response

from chalicelib.errors import ServiceError

JSON = {"Content-Type": "application/json"}

# Browser-mode datasources: any origin; the headers a Grafana front end or a reverse proxy may add
# besides Content-Type and Authorization (Chalice's default list has neither X-Grafana-* nor the
# dashboard/panel ids), and a 10-minute preflight cache so a dashboard refresh is one round trip.
GRAFANA_CORS = CORSConfig(
    allow_origin="*",
    allow_headers=["Accept", "X-Grafana-Org-Id", "X-Grafana-Device-Id", "X-Grafana-NoCache", "X-Dashboard-Uid",
                   "X-Dashboard-Id", "X-Panel-Id", "X-Datasource-Uid", "X-Plugin-Id", "X-Query-Group-Id",
                   "X-Requested-With"],
    max_age=600,
)


def _clean(value: Any) -> Any:
    """JSON has no NaN: send null instead."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A JSON answer (NaN and infinities become null)."""
    return Response(body=json.dumps(_clean(body), separators=(",", ":")), status_code=status,
                    headers={**JSON, **(headers or {})})


def redirect(url: str, headers: dict[str, str] | None = None, cache_control: str = "no-store") -> Response:
    """A 302 to the URL (a presigned S3 download); not kept by browsers unless ``cache_control`` says so."""
    return Response(body="", status_code=302,
                    headers={"Location": url, "Cache-Control": cache_control, **(headers or {})})


def error_response(exc: ServiceError, request_id: str | None = None) -> Response:
    """The JSON answer for a ServiceError."""
    body = exc.body()
    if request_id and exc.status >= 500:
        body["request_id"] = request_id
    return json_response(body, exc.status)


def internal_error(request_id: str | None) -> Response:
    """The answer for a fault of ours: no details, a request id to find it in the log."""
    return json_response({"error": "internal_error", "message": "internal error; quote the request id",
                          "request_id": request_id}, 500)


# Chalice's own error codes (405, 415, its 400 for a binary answer) -> this service's ``error`` names.
CHALICE_ERRORS = {"MethodNotAllowedError": "method_not_allowed", "UnsupportedMediaType": "unsupported_media_type",
                  "BadRequestError": "bad_request", "BadRequest": "bad_request", "NotFoundError": "not_found"}


def is_chalice_error(response: Response) -> bool:
    """Whether Chalice itself made this answer (its ``{"Code", "Message"}`` body)."""
    return isinstance(response.body, dict) and "Code" in response.body and "Message" in response.body


def from_chalice_error(response: Response, request_id: str | None) -> Response:
    """Chalice's own error answer in this service's documented body, status and headers kept."""
    code = str(response.body.get("Code"))
    body: dict[str, Any] = {"error": CHALICE_ERRORS.get(code, "bad_request" if response.status_code < 500
                                                        else "internal_error"),
                            "message": str(response.body.get("Message"))}
    if response.status_code >= 500:
        body["request_id"] = request_id
    return json_response(body, response.status_code, headers={k: v for k, v in (response.headers or {}).items()
                                                              if k.lower() != "content-type"})
