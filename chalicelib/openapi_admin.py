"""The operators' part of the OpenAPI document: the admin paths, their IAM (SigV4) security scheme, compare.

Kept apart from ``openapi.py`` (which merges it) so each file stays small; plain data, no imports.
"""

from __future__ import annotations

from typing import Any

_JSON = "application/json"
MAX_WHY = 1000  # admin.actions.MAX_WHY
COMPARE_FORMATS = ("json", "png")  # compare.api.FORMATS
COMPARE_WIDTHS = (480, 960, 1440)  # plots.pngs.WIDTHS

SECURITY_SCHEMES = {"aws_iam": {
    "type": "apiKey", "in": "header", "name": "Authorization",
    "x-amazon-apigateway-authtype": "awsSigv4",
    "description": "AWS SigV4-signed request by an IAM principal the stack allows (prod); the local stack "
                   "accepts calls from 127.0.0.1 unsigned"}}


def _ref(kind: str, name: str) -> dict[str, str]:
    return {"$ref": f"#/components/{kind}/{name}"}


def _q(name: str, description: str, schema: dict, required: bool = False, example: Any = None) -> dict:
    out = {"name": name, "in": "query", "required": required, "description": description, "schema": schema}
    if example is not None:
        out["example"] = example
    return out


# The demo's real 256-tile fit (openapi.EXAMPLE_CAL_ID / EXAMPLE_FITID), so the examples work on the local stack.
_EXAMPLE_CAL, _EXAMPLE_FIT = 1457865688, 1773831785589944


_INT = {"type": "integer", "format": "int64", "minimum": 0}
_WHY = _q("why", "why the change is made (kept in the audit trail)", {"type": "string", "maxLength": MAX_WHY},
          required=True)
_FITID = _q("fitid", "the fit (Unix time it ran, seconds or microseconds)", _INT, required=True)
_IDS = {"type": "string", "maxLength": 4000, "pattern": "^[0-9]+(,[0-9]+)*$"}
_OK = {"description": "done: the change and its audit row (audit_id, at)",
       "content": {_JSON: {"schema": {"type": "object", "additionalProperties": True}}}}
_DENIED = {"description": "not an allowed IAM principal (prod: API Gateway) or not from 127.0.0.1 (local stack)",
           "content": {_JSON: {"schema": {"type": "object", "properties": {"message": {"type": "string"}}}}}}


def _errors(*codes: int) -> dict[str, Any]:
    names = {400: "BadRequest", 409: "Conflict", 500: "InternalError", 503: "Unavailable"}
    return {"403": _DENIED, **{str(c): _ref("responses", names[c]) for c in codes}}


def _op(op_id: str, summary: str, params: list[dict], *codes: int, method: str = "post") -> dict:
    return {method: {"operationId": op_id, "tags": ["admin"], "summary": summary, "security": [{"aws_iam": []}],
                     "parameters": params, "responses": {"200": _OK, **_errors(*codes)}}}


def paths() -> dict[str, Any]:
    """The admin paths (README "Operating the selection")."""
    epochs = _op("admin_add_epoch", "Open a validity epoch: no calibrator on one side of boundary serves a "
                 "target on the other (for those receivers/tiles only, NaN, if named)",
                 [_q("boundary", "GPS seconds, or an ISO 8601 UTC time", {"type": "string", "maxLength": 64},
                     required=True), _WHY,
                  _q("receivers", "comma-separated receiver numbers", _IDS),
                  _q("tiles", "comma-separated tile ids", _IDS)], 400, 500, 503)
    epochs.update(_op("admin_list_epochs", "The validity epochs in force (all=1: ended ones too)",
                      [_q("all", "1: ended epochs too", {"type": "integer", "enum": [0, 1], "default": 0})],
                      400, 500, 503, method="get"))
    end = _op("admin_end_epoch", "End a validity epoch", [_WHY], 400, 409, 500, 503)
    end["post"]["parameters"].insert(0, {"name": "epoch_id", "in": "path", "required": True,
                                         "description": "the epoch", "schema": _INT})
    return {
        "/calib/compare": {"get": {
            "operationId": "compare", "tags": ["quality"],
            "summary": "Two solutions compared per tile: amplitude ratio |J_a|/|J_b| and phase difference "
                       "arg(J_a conj J_b), median and rms over channels, XX and YY (JSON), or as a plot (PNG)",
            "description": "Each side is a fit (fitid_x with its calibrator obsid_x) or, with obsid_x alone, "
                           "the solution served for that observation (the normal selection).",
            "parameters": [_q("obsid_a", "side a: the fit's calibrator, or a target", _INT, required=True,
                              example=_EXAMPLE_CAL),
                           _q("fitid_a", "side a's fit (else the one served for obsid_a)", _INT),
                           _q("obsid_b", "side b: the fit's calibrator, or a target", _INT, required=True,
                              example=_EXAMPLE_CAL),
                           _q("fitid_b", "side b's fit (else the one served for obsid_b)", _INT),
                           _q("max_time_separation", "selection window for a served side (seconds)",
                              {**_INT, "default": 86400, "maximum": 10 * 365 * 86400}),
                           _q("allow_after", "selection: calibrators after the target (1) or not (0)",
                              {"type": "integer", "enum": [0, 1], "default": 1}),
                           _q("format", "json: the statistics; png: redirect to the stored plot, per tile "
                              "|J_a|/|J_b| and arg(J_a conj J_b) (degrees) against frequency, by receiver and slot",
                              {"type": "string", "enum": list(COMPARE_FORMATS), "default": "json"}),
                           _q("width", "format=png: pixel width, the full drawing (1440) or it downscaled; any "
                              "other value is a 400", {"type": "integer", "enum": list(COMPARE_WIDTHS),
                                                        "default": COMPARE_WIDTHS[-1]})],
            "responses": {"200": {"description": "a, b, channels, and one entry per tile",
                                  "content": {_JSON: {"schema": {"type": "object", "additionalProperties": True}}}},
                          "302": _ref("responses", "Redirect"),
                          "400": _ref("responses", "BadRequest"), "404": _ref("responses", "NotFound"),
                          "500": _ref("responses", "InternalError"), "503": _ref("responses", "Unavailable")}}},
        "/calib/admin/retire": _op("admin_retire", "Retire a fit: never served, never a candidate",
                                   [_FITID, _WHY], 400, 409, 500, 503),
        "/calib/admin/restore": _op("admin_restore", "Restore a retired fit", [_FITID, _WHY], 400, 409, 500, 503),
        "/calib/admin/prefer": _op("admin_prefer", "Prefer a fit on its calibrator (replaces the preferred one)",
                                   [_FITID, _WHY, _q("obsid", "the calibrator, when the fit covers several",
                                                     _INT)], 400, 409, 500, 503),
        "/calib/admin/epochs": epochs,
        "/calib/admin/epochs/{epoch_id}/end": end,
        "/calib/admin/audit": _op("admin_audit", "The audit trail, newest first",
                                  [_q("limit", "at most this many rows", {**_INT, "minimum": 1, "maximum": 10000,
                                                                          "default": 100}),
                                   _q("fitid", "only this fit's changes", _INT),
                                   _q("epoch_id", "only this epoch's changes", _INT)], 400, 500, 503, method="get"),
    }
