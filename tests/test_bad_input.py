"""Every documented parameter of every route, given values a careless or hostile caller might send.

The routes and their parameters come from the OpenAPI description (which another test keeps in
step with the app), so a new parameter is covered the day it is documented. Each request changes
one parameter of an otherwise good request. Whatever the value, the answer is never a 5xx and
never a stack trace; a 400 names the parameter that was changed. Errors are JSON with a message,
except on the pages people read in a browser (the summary, fit and selection pages), which answer an HTML
page that says what is wrong.
"""

from __future__ import annotations

import json
from urllib.parse import quote, urlencode

import pytest
from chalice.test import Client

from tests.factories import fit, observation, seed, solution_rows, tiles

TARGET, CAL, FITID = 1_400_000_000, 1_400_000_600, 1_700_000_000

BAD_VALUES = [
    "", " ", "abc", "-1", "0", "1.5", "1e3", "1e400", "nan", "inf", "-inf", "0x10", "9" * 40,
    "\u0661\u0662\u0663",  # Arabic-Indic digits: Python's int() reads them
    "\uff11\uff12",  # full-width digits
    "\u00b2",  # superscript two: str.isdigit() says yes, int() says no
    "2147483648", "9223372036854775807", "-9223372036854775808",  # past int32, the bigint limits
    "' OR 1=1 --", "<script>alert(1)</script>", "\x00", "%", "a" * 3000, "true", "[1]", "{}",
]

# a good request per route: the perturbed parameter replaces (or adds to) these
BASELINE = {
    "/calib/get_cal_solution": {"obs_id": TARGET},
    "/calib/get_cal_fits": {"obs_id": TARGET},
    "/calib/get_cal_selection": {"obs_id": TARGET},
    "/calib/selection": {"obs_id": TARGET},
    "/calib/add_cal_request": {"obs_id": TARGET},
    "/calib/summary": {},
    "/calib/fit": {"fitid": FITID},
    "/calib/plot/{kind}": {"fitid": FITID, "obsid": CAL},
    "/calib/get_calfile_for_obsid": {"obs_id": TARGET},
    "/calib/get_calfile_for_calid": {"cal_id": CAL},
    "/calib/admin/epochs": {},
    "/calib/admin/audit": {},
    "/calib/compare": {"obsid_a": CAL, "fitid_a": FITID, "obsid_b": TARGET},
}
# the admin writes (POST; the local stack's 127.0.0.1 rule lets the test client in)
POST_BASELINE = {
    "/calib/admin/retire": {"fitid": FITID, "why": "sweep"},
    "/calib/admin/restore": {"fitid": FITID, "why": "sweep"},
    "/calib/admin/prefer": {"fitid": FITID, "why": "sweep"},
    "/calib/admin/epochs": {"boundary": TARGET, "why": "sweep"},
    "/calib/admin/epochs/{epoch_id}/end": {"why": "sweep"},
}
PATH_VALUES = {"kind": "tilediff", "epoch_id": "1"}


def _operations(method: str = "get") -> list[tuple[str, list[dict]]]:
    from chalicelib import openapi

    doc = openapi.document()
    shared = doc.get("components", {}).get("parameters", {})
    out = []
    for path, item in doc["paths"].items():
        op = item.get(method)
        if op is None:
            continue
        params = [shared[p["$ref"].rsplit("/", 1)[-1]] if "$ref" in p else p for p in op.get("parameters", [])]
        out.append((path, params))
    return out


OPERATIONS = _operations()
POST_OPERATIONS = [(p, ps) for p, ps in _operations("post") if p.startswith("/calib/admin/")]  # grafana: JSON bodies


@pytest.fixture
def client(clean_db, aws):
    """A calibrator with one fit and a target 10 minutes before it."""
    from app import app

    ts = tiles(16)
    seed([observation(TARGET, tiles=ts), observation(CAL, calibration=True, tiles=ts)],
         [(fit(FITID, CAL), solution_rows([t.tile_id for t in ts], nan_tiles=(12,)))])
    with Client(app) as c:
        yield c


def _get(client, path: str, query: dict, method: str = "GET") -> tuple[int, dict, str]:
    r = client.http.request(method, f"{path}?{urlencode(query)}" if query else path)
    return r.status_code, {k.lower(): v for k, v in r.headers.items()}, r.body.decode("utf-8", "replace")


def _check_error(status: int, headers: dict, text: str, where: str, name: str) -> dict:
    """The error body (JSON), {} for an answer that is not an error; HTML errors must name the parameter."""
    assert status < 500, f"{where}: {status} {text[:300]}"
    assert "Traceback" not in text and 'File "' not in text, where
    if status < 400:
        return {}
    if headers.get("content-type", "").startswith("text/html"):
        assert status == 404 or name in text, (where, status, text[:300])
        return {"parameter": name}
    assert headers.get("content-type", "").startswith("application/json"), (where, headers)
    body = json.loads(text)
    assert body.get("message"), (where, body)
    return body


def _legacy_not_found(path: str, body: dict) -> bool:
    """The deprecated endpoints answer "no calibration solution" with 400 (as the spec lists), about obs_id."""
    return path.startswith("/calib/get_calfile_for") and body["message"].startswith("no calibration solution")


@pytest.mark.parametrize("path", sorted(BASELINE))
def test_the_good_requests_are_good(client, path):
    status, headers, text = _get(client, path.format(**PATH_VALUES), BASELINE[path])
    assert status in (200, 302), (path, status, text[:300])


def test_every_documented_get_route_has_a_good_request():
    with_params = {path for path, params in OPERATIONS if params}
    assert with_params == set(BASELINE)


def test_every_documented_post_route_with_parameters_is_swept():
    assert {path for path, params in POST_OPERATIONS if params} == set(POST_BASELINE)


@pytest.mark.parametrize("path,params,method", [(p, ps, "GET") for p, ps in OPERATIONS]
                         + [(p, ps, "POST") for p, ps in POST_OPERATIONS],
                         ids=[p for p, _ in OPERATIONS] + [f"POST {p}" for p, _ in POST_OPERATIONS])
def test_no_value_of_any_parameter_is_a_server_error(client, path, params, method):
    checked = 0
    baseline = BASELINE if method == "GET" else POST_BASELINE
    if method == "POST":  # epoch 1, for the end route
        assert _get(client, "/calib/admin/epochs", {"boundary": TARGET, "why": "sweep"}, "POST")[0] == 200
    for param in params:
        name = param["name"]
        for value in BAD_VALUES:
            query = dict(baseline.get(path, {}))
            if param["in"] == "path":
                if not value:
                    continue  # /calib/plot/ is another (unknown) route: API Gateway's own 403
                url = path.format(**{**PATH_VALUES, name: quote(value, safe="")})
            else:
                url = path.format(**PATH_VALUES)
                query[name] = value
            where = f"{url} {name}={value[:40]!r}"
            status, headers, text = _get(client, url, query, method)
            body = _check_error(status, headers, text, where, name)
            if status == 400 and param["in"] == "query" and not _legacy_not_found(path, body):
                assert body.get("parameter") == name, (where, body)
            checked += 1
    assert checked >= len(params) * (len(BAD_VALUES) - 1)


def test_an_unknown_route_or_action_is_a_json_4xx(client):
    status, headers, text = _get(client, "/calib/no_such_endpoint", {"obs_id": TARGET})
    assert 400 <= status < 500
    r = client.http.post("/calib/grafana/%00", body=b"{}", headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and json.loads(r.body)["message"]


@pytest.mark.parametrize("raw,expected", [("42", 42), (" 42 ", 42), ("+7", 7), ("-3", -3), ("0042", 42),
                                          (str(2**63 - 1), 2**63 - 1)])
def test_integers_are_plain_ascii_decimal(raw, expected):
    from chalicelib import params

    assert params.integer({"n": raw}, "n") == expected


@pytest.mark.parametrize("raw,problem", [("1_000", "must be an integer"), ("\u0661\u0662", "must be an integer"),
                                         ("0x10", "must be an integer"), ("1.0", "must be an integer"),
                                         (str(2**63), "out of range"), ("9" * 40, "out of range")])
def test_other_integers_are_a_400_naming_the_parameter(raw, problem):
    from chalicelib import params
    from chalicelib.errors import BadRequest

    with pytest.raises(BadRequest) as caught:
        params.integer({"obs_id": raw}, "obs_id")
    assert caught.value.parameter == "obs_id" and problem in caught.value.message
