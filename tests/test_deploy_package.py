"""`chalice package` offline: the prod SAM template (with .chalice/resources.json merged) and the
Terraform output (with .chalice/terraform/*.tf.json beside it) declare everything the service needs.

The project (app.py, chalicelib/, .chalice/) is copied into a temporary directory with an empty
requirements.txt, so packaging needs neither PyPI nor AWS credentials (only a region).
"""

from __future__ import annotations

import json
import os
import re
import shutil

import pytest

from tests.chalice_package import CHALICE, PROJECT, REGION, chalice_package, sam_to_cloudformation

README = (PROJECT / "README.md").read_text()

SAM_IDS = {"api_handler": "APIHandler", "store_request": "StoreRequest", "on_cal_file": "OnCalFile",
           "retry_callbacks": "RetryCallbacks"}
LAMBDA_NAMES = {"api_handler": "mwa-calib-prod", "store_request": "mwa-calib-prod-store_request",
                "on_cal_file": "mwa-calib-prod-on_cal_file", "retry_callbacks": "mwa-calib-prod-retry_callbacks"}
BASE_ACTIONS = {"logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "xray:PutTraceSegments",
                "xray:PutTelemetryRecords", "ec2:CreateNetworkInterface", "ec2:DescribeNetworkInterfaces",
                "ec2:DeleteNetworkInterface", "ec2:AssignPrivateIpAddresses", "ec2:UnassignPrivateIpAddresses"}
# What each function does, and therefore all it may do (a change here is a deliberate review).
EXPECTED_ACTIONS = {
    "api_handler": BASE_ACTIONS | {"secretsmanager:GetSecretValue", "s3:GetObject", "s3:PutObject", "s3:ListBucket",
                                   "sqs:SendMessage", "sqs:GetQueueAttributes"},
    "store_request": BASE_ACTIONS | {"secretsmanager:GetSecretValue", "sqs:ReceiveMessage", "sqs:DeleteMessage",
                                     "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes"},
    "on_cal_file": BASE_ACTIONS | {"secretsmanager:GetSecretValue", "s3:GetObject", "s3:PutObject", "s3:ListBucket",
                                   "sqs:SendMessage"},
    "retry_callbacks": BASE_ACTIONS | {"secretsmanager:GetSecretValue"},
}
# Actions without resource-level permissions: the only ones allowed on Resource "*".
STAR_RESOURCE_OK = {"xray:PutTraceSegments", "xray:PutTelemetryRecords", "ec2:CreateNetworkInterface",
                    "ec2:DescribeNetworkInterfaces", "ec2:DeleteNetworkInterface", "ec2:AssignPrivateIpAddresses",
                    "ec2:UnassignPrivateIpAddresses"}


def _config() -> dict:
    return json.loads((CHALICE / "config.json").read_text())


def _prod_env(function: str) -> dict[str, str]:
    cfg = _config()
    prod = cfg["stages"]["prod"]
    return {**cfg.get("environment_variables", {}), **prod.get("environment_variables", {}),
            **prod["lambda_functions"][function].get("environment_variables", {})}


def _db_secrets(function: str) -> set[str]:
    """The database secrets a function logs in with: its own role's, and the admin role's where it has one."""
    env = _prod_env(function)
    return {env[k] for k in ("CALIB_DB_PASSWORD_SECRET", "CALIB_ADMIN_DB_PASSWORD_SECRET") if env.get(k)}


@pytest.fixture(scope="module")
def sam(tmp_path_factory) -> dict:
    out = chalice_package(tmp_path_factory.mktemp("sam"), "--merge-template", ".chalice/resources.json")
    assert (out / "deployment.zip").exists()
    return json.loads((out / "sam.json").read_text())


@pytest.fixture(scope="module")
def terraform(tmp_path_factory) -> dict:
    out = chalice_package(tmp_path_factory.mktemp("tf"), "--pkg-format", "terraform")
    for extra in sorted((CHALICE / "terraform").glob("*.tf.json")):
        shutil.copy2(extra, out / extra.name)  # what the operator does: the overlay beside chalice.tf.json
    docs = {p.name: json.loads(p.read_text()) for p in sorted(out.glob("*.tf.json"))}
    assert "chalice.tf.json" in docs and len(docs) >= 2
    return docs


def _resources(sam: dict, type_: str) -> dict[str, dict]:
    return {k: v for k, v in sam["Resources"].items() if v.get("Type") == type_}


def _role_policy(sam: dict, function: str) -> dict:
    fn = sam["Resources"][SAM_IDS[function]]
    role_id = fn["Properties"]["Role"]["Fn::GetAtt"][0]
    policies = sam["Resources"][role_id]["Properties"]["Policies"]
    assert len(policies) == 1
    return policies[0]["PolicyDocument"]


def _statements(doc: dict) -> list[dict]:
    out = []
    for st in doc["Statement"]:
        assert st["Effect"] == "Allow"
        actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
        resources = st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]]
        out.append({"actions": actions, "resources": resources})
    return out


def _refs(node, found: set[str]) -> None:
    """Every logical id a template fragment points at (Ref, GetAtt, Sub variables)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "Ref" and isinstance(value, str):
                found.add(value)
            elif key == "Fn::GetAtt":
                found.add(value[0] if isinstance(value, list) else value.split(".", 1)[0])
            elif key == "Fn::Sub":
                text, variables = (value, {}) if isinstance(value, str) else (value[0], value[1])
                for name in re.findall(r"\$\{([^}!]+)\}", text):
                    if name not in variables:
                        found.add(name.split(".", 1)[0])
                _refs(variables, found)
            else:
                _refs(value, found)
    elif isinstance(node, list):
        for item in node:
            _refs(item, found)


# --- configuration --------------------------------------------------------------------------------

def test_every_function_of_the_app_has_prod_settings_and_a_policy_file():
    from app import app

    functions = {"api_handler"} | {f.name for f in app.pure_lambda_functions} | {e.name for e in app.event_sources}
    prod = _config()["stages"]["prod"]
    assert set(prod["lambda_functions"]) == functions == set(SAM_IDS)
    assert prod["autogen_policy"] is False and prod["xray"] is True
    for name, settings in prod["lambda_functions"].items():
        assert (CHALICE / settings["iam_policy_file"]).is_file(), name
        assert settings["lambda_memory_size"] >= 256 and settings["lambda_timeout"] >= 10
    fns = prod["lambda_functions"]
    # plots and zips (the API function) need more than the JSON-only handlers; API Gateway stops at 29 s
    assert fns["api_handler"]["lambda_memory_size"] >= 1024
    assert fns["api_handler"]["lambda_memory_size"] > fns["store_request"]["lambda_memory_size"]
    assert fns["api_handler"]["lambda_timeout"] <= 29
    assert fns["on_cal_file"]["lambda_timeout"] >= 120  # ingesting a fit reads 24 FITS files
    assert prod["subnet_ids"] and prod["security_group_ids"]  # RDS is in the VPC


def test_no_secret_is_in_the_config():
    cfg = _config()
    for stage in cfg["stages"].values():
        envs = [stage.get("environment_variables", {})] + [
            f.get("environment_variables", {}) for f in stage.get("lambda_functions", {}).values()]
        for env in envs:
            assert "CALIB_DB_PASSWORD" not in env
    for function in SAM_IDS:
        env = _prod_env(function)
        assert env["CALIB_DB_PASSWORD_SECRET"] and "CALIB_DB_PASSWORD" not in env
        signing = env.get("CALIB_CALLBACK_SIGNING_SECRET", "")
        assert signing == "" or signing.startswith("{{resolve:secretsmanager:"), function
    assert _prod_env("api_handler")["CALIB_CALLBACK_SIGNING_SECRET"] == ""  # it sends no callbacks
    assert _prod_env("api_handler")["CALIB_DB_USER"] != _prod_env("store_request")["CALIB_DB_USER"]


# --- SAM / CloudFormation ---------------------------------------------------------------------------

def test_sam_declares_both_buckets_named_as_the_config_says(sam):
    buckets = {b["Properties"]["BucketName"]: b for b in _resources(sam, "AWS::S3::Bucket").values()}
    env = _prod_env("api_handler")
    assert set(buckets) == {env["CALIB_CAL_BUCKET"], env["CALIB_PRODUCTS_BUCKET"]}
    for bucket in buckets.values():
        assert bucket["DeletionPolicy"] == "Retain"
        assert all(bucket["Properties"]["PublicAccessBlockConfiguration"].values())
    assert buckets[env["CALIB_CAL_BUCKET"]]["Properties"]["VersioningConfiguration"]["Status"] == "Enabled"


def test_sam_request_queue_has_a_dead_letter_queue_and_feeds_store_request(sam):
    from chalicelib.calrequests import REQUEST_QUEUE

    queues = _resources(sam, "AWS::SQS::Queue")
    by_name = {q["Properties"]["QueueName"]: (lid, q) for lid, q in queues.items()}
    lid, queue = by_name[REQUEST_QUEUE]
    dlq_id, _ = by_name[REQUEST_QUEUE + "-dlq"]
    redrive = queue["Properties"]["RedrivePolicy"]
    assert redrive["deadLetterTargetArn"] == {"Fn::GetAtt": [dlq_id, "Arn"]}
    assert 1 <= int(redrive["maxReceiveCount"]) <= 10
    store = sam["Resources"]["StoreRequest"]
    assert queue["Properties"]["VisibilityTimeout"] >= 6 * store["Properties"]["Timeout"]  # AWS's advice
    (event,) = store["Properties"]["Events"].values()
    assert event["Type"] == "SQS" and event["Properties"]["BatchSize"] == 1
    assert event["Properties"]["Queue"]["Fn::Sub"].endswith(":" + REQUEST_QUEUE)
    assert lid in store["DependsOn"]  # the mapping names the queue by ARN: create the queue first
    api_env = sam["Resources"]["APIHandler"]["Properties"]["Environment"]["Variables"]
    assert api_env["CALIB_REQUEST_QUEUE_URL"] == {"Ref": lid}


def test_sam_calibration_bucket_notifies_on_cal_file_with_permission(sam):
    env = _prod_env("on_cal_file")
    (bucket_id, bucket), = [(k, v) for k, v in _resources(sam, "AWS::S3::Bucket").items()
                            if v["Properties"]["BucketName"] == env["CALIB_CAL_BUCKET"]]
    (conf,) = bucket["Properties"]["NotificationConfiguration"]["LambdaConfigurations"]
    assert conf["Function"] == {"Fn::GetAtt": ["OnCalFile", "Arn"]}
    assert conf["Event"] == "s3:ObjectCreated:*"
    assert conf["Filter"]["S3Key"]["Rules"] == [{"Name": "prefix", "Value": "fits/"}]
    perms = {k: v for k, v in _resources(sam, "AWS::Lambda::Permission").items()
             if v["Properties"]["Principal"] == "s3.amazonaws.com"}
    (perm_id, perm), = perms.items()
    assert perm["Properties"]["FunctionName"] == {"Fn::GetAtt": ["OnCalFile", "Arn"]}
    assert perm["Properties"]["SourceArn"]["Fn::Sub"].endswith(":s3:::" + env["CALIB_CAL_BUCKET"])
    assert perm["Properties"]["SourceAccount"] == {"Ref": "AWS::AccountId"}
    assert perm_id in bucket["DependsOn"]  # S3 checks it may invoke the function when the bucket is made
    assert "Events" not in sam["Resources"]["OnCalFile"]["Properties"]
    (invoke_conf,) = _resources(sam, "AWS::Lambda::EventInvokeConfig").values()
    dest = invoke_conf["Properties"]["DestinationConfig"]["OnFailure"]["Destination"]["Fn::GetAtt"][0]
    assert sam["Resources"][dest]["Properties"]["QueueName"] == "mwa-calib-cal-events-dlq"


def test_sam_functions_settings_names_vpc_tracing_and_log_groups(sam):
    prod = _config()["stages"]["prod"]
    log_groups = {v["Properties"]["LogGroupName"] for v in _resources(sam, "AWS::Logs::LogGroup").values()}
    for function, lid in SAM_IDS.items():
        props = sam["Resources"][lid]["Properties"]
        settings = prod["lambda_functions"][function]
        assert props["MemorySize"] == settings["lambda_memory_size"]
        assert props["Timeout"] == settings["lambda_timeout"]
        assert props["FunctionName"] == LAMBDA_NAMES[function]
        assert props["Tracing"] == "Active"
        assert props["VpcConfig"] == {"SecurityGroupIds": prod["security_group_ids"], "SubnetIds": prod["subnet_ids"]}
        assert f"/aws/lambda/{LAMBDA_NAMES[function]}" in log_groups
    assert sam["Resources"]["RestAPI"]["Properties"]["TracingEnabled"] is True
    assert sam["Resources"]["RetryCallbacks"]["Properties"]["Events"]


def test_sam_policies_are_least_privilege(sam):
    for function in SAM_IDS:
        doc = _role_policy(sam, function)
        assert doc == json.loads((CHALICE / _config()["stages"]["prod"]["lambda_functions"][function]
                                  ["iam_policy_file"]).read_text())
        actions: set[str] = set()
        for st in _statements(doc):
            for action in st["actions"]:
                assert "*" not in action, (function, action)
            actions.update(st["actions"])
            if "*" in st["resources"]:
                assert set(st["actions"]) <= STAR_RESOURCE_OK, (function, st)
            for res in st["resources"]:
                if res.startswith("arn:aws:logs:"):
                    assert res.endswith(f":log-group:/aws/lambda/{LAMBDA_NAMES[function]}:*"), (function, res)
        assert actions == EXPECTED_ACTIONS[function], function


def _allowed(sam: dict, function: str, action: str) -> list[str]:
    return [r for st in _statements(_role_policy(sam, function)) if action in st["actions"] for r in st["resources"]]


def test_sam_policies_name_the_resources_each_function_uses(sam):
    from chalicelib.calrequests import REQUEST_QUEUE

    env = _prod_env("api_handler")
    cal, products = env["CALIB_CAL_BUCKET"], env["CALIB_PRODUCTS_BUCKET"]
    queue_arn = f"arn:aws:sqs:{REGION}:*:{REQUEST_QUEUE}"
    # only the API queues requests; only store_request consumes them
    assert _allowed(sam, "api_handler", "sqs:SendMessage") == [queue_arn]
    assert _allowed(sam, "store_request", "sqs:ReceiveMessage") == [queue_arn]
    assert _allowed(sam, "store_request", "sqs:DeleteMessage") == [queue_arn]
    assert _allowed(sam, "on_cal_file", "sqs:SendMessage") == [f"arn:aws:sqs:{REGION}:*:mwa-calib-cal-events-dlq"]
    # S3: the API reads/writes its caches in the products bucket (zips, plots, the metafits it fetched from the
    # metadata service); on_cal_file reads fit files
    assert sorted(_allowed(sam, "api_handler", "s3:PutObject")) == sorted(
        [f"arn:aws:s3:::{products}/cal_solutions/*", f"arn:aws:s3:::{products}/plots/*",
         f"arn:aws:s3:::{products}/metadata/*"])
    # ... and reads the fits' own solution files (get_cal_solution?source=file), nothing else of the calibration bucket
    assert all(r.startswith(f"arn:aws:s3:::{products}/") or r == f"arn:aws:s3:::{cal}/fits/*"
               for r in _allowed(sam, "api_handler", "s3:GetObject"))
    assert f"arn:aws:s3:::{cal}/fits/*" in _allowed(sam, "api_handler", "s3:GetObject")
    # on_cal_file reads fit files, and draws a landed fit's plots (the tiles may come from a stored metafits)
    assert sorted(_allowed(sam, "on_cal_file", "s3:GetObject")) == sorted(
        [f"arn:aws:s3:::{cal}/fits/*", f"arn:aws:s3:::{products}/plots/*", f"arn:aws:s3:::{products}/metadata/*"])
    assert sorted(_allowed(sam, "on_cal_file", "s3:PutObject")) == sorted(
        [f"arn:aws:s3:::{products}/plots/*", f"arn:aws:s3:::{products}/metadata/*"])
    assert not _allowed(sam, "store_request", "s3:GetObject") and not _allowed(sam, "retry_callbacks", "s3:GetObject")
    # secrets: each function reads only its database password (and the callback key where it signs)
    for function in SAM_IDS:
        secrets = _allowed(sam, function, "secretsmanager:GetSecretValue")
        wanted = _db_secrets(function)
        signing = _prod_env(function).get("CALIB_CALLBACK_SIGNING_SECRET", "")
        if signing:
            wanted.add(signing[len("{{resolve:secretsmanager:"):].rstrip("}").split(":", 1)[0])
        assert {re.sub(r"^arn:aws:secretsmanager:[^:]+:\*:secret:|-\?{6}$", "", s) for s in secrets} == wanted
    # the names in the policies are the names of the template's resources
    names = {q["Properties"]["QueueName"] for q in _resources(sam, "AWS::SQS::Queue").values()}
    assert {REQUEST_QUEUE, "mwa-calib-cal-events-dlq"} <= names


def test_sam_add_cal_request_needs_an_api_key_from_a_usage_plan(sam):
    swagger = sam["Resources"]["RestAPI"]["Properties"]["DefinitionBody"]
    assert swagger["securityDefinitions"]["api_key"] == {"type": "apiKey", "name": "x-api-key", "in": "header"}
    secured = {(path, method) for path, methods in swagger["paths"].items() for method, op in methods.items()
               if isinstance(op, dict) and op.get("security") and not path.startswith("/calib/admin/")}
    assert secured == {("/calib/add_cal_request", "get")}  # the read endpoints stay open (admin: test_admin_auth)
    keyed = {(path, method) for path, methods in swagger["paths"].items() for method, op in methods.items()
             if isinstance(op, dict) and any("api_key" in s for s in op.get("security", []))}
    assert keyed == {("/calib/add_cal_request", "get")}
    (plan,) = _resources(sam, "AWS::ApiGateway::UsagePlan").values()
    assert plan["Properties"]["ApiStages"] == [{"ApiId": {"Ref": "RestAPI"}, "Stage": {"Ref": "RestAPI.Stage"}}]
    (key_id,) = _resources(sam, "AWS::ApiGateway::ApiKey")
    (plan_key,) = _resources(sam, "AWS::ApiGateway::UsagePlanKey").values()
    assert plan_key["Properties"]["KeyId"] == {"Ref": key_id}


def test_an_alarm_fires_when_a_callback_gives_up_on_the_metric_the_code_emits(sam, terraform):
    """The alarm's namespace, name and exact dimension set are those of the EMF line the schedule writes."""
    from types import SimpleNamespace

    from chalicelib import observability

    config = json.loads((CHALICE / "config.json").read_text())["environment_variables"]
    function = observability._function(SimpleNamespace(function_name="mwa-calib-prod-retry_callbacks"), "?")
    assert function == "retry_callbacks"
    # what the retry_callbacks function writes when a callback gives up
    metrics = observability.metrics
    saved = metrics.namespace, metrics.service
    try:
        metrics.namespace, metrics.service = config["POWERTOOLS_METRICS_NAMESPACE"], config["POWERTOOLS_SERVICE_NAME"]
        metrics.clear_metrics()
        metrics.add_dimension("function", function)  # as observe_event does
        observability.count(observability.CALLBACK_GAVE_UP)
        blob = metrics.serialize_metric_set()
    finally:
        metrics.clear_metrics()
        metrics.namespace, metrics.service = saved
    (directive,) = blob["_aws"]["CloudWatchMetrics"]
    emitted = {name: blob[name] for dims in directive["Dimensions"] for name in dims}

    alarms = [r["Properties"] for r in _resources(sam, "AWS::CloudWatch::Alarm").values()
              if r["Properties"].get("MetricName") == observability.CALLBACK_GAVE_UP]
    (alarm,) = alarms
    assert alarm["Namespace"] == directive["Namespace"] == config["POWERTOOLS_METRICS_NAMESPACE"]
    assert {d["Name"]: d["Value"] for d in alarm["Dimensions"]} == emitted == {
        "function": "retry_callbacks", "service": config["POWERTOOLS_SERVICE_NAME"]}
    assert alarm["Threshold"] == 0 and alarm["ComparisonOperator"] == "GreaterThanThreshold"
    tf = [a for doc in terraform.values() for a in doc.get("resource", {}).get("aws_cloudwatch_metric_alarm", {}).values()
          if a["metric_name"] == observability.CALLBACK_GAVE_UP]
    (tf_alarm,) = tf
    assert tf_alarm["namespace"] == alarm["Namespace"] and tf_alarm["dimensions"] == emitted


def test_sam_every_reference_resolves(sam):
    found: set[str] = set()
    _refs(sam["Resources"], found)
    _refs(sam.get("Outputs", {}), found)
    for res in sam["Resources"].values():
        deps = res.get("DependsOn", [])
        found.update([deps] if isinstance(deps, str) else deps)
    sam_generated = {"RestAPI.Stage", "RestAPI.Deployment"}
    declared = set(sam["Resources"]) | set(sam.get("Parameters", {}))
    missing = {r for r in found if r not in declared and not r.startswith("AWS::") and r not in sam_generated}
    missing = {r for r in missing if r.split(".", 1)[0] not in sam["Resources"]}
    assert not missing
    for lid, res in sam["Resources"].items():
        assert "Type" in res, f"{lid}: the merge template names a resource chalice did not generate"


def _with_placeholder_ids(sam: dict) -> dict:
    """The template with the config's REPLACE_ME subnet/security-group ids swapped for well-formed ones."""
    text = json.dumps(sam)
    for i, placeholder in enumerate(sorted(set(re.findall(r'"((?:subnet|sg)-REPLACE_ME[^"]*)"', text)))):
        text = text.replace(f'"{placeholder}"', f'"{placeholder.split("-", 1)[0]}-{i:017x}"')
    return json.loads(text)


def test_sam_template_transforms_to_cloudformation(sam):
    cfn = sam_to_cloudformation(sam)
    res = cfn["Resources"]
    (mapping,) = [r for r in res.values() if r["Type"] == "AWS::Lambda::EventSourceMapping"]
    assert mapping["Properties"]["FunctionName"] == {"Ref": "StoreRequest"}
    (plan,) = [r for r in res.values() if r["Type"] == "AWS::ApiGateway::UsagePlan"]
    stage_id = plan["Properties"]["ApiStages"][0]["Stage"]["Ref"]
    assert res[stage_id]["Type"] == "AWS::ApiGateway::Stage" and res[stage_id]["Properties"]["TracingEnabled"]
    assert {r["Type"] for r in res.values()} >= {"AWS::Events::Rule", "AWS::Lambda::Function", "AWS::S3::Bucket"}


def test_sam_template_passes_cfn_lint(sam):
    import cfnlint.api as api
    matches = api.lint(json.dumps(_with_placeholder_ids(sam)), config=api.ManualArgs(regions=[REGION]))
    problems = [f"{m.rule.id} {m.message} ({'/'.join(map(str, m.path or []))})" for m in matches
                if m.rule.severity.lower() == "error"]
    assert not problems


# --- Terraform ---------------------------------------------------------------------------------------

def _tf_declared(docs: dict) -> tuple[set[str], set[str]]:
    resources, data = set(), set()
    for doc in docs.values():
        for type_, items in doc.get("resource", {}).items():
            resources.update(f"{type_}.{name}" for name in items)
        for type_, items in doc.get("data", {}).items():
            data.update(f"{type_}.{name}" for name in items)
    return resources, data


def _tf_strings(node) -> list[str]:
    if isinstance(node, dict):
        return [s for v in node.values() for s in _tf_strings(v)]
    if isinstance(node, list):
        return [s for v in node for s in _tf_strings(v)]
    return [node] if isinstance(node, str) else []


def _is_override(name: str) -> bool:
    """Terraform merges ``override.tf.json`` / ``*_override.tf.json`` into the blocks they name."""
    return name == "override.tf.json" or name.endswith("_override.tf.json")


def _tf_merged(docs: dict) -> dict[str, dict]:
    """Every resource as Terraform sees it: the files' blocks, then the override files' attributes merged in."""
    merged: dict[str, dict] = {}
    for name in sorted(docs, key=_is_override):
        for type_, items in docs[name].get("resource", {}).items():
            for rname, block in items.items():
                if _is_override(name):
                    merged[type_][rname] = {**merged[type_][rname], **block}
                else:
                    merged.setdefault(type_, {})[rname] = block
    return merged


def test_terraform_overlay_adds_resources_and_every_reference_resolves(terraform):
    chalice_doc = terraform["chalice.tf.json"]
    overlay = {k: v for k, v in terraform.items() if k != "chalice.tf.json"}
    chalice_res = {f"{t}.{n}" for t, items in chalice_doc["resource"].items() for n in items}
    for name, doc in overlay.items():
        added = {f"{t}.{n}" for t, items in doc["resource"].items() for n in items}
        if _is_override(name):
            assert added <= chalice_res  # an override file amends chalice's resources, it adds none
        else:
            assert not added & chalice_res  # an overlay adds, it never redefines chalice's resources
    resources, data = _tf_declared(terraform)
    for name, doc in terraform.items():
        texts = _tf_strings(doc.get("resource", {})) + _tf_strings(doc.get("output", {}))
        for text in texts:
            refs = re.findall(r"\$\{[^}]*\}", text) + ([text] if re.fullmatch(r"aws_\w+\.[\w-]+", text) else [])
            for ref in refs:
                for is_data, type_, rname in re.findall(r"(?<![\w.])(data\.)?(aws_\w+)\.([\w-]+)", ref):
                    assert f"{type_}.{rname}" in (data if is_data else resources), f"{name}: {ref}"


def test_terraform_declares_queues_notification_permission_and_api_key(terraform):
    from chalicelib.calrequests import REQUEST_QUEUE

    merged = _tf_merged(terraform)
    functions = merged["aws_lambda_function"]
    assert {f: functions[f]["function_name"] for f in LAMBDA_NAMES} == LAMBDA_NAMES
    queues = {q["name"]: (n, q) for n, q in merged["aws_sqs_queue"].items()}
    qname, queue = queues[REQUEST_QUEUE]
    dlq_name, _ = queues[REQUEST_QUEUE + "-dlq"]
    assert f"aws_sqs_queue.{dlq_name}.arn" in queue["redrive_policy"]
    (mapping,) = merged["aws_lambda_event_source_mapping"].values()
    assert mapping["event_source_arn"].endswith(":" + REQUEST_QUEUE)
    assert mapping["function_name"] == "${aws_lambda_function.store_request.arn}"
    env = functions["api_handler"]["environment"]["variables"]
    assert env["CALIB_REQUEST_QUEUE_URL"] == f"${{aws_sqs_queue.{qname}.url}}"
    (notification,) = merged["aws_s3_bucket_notification"].values()
    (target,) = notification["lambda_function"]
    assert target["lambda_function_arn"] == "${aws_lambda_function.on_cal_file.arn}"
    assert target["filter_prefix"] == "fits/"
    bucket = notification["bucket"].split(".")[1]
    assert merged["aws_s3_bucket"][bucket]["bucket"] == _prod_env("on_cal_file")["CALIB_CAL_BUCKET"]
    s3_perms = [p for p in merged["aws_lambda_permission"].values() if p["principal"] == "s3.amazonaws.com"]
    assert [p["function_name"] for p in s3_perms] == ["${aws_lambda_function.on_cal_file.arn}"]
    assert {f"/aws/lambda/{n}" for n in LAMBDA_NAMES.values()} <= {
        g["name"] for g in merged["aws_cloudwatch_log_group"].values()}
    (plan,) = merged["aws_api_gateway_usage_plan"].values()
    assert plan["api_stages"][0]["api_id"] == "${aws_api_gateway_rest_api.rest_api.id}"
    assert merged["aws_api_gateway_usage_plan_key"]
    for function in LAMBDA_NAMES:  # the same policy documents as the SAM template
        role = functions[function]["role"].split(".")[1]
        policy = json.loads(merged["aws_iam_role_policy"][role]["policy"])
        file = _config()["stages"]["prod"]["lambda_functions"][function]["iam_policy_file"]
        assert policy == json.loads((CHALICE / file).read_text())
        assert functions[function]["tracing_config"] == {"mode": "Active"}
        assert functions[function]["vpc_config"]["subnet_ids"]


# --- inside AWS's limits: database connections, concurrency, throttling, compression --------------

def _reserved() -> dict[str, int]:
    return {f: s["reserved_concurrency"] for f, s in _config()["stages"]["prod"]["lambda_functions"].items()}


def test_sam_functions_reach_the_database_through_a_proxy_that_requires_tls(sam):
    (proxy_id, proxy), = _resources(sam, "AWS::RDS::DBProxy").items()
    props = proxy["Properties"]
    assert props["EngineFamily"] == "POSTGRESQL" and props["RequireTLS"] is True
    for function, lid in SAM_IDS.items():
        env = sam["Resources"][lid]["Properties"]["Environment"]["Variables"]
        assert env["CALIB_DB_HOST"] == {"Fn::GetAtt": [proxy_id, "Endpoint"]}, function
        assert env["CALIB_DB_SSL"] == "1" and env["CALIB_DB_PORT"] == "5432", function
    # the proxy logs in with the functions' own secrets (their names pinned by the ARN parameters)
    params = sam["Parameters"]
    used = set().union(*(_db_secrets(f) for f in SAM_IDS))
    auth_params = [a["SecretArn"]["Ref"] for a in props["Auth"]]
    assert all(a["AuthScheme"] == "SECRETS" for a in props["Auth"])
    assert {re.search(r":secret:([\w/-]+)-\[", params[p]["AllowedPattern"]).group(1) for p in auth_params} == used
    role = sam["Resources"][props["RoleArn"]["Fn::GetAtt"][0]]["Properties"]
    assert role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {"Service": "rds.amazonaws.com"}
    (policy,) = role["Policies"]
    (statement,) = policy["PolicyDocument"]["Statement"]
    assert statement["Action"] == ["secretsmanager:GetSecretValue"]
    assert sorted(r["Ref"] for r in statement["Resource"]) == sorted(auth_params)
    # the database it fronts is a parameter (a cluster or an instance)
    (group,) = _resources(sam, "AWS::RDS::DBProxyTargetGroup").values()
    assert group["Properties"]["DBProxyName"] == {"Ref": proxy_id}
    targets = json.dumps([group["Properties"]["DBClusterIdentifiers"], group["Properties"]["DBInstanceIdentifiers"]])
    assert '"Ref": "DatabaseClusterId"' in targets and '"Ref": "DatabaseInstanceId"' in targets


def test_sam_the_proxy_bounds_its_database_connections_and_keeps_each_session_in_utc(sam):
    (group,) = _resources(sam, "AWS::RDS::DBProxyTargetGroup").values()
    pool = group["Properties"]["ConnectionPoolConfigurationInfo"]
    assert 0 < pool["MaxConnectionsPercent"] <= 75  # room left for migrations, the pipelines, engineers
    # a client waiting for a connection hears from the proxy before its own socket times out
    assert pool["ConnectionBorrowTimeout"] < float(_prod_env("api_handler")["CALIB_DB_TIMEOUT_S"])
    # SETs do not pin a session to one database connection; so every connection gets the app's SETs first
    sets = {m for path in (PROJECT / "chalicelib").rglob("*.py")
            for m in re.findall(r'\.run\(\s*"(SET [^"]+)"', path.read_text())}
    assert sets == {"SET TIME ZONE 'UTC'"}
    if "EXCLUDE_VARIABLE_SETS" in pool.get("SessionPinningFilters", []):
        assert all(s in pool["InitQuery"] for s in sets)


def test_sam_concurrency_is_reserved_per_function_and_the_api_stage_is_throttled_within_it(sam):
    reserved = _reserved()
    for function, lid in SAM_IDS.items():
        assert sam["Resources"][lid]["Properties"]["ReservedConcurrentExecutions"] == reserved[function] >= 1
    assert reserved["retry_callbacks"] == 1  # one sweep at a time
    (method,) = sam["Resources"]["RestAPI"]["Properties"]["MethodSettings"]
    assert (method["ResourcePath"], method["HttpMethod"]) == ("/*", "*")
    # API Gateway answers 429 before Lambda would throttle the API function
    assert 0 < method["ThrottlingRateLimit"] and 0 < method["ThrottlingBurstLimit"] <= reserved["api_handler"]
    # SQS never invokes more store_request copies than are reserved (throttled messages would count as receives)
    (event,) = sam["Resources"]["StoreRequest"]["Properties"]["Events"].values()
    assert 2 <= event["Properties"]["ScalingConfig"]["MaximumConcurrency"] <= reserved["store_request"]


def test_readme_states_the_connection_bound_the_config_gives():
    deploying = README.split("## Deploying to AWS", 1)[1].split("\n## ", 1)[0]
    total = sum(_reserved().values())
    assert re.search(rf"\b{total}\b[^.]*connections", deploying), total
    assert "MaxConnectionsPercent" in deploying


def test_sam_html_is_compressed_and_prod_asks_for_the_api_key_to_queue_fits(sam):
    size = _config()["stages"]["prod"]["minimum_compression_size"]
    assert sam["Resources"]["RestAPI"]["Properties"]["MinimumCompressionSize"] == size
    assert 0 <= size <= 2048  # every summary page is larger
    env = sam["Resources"]["APIHandler"]["Properties"]["Environment"]["Variables"]
    assert env["CALIB_LEGACY_ADD_REQUEST"] == "0"
    # dev (the local stack, chalice local, the test client) keeps the default: add_request=1 queues
    assert "CALIB_LEGACY_ADD_REQUEST" not in _config()["stages"]["dev"]["environment_variables"]
    from chalicelib.config import settings

    assert "CALIB_LEGACY_ADD_REQUEST" in os.environ or settings().legacy_add_request is True


def test_terraform_has_the_same_proxy_concurrency_throttling_and_compression(terraform):
    merged = _tf_merged(terraform)
    (proxy_name, proxy), = merged["aws_db_proxy"].items()
    assert proxy["engine_family"] == "POSTGRESQL" and proxy["require_tls"] is True
    secrets = {s["name"] for doc in terraform.values()
               for s in doc.get("data", {}).get("aws_secretsmanager_secret", {}).values()}
    used = set().union(*(_db_secrets(f) for f in SAM_IDS))
    assert secrets == used and len(proxy["auth"]) == len(used) == 3  # calib_ro, calib_rw, calib_admin
    (pool,) = merged["aws_db_proxy_default_target_group"].values()
    assert 0 < pool["connection_pool_config"]["max_connections_percent"] <= 75
    assert merged["aws_db_proxy_target"]
    reserved = _reserved()
    functions = merged["aws_lambda_function"]
    for function in LAMBDA_NAMES:
        env = functions[function]["environment"]["variables"]
        assert env["CALIB_DB_HOST"] == f"${{aws_db_proxy.{proxy_name}.endpoint}}" and env["CALIB_DB_SSL"] == "1"
        assert functions[function]["reserved_concurrent_executions"] == reserved[function]
    (settings,) = [m["settings"] for m in merged["aws_api_gateway_method_settings"].values()
                   if m["method_path"] == "*/*"]
    assert 0 < settings["throttling_burst_limit"] <= reserved["api_handler"] and settings["throttling_rate_limit"] > 0
    (mapping,) = merged["aws_lambda_event_source_mapping"].values()
    assert 2 <= mapping["scaling_config"]["maximum_concurrency"] <= reserved["store_request"]
    assert mapping["function_name"] == "${aws_lambda_function.store_request.arn}"  # amended, not replaced
    (api,) = merged["aws_api_gateway_rest_api"].values()
    assert api["minimum_compression_size"] == _config()["stages"]["prod"]["minimum_compression_size"]
