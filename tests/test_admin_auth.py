"""Who may steer: the admin routes in the prod configuration (IAM), on the local stack (127.0.0.1), in the template."""

from __future__ import annotations

import json

import pytest
from chalice.test import Client

from chalicelib import db
from tests.factories import fit, observation, seed, solution_rows, tiles
from tests.test_deploy_package import _package

CAL, FITID = 1_400_000_600, 1_700_000_000_000_000
ARN = "arn:aws:sts::123456789012:assumed-role/mwa-operators/jane"
ADMIN_ROUTES = [("POST", "/calib/admin/retire"), ("POST", "/calib/admin/restore"), ("POST", "/calib/admin/prefer"),
                ("POST", "/calib/admin/epochs"), ("GET", "/calib/admin/epochs"),
                ("POST", "/calib/admin/epochs/1/end"), ("GET", "/calib/admin/audit")]


@pytest.fixture
def seeded(clean_db, aws):
    ts = tiles(8)
    seed([observation(CAL, calibration=True, tiles=ts)], [(fit(FITID, CAL), solution_rows([t.tile_id for t in ts]))])


def test_an_unsigned_admin_call_in_the_prod_configuration_is_refused(seeded):
    from app import app

    # the prod stage's own settings (CALIB_ADMIN_AUTH=iam): refused before the database is reached
    with Client(app, stage_name="prod") as c:
        for method, path in ADMIN_ROUTES:
            r = c.http.request(method, f"{path}?fitid={FITID}&why=x&boundary=1400000000")
            assert r.status_code == 403, (method, path, r.body)
            assert json.loads(r.body)["error"] == "forbidden"
    assert db.query("SELECT count(*) AS n FROM operator_audit")[0]["n"] == 0
    assert db.query("SELECT count(*) AS n FROM calibration_fit_retirement")[0]["n"] == 0


def test_a_signed_call_records_the_principal_arn(seeded, monkeypatch):
    from chalicelib.admin import actions

    monkeypatch.setenv("CALIB_ADMIN_AUTH", "iam")
    context = {"identity": {"sourceIp": "203.0.113.9", "userArn": ARN, "caller": "AROAEXAMPLE:jane"}}
    r = actions.retire({"fitid": str(FITID), "why": "rx 4 cable"}, context)
    assert r.status_code == 200
    trail = json.loads(actions.audit({}, context).body)["audit"]
    assert [(a["who"], a["action"], a["why"]) for a in trail] == [(ARN, "retire", "rx 4 cable")]


def test_the_local_stack_accepts_admin_calls_from_127_0_0_1_only(seeded, monkeypatch):
    from chalicelib.admin import actions
    from chalicelib.errors import Forbidden

    monkeypatch.setenv("CALIB_ADMIN_AUTH", "local")
    with pytest.raises(Forbidden):
        actions.retire({"fitid": str(FITID), "why": "x"}, {"identity": {"sourceIp": "192.168.1.20"}})
    with pytest.raises(Forbidden):
        actions.audit({}, {"identity": {"sourceIp": "10.0.0.1", "userArn": ARN}})
    assert db.query("SELECT count(*) AS n FROM operator_audit")[0]["n"] == 0
    r = actions.retire({"fitid": str(FITID), "why": "x"}, {"identity": {"sourceIp": "127.0.0.1"}})
    assert r.status_code == 200 and db.query("SELECT who FROM operator_audit")[0]["who"] == "local"


@pytest.fixture(scope="module")
def sam(tmp_path_factory) -> dict:
    out = _package(tmp_path_factory.mktemp("sam-admin"), "--merge-template", ".chalice/resources.json")
    return json.loads((out / "sam.json").read_text())


def test_the_template_signs_the_admin_routes_with_iam_and_grants_them_only_to_the_configured_principals(sam):
    body = sam["Resources"]["RestAPI"]["Properties"]["DefinitionBody"]
    assert body["securityDefinitions"]["sigv4"]["x-amazon-apigateway-authtype"] == "awsSigv4"
    for method, path in ADMIN_ROUTES:
        op = body["paths"][path.replace("/1/", "/{epoch_id}/")][method.lower()]
        assert op.get("security") == [{"sigv4": []}], (method, path)
    for path, item in body["paths"].items():
        if not path.startswith("/calib/admin"):
            for method, op in item.items():
                assert not any("sigv4" in s for s in op.get("security", [])), (path, method)  # reads stay open
    assert sam["Parameters"]["AdminPrincipalArns"]["Type"] == "CommaDelimitedList"
    policy = body["x-amazon-apigateway-policy"]["Statement"]
    deny = [s for s in policy if s["Effect"] == "Deny"]
    assert len(deny) == 1 and deny[0]["Action"] == "execute-api:Invoke"
    assert all(r.startswith("execute-api:/*/*/calib/admin") for r in deny[0]["Resource"])
    assert deny[0]["Condition"] == {"ArnNotLike": {"aws:PrincipalArn": {"Ref": "AdminPrincipalArns"}}}
    allow = [s for s in policy if s["Effect"] == "Allow"]
    assert allow == [{"Sid": "PublicReadEndpoints", "Effect": "Allow", "Principal": "*",
                      "Action": "execute-api:Invoke", "Resource": "execute-api:/*"}]
