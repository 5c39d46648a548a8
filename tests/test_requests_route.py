"""GET /calib/add_cal_request: every status code, the queued message, and the callback URL check."""

from __future__ import annotations

import json
import socket

import pytest
from chalice.test import Client

from tests.requests_support import CAL, LONELY, TARGET


@pytest.fixture
def client(seeded, aws, callback_env):
    from app import app

    with Client(app) as c:
        yield c


def _messages(aws) -> list[dict]:
    got = aws["sqs"].receive_message(QueueUrl=aws["queue_url"], MaxNumberOfMessages=10, WaitTimeSeconds=0)
    return [json.loads(m["Body"]) for m in got.get("Messages", [])]


def _get(client, **query):
    from urllib.parse import urlencode

    return client.http.get("/calib/add_cal_request?" + urlencode(query))


def test_200_empty_body_and_one_message_with_the_calibrator(client, aws, receiver):
    r = _get(client, obs_id=TARGET, asvo_job_id=42, callback_url=receiver.url)
    assert r.status_code == 200
    assert r.body in (b"", "")
    [msg] = _messages(aws)
    assert msg["obs_id"] == TARGET and msg["cal_id"] == CAL  # the nearest calibrator of the same gain
    assert msg["asvo_job_id"] == 42 and msg["callback_url"] == receiver.url
    assert msg["request_key"].startswith("req-") and msg["version"] == 1


def test_200_without_optional_parameters(client, aws):
    assert _get(client, obs_id=TARGET).status_code == 200
    [msg] = _messages(aws)
    assert msg["asvo_job_id"] is None and msg["callback_url"] is None and msg["cal_id"] == CAL


def test_a_calibrator_itself_with_max_time_separation_0(client, aws):
    assert _get(client, obs_id=CAL, max_time_separation=0).status_code == 200
    assert _messages(aws)[0]["cal_id"] == CAL


@pytest.mark.parametrize("query, parameter", [
    ({}, "obs_id"),
    ({"obs_id": "abc"}, "obs_id"),
    ({"obs_id": TARGET, "asvo_job_id": "x1"}, "asvo_job_id"),
    ({"obs_id": TARGET, "max_time_separation": "-5"}, "max_time_separation"),
    ({"obs_id": 1234}, "obs_id"),  # not in the schedule
])
def test_400_bad_parameters_and_unknown_observation(client, aws, query, parameter):
    r = _get(client, **query)
    assert r.status_code == 400
    assert json.loads(r.body)["parameter"] == parameter
    assert _messages(aws) == []


@pytest.mark.parametrize("url, why", [
    ("ftp://example.org/cb", "http or https"),
    ("https://example.org/" + "a" * 2040, "2048"),
    ("http://10.1.2.3/cb", "private"),
    ("http://169.254.169.254/latest/meta-data", "metadata"),
    ("http://[::1]:8080/cb", "loopback"),
    ("http://localhost:8080/cb", "loopback"),  # resolves to loopback; only 127.0.0.1 is allow-listed here
    ("http://user:pw@example.org/cb", "user name"),
    ("http:///nohost", "no host"),
    ("http://[2002:7f00:1::]:9301/x", "6to4 address of 127.0.0.1"),  # 6to4 forms of loopback and metadata
    ("http://[2002:a9fe:a9fe::]/latest/meta-data/", "6to4 address of 169.254.169.254"),
    ("http://[64:ff9b::a9fe:a9fe]/latest/meta-data/", "NAT64 address of 169.254.169.254"),
    ("http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/cb", "Teredo address (client) of 127.0.0.1"),
    ("http://[::ffff:7f00:1]:8080/cb", "IPv4-mapped address of 127.0.0.1"),
    ("http://8.8.8.8:0/x", "port must be between 1 and 65535"),
    ("http://127.0.0.1:0/cb", "port must be between 1 and 65535"),  # allow-listed host, still no port 0
])
def test_400_refused_callback_urls(client, aws, url, why):
    r = _get(client, obs_id=TARGET, callback_url=url)
    assert r.status_code == 400, r.body
    body = json.loads(r.body)
    assert body["parameter"] == "callback_url" and why in body["message"]
    assert _messages(aws) == []


def test_400_when_a_public_name_resolves_to_a_private_address(client, aws, monkeypatch):
    from chalicelib.calrequests import urls

    def fake(host, port, **kw):
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", port)),
                (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("192.168.1.5", port))]

    monkeypatch.setattr(urls, "_getaddrinfo", fake)
    r = _get(client, obs_id=TARGET, callback_url="https://asvo.example.org/cb")
    assert r.status_code == 400 and "192.168.1.5" in json.loads(r.body)["message"]


def test_404_when_no_calibrator_is_within_the_window(client, aws):
    r = _get(client, obs_id=LONELY)
    assert r.status_code == 404
    assert _messages(aws) == []
    # the far calibrator is outside 86400 s, inside 200000 s
    assert _get(client, obs_id=TARGET, max_time_separation=0).status_code == 404


def test_409_when_the_queue_refuses(client, aws, monkeypatch):
    monkeypatch.setenv("CALIB_REQUEST_QUEUE_URL", aws["queue_url"] + "-gone")
    r = _get(client, obs_id=TARGET)
    assert r.status_code == 409
    assert json.loads(r.body)["error"] == "conflict"


def test_500_for_a_fault_of_ours(client, aws, monkeypatch):
    monkeypatch.setenv("CALIB_REQUEST_QUEUE_URL", "")
    r = _get(client, obs_id=TARGET)
    assert r.status_code == 500
    body = json.loads(r.body)
    assert body["error"] == "internal_error" and "request_id" in body and "Traceback" not in r.body.decode()
