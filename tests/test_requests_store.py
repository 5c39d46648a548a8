"""store_request (the SQS handler): one row per message, repeats ignored, fitted calibrators answered at once."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from chalice.test import Client

from tests.requests_support import CAL, TARGET, add_fit, sqs_record


@pytest.fixture
def app_client(seeded, aws, callback_env):
    from app import app

    with Client(app) as c:
        yield c


def _message(url=None, key="req-1", job=7, cal=CAL, obs=TARGET):
    return {"version": 1, "request_key": key, "obs_id": obs, "cal_id": cal, "asvo_job_id": job,
            "callback_url": url, "requested_at": "2025-06-01T00:00:00Z"}


def _requests():
    from chalicelib.db import requests as q

    return q.requests_for()


def test_the_route_then_the_handler_store_one_open_request(app_client, aws, receiver):
    from urllib.parse import urlencode

    r = app_client.http.get("/calib/add_cal_request?" + urlencode(
        {"obs_id": TARGET, "asvo_job_id": 42, "callback_url": receiver.url}))
    assert r.status_code == 200
    msgs = aws["sqs"].receive_message(QueueUrl=aws["queue_url"], MaxNumberOfMessages=10)["Messages"]
    event = app_client.events.generate_sqs_event([m["Body"] for m in msgs], queue_name="mwa-calib-requests")
    app_client.lambda_.invoke("store_request", event)
    [row] = _requests()
    assert row["cal_id"] == CAL and row["realtime"] is False and row["bulk_request"] is False
    assert row["target_obs_id"] == TARGET and row["asvo_job_id"] == 42 and row["callback_url"] == receiver.url
    assert row["calibration_completed_datetime"] is None and row["calibration_error_datetime"] is None
    assert row["callback_state"] == "none" and receiver.received == []  # nothing to tell until a fit lands


def test_a_message_delivered_twice_stores_one_request(app_client):
    from app import app

    record = sqs_record(_message())
    app.handler_map["store_request"]({"Records": [record]}, None)
    app.handler_map["store_request"]({"Records": [dict(record, messageId="m-2")]}, None)  # same request, resent
    assert len(_requests()) == 1
    # a different request of the same calibrator is a second row
    app.handler_map["store_request"]({"Records": [sqs_record(_message(key="req-2"), "m-3")]}, None)
    assert len(_requests()) == 2


def test_a_message_without_a_key_is_keyed_by_its_message_id(app_client):
    from app import app

    body = {k: v for k, v in _message().items() if k != "request_key"}
    for _ in range(2):
        app.handler_map["store_request"]({"Records": [sqs_record(body, "msg-abc")]}, None)
    [row] = _requests()
    assert row["request_key"] == "sqs-msg-abc"


def test_already_fitted_calibrator_completes_at_once_and_calls_back(app_client, receiver):
    from app import app
    from chalicelib.db import requests as q

    fit_time = datetime(2025, 5, 30, 8, 0, 0, tzinfo=UTC)
    add_fit(CAL, 1748592000000000, fit_time=fit_time)
    app.handler_map["store_request"]({"Records": [sqs_record(_message(url=receiver.url, job=42))]}, None)
    [row] = _requests()
    assert row["calibration_completed_datetime"] == fit_time and row["calibration_fit_id"] == 1748592000000000
    assert row["callback_state"] == "delivered"
    [got] = receiver.received
    body = got.json()
    assert body == {"cal_id": CAL, "asvo_job_id": 42, "target_obs_id": TARGET,
                    "finished_datetime": "2025-05-30T08:00:00Z", "success": True, "message": body["message"]}
    assert "1748592000000000" in body["message"]
    assert [a["http_status"] for a in q.attempts(row["id"])] == [200]


def test_a_fit_that_failed_on_every_tile_does_not_count(app_client, receiver):
    from app import app

    add_fit(CAL, 1748592000000000, good=False)
    app.handler_map["store_request"]({"Records": [sqs_record(_message(url=receiver.url))]}, None)
    [row] = _requests()
    assert row["calibration_completed_datetime"] is None and receiver.received == []


def test_already_fitted_with_a_failing_receiver_goes_to_the_retry_schedule(app_client, receiver, monkeypatch):
    from app import app
    from chalicelib.db import requests as q

    monkeypatch.setenv("CALIB_CALLBACK_RETRY_BASE_S", "3600")
    monkeypatch.setenv("CALIB_CALLBACK_RETRY_MAX_S", "3600")
    receiver.script(503)
    add_fit(CAL, 1748592000000000)
    app.handler_map["store_request"]({"Records": [sqs_record(_message(url=receiver.url))]}, None)
    [row] = _requests()
    assert row["calibration_completed_datetime"] is not None  # the request is done; the callback is owed
    assert row["callback_state"] == "pending" and row["callback_attempts"] == 1
    assert row["callback_next_attempt"] > datetime.now(UTC)
    assert [(a["http_status"], a["error"]) for a in q.attempts(row["id"])] == [(503, "HTTP 503 Service Unavailable")]


@pytest.mark.parametrize("body", ["not json", json.dumps({"obs_id": "x", "cal_id": CAL, "request_key": "k"}),
                                  json.dumps({"request_key": "k", "obs_id": TARGET})])
def test_a_bad_message_raises_so_it_stays_queued(app_client, body):
    from app import app
    from chalicelib.calrequests.store import StoreFailed

    with pytest.raises(StoreFailed):
        app.handler_map["store_request"]({"Records": [sqs_record(body)]}, None)
    assert _requests() == []


def test_a_failing_store_leaves_the_message_queued_then_dead_letters_it(app_client, aws, monkeypatch):
    """The local stack's pump semantics (as Lambda's): delete only on success; redrive after 5 receives."""
    from app import app
    from chalicelib.db import requests as q
    from devstack.stack import EventPump

    sqs = aws["sqs"]
    sqs.set_queue_attributes(QueueUrl=aws["queue_url"], Attributes={"VisibilityTimeout": "0"})
    sqs.send_message(QueueUrl=aws["queue_url"], MessageBody=json.dumps(_message()))

    def broken(*a, **k):
        raise ConnectionResetError("database went away")

    pump = EventPump({}, {"mwa-calib-requests": aws["queue_url"]})
    with monkeypatch.context() as m:
        m.setattr(q, "insert_request", broken)
        for _ in range(6):
            pump._drain(sqs, app, "mwa-calib-requests", "store_request", pump._as_sqs_event)
    assert pump.handled == 0
    dead = sqs.receive_message(QueueUrl=aws["dlq_url"], MaxNumberOfMessages=10).get("Messages", [])
    assert [json.loads(m["Body"])["request_key"] for m in dead] == ["req-1"]
    # the database is back: a redriven message is stored normally
    app.handler_map["store_request"]({"Records": [sqs_record(dead[0]["Body"], dead[0]["MessageId"])]}, None)
    assert len(_requests()) == 1
