"""The OpenAPI 3 description of every public endpoint, served at ``GET /calib/openapi.json``.

Built here as plain Python data (no extra dependency). ``tests/test_openapi.py`` checks it: it is
a valid OpenAPI 3.0 document, every route of the app is described and every description is a
route, and the enumerations and defaults below equal the ones the code uses (the constants are
repeated here so serving the document imports nothing heavy).
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Mapping
from typing import Any

from chalicelib import openapi_admin

VERSION = "1.0.0"

# Repeated from the code (checked by tests/test_openapi.py).
OUTPUT_FORMATS = ("aocal", "hyperdrive", "auto")                 # solutions.bundle.FORMATS
FINE_CHAN_KHZ = (10, 20, 40, 80, 160, 320, 640, 1280)           # solutions.bundle.FINE_CHAN_KHZ
DEFAULT_MAX_TIME_SEPARATION = 86400                             # params.DEFAULT_MAX_TIME_SEPARATION
MAX_TIME_SEPARATION = 10 * 365 * 86400                           # params.MAX_TIME_SEPARATION
PLOT_KINDS = ("tilediff", "timediff", "xydiff", "gains", "gaintimes")  # plots.KINDS
PLOT_FORMATS = ("png", "json")                                   # plots.service.FORMATS
FIT_FORMATS = ("html", "csv", "json")                            # summary.fitpage.FORMATS
FIT_TABLES = ("receivers", "tiles")                              # summary.fitpage.TABLES
SUMMARY_DEFAULT_PER_PAGE = 100                                   # summary.page.DEFAULT_PER_PAGE
SUMMARY_MAX_PER_PAGE = 1000                                      # summary.page.MAX_PER_PAGE
SUMMARY_DEFAULT_DAYS = 7                                         # summary.page.DEFAULT_DAYS
GRAFANA_ACTIONS = ("metrics", "metric-payload-options", "query", "variable", "tag-keys", "tag-values")
CALLBACK_URL_MAX = 2048                                          # requests.urls.MAX_URL_LENGTH
API_KEY_HEADER = "x-api-key"

_JSON = "application/json"


def _ref(kind: str, name: str) -> dict[str, str]:
    return {"$ref": f"#/components/{kind}/{name}"}


def _int_param(name: str, description: str, *, required: bool = False, default: int | None = None,
               minimum: int | None = 0, maximum: int | None = None, example: int | None = None) -> dict:
    schema: dict[str, Any] = {"type": "integer", "format": "int64"}
    if minimum is not None:
        schema["minimum"] = minimum
    if maximum is not None:
        schema["maximum"] = maximum
    if default is not None:
        schema["default"] = default
    param = {"name": name, "in": "query", "required": required, "description": description, "schema": schema}
    if example is not None:
        param["example"] = example
    return param


def _flag_param(name: str, description: str, default: int) -> dict:
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": {"type": "integer", "enum": [0, 1], "default": default}}


def _choice_param(name: str, description: str, options: tuple, default: Any | None) -> dict:
    schema: dict[str, Any] = {"type": "integer" if isinstance(options[0], int) else "string", "enum": list(options)}
    if default is not None:
        schema["default"] = default
    return {"name": name, "in": "query", "required": False, "description": description, "schema": schema}


def _text_param(name: str, description: str, max_length: int, example: str | None = None) -> dict:
    param = {"name": name, "in": "query", "required": False, "description": description,
             "schema": {"type": "string", "maxLength": max_length}}
    if example is not None:
        param["example"] = example
    return param


def _errors(*codes: int) -> dict[str, Any]:
    names = {400: "BadRequest", 404: "NotFound", 409: "Conflict", 500: "InternalError", 503: "Unavailable"}
    return {str(c): _ref("responses", names[c]) for c in codes}


REDIRECT_HEADERS = {
    "Location": {"description": "presigned S3 URL of the file (valid for CALIB_PRESIGN_EXPIRY_S, 1 h)",
                 "schema": {"type": "string", "format": "uri"}},
    "Cache-Control": {"schema": {"type": "string", "example": "no-store"}},
}
DEPRECATION_HEADERS = {
    "Deprecation": {"description": "RFC 9745: deprecated since 2026-11-24 (`@` and Unix seconds)",
                    "schema": {"type": "string", "enum": ["@1795478400"]}},
    "Link": {"description": 'the successor, `</calib/get_cal_solution?obs_id=...>; rel="successor-version"`',
             "schema": {"type": "string"}},
}


def _components() -> dict[str, Any]:
    schemas = {
        "Error": {
            "type": "object", "required": ["error", "message"],
            "properties": {
                "error": {"type": "string", "description": "machine-readable class",
                          "enum": ["bad_request", "not_found", "conflict", "internal_error",
                                   "database_unavailable", "storage_unavailable", "secret_unavailable"]},
                "message": {"type": "string"},
                "parameter": {"type": "string", "description": "the query parameter at fault (400)"},
                "request_id": {"type": "string", "description": "5xx: quote it; the log has the trace"},
            },
            "additionalProperties": True,
        },
        "SelectionNotFound": {
            "allOf": [_ref("schemas", "Error"), {"type": "object", "properties": {
                "searched": {"type": "object", "additionalProperties": True,
                             "description": "the search window (GPS seconds), gain_control_value and coarse channels"},
                "nearest_rejected": {"type": "object", "nullable": True, "additionalProperties": True,
                                     "description": "the nearest calibrator not used, and why"},
            }}],
        },
        "Health": {
            "type": "object", "required": ["ok", "checks"],
            "properties": {
                "ok": {"type": "boolean"},
                "checks": {"type": "object", "additionalProperties": {
                    "type": "object", "required": ["ok"],
                    "properties": {"ok": {"type": "boolean"}, "ms": {"type": "number"},
                                   "error": {"type": "string"}}}},
            },
            "example": {"ok": True, "checks": {"database": {"ok": True, "ms": 1.2},
                                               "calibration_bucket": {"ok": True, "ms": 20.1},
                                               "products_bucket": {"ok": True, "ms": 18.4},
                                               "request_queue": {"ok": True, "ms": 9.8}}},
        },
        "CalFits": {
            "type": "object",
            "description": "fitid -> [calid, offset, filename]: calid the calibrator observation, offset "
                           "abs(obs_id - calid) in seconds, filename the fit's hyperdrive solutions file in "
                           "the calibration bucket (null when none is recorded); best candidate first.",
            "additionalProperties": {
                "type": "array", "minItems": 3, "maxItems": 3,
                "items": {"nullable": True, "oneOf": [{"type": "integer"}, {"type": "string"}]}},
            "example": {"1717000000": [1120493424, 416, "fits/1120493424/1717000000/1120493424_solutions.fits"]},
        },
        "CallbackBody": {
            "type": "object",
            "required": ["cal_id", "asvo_job_id", "target_obs_id", "finished_datetime", "success", "message"],
            "properties": {
                "cal_id": {"type": "integer", "description": "the calibrator observation that was fitted"},
                "asvo_job_id": {"type": "integer", "nullable": True},
                "target_obs_id": {"type": "integer", "description": "the observation being reduced"},
                "finished_datetime": {"type": "string", "format": "date-time", "description": "ISO 8601 UTC"},
                "success": {"type": "boolean"},
                "message": {"type": "string"},
            },
        },
        "GrafanaHealth": {"type": "object", "properties": {"status": {"type": "string", "enum": ["ok"]},
                                                             "service": {"type": "string"}}},
        "GrafanaRequest": {
            "type": "object", "additionalProperties": True,
            "description": "what the Grafana JSON datasource (simpod-json-datasource 0.6) sends for the action: "
                           "query: {range: {from, to}, targets: [{target, payload}], ...}; "
                           "metric-payload-options: {metric, payload, name}; variable: {payload, range}; "
                           "tag-values: {key}; metrics and tag-keys: {} (or {metric, payload}).",
        },
        "OpenAPI": {"type": "object", "additionalProperties": True},
    }
    responses = {
        "BadRequest": {"description": "missing, malformed or unknown parameter value (or no such observation)",
                       "content": {_JSON: {"schema": _ref("schemas", "Error")}}},
        "NotFound": {"description": "valid request, but no calibrator/fit matches; says what was searched",
                     "content": {_JSON: {"schema": _ref("schemas", "SelectionNotFound")}}},
        "Conflict": {"description": "the request could not be recorded (the request queue refused it)",
                     "content": {_JSON: {"schema": _ref("schemas", "Error")}}},
        "InternalError": {"description": "a fault of the service; the body has a request_id",
                          "content": {_JSON: {"schema": _ref("schemas", "Error")}}},
        "Unavailable": {"description": "the database, S3 or SQS cannot be reached; retry later",
                        "content": {_JSON: {"schema": _ref("schemas", "Error")}}},
        "Redirect": {"description": "redirect to the file: a presigned S3 URL (clients must follow it; curl -L)",
                     "headers": REDIRECT_HEADERS},
    }
    parameters = {
        "obs_id": _int_param("obs_id", "target observation id (GPS seconds)", required=True, example=1120493008),
        "max_time_separation": _int_param(
            "max_time_separation", "largest |calibrator start - obs_id| in seconds; 0 asks for the "
            "observation's own fit (obs_id is a calibrator)", default=DEFAULT_MAX_TIME_SEPARATION,
            maximum=MAX_TIME_SEPARATION),
        "allow_after": _flag_param("allow_after", "1: calibrators after obs_id may be used; 0: only before", 1),
        "prefer_fitid": _int_param("prefer_fitid", "use this fit (Unix time the fit ran) when it is a candidate; "
                                   "404 with the reason otherwise"),
        "nocache": _flag_param("nocache", "1: rebuild the zip from the database instead of the cached one", 0),
    }
    return {
        "schemas": schemas, "responses": responses, "parameters": parameters,
        "securitySchemes": {"api_key": {"type": "apiKey", "in": "header", "name": API_KEY_HEADER,
                                        "description": "API Gateway usage-plan key (prod); only add_cal_request "
                                                       "needs one"},
                            **openapi_admin.SECURITY_SCHEMES},
    }


def _selection_params() -> list[dict]:
    return [_ref("parameters", n) for n in ("obs_id", "max_time_separation", "allow_after", "prefer_fitid")]


def _paths() -> dict[str, Any]:
    html = "text/html"
    return {
        "/calib/health": {"get": {
            "operationId": "health", "tags": ["operations"],
            "summary": "Whether the database, both buckets and the request queue answer",
            "responses": {
                "200": {"description": "every dependency answered",
                        "content": {_JSON: {"schema": _ref("schemas", "Health")}}},
                "503": {"description": "some dependency did not answer (see checks)",
                        "content": {_JSON: {"schema": _ref("schemas", "Health")}}},
                "500": _ref("responses", "InternalError"),
            }}},
        "/calib/get_cal_solution": {"get": {
            "operationId": "get_cal_solution", "tags": ["solutions"],
            "summary": "The best calibration solution for an observation, as a zip",
            "description": (
                "Chooses the calibrator with the observation's gain_control_value, within max_time_separation, "
                "covering its coarse channels (closest first, before wins ties; on it the most recent fit) and "
                "redirects to `<obs_id>_cal_solution.zip`: `<cal_id>.bin` (AO-cal; `<cal_id>_solutions.fits` "
                "for hyperdrive), `<obs_id>_flagged_tiles.txt`, `<obs_id>_flags.py`."),
            "parameters": [
                *_selection_params(), _ref("parameters", "nocache"),
                _choice_param("output_format", "solution file format; auto: hyperdrive when the fit has a "
                              "hyperdrive file, else aocal", OUTPUT_FORMATS, "aocal"),
                _choice_param("fine_chan_khz", "fine channel width of the written solution (kHz)", FINE_CHAN_KHZ, 40),
            ],
            "responses": {"302": _ref("responses", "Redirect"), **_errors(400, 404, 500, 503)}}},
        "/calib/get_cal_fits": {"get": {
            "operationId": "get_cal_fits", "tags": ["solutions"],
            "summary": "Every calibration fit that could serve an observation",
            "parameters": _selection_params(),
            "responses": {"200": {"description": "candidate fits, best first",
                                  "content": {_JSON: {"schema": _ref("schemas", "CalFits")}}},
                          **_errors(400, 404, 500, 503)}}},
        "/calib/add_cal_request": {"get": {
            "operationId": "add_cal_request", "tags": ["requests"],
            "summary": "Ask for a calibration fit for an observation (and a callback when it is done)",
            "description": (
                "Chooses the calibrator to fit (as get_cal_solution does, without needing a fit), checks the "
                "callback URL and queues the request. In prod API Gateway requires an API key "
                f"(`{API_KEY_HEADER}` header, usage plan `mwa-calib-prod-add-cal-request`)."),
            "security": [{"api_key": []}],
            "parameters": [
                _ref("parameters", "obs_id"), _ref("parameters", "max_time_separation"),
                _int_param("asvo_job_id", "the ASVO job the fit is for; sent back in the callback"),
                _text_param("callback_url", "http(s) URL POSTed (CallbackBody, JSON) when the fit finishes; "
                            "no loopback, private or metadata addresses", CALLBACK_URL_MAX,
                            example="https://asvo.example.org/calib-done"),
            ],
            "responses": {
                "200": {"description": "queued (empty body)",
                        "content": {"text/plain": {"schema": {"type": "string", "maxLength": 0}}}},
                "403": {"description": "no or unknown API key (API Gateway, prod)",
                        "content": {_JSON: {"schema": {"type": "object",
                                                        "properties": {"message": {"type": "string"}}}}}},
                **_errors(400, 404, 409, 500, 503)},
            "callbacks": {"fitFinished": {"{$request.query.callback_url}": {"post": {
                "summary": "the fit finished (successfully or not); retried for 24 h until a 2xx",
                "parameters": [
                    {"name": "X-MWA-Calib-Delivery", "in": "header", "required": True,
                     "description": "the request's id: the same on every retry", "schema": {"type": "string"}},
                    {"name": "X-MWA-Calib-Signature", "in": "header", "required": False,
                     "description": "`sha256=<hex>` HMAC-SHA256 of the body with the shared signing secret",
                     "schema": {"type": "string"}},
                ],
                "requestBody": {"required": True,
                                "content": {_JSON: {"schema": _ref("schemas", "CallbackBody")}}},
                "responses": {"2XX": {"description": "delivered"},
                              "default": {"description": "any other answer is retried"}}}}}},
        }},
        "/calib/summary": {"get": {
            "operationId": "summary", "tags": ["quality"],
            "summary": "The summary page: every calibration fit in a time range (HTML)",
            "parameters": [
                _text_param("start", "range start: a date, date-time (AWST) or GPS seconds; default "
                            f"{SUMMARY_DEFAULT_DAYS} days before end", 64, example="2025-06-01"),
                _text_param("end", "range end: a date, date-time (AWST) or GPS seconds; default now", 64),
                _int_param("page", "page of the fit table", default=1, minimum=1, maximum=1_000_000),
                _int_param("per_page", "fits per page", default=SUMMARY_DEFAULT_PER_PAGE, minimum=1,
                           maximum=SUMMARY_MAX_PER_PAGE),
            ],
            "responses": {
                "200": {"description": "the page", "content": {html: {"schema": {"type": "string"}}}},
                "400": {"description": "unusable start/end (the page shows why)",
                        "content": {html: {"schema": {"type": "string"}}}},
                **_errors(500, 503)}}},
        "/calib/fit": {"get": {
            "operationId": "fit_page", "tags": ["quality"],
            "summary": "One fit: median cable-length residuals per receiver and per tile",
            "parameters": [
                _int_param("fitid", "the fit id", required=True),
                _choice_param("format", "html page, one table as CSV, or JSON", FIT_FORMATS, "html"),
                _choice_param("table", "the table (required for csv; json: only this table)", FIT_TABLES, None),
                _text_param("rx_sort", "html: receiver table sort column (prefix - for descending)", 40),
                _text_param("tile_sort", "html: tile table sort column (prefix - for descending)", 40),
            ],
            "responses": {
                "200": {"description": "the fit", "content": {
                    html: {"schema": {"type": "string"}},
                    "text/csv": {"schema": {"type": "string"}},
                    _JSON: {"schema": {"type": "object", "additionalProperties": True}}}},
                "400": {"description": "bad parameter (HTML page for format=html, else JSON Error)",
                        "content": {html: {"schema": {"type": "string"}},
                                    _JSON: {"schema": _ref("schemas", "Error")}}},
                "404": {"description": "no such fit (HTML page for format=html, else JSON Error)",
                        "content": {html: {"schema": {"type": "string"}},
                                    _JSON: {"schema": _ref("schemas", "Error")}}},
                **_errors(500, 503)}}},
        "/calib/plot/{kind}": {"get": {
            "operationId": "plot", "tags": ["quality"],
            "summary": "A diagnostic plot of a fit (PNG via redirect, or its data as JSON)",
            "parameters": [
                {"name": "kind", "in": "path", "required": True, "description": "which plot",
                 "schema": {"type": "string", "enum": list(PLOT_KINDS)}},
                _int_param("fitid", "the fit id", required=True),
                _int_param("obsid", "the observation of the fit (needed when the fit has several)"),
                _choice_param("format", "png: redirect to the stored PNG; json: the plotted data", PLOT_FORMATS,
                              "png"),
            ],
            "responses": {
                "302": _ref("responses", "Redirect"),
                "200": {"description": "format=json: the data behind the plot",
                        "content": {_JSON: {"schema": {"type": "object", "additionalProperties": True}}}},
                "400": _ref("responses", "BadRequest"),
                "404": {"description": "unknown kind, fit or observation",
                        "content": {_JSON: {"schema": _ref("schemas", "Error")}}},
                **_errors(500, 503)}}},
        "/calib/get_calfile_for_obsid": {"get": {
            "operationId": "get_calfile_for_obsid", "tags": ["deprecated"], "deprecated": True,
            "summary": "Deprecated: use get_cal_solution. The best solution with the metafits, as a zip",
            "description": (
                "Redirects to `<obs_id>_calfile.zip`: `<cal_id>.bin`, `<obs_id>_flagged_tiles.txt`, "
                "`<obs_id>_flags.py`, `<obs_id>.metafits` (the fit applied). No solution is a 400 (not 404)."),
            "parameters": [
                *_selection_params(), _ref("parameters", "nocache"),
                {"name": "any_gain", "in": "query", "required": False, "allowEmptyValue": True,
                 "description": "present (with or without a value): ignore gain_control_value",
                 "schema": {"type": "string"}},
                _flag_param("zipfile", "accepted for old scripts; only 1 (zip) is available", 1),
                _flag_param("add_request", "1: when no solution is found, queue a calibration request (as "
                            "add_cal_request; the 400 says what was queued, or that the service has "
                            "turned this off)", 0),
                _int_param("asvo_job_id", "with add_request=1: as add_cal_request"),
                _text_param("callback_url", "with add_request=1: as add_cal_request", CALLBACK_URL_MAX),
            ],
            "responses": {
                "302": {"description": "redirect to the zip (presigned S3 URL)",
                        "headers": {**REDIRECT_HEADERS, **DEPRECATION_HEADERS}},
                "400": {"description": "no calibration solution, or a bad parameter",
                        "headers": DEPRECATION_HEADERS,
                        "content": {_JSON: {"schema": _ref("schemas", "SelectionNotFound")}}},
                **_errors(500, 503)}}},
        "/calib/get_calfile_for_calid": {"get": {
            "operationId": "get_calfile_for_calid", "tags": ["deprecated"], "deprecated": True,
            "summary": "Deprecated: use get_cal_solution with max_time_separation=0. A calibrator's own solution",
            "parameters": [
                _int_param("cal_id", "a calibrator observation id", required=True, example=1120493424),
                _ref("parameters", "nocache"),
            ],
            "responses": {
                "302": {"description": "redirect to the zip (presigned S3 URL)",
                        "headers": {**REDIRECT_HEADERS, **DEPRECATION_HEADERS}},
                "400": {"description": "not a calibrator, or it has no usable fit",
                        "headers": DEPRECATION_HEADERS,
                        "content": {_JSON: {"schema": _ref("schemas", "Error")}}},
                **_errors(500, 503)}}},
        "/calib/grafana": {"get": {
            "operationId": "grafana_health", "tags": ["grafana"],
            "summary": "Grafana JSON datasource health (\"Save & test\")",
            "responses": {"200": {"description": "the database answers",
                                  "content": {_JSON: {"schema": _ref("schemas", "GrafanaHealth")}}},
                          **_errors(500, 503)}}},
        "/calib/grafana/{action}": {"post": {
            "operationId": "grafana_action", "tags": ["grafana"],
            "summary": "Grafana JSON datasource actions: metrics, payload options, query, variables, tags",
            "parameters": [{"name": "action", "in": "path", "required": True,
                            "schema": {"type": "string", "enum": list(GRAFANA_ACTIONS)}}],
            "requestBody": {"required": False, "content": {
                _JSON: {"schema": _ref("schemas", "GrafanaRequest")},
                "text/plain": {"schema": {"type": "string", "description": "JSON text"}},
                "application/x-www-form-urlencoded": {"schema": {"type": "string", "description": "JSON text"}}}},
            "responses": {
                "200": {"description": "metrics: [{label, value, payloads}]; metric-payload-options: "
                                       "[{label, value}]; query: data frames [{schema, data}] (one per tile) "
                                       "or a source table; variable: [{__text, __value}]; tag-keys: "
                                       "[{type, text}]; tag-values: [{text}]",
                        "content": {_JSON: {"schema": {"oneOf": [
                            {"type": "array", "items": {"type": "object", "additionalProperties": True}},
                            {"type": "object", "additionalProperties": True}]}}}},
                **_errors(400, 500, 503)}}},
        "/calib/openapi.json": {"get": {
            "operationId": "openapi", "tags": ["operations"],
            "summary": "This description (OpenAPI 3.0)",
            "responses": {"200": {"description": "the OpenAPI document",
                                  "content": {_JSON: {"schema": _ref("schemas", "OpenAPI")}}}}}},
    }


_lock = threading.Lock()
_document: dict[str, Any] | None = None


def document(server_url: str | None = None) -> dict[str, Any]:
    """The OpenAPI document (a fresh copy); ``server_url`` sets ``servers`` (else the public host)."""
    global _document
    with _lock:
        if _document is None:
            _document = {
                "openapi": "3.0.3",
                "info": {
                    "title": "MWA calibration web services",
                    "version": VERSION,
                    "description": (
                        "Calibration solutions for MWA observations (get_cal_solution, get_cal_fits), fit "
                        "requests with callbacks (add_cal_request), fit-quality pages, plots and the Grafana "
                        "datasource, and the two deprecated endpoints. Errors are JSON `{error, message, "
                        "parameter}`; 5xx answers carry a `request_id` that the logs carry too."),
                },
                "servers": [{"url": "https://ws.mwatelescope.org"}],
                "tags": [{"name": n} for n in
                         ("solutions", "requests", "quality", "grafana", "deprecated", "operations", "admin")],
                "paths": {**_paths(), **openapi_admin.paths()},
                "components": _components(),
            }
        doc = copy.deepcopy(_document)
    if server_url:
        doc["servers"] = [{"url": server_url}]
    return doc


def server_url(headers: Mapping[str, str] | None, context: Mapping[str, Any] | None) -> str | None:
    """The base URL the caller used: host, plus the API Gateway stage on an execute-api host."""
    headers = {k.lower(): v for k, v in (headers or {}).items()}
    context = context or {}
    host = context.get("domainName") or headers.get("host")
    if not host or any(c in host for c in "/\\ \"'<>"):
        return None
    proto = (headers.get("x-forwarded-proto") or ("http" if host.startswith(("127.0.0.1", "localhost"))
                                                   else "https")).split(",")[0].strip()
    if proto not in ("http", "https"):
        proto = "https"
    stage = context.get("stage")
    if host.endswith(".amazonaws.com") and stage and stage != "$default":
        return f"{proto}://{host}/{stage}"
    return f"{proto}://{host}"
