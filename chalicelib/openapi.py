"""The OpenAPI 3 description of every public endpoint, served at ``GET /calib/openapi.json``.

Built here as plain Python data (no extra dependency). ``tests/test_openapi.py`` checks it: it is
a valid OpenAPI 3.0 document, every route of the app is described and every description is a
route, and the enumerations and defaults below equal the ones the code uses (the constants are
repeated here so serving the document imports nothing heavy). ``tests/test_contract.py`` holds the
app to it: every example answers on the demo data, and schemathesis finds no answer it does not allow.
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
SOURCES = ("table", "file", "best")                              # solutions.sources.SOURCES
DEFAULT_MAX_TIME_SEPARATION = 86400                             # params.DEFAULT_MAX_TIME_SEPARATION
MAX_TIME_SEPARATION = 10 * 365 * 86400                           # params.MAX_TIME_SEPARATION
PLOT_KINDS = ("tilediff", "timediff", "xydiff", "gains", "gaintimes", "phasefit")  # plots.KINDS
PLOT_FORMATS = ("png", "json")                                   # plots.service.FORMATS
PLOT_WIDTHS = (480, 960, 1440)                                   # plots.pngs.WIDTHS
FIT_FORMATS = ("html", "csv", "json")                            # summary.fitpage.FORMATS
FIT_TABLES = ("receivers", "tiles")                              # summary.fitpage.TABLES
SUMMARY_DEFAULT_PER_PAGE = 100                                   # summary.page.DEFAULT_PER_PAGE
SUMMARY_MAX_PER_PAGE = 1000                                      # summary.page.MAX_PER_PAGE
SUMMARY_DEFAULT_DAYS = 7                                         # summary.page.DEFAULT_DAYS
GRAFANA_ACTIONS = ("metrics", "metric-payload-options", "query", "variable", "tag-keys", "tag-values")
CALLBACK_URL_MAX = 2048                                          # requests.urls.MAX_URL_LENGTH
API_KEY_HEADER = "x-api-key"
# Examples that answer on the local stack's demo data (tests/test_contract.py runs each one).
EXAMPLE_CAL_ID, EXAMPLE_FITID = 1457865688, 1773831785589944

_JSON = "application/json"
GRAFANA_TAG_KEYS = ("receiver", "source", "channel")                # grafana.options (tag-values keys)
# One body per action, named for it (the week of the real observations in the demo data).
GRAFANA_EXAMPLES = {
    "query": {"summary": "query: range is required", "value": {
        "range": {"from": "2026-03-15T00:00:00.000Z", "to": "2026-03-22T00:00:00.000Z"},
        "targets": [{"target": "rec01"}]}},
    "tag-values": {"summary": "tag-values: key is required", "value": {"key": "receiver"}},
    "metrics": {"summary": "metrics: no fields", "value": {}},
}
# params.py's one rule for empty values: typed parameters refuse ``name=``, free text takes it as absent.
EMPTY_TEXT = " (empty: as if not given)"
EMPTY_RULE = ("An integer, 0/1 or enumerated query parameter given without a value (`name=`) is a 400, "
              "never the default: leave it out for the default. A free-text parameter given empty is as if "
              "absent (those declare allowEmptyValue).")


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


def _fraction_param(name: str, description: str) -> dict:
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": {"type": "number", "minimum": 0, "maximum": 1, "default": 0}}


def _choice_param(name: str, description: str, options: tuple, default: Any | None) -> dict:
    schema: dict[str, Any] = {"type": "integer" if isinstance(options[0], int) else "string", "enum": list(options)}
    if default is not None:
        schema["default"] = default
    return {"name": name, "in": "query", "required": False, "description": description, "schema": schema}


def _text_param(name: str, description: str, max_length: int, example: str | None = None) -> dict:
    param = {"name": name, "in": "query", "required": False, "description": description + EMPTY_TEXT,
             "allowEmptyValue": True, "schema": {"type": "string", "maxLength": max_length}}
    if example is not None:
        param["example"] = example
    return param


def _page_file(operation: str, summary: str, content_type: str) -> dict[str, Any]:
    """A small fixed file of the pages (icon, robots.txt): 200 with it, cached for a day."""
    return {"operationId": operation, "tags": ["quality"], "summary": summary,
            "responses": {"200": {"description": "the file (Cache-Control: public, max-age=86400)",
                                  "content": {content_type: {"schema": {"type": "string"}}}},
                          **_errors(500)}}


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
                          "enum": ["bad_request", "not_found", "conflict", "method_not_allowed",
                                   "unsupported_media_type", "internal_error",
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
                                     "description": "the nearest calibrator not used, and why; when a gate "
                                                    "removed every fit, the best-ranked such fit (fitid) "
                                                    "with its figures (tiles_counted, tiles_served, "
                                                    "tile_fraction, median_phase_quality)"},
                "gate": {"type": "string", "enum": ["min_tile_fraction", "min_phase_quality"],
                         "description": "the quality gate that removed the best-ranked fit"},
            }}],
        },
        "Selection": {
            "type": "object", "additionalProperties": True,
            "required": ["target", "window", "criteria", "calibrators", "choice", "nearest_rejected", "tiles"],
            "description": "selection.explain: calibrators nearest first, each with accepted/code/reason and its "
                           "fits (accepted, chosen, code, reason, figures); choice null or {mode: nearest|"
                           "interpolated, ...,  attenuation}; tiles with served/code/reason",
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
                           "query: {range: {from, to}, targets: [{target, payload}], ...} -- `range` is "
                           "required (400 naming range without it); metric-payload-options: {metric, payload, "
                           "name}; variable: {payload, range}; tag-values: {key} -- `key` is required (400 "
                           "naming key without it); metrics and tag-keys: {} (or {metric, payload}).",
            "properties": {
                "range": {"type": "object", "required": ["from", "to"],
                          "description": "required by query; checked on every action",
                          "properties": {"from": _ref("schemas", "GrafanaTime"), "to": _ref("schemas", "GrafanaTime")}},
                "key": {"type": "string", "enum": list(GRAFANA_TAG_KEYS),
                        "description": "required by tag-values; checked on every action"},
                "targets": {"type": "array", "nullable": True,
                            "items": {"type": "object", "additionalProperties": True}},
            },
        },
        "GrafanaTime": {"description": "an ISO 8601 time (as Grafana sends it) or Unix milliseconds",
                        "anyOf": [{"type": "string", "format": "date-time"},
                                  {"type": "string", "pattern": "^[0-9]{10,16}$"}, {"type": "number"}]},
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
        "obs_id": _int_param("obs_id", "target observation id (GPS seconds)", required=True, example=1457904016),
        "max_time_separation": _int_param(
            "max_time_separation", "largest |calibrator start - obs_id| in seconds; 0 asks for the "
            "observation's own fit (obs_id is a calibrator)", default=DEFAULT_MAX_TIME_SEPARATION,
            maximum=MAX_TIME_SEPARATION),
        "allow_after": _flag_param("allow_after", "1: calibrators after obs_id may be used; 0: only before", 1),
        "prefer_fitid": _int_param("prefer_fitid", "use this fit (Unix time the fit ran) when it is a candidate; "
                                   "404 with the reason otherwise"),
        "nocache": _flag_param("nocache", "1: rebuild the zip (from the same source) instead of the cached one", 0),
        "min_tile_fraction": _fraction_param(
            "min_tile_fraction", "quality gate: a fit qualifies only when it solves at least this fraction of "
            "the target's tiles not flagged in its metafits (0: off)"),
        "min_phase_quality": _fraction_param(
            "min_phase_quality", "quality gate: a fit qualifies only when the median phase_fit_quality of the "
            "tiles it serves (X and Y pooled) is at least this (0: off)"),
        "interpolate": _flag_param(
            "interpolate", "1: with qualifying calibrators both before and after the target, the solution is the "
            "time-weighted combination of the nearest one on each side (w = (t_after - t) / (t_after - t_before) "
            "on the one before); otherwise the normal answer. Not with prefer_fitid. From the table, the two "
            "fits' rows are combined; from the files (source=file, or best when both fits have files), each "
            "fit's own Jones on the target's tiles, both divided by the phase of one reference tile (the fits' "
            "own, the tile their rows hold at 0, when it serves both), then w J_b + (1 - w) J_a, on one grid "
            "(fine_chan_khz, default the coarser of the two native widths)", 0),
        "correct_attenuation": _flag_param(
            "correct_attenuation", "1: calibrators of any gain_control_value qualify and every Jones is scaled "
            "by 10^((A_target - A_cal)/20); at equal distance the target's own attenuation wins. Needs equal "
            "digital gains and PFB flavour", 0),
    }
    return {
        "schemas": schemas, "responses": responses, "parameters": parameters,
        "securitySchemes": {"api_key": {"type": "apiKey", "in": "header", "name": API_KEY_HEADER,
                                        "description": "API Gateway usage-plan key (prod); only add_cal_request "
                                                       "needs one"},
                            **openapi_admin.SECURITY_SCHEMES},
    }


def _selection_params(gates: bool = True) -> list[dict]:
    names = ("obs_id", "max_time_separation", "allow_after", "prefer_fitid")
    if gates:
        names += ("min_tile_fraction", "min_phase_quality", "interpolate", "correct_attenuation")
    return [_ref("parameters", n) for n in names]


def _solution_params() -> list[dict]:
    return [
        *_selection_params(), _ref("parameters", "nocache"),
        _choice_param("output_format", "solution file format; auto: hyperdrive when the fit has a "
                      "hyperdrive file, else aocal", OUTPUT_FORMATS, "aocal"),
        _choice_param("fine_chan_khz", "fine channel width of the written solution (kHz); default 40 from "
                      "the table, the files' native chanblock width from the files (a whole multiple of it "
                      "averages the native chanblocks, NaN-aware; finer or not a multiple is a 400 naming "
                      "the native width)", FINE_CHAN_KHZ, 40),
        _choice_param("source", "where the Jones come from: table (the default for aocal), file (404 when "
                      "the fit has no solution files), best (file when the fit has files, else table; the "
                      "default for hyperdrive and auto). Interpolated: file needs both fits' files (else the 404 "
                      "for the fit lacking them); best is file only when both fits have files, else the table "
                      "interpolation for both",
                      SOURCES, None),
    ]


SOURCE_TEXT = (
    "`source` says where the Jones come from: `table` rebuilds them from the calibration_solutions rows (one delay "
    "and intercept per tile and pol: 0.04-0.18 rad rms from the fit on core and hex tiles, 0.55-0.61 rad on "
    "long-baseline tiles); `file` converts the fit's own hyperdrive solution files, bit for bit (the target's "
    "tiles matched by tile id, in its Antenna order; its coarse channels picked by frequency; NaN where the file "
    "has NaN, flags the tile or chanblock, or a Jones element exceeds the fit's gain_max_cutoff; AO-cal holds the "
    "one timeblock nearest the target, hyperdrive all); `best` is file when the fit has files, else table. The "
    "flag files follow the solution served.")


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
                "for hyperdrive), `<obs_id>_flagged_tiles.txt`, `<obs_id>_flags.py`. With interpolate=1 and "
                "calibrators on both sides the file is `<cal_before>_<cal_after>.bin` (one interval over both); "
                "the flag script's header says what was combined and any attenuation factor applied. A gate "
                "that removes every candidate is a 404 naming the gate (`gate`) and the best rejected fit with "
                "its figures (`nearest_rejected`). " + SOURCE_TEXT),
            "parameters": _solution_params(),
            "responses": {"302": _ref("responses", "Redirect"), **_errors(400, 404, 500, 503)}}},
        "/calib/get_cal_fits": {"get": {
            "operationId": "get_cal_fits", "tags": ["solutions"],
            "summary": "Every calibration fit that could serve an observation",
            "description": "Ranked and filtered with the same rules and gates as get_cal_solution.",
            "parameters": _selection_params(),
            "responses": {"200": {"description": "candidate fits, best first",
                                  "content": {_JSON: {"schema": _ref("schemas", "CalFits")}}},
                          **_errors(400, 404, 500, 503)}}},
        "/calib/get_cal_selection": {"get": {
            "operationId": "get_cal_selection", "tags": ["solutions"],
            "summary": "Why get_cal_solution serves what it serves: every calibrator and fit looked at, the choice, "
                       "every target tile",
            "parameters": _solution_params(),
            "responses": {"200": {"description": "the explanation (keys: target, window, criteria, calibrators, "
                                                 "choice, nearest_rejected, tiles, searched)",
                                  "content": {_JSON: {"schema": _ref("schemas", "Selection")}}},
                          **_errors(400, 500, 503)}}},
        "/calib/selection": {"get": {
            "operationId": "selection_page", "tags": ["quality"],
            "summary": "The explanation of get_cal_selection as a page, with a form to change the parameters (HTML)",
            "parameters": _solution_params(),
            "responses": {
                "200": {"description": "the page", "content": {html: {"schema": {"type": "string"}}}},
                "400": {"description": "bad parameter or unknown observation (the page says why)",
                        "content": {html: {"schema": {"type": "string"}}}},
                **_errors(500, 503)}}},
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
                            example="http://127.0.0.1:9000/cb"),
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
                            f"{SUMMARY_DEFAULT_DAYS} days before end", 64, example="2026-03-15"),
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
                _int_param("fitid", "the fit id", required=True, example=EXAMPLE_FITID),
                _choice_param("format", "html page, one table as CSV (needs `table`: format=csv without "
                              "table is a 400 naming table), or JSON", FIT_FORMATS, "html"),
                _choice_param("table", "the table: required with format=csv; json: only this table",
                              FIT_TABLES, None),
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
                 "schema": {"type": "string", "enum": list(PLOT_KINDS)}, "example": "tilediff"},
                _int_param("fitid", "the fit id", required=True, example=EXAMPLE_FITID),
                _int_param("obsid", "the observation of the fit (needed when the fit has several)",
                           example=EXAMPLE_CAL_ID),
                _choice_param("format", "png: redirect to the stored PNG; json: the plotted data", PLOT_FORMATS,
                              "png"),
                _choice_param("width", "pixel width of the PNG: the full drawing (1440) or it downscaled, "
                              "aspect kept (the pages offer all three in a srcset); any other value is a 400",
                              PLOT_WIDTHS, PLOT_WIDTHS[-1]),
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
                *_selection_params(gates=False), _ref("parameters", "nocache"),
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
                _int_param("cal_id", "a calibrator observation id", required=True, example=EXAMPLE_CAL_ID),
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
                _JSON: {"schema": _ref("schemas", "GrafanaRequest"), "examples": GRAFANA_EXAMPLES},
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
        "/calib/favicon.svg": {"get": _page_file("favicon_svg", "The pages' icon (linked from every page)",
                                                 "image/svg+xml")},
        "/favicon.ico": {"get": _page_file("favicon_ico", "The same icon, where browsers look by default",
                                           "image/svg+xml")},
        "/robots.txt": {"get": _page_file("robots_txt", "Keeps crawlers out of /calib/ (plots and solutions "
                                          "are made on demand)", "text/plain")},
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
                        "parameter}`; 5xx answers carry a `request_id` that the logs carry too. " + EMPTY_RULE),
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
