"""Who may steer: the admin routes in the prod configuration (IAM), on the local stack (127.0.0.1), in the template."""

from __future__ import annotations

import json

import pytest
from chalice.test import Client

from chalicelib import db
from tests.factories import fit, observation, seed, solution_rows, tiles
from tests.chalice_package import CHALICE, chalice_package, sam_to_cloudformation

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
    out = chalice_package(tmp_path_factory.mktemp("sam-admin"), "--merge-template", ".chalice/resources.json")
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
    allow = [s for s in policy if s["Effect"] == "Allow"]
    assert allow == [{"Sid": "PublicReadEndpoints", "Effect": "Allow", "Principal": "*",
                      "Action": "execute-api:Invoke", "Resource": "execute-api:/*"}]


OPERATORS = "arn:aws:iam::123456789012:role/mwa-operators,arn:aws:iam::123456789012:user/jane"
NO_VALUE = object()


def _resolve(node, params: dict, conditions: dict):
    """The value CloudFormation gives a template fragment for these parameters (the intrinsics used here)."""
    if isinstance(node, list):
        return [v for v in (_resolve(x, params, conditions) for x in node) if v is not NO_VALUE]
    if not isinstance(node, dict):
        return node
    if len(node) == 1:
        (key, arg), = node.items()
        if key == "Ref":
            return NO_VALUE if arg == "AWS::NoValue" else params[arg]
        if key == "Fn::If":
            name, yes, no = arg
            return _resolve(yes if _resolve(conditions[name], params, conditions) else no, params, conditions)
        if key == "Fn::Join":
            return arg[0].join(_resolve(arg[1], params, conditions))
        if key == "Fn::Equals":
            a, b = (_resolve(x, params, conditions) for x in arg)
            return a == b
        if key == "Fn::Not":
            return not _resolve(arg[0], params, conditions)
    out = {k: _resolve(v, params, conditions) for k, v in node.items()}
    return {k: v for k, v in out.items() if v is not NO_VALUE}


def _admin_deny(sam: dict, principals: str | None) -> dict:
    """The deployed Deny statement of the admin routes, AdminPrincipalArns given (or left at its default)."""
    param = sam["Parameters"]["AdminPrincipalArns"]
    value = param["Default"] if principals is None else principals
    params = {"AdminPrincipalArns": value.split(",")}  # a CommaDelimitedList: "" is [""]
    policy = sam["Resources"]["RestAPI"]["Properties"]["DefinitionBody"]["x-amazon-apigateway-policy"]
    (deny,) = [s for s in _resolve(policy, params, sam["Conditions"])["Statement"] if s["Effect"] == "Deny"]
    return deny


def test_the_admin_routes_are_denied_to_every_principal_but_the_configured_ones_and_to_all_by_default(sam):
    given = _admin_deny(sam, OPERATORS)
    assert given["Condition"] == {"ArnNotLike": {"aws:PrincipalArn": OPERATORS.split(",")}}
    assert sorted(given["Resource"]) == ["execute-api:/*/*/calib/admin", "execute-api:/*/*/calib/admin/*"]
    # the default is nobody: a Deny with no condition at all, whatever signs the call
    assert sam["Parameters"]["AdminPrincipalArns"]["Default"] == ""
    nobody = _admin_deny(sam, None)
    assert "Condition" not in nobody and nobody["Principal"] == "*" and nobody["Action"] == "execute-api:Invoke"


def test_sam_keeps_the_admin_policy_for_cloudformation_to_resolve(sam):
    cfn = sam_to_cloudformation(sam)
    (api,) = [r for r in cfn["Resources"].values() if r["Type"] == "AWS::ApiGateway::RestApi"]
    policy = api["Properties"]["Body"]["x-amazon-apigateway-policy"]
    assert policy == sam["Resources"]["RestAPI"]["Properties"]["DefinitionBody"]["x-amazon-apigateway-policy"]
    assert "AdminPrincipalsGiven" in cfn["Conditions"]


@pytest.fixture(scope="module")
def terraform(tmp_path_factory) -> dict:
    out = chalice_package(tmp_path_factory.mktemp("tf-admin"), "--pkg-format", "terraform")
    docs = {"chalice.tf.json": json.loads((out / "chalice.tf.json").read_text())}
    for extra in sorted((CHALICE / "terraform").glob("*.tf.json")):  # the overlay the operator copies beside it
        docs[extra.name] = json.loads(extra.read_text())
    return docs


def test_terraform_signs_the_admin_routes_and_sets_the_admin_resource_policy_on_the_api(terraform):
    chalice_doc = terraform["chalice.tf.json"]
    body = json.loads(chalice_doc["locals"]["chalice_api_swagger"])
    assert body["securityDefinitions"]["sigv4"]["x-amazon-apigateway-authtype"] == "awsSigv4"
    for method, path in ADMIN_ROUTES:
        assert body["paths"][path.replace("/1/", "/{epoch_id}/")][method.lower()]["security"] == [{"sigv4": []}]
    assert "policy" not in chalice_doc["resource"]["aws_api_gateway_rest_api"]["rest_api"]  # chalice sets none
    overlay, override = terraform["mwa-calib-prod.tf.json"], terraform["mwa-calib-prod_override.tf.json"]
    assert override["resource"]["aws_api_gateway_rest_api"]["rest_api"]["policy"] == "${local.rest_api_policy}"
    # a changed policy takes effect only with a new deployment: the deployment's trigger includes it
    trigger = override["resource"]["aws_api_gateway_deployment"]["rest_api"]["stage_description"]
    assert "local.chalice_api_swagger" in trigger and "local.rest_api_policy" in trigger
    variable = overlay["variable"]["admin_principal_arns"]
    assert variable["type"] == "list(string)" and variable["default"] == []  # nobody unless configured
    policy = overlay["locals"]["rest_api_policy"]
    assert '"aws:PrincipalArn" = var.admin_principal_arns' in policy and "ArnNotLike" in policy
    assert "if length(var.admin_principal_arns) > 0" in policy  # no principals: the Deny has no condition
    assert '"execute-api:/*/*/calib/admin", "execute-api:/*/*/calib/admin/*"' in policy
