"""Structured logs, metrics and tracing: what an operator finds in CloudWatch for every invocation.

No database or AWS is needed: the HTTP cases use /calib/openapi.json (or a patched route), the
event cases patch the work of the handlers and check what the middleware around them logs and counts.
"""

from __future__ import annotations

import json

import pytest
from chalice.test import Client


def _lines(text: str) -> list[dict]:
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
    return out


def _emf(records: list[dict]) -> list[dict]:
    return [r for r in records if "_aws" in r]


def _logs(records: list[dict]) -> list[dict]:
    return [r for r in records if "_aws" not in r and "level" in r]


def _metric_names(blob: dict) -> set[str]:
    return {m["Name"] for d in blob["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]}


def _dimensions(blob: dict) -> set[str]:
    return {name for d in blob["_aws"]["CloudWatchMetrics"] for dims in d["Dimensions"] for name in dims}


@pytest.fixture
def capfd(capsys):
    """Log lines (the powertools handler, pointed at a buffer) and EMF metric lines (stdout), in order."""
    import io

    from chalicelib import observability

    buf = io.StringIO()
    handler = observability.logger.registered_handler
    old = handler.setStream(buf)

    class Reader:
        def readouterr(self):
            out = buf.getvalue() + capsys.readouterr().out
            buf.seek(0)
            buf.truncate()
            return type("Captured", (), {"out": out})()

    yield Reader()
    handler.setStream(old)


@pytest.fixture
def client():
    from app import app

    with Client(app) as c:
        yield c


class Ctx:
    """The Lambda context attributes handlers and powertools read."""

    def __init__(self, name: str) -> None:
        self.function_name = name
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:ap-southeast-2:123456789012:function:{name}"
        self.memory_limit_in_mb = 512
        self.aws_request_id = "lambda-req-1"
        self.log_group_name = f"/aws/lambda/{name}"
        self.log_stream_name = "s"

    def get_remaining_time_in_millis(self) -> int:
        return 30000


def test_http_request_logs_json_with_request_id_and_obs_id_and_flushes_metrics(client, capfd):
    from chalicelib import observability

    r = client.http.get("/calib/openapi.json?obs_id=1120493008")
    assert r.status_code == 200
    records = _lines(capfd.readouterr().out)
    (access,) = [r for r in _logs(records) if r["message"] == "request"]
    assert access["status"] == 200 and access["path"] == "/calib/openapi.json"
    assert access["obs_id"] == "1120493008" and access["request_id"]
    assert access["method"] == "GET" and access["level"] == "INFO"
    (blob,) = _emf(records)
    assert blob["_aws"]["CloudWatchMetrics"][0]["Namespace"] == observability.metrics.provider.namespace
    assert {"Requests", "Latency"} <= _metric_names(blob)
    assert "endpoint" in _dimensions(blob) and blob["endpoint"] == "/calib/openapi.json"
    # the keys belong to that request only
    observability.logger.info("after")
    (after,) = [r for r in _logs(_lines(capfd.readouterr().out)) if r["message"] == "after"]
    assert "request_id" not in after and "obs_id" not in after


def test_fault_of_ours_logs_the_request_id_the_answer_quotes(client, capfd, monkeypatch):
    from chalicelib.api import cal_solution

    def boom(query):
        raise RuntimeError("internals")

    monkeypatch.setattr(cal_solution, "get_cal_fits", boom)
    r = client.http.get("/calib/get_cal_fits?obs_id=5")
    assert r.status_code == 500
    request_id = json.loads(r.body)["request_id"]
    records = _lines(capfd.readouterr().out)
    (err,) = [x for x in _logs(records) if x["level"] == "ERROR"]  # Chalice's "Caught exception for path"
    assert err["request_id"] == request_id and err["obs_id"] == "5"
    assert "RuntimeError: internals" in err["exception"]
    (blob,) = _emf(records)
    assert {"Requests", "ServerErrors"} <= _metric_names(blob)


def test_selection_miss_is_counted(client, capfd, monkeypatch):
    from chalicelib.api import cal_solution
    from chalicelib.errors import NotFound

    def miss(query):
        raise NotFound("no calibrator", searched={"window": [0, 1]}, nearest_rejected=None)

    monkeypatch.setattr(cal_solution, "get_cal_fits", miss)
    assert client.http.get("/calib/get_cal_fits?obs_id=5").status_code == 404
    (blob,) = _emf(_lines(capfd.readouterr().out))
    assert {"SelectionMiss", "ClientErrors", "Requests"} <= _metric_names(blob)


def test_count_api_for_other_modules(client, capfd, monkeypatch):
    from chalicelib import observability
    from chalicelib.api import cal_solution
    from chalicelib.web import json_response

    def served(query):
        observability.count(observability.CACHE_HIT)
        observability.count(observability.CALLBACK_SENT, 2)
        observability.count("not a metric name!")  # refused quietly: a metric never fails a request
        return json_response({})

    monkeypatch.setattr(cal_solution, "get_cal_fits", served)
    assert client.http.get("/calib/get_cal_fits?obs_id=5").status_code == 200
    (blob,) = _emf(_lines(capfd.readouterr().out))
    assert {"CacheHit", "CallbackSent"} <= _metric_names(blob)
    assert blob["CallbackSent"] in (2, 2.0, [2.0])
    assert set(observability.METRIC_NAMES) == {"CacheHit", "CacheMiss", "CallbackSent", "CallbackFailed",
                                               "CallbackGaveUp", "SelectionMiss"}


def _s3_event(key: str) -> dict:
    return {"Records": [{
        "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "ap-southeast-2",
        "eventTime": "2025-06-01T00:00:00.000Z", "eventName": "ObjectCreated:Put",
        "s3": {"s3SchemaVersion": "1.0", "bucket": {"name": "mwa-calib-solutions", "arn": "arn:aws:s3:::x"},
               "object": {"key": key, "size": 10, "eTag": "e"}}}]}


def test_s3_event_function_logs_fit_keys_and_counts_invocations(capfd, monkeypatch):
    from app import app
    from chalicelib.ingest import events

    seen = {}

    def handle(event, context):
        seen["event"] = event
        from chalicelib.observability import logger

        logger.info("inside")
        return []

    monkeypatch.setattr(events, "handle_event", handle)
    event = _s3_event("fits/1120493424/1717000000/1120493424_solutions.fits")
    app.handler_map["on_cal_file"](event, Ctx("mwa-calib-prod-on_cal_file"))
    assert seen["event"] == event  # the handler still gets the raw event dict
    records = _lines(capfd.readouterr().out)
    (inside,) = [r for r in _logs(records) if r["message"] == "inside"]
    assert inside["cal_id"] == "1120493424" and inside["fitid"] == "1717000000"
    assert inside["function_request_id"] == "lambda-req-1" and inside["function"] == "on_cal_file"
    assert inside["key"].endswith("_solutions.fits")
    (blob,) = _emf(records)
    assert "Invocations" in _metric_names(blob) and blob["function"] == "on_cal_file"


def test_failing_event_function_counts_an_error_and_still_raises(capfd, monkeypatch):
    from app import app
    from chalicelib.ingest import events

    def handle(event, context):
        raise RuntimeError("ingest failed")

    monkeypatch.setattr(events, "handle_event", handle)
    with pytest.raises(RuntimeError):
        app.handler_map["on_cal_file"](_s3_event("fits/1/2/x"), Ctx("mwa-calib-prod-on_cal_file"))
    records = _lines(capfd.readouterr().out)
    (blob,) = _emf(records)
    assert {"Invocations", "Errors"} <= _metric_names(blob)
    assert any(r["message"] == "handler failed" for r in _logs(records))


def test_sqs_function_logs_the_requested_obs_id(capfd, monkeypatch):
    import chalicelib.calrequests as cal_requests
    from app import app

    got = []

    def store(records, context):
        got.extend(records)
        from chalicelib.observability import logger

        logger.info("stored")
        return []

    monkeypatch.setattr(cal_requests, "store_sqs_records", store)
    event = {"Records": [{
        "messageId": "m-1", "receiptHandle": "r", "body": json.dumps({"obs_id": 1120493008, "cal_id": 1120493424}),
        "attributes": {"ApproximateReceiveCount": "1"}, "messageAttributes": {}, "md5OfBody": "",
        "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:ap-southeast-2:123456789012:mwa-calib-requests",
        "awsRegion": "ap-southeast-2"}]}
    app.handler_map["store_request"](event, Ctx("mwa-calib-prod-store_request"))
    assert [r["messageId"] for r in got] == ["m-1"]
    records = _lines(capfd.readouterr().out)
    (stored,) = [r for r in _logs(records) if r["message"] == "stored"]
    assert stored["obs_id"] == "1120493008" and stored["message_ids"] == ["m-1"]
    assert _emf(records)[0]["function"] == "store_request"


def test_tracing_is_off_outside_lambda_and_costs_nothing_on_http(client):
    import sys

    from chalicelib import observability

    client.http.get("/calib/openapi.json")
    assert observability.tracer() is None
    with observability.trace("## nothing") as segment:
        assert segment is None
    assert "aws_xray_sdk.core" not in sys.modules or observability._tracer is False
