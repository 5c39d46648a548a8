"""Fit files landing in the calibration bucket -> requests finished -> callbacks delivered, retried, logged."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from datetime import UTC, datetime, timedelta

import pytest
from chalice.test import Client

from tests.requests_support import CAL, FAR_CAL, TARGET, s3_event, sqs_record

FITID = 1748781296000000


@pytest.fixture
def client(seeded, aws, callback_env):
    from app import app

    with Client(app) as c:
        yield c


def _store(url, key="req-1", job=42, cal=CAL, obs=TARGET):
    from app import app

    msg = {"version": 1, "request_key": key, "obs_id": obs, "cal_id": cal, "asvo_job_id": job, "callback_url": url}
    app.handler_map["store_request"]({"Records": [sqs_record(msg, f"m-{key}")]}, None)


def _land(client, aws, key, body=b"x", event_time="2025-06-01T12:34:56.789Z"):
    """Put the file in the bucket and hand its notification to on_cal_file.

    Called through handler_map without a Lambda context: chalice's test context allows 3 s, too
    little for a whole attempt, so the handler would (rightly) leave every callback to the schedule.
    """
    from app import app

    aws["s3"].put_object(Bucket="test-cal", Key=key, Body=body)
    return app.handler_map["on_cal_file"](s3_event(key, event_time=event_time), None)


def _retry(client):
    from app import app

    event = client.events.generate_cw_event(source="aws.events", detail_type="Scheduled Event", detail={},
                                            resources=[])
    return app.handler_map["retry_callbacks"](event, None)


def _rows():
    from chalicelib.db import requests as q

    return q.requests_for()


def _attempts(request_id):
    from chalicelib.db import requests as q

    return [(a["http_status"], a["error"]) for a in q.attempts(request_id)]


# --- the key layout -----------------------------------------------------------------------------

def test_key_layout_round_trips_and_ignores_other_keys():
    from chalicelib.ingest import layout

    ok = layout.parse_key(layout.solutions_key(CAL, FITID))
    assert (ok.cal_id, ok.fitid, ok.kind, ok.finishes_fit) == (CAL, FITID, "solutions", True)
    err = layout.parse_key(layout.error_key(CAL, FITID))
    assert (err.cal_id, err.fitid, err.kind) == (CAL, FITID, "error")
    other = layout.parse_key(f"fits/{CAL}/{FITID}/hyp_soln_{CAL}_ch109_solutions.fits")
    assert other.kind == "other" and not other.finishes_fit
    for key in ("metadata/x.fits", f"fits/{CAL}/{FITID}", f"fits/{CAL}/abc/{CAL}_solutions.fits",
                f"fits/{CAL}/{FITID}/sub/{CAL}_solutions.fits"):
        assert layout.parse_key(key) is None
    # a solutions file named for another observation does not finish this fit
    assert layout.parse_key(f"fits/{CAL}/{FITID}/{TARGET}_solutions.fits").kind == "other"


# --- success and failure files ------------------------------------------------------------------

def test_success_file_completes_requests_and_posts_exactly_the_documented_body(client, aws, receiver, monkeypatch):
    from chalicelib.ingest import layout

    monkeypatch.setenv("CALIB_CALLBACK_SIGNING_SECRET", "s3cret")
    _store(receiver.url)
    _store(None, key="req-nocb", job=None)  # no callback URL: completed, nothing sent
    _store(receiver.url, key="req-other", cal=FAR_CAL)  # another calibrator: untouched
    _land(client, aws, f"fits/{CAL}/{FITID}/hyp_soln_{CAL}_ch109_solutions.fits")  # a part: nothing happens
    assert receiver.received == [] and all(r["calibration_completed_datetime"] is None for r in _rows())

    _land(client, aws, layout.solutions_key(CAL, FITID))
    [got] = receiver.received
    assert got.path == "/asvo/callback?job=42"
    assert got.json() == {"cal_id": CAL, "asvo_job_id": 42, "target_obs_id": TARGET,
                          "finished_datetime": "2025-06-01T12:34:56Z", "success": True,
                          "message": f"calibration fit {FITID} of calibrator observation {CAL} succeeded"}
    assert list(got.json()) == ["cal_id", "asvo_job_id", "target_obs_id", "finished_datetime", "success", "message"]
    assert got.headers["content-type"] == "application/json"
    # what a receiver does: HMAC-SHA256 of the raw body it got, keyed with the shared secret
    expected = hmac.new(b"s3cret", got.body, hashlib.sha256).hexdigest()
    assert got.headers["x-mwa-calib-signature"] == f"sha256={expected}"

    mine, nocb, other = _rows()
    assert mine["calibration_completed_datetime"] == datetime(2025, 6, 1, 12, 34, 56, 789000, tzinfo=UTC)
    assert mine["calibration_fit_id"] == FITID and mine["calibration_error_datetime"] is None
    assert mine["callback_state"] == "delivered" and mine["callback_delivered_datetime"] is not None
    assert got.headers["x-mwa-calib-delivery"] == str(mine["id"])
    assert _attempts(mine["id"]) == [(200, None)]
    assert nocb["calibration_completed_datetime"] is not None and nocb["callback_state"] == "none"
    assert other["calibration_completed_datetime"] is None and other["callback_state"] == "none"


def test_failure_file_tells_success_false_with_its_message(client, aws, receiver):
    from chalicelib.ingest import layout

    _store(receiver.url)
    error = {"message": "hyperdrive: 60% of chanblocks did not converge", "finished_datetime": "2025-06-02T01:02:03Z"}
    _land(client, aws, layout.error_key(CAL, FITID), json.dumps(error).encode())
    [got] = receiver.received
    assert got.json() == {"cal_id": CAL, "asvo_job_id": 42, "target_obs_id": TARGET,
                          "finished_datetime": "2025-06-02T01:02:03Z", "success": False,
                          "message": "hyperdrive: 60% of chanblocks did not converge"}
    [row] = _rows()
    assert row["calibration_completed_datetime"] is None
    assert row["calibration_error_datetime"] == datetime(2025, 6, 2, 1, 2, 3, tzinfo=UTC)
    assert row["calibration_error_message"] == error["message"] and row["calibration_fit_id"] == FITID
    assert "X-MWA-Calib-Signature".lower() not in got.headers  # no secret configured


def test_a_plain_text_error_file_is_the_message(client, aws, receiver):
    from chalicelib.ingest import layout

    _store(receiver.url)
    _land(client, aws, layout.error_key(CAL, FITID), b"birli crashed\n")
    body = receiver.received[0].json()
    assert body["success"] is False and body["message"] == "birli crashed"
    assert body["finished_datetime"] == "2025-06-01T12:34:56Z"  # the file's arrival


def test_a_repeated_s3_event_sends_nothing_twice(client, aws, receiver):
    from chalicelib.ingest import layout

    _store(receiver.url)
    key = layout.solutions_key(CAL, FITID)
    _land(client, aws, key)
    client.lambda_.invoke("on_cal_file", s3_event(key))  # the test client's invoke path works too
    _retry(client)
    assert len(receiver.received) == 1


def test_events_of_other_buckets_and_test_events_are_ignored(client, aws, receiver):
    from app import app
    from chalicelib.ingest import layout

    _store(receiver.url)
    assert app.handler_map["on_cal_file"](s3_event(layout.solutions_key(CAL, FITID), bucket="test-products"),
                                          None) == []
    assert app.handler_map["on_cal_file"]({"Service": "Amazon S3", "Event": "s3:TestEvent"}, None) == []
    assert receiver.received == [] and _rows()[0]["calibration_completed_datetime"] is None


def test_a_request_after_a_fit_completed_others_is_answered_at_once(client, aws, receiver):
    from chalicelib.ingest import layout

    _land(client, aws, layout.solutions_key(CAL, FITID))  # nobody waiting: nothing records this fit
    # (until the ingest writes it to calibration_fits) so these two wait for the next fit
    _store(receiver.url, key="req-1")
    _store(receiver.url, key="req-2")
    assert receiver.received == []
    _land(client, aws, layout.solutions_key(CAL, FITID + 1))
    assert len(receiver.received) == 2
    _store(receiver.url, key="req-3")  # the completed requests record fit FITID + 1: answered at once
    assert len(receiver.received) == 3
    last = receiver.received[-1].json()
    assert last["success"] is True and str(FITID + 1) in last["message"] and "already available" in last["message"]
    assert _rows()[-1]["calibration_fit_id"] == FITID + 1


# --- retries ------------------------------------------------------------------------------------

def test_receiver_failing_twice_then_answering_gets_exactly_one_successful_delivery(client, aws, receiver):
    from chalicelib.ingest import layout

    receiver.script(500, 500, 200)
    _store(receiver.url)
    _land(client, aws, layout.solutions_key(CAL, FITID))
    [row] = _rows()
    assert row["callback_state"] == "pending" and row["calibration_completed_datetime"] is not None
    assert _retry(client) == {"attempted": 1, "delivered": 0, "failed": 0}  # the schedule: 500 again
    _retry(client)  # second retry: 200
    _retry(client)  # nothing left to do
    assert receiver.answered == [500, 500, 200]
    [ok] = receiver.successes()
    assert ok.json() == {"cal_id": CAL, "asvo_job_id": 42, "target_obs_id": TARGET,
                         "finished_datetime": "2025-06-01T12:34:56Z", "success": True,
                         "message": f"calibration fit {FITID} of calibrator observation {CAL} succeeded"}
    assert len({r.body for r in receiver.received}) == 1  # every attempt sent the same bytes
    [row] = _rows()
    assert row["callback_state"] == "delivered" and row["callback_attempts"] == 3
    assert _attempts(row["id"]) == [(500, "HTTP 500 Internal Server Error"), (500, "HTTP 500 Internal Server Error"),
                                    (200, None)]


def test_retry_delays_grow_and_stop_at_the_window():
    from chalicelib.config import settings
    from chalicelib.calrequests.callbacks import next_attempt_at

    cfg = settings()
    first = datetime(2025, 1, 1, tzinfo=UTC)
    assert (cfg.callback_retry_base_s, cfg.callback_retry_max_s, cfg.callback_retry_hours) == (30, 3600, 24)
    now, delays, n = first, [], 0
    while True:
        n += 1
        nxt = next_attempt_at(first, n, now, cfg)
        if nxt is None:
            break
        delays.append((nxt - now).total_seconds())
        now = nxt
    assert delays[:8] == [30, 60, 120, 240, 480, 960, 1920, 3600]
    assert max(delays) == 3600 and now == first + timedelta(hours=24)  # the last attempt is at the deadline
    assert 25 < n < 35


def test_the_retry_window_ends_in_failed_and_nothing_more_is_sent(client, aws, receiver, monkeypatch):
    from chalicelib.ingest import layout

    monkeypatch.setenv("CALIB_CALLBACK_RETRY_BASE_S", "0.05")
    monkeypatch.setenv("CALIB_CALLBACK_RETRY_MAX_S", "0.2")
    monkeypatch.setenv("CALIB_CALLBACK_RETRY_HOURS", str(0.6 / 3600))
    from chalicelib import observability

    counted: list[str] = []
    count = observability.count
    monkeypatch.setattr(observability, "count", lambda name, value=1: (counted.append(name), count(name, value)))
    receiver.script(500)
    _store(receiver.url)
    _land(client, aws, layout.solutions_key(CAL, FITID))
    end = time.monotonic() + 5
    while _rows()[0]["callback_state"] == "pending" and time.monotonic() < end:
        time.sleep(0.05)
        _retry(client)
    [row] = _rows()
    assert row["callback_state"] == "failed" and row["callback_next_attempt"] is None
    n = len(receiver.received)
    assert n >= 3 and row["callback_attempts"] == n == len(_attempts(row["id"]))
    assert counted.count("CallbackFailed") == n and counted.count("CallbackGaveUp") == 1  # the alarmed metric
    _retry(client)
    assert len(receiver.received) == n and counted.count("CallbackGaveUp") == 1


def test_a_redirect_is_not_followed(client, aws, receiver):
    from chalicelib.ingest import layout

    receiver.script(302, 200)
    receiver.extra_headers["Location"] = "http://169.254.169.254/latest/meta-data/"
    _store(receiver.url)
    _land(client, aws, layout.solutions_key(CAL, FITID))
    [row] = _rows()
    [(status, error)] = _attempts(row["id"])
    assert status == 302 and "not followed" in error and row["callback_state"] == "pending"
    assert len(receiver.received) == 1  # nothing went to the Location


def test_a_slow_receiver_times_out_within_the_total_limit(client, aws, receiver, monkeypatch):
    from chalicelib.ingest import layout

    monkeypatch.setenv("CALIB_CALLBACK_TOTAL_TIMEOUT_S", "0.5")
    receiver.delay_s = 2.0
    _store(receiver.url)
    t0 = time.monotonic()
    _land(client, aws, layout.solutions_key(CAL, FITID))
    assert time.monotonic() - t0 < 1.8
    [(status, error)] = _attempts(_rows()[0]["id"])
    assert status is None and "timed out" in error


def test_an_unreachable_receiver_is_a_recorded_failure(client, aws, monkeypatch):
    import socket

    from chalicelib.ingest import layout

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    _store(f"http://127.0.0.1:{port}/cb")
    _land(client, aws, layout.solutions_key(CAL, FITID))
    [row] = _rows()
    [(status, error)] = _attempts(row["id"])
    assert status is None and "refused" in error and row["callback_state"] == "pending"


def test_the_url_is_checked_again_when_sending(client, aws, receiver, monkeypatch):
    from chalicelib.ingest import layout

    _store(receiver.url)
    monkeypatch.setenv("CALIB_CALLBACK_ALLOW_HOSTS", "")  # loopback no longer allowed
    _land(client, aws, layout.solutions_key(CAL, FITID))
    assert receiver.received == []
    [(status, error)] = _attempts(_rows()[0]["id"])
    assert status is None and "callback URL refused" in error and "loopback" in error


@pytest.mark.parametrize("url, why", [
    ("http://[2002:7f00:1::]:{port}/cb", "6to4 address of 127.0.0.1, a loopback address"),
    ("http://[64:ff9b::7f00:1]:{port}/cb", "NAT64 address of 127.0.0.1, a loopback address"),
    ("http://[::ffff:7f00:1]:{port}/cb", "IPv4-mapped address of 127.0.0.1, a loopback address"),
    ("http://127.0.0.1:0/cb", "port must be between 1 and 65535"),
])
def test_a_stored_url_of_a_refused_form_is_refused_again_when_sending(client, aws, receiver, url, why):
    """A request stored before the check knew these forms (or written by hand) is not sent either."""
    from urllib.parse import urlsplit

    from chalicelib.ingest import layout

    _store(url.format(port=urlsplit(receiver.url).port))
    _land(client, aws, layout.solutions_key(CAL, FITID))
    assert receiver.received == []
    [(status, error)] = _attempts(_rows()[0]["id"])
    assert status is None and "callback URL refused" in error and why in error


def test_a_claimed_callback_is_not_sent_by_a_second_worker(client, aws, receiver, monkeypatch):
    from chalicelib.db import requests as q
    from chalicelib.calrequests import callbacks

    _store(receiver.url)
    callbacks.fit_finished(CAL, FITID, True, "ok", send=False)  # the ingest's entry point, delivery left to later
    now = datetime.now(UTC)
    claimed = q.claim_due_callback(now, now + timedelta(minutes=1))
    assert claimed is not None and q.claim_due_callback(now, now + timedelta(minutes=1)) is None
    assert _retry(client)["attempted"] == 0 and receiver.received == []  # leased: not due
    # the lease ends (the first worker died): due again and sent once
    later = now + timedelta(minutes=2)
    row = q.claim_due_callback(later, later + timedelta(minutes=1))
    assert callbacks.attempt(row)["state"] == "delivered" and len(receiver.received) == 1


def test_fit_finished_is_the_ingest_entry_point(client, receiver):
    from chalicelib.calrequests import callbacks

    _store(receiver.url)
    report = callbacks.fit_finished(CAL, FITID, False, "ingest failed: no tiles", datetime(2025, 1, 2, 3, 4, 5))
    assert report["success"] is False and len(report["requests"]) == 1
    assert [c["state"] for c in report["callbacks"]] == ["delivered"]
    assert receiver.received[0].json()["finished_datetime"] == "2025-01-02T03:04:05Z"


def test_a_handler_without_time_for_a_whole_attempt_leaves_callbacks_to_the_schedule(client, aws, receiver):
    from chalicelib.ingest import layout

    _store(receiver.url)
    aws["s3"].put_object(Bucket="test-cal", Key=layout.solutions_key(CAL, FITID), Body=b"x")
    # chalice's test context: 3 s left, minus the 2 s margin, is less than the 2 s an attempt may take
    client.lambda_.invoke("on_cal_file", s3_event(layout.solutions_key(CAL, FITID)))
    [row] = _rows()
    assert row["calibration_completed_datetime"] is not None and row["callback_state"] == "pending"
    assert receiver.received == []
    assert _retry(client)["delivered"] == 1 and len(receiver.received) == 1


def test_a_real_s3_notification_as_the_local_stack_delivers_it(client, aws, receiver):
    """moto's S3 -> SQS notification (URL-encoded key, s3:TestEvent first) through the pump's conversion."""
    from app import app
    from chalicelib.ingest import layout
    from devstack.stack import EventPump

    sqs, s3 = aws["sqs"], aws["s3"]
    url = sqs.create_queue(QueueName="cal-events")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    s3.put_bucket_notification_configuration(Bucket="test-cal", NotificationConfiguration={
        "QueueConfigurations": [{"QueueArn": arn, "Events": ["s3:ObjectCreated:*"]}]})
    _store(receiver.url)
    s3.put_object(Bucket="test-cal", Key=layout.solutions_key(CAL, FITID), Body=b"x")
    pump = EventPump({}, {"cal-events": url})
    pump._drain(sqs, app, "cal-events", "on_cal_file", pump._as_s3_event)
    [got] = receiver.received
    assert got.json()["cal_id"] == CAL and got.json()["success"] is True
    assert _rows()[0]["calibration_fit_id"] == FITID


def test_receiver_answers_as_scripted(receiver):
    """The helper itself: a scripted receiver answers 500 then 200."""
    import urllib.error
    import urllib.request

    receiver.script(500, 200)
    with pytest.raises(urllib.error.HTTPError):
        urllib.request.urlopen(urllib.request.Request(receiver.url, data=b"{}", method="POST"), timeout=2)
    assert urllib.request.urlopen(urllib.request.Request(receiver.url, data=b"{}", method="POST"), timeout=2).status == 200
    assert receiver.answered == [500, 200]
