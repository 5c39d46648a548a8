"""The prod wiring of the admin database role: the API function, its policy, the proxy (SAM and Terraform).

The admin routes write as ``calib_admin`` with their own secret (``chalicelib/db/steering.py``
``admin_transaction``); read straight from `.chalice/`, so no packaging is needed.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

CHALICE = Path(__file__).resolve().parent.parent / ".chalice"
FUNCTIONS = ("api_handler", "store_request", "on_cal_file", "retry_callbacks")
SECRETS = {"calib_ro": "mwa-calib/db-password-ro", "calib_rw": "mwa-calib/db-password-rw",
           "calib_admin": "mwa-calib/db-password-admin"}


def _json(name: str) -> dict:
    return json.loads((CHALICE / name).read_text())


def _env(function: str) -> dict[str, str]:
    cfg = _json("config.json")
    prod = cfg["stages"]["prod"]
    return {**cfg.get("environment_variables", {}), **prod["environment_variables"],
            **prod["lambda_functions"][function].get("environment_variables", {})}


def _secret_names(function: str) -> set[str]:
    """The secrets a function's IAM policy lets it read, by name (the ARN's six random characters dropped)."""
    file = _json("config.json")["stages"]["prod"]["lambda_functions"][function]["iam_policy_file"]
    names = set()
    for st in _json(file)["Statement"]:
        actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
        if any(a.startswith("secretsmanager:") for a in actions):
            assert actions == ["secretsmanager:GetSecretValue"], (function, st)
            for arn in st["Resource"]:
                m = re.fullmatch(r"arn:aws:secretsmanager:ap-southeast-2:\*:secret:([\w/-]+)-\?{6}", arn)
                assert m, (function, arn)
                names.add(m.group(1))
    return names


def test_only_the_api_function_logs_in_as_calib_admin_with_its_own_secret():
    api = _env("api_handler")
    assert (api["CALIB_DB_USER"], api["CALIB_DB_PASSWORD_SECRET"]) == ("calib_ro", SECRETS["calib_ro"])
    assert (api["CALIB_ADMIN_DB_USER"], api["CALIB_ADMIN_DB_PASSWORD_SECRET"]) == ("calib_admin", SECRETS["calib_admin"])
    for function in FUNCTIONS[1:]:  # the event functions write as calib_rw, never as the admin
        env = _env(function)
        assert (env["CALIB_DB_USER"], env["CALIB_DB_PASSWORD_SECRET"]) == ("calib_rw", SECRETS["calib_rw"])
        assert "CALIB_ADMIN_DB_USER" not in env and "CALIB_ADMIN_DB_PASSWORD_SECRET" not in env, function


def test_the_api_policy_reads_the_read_only_and_admin_secrets_and_no_other():
    assert _secret_names("api_handler") == {SECRETS["calib_ro"], SECRETS["calib_admin"]}  # not -rw, no callback key
    for function in FUNCTIONS[1:]:
        assert SECRETS["calib_admin"] not in _secret_names(function), function
    # no KMS grant: the database secrets use Secrets Manager's own key (as the other functions' do)
    for function in FUNCTIONS:
        file = _json("config.json")["stages"]["prod"]["lambda_functions"][function]["iam_policy_file"]
        assert "kms:" not in (CHALICE / file).read_text(), function


def test_sam_the_proxy_logs_calib_admin_in_with_the_admin_secret_and_its_role_may_read_it():
    res = _json("resources.json")
    params, resources = res["Parameters"], res["Resources"]
    proxy = resources["DatabaseProxy"]["Properties"]
    by_user = {}
    for auth in proxy["Auth"]:
        assert (auth["AuthScheme"], auth["IAMAuth"]) == ("SECRETS", "DISABLED")
        user = auth["Description"].split(":", 1)[0]
        by_user[user] = auth["SecretArn"]["Ref"]
    assert set(by_user) == set(SECRETS)
    for user, param in by_user.items():  # each ARN parameter accepts only that role's secret
        pattern = params[param]["AllowedPattern"]
        assert re.fullmatch(pattern, f"arn:aws:secretsmanager:ap-southeast-2:123456789012:secret:{SECRETS[user]}-AbC123")
        others = [s for u, s in SECRETS.items() if u != user]
        assert not any(re.fullmatch(pattern, f"arn:aws:secretsmanager:ap-southeast-2:123456789012:secret:{s}-AbC123")
                       for s in others), user
        assert "Default" not in params[param]  # a deployment names every secret
    role = resources[proxy["RoleArn"]["Fn::GetAtt"][0]]["Properties"]
    (statement,) = role["Policies"][0]["PolicyDocument"]["Statement"]
    assert statement["Action"] == ["secretsmanager:GetSecretValue"]
    assert sorted(r["Ref"] for r in statement["Resource"]) == sorted(by_user.values())


def test_terraform_the_proxy_logs_calib_admin_in_and_its_role_may_read_the_admin_secret():
    doc = _json("terraform/mwa-calib-prod.tf.json")
    data = {f"data.aws_secretsmanager_secret.{k}.arn": v["name"]
            for k, v in doc["data"]["aws_secretsmanager_secret"].items()}
    assert set(data.values()) == set(SECRETS.values())
    (proxy,) = doc["resource"]["aws_db_proxy"].values()
    auth = {a["description"].split(":", 1)[0]: data[a["secret_arn"][2:-1]] for a in proxy["auth"]}
    assert auth == SECRETS
    assert all(a["auth_scheme"] == "SECRETS" and a["iam_auth"] == "DISABLED" for a in proxy["auth"])
    (policy,) = doc["resource"]["aws_iam_role_policy"].values()
    assert policy["role"] == "${aws_iam_role.db_proxy.id}" and proxy["role_arn"] == "${aws_iam_role.db_proxy.arn}"
    resources = re.search(r"Resource = \[([^\]]*)\]", policy["policy"]).group(1)
    assert sorted(r.strip() for r in resources.split(",")) == sorted(data)
    assert '"secretsmanager:GetSecretValue"]' in policy["policy"] and policy["policy"].count("Action") == 1
