"""The OpenAPI description: valid, served, and in step with the app's routes and the code's values."""

from __future__ import annotations

import json

import pytest
from chalice.test import Client

HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


@pytest.fixture(scope="module")
def doc() -> dict:
    from chalicelib import openapi

    return openapi.document()


def _operations(doc: dict) -> set[tuple[str, str]]:
    return {(path, method.upper()) for path, item in doc["paths"].items() for method in item if method in HTTP_METHODS}


def _routes() -> set[tuple[str, str]]:
    from app import app

    return {(path, method) for path, methods in app.routes.items() for method in methods}


def test_document_is_valid_openapi_3(doc):
    from openapi_spec_validator import validate

    validate(doc)
    assert doc["openapi"].startswith("3.0")


def test_every_route_is_described_and_every_description_is_a_route(doc):
    routes, described = _routes(), _operations(doc)
    assert not routes - described, f"routes without a description: {sorted(routes - described)}"
    assert not described - routes, f"descriptions without a route: {sorted(described - routes)}"


def test_path_parameters_match_the_routes(doc):
    from app import app

    for path, methods in app.routes.items():
        for method, entry in methods.items():
            op = doc["paths"][path][method.lower()]
            in_path = [p["name"] for p in op.get("parameters", []) if isinstance(p, dict) and p.get("in") == "path"]
            assert sorted(in_path) == sorted(entry.view_args), (path, method)


def test_every_operation_names_its_answers(doc):
    for path, item in doc["paths"].items():
        for method, op in item.items():
            assert op.get("operationId") and op.get("summary"), (path, method)
            codes = set(op["responses"])
            assert codes & {"200", "302"}, (path, method, codes)
            if path != "/calib/openapi.json":
                assert "500" in codes, (path, method)


def test_api_key_is_required_exactly_where_the_routes_say(doc):
    from app import app

    keyed = {(p, m) for p, ms in app.routes.items() for m, e in ms.items() if e.api_key_required}
    secured = {(p, m.upper()) for p, item in doc["paths"].items() for m, op in item.items()
               if any("api_key" in s for s in op.get("security", []))}
    assert keyed == secured == {("/calib/add_cal_request", "GET")}


def test_iam_is_required_exactly_on_the_admin_routes(doc):
    from chalice import IAMAuthorizer

    from app import app

    iam = {(p, m) for p, ms in app.routes.items() for m, e in ms.items()
           if isinstance(e.authorizer, IAMAuthorizer)}
    secured = {(p, m.upper()) for p, item in doc["paths"].items() for m, op in item.items()
               if any("aws_iam" in s for s in op.get("security", []))}
    assert iam == secured and iam and all(p.startswith("/calib/admin/") for p, _ in iam)
    assert not [p for p in app.routes if p.startswith("/calib/admin/") and (p, "GET") not in iam
                and (p, "POST") not in iam]
    assert doc["components"]["securitySchemes"]["api_key"]["name"] == "x-api-key"


def test_enumerations_and_defaults_are_the_codes(doc):
    from chalicelib import openapi, params, plots
    from chalicelib.grafana import api as grafana_api
    from chalicelib.plots import service as plot_service
    from chalicelib.calrequests import urls
    from chalicelib.solutions import bundle, sources
    from chalicelib.summary import fitpage, page

    assert openapi.OUTPUT_FORMATS == bundle.FORMATS
    assert openapi.FINE_CHAN_KHZ == bundle.FINE_CHAN_KHZ
    assert openapi.SOURCES == sources.SOURCES
    assert openapi.MAX_TIME_SEPARATION == params.MAX_TIME_SEPARATION
    assert openapi.DEFAULT_MAX_TIME_SEPARATION == params.DEFAULT_MAX_TIME_SEPARATION
    assert openapi.PLOT_KINDS == plots.KINDS and openapi.PLOT_FORMATS == plot_service.FORMATS
    assert openapi.FIT_FORMATS == fitpage.FORMATS and openapi.FIT_TABLES == fitpage.TABLES
    assert (openapi.SUMMARY_DEFAULT_PER_PAGE, openapi.SUMMARY_MAX_PER_PAGE, openapi.SUMMARY_DEFAULT_DAYS) == (
        page.DEFAULT_PER_PAGE, page.MAX_PER_PAGE, page.DEFAULT_DAYS)
    assert openapi.GRAFANA_ACTIONS == tuple(grafana_api.ACTIONS)
    from chalicelib.grafana import request as grafana_request

    assert openapi.GRAFANA_TAG_KEYS == grafana_request.ADHOC_KEYS
    assert openapi.CALLBACK_URL_MAX == urls.MAX_URL_LENGTH
    described = {p["name"]: p for p in doc["paths"]["/calib/get_cal_solution"]["get"]["parameters"] if "name" in p}
    assert described["output_format"]["schema"]["default"] == "aocal"
    assert described["fine_chan_khz"]["schema"]["default"] == 40


def test_served_at_calib_openapi_json():
    from app import app
    from chalicelib import openapi

    with Client(app) as client:
        r = client.http.get("/calib/openapi.json", headers={"Host": "ws.mwatelescope.org"})
    assert r.status_code == 200 and r.headers["Content-Type"] == "application/json"
    served = json.loads(r.body)
    assert served["paths"] == openapi.document()["paths"]
    assert served["servers"] == [{"url": "https://ws.mwatelescope.org"}]


def test_server_url_follows_the_host_the_caller_used():
    from chalicelib.openapi import server_url

    assert server_url({"Host": "abc.execute-api.ap-southeast-2.amazonaws.com"},
                      {"stage": "api"}) == "https://abc.execute-api.ap-southeast-2.amazonaws.com/api"
    assert server_url({"host": "127.0.0.1:8000"}, {}) == "http://127.0.0.1:8000"
    assert server_url({"host": "evil.example/<script>"}, {}) is None
    assert server_url({}, {}) is None
