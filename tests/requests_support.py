"""Shared pieces of the request tests: a real HTTP receiver on loopback, seeded observations, settings.

A pytest plugin (``pytest_plugins`` in conftest.py): its fixtures -- ``receiver``, ``callback_env``,
``seeded`` -- reach every test module; the constants and helpers are imported where used.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

TARGET = 1400000000  # a target observation
CAL = 1399999400  # its calibrator, 600 s before
FAR_CAL = 1399900000  # a calibrator 100000 s before (outside the default window)
LONELY = 1500000000  # an observation with no calibrator near it
OTHER_GAIN_CAL = 1400000300  # nearer in time than CAL, but another attenuation
CHANNELS = list(range(109, 133))


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self):
        return json.loads(self.body)


@dataclass
class Receiver:
    """A callback receiver: answers each POST with the next scripted status (the last repeats)."""

    url: str
    statuses: list[int]
    delay_s: float = 0.0
    extra_headers: dict[str, str] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    answered: list[int] = field(default_factory=list)

    def script(self, *statuses: int) -> None:
        self.statuses[:] = list(statuses)

    def successes(self) -> list[Received]:
        return [r for r, s in zip(self.received, self.answered) if 200 <= s < 300]

    def wait_for(self, n: int, timeout: float = 5.0) -> None:
        end = time.monotonic() + timeout
        while len(self.received) < n and time.monotonic() < end:
            time.sleep(0.02)


@pytest.fixture
def receiver():
    """A real HTTP server on 127.0.0.1 recording every POST (200 unless scripted otherwise)."""
    lock = threading.Lock()
    state: dict = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            rec: Receiver = state["r"]
            if rec.delay_s:
                time.sleep(rec.delay_s)
            with lock:
                status = rec.statuses.pop(0) if len(rec.statuses) > 1 else rec.statuses[0]
                rec.received.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                rec.answered.append(status)
            try:
                self.send_response(status)
                for k, v in rec.extra_headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")
            except OSError:
                pass

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    rec = Receiver(url=f"http://127.0.0.1:{server.server_address[1]}/asvo/callback?job=42", statuses=[200])
    state["r"] = rec
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield rec
    server.shutdown()
    server.server_close()


@pytest.fixture
def callback_env(monkeypatch):
    """Loopback allowed, short timeouts and retry delays (no real waiting in tests)."""
    monkeypatch.setenv("CALIB_CALLBACK_ALLOW_HOSTS", "127.0.0.1")
    monkeypatch.setenv("CALIB_CALLBACK_CONNECT_TIMEOUT_S", "1")
    monkeypatch.setenv("CALIB_CALLBACK_TOTAL_TIMEOUT_S", "2")
    monkeypatch.setenv("CALIB_CALLBACK_RETRY_BASE_S", "0")
    monkeypatch.setenv("CALIB_CALLBACK_RETRY_MAX_S", "0")
    monkeypatch.setenv("CALIB_CALLBACK_RETRY_HOURS", "24")
    monkeypatch.delenv("CALIB_CALLBACK_SIGNING_SECRET", raising=False)


def _obs(obsid: int, calibration: bool = False, gain: float = 1.0):
    """A tile-less observation named after its id; a calibrator observes HydA."""
    from tests.factories import observation

    return observation(obsid, calibration=calibration, gain=gain, channels=CHANNELS, name=f"obs{obsid}", tiles=[])


@pytest.fixture
def seeded(clean_db):
    """A target, its calibrator (no fit yet), a far calibrator, another-gain calibrator, a lonely obs."""
    from chalicelib import db
    from chalicelib.db import writes

    with db.transaction() as tx:
        for o in (_obs(TARGET), _obs(CAL, True), _obs(FAR_CAL, True), _obs(OTHER_GAIN_CAL, True, gain=2.0),
                  _obs(LONELY)):
            writes.insert_observation(tx, o)
    return {"target": TARGET, "cal": CAL}


def add_fit(cal_id: int, fitid: int, fit_time: datetime | None = None, good: bool = True) -> None:
    """A calibration_fits row for the calibrator with two tiles (solved, or all NaN)."""
    from chalicelib import db
    from chalicelib.db import writes
    from chalicelib.records import Fit
    from tests.factories import flat_row

    rows = [flat_row(t, 0.5 if good else float("nan")) for t in (11, 12)]
    with db.transaction() as tx:
        writes.insert_fit(tx, Fit(fitid=fitid, obsid=cal_id, creator="calvin",
                                  fit_time=fit_time or datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)), rows)


def sqs_record(body: dict | str, message_id: str = "m-1") -> dict:
    """One SQS record as Lambda delivers it."""
    return {"messageId": message_id, "receiptHandle": "rh", "body": body if isinstance(body, str) else json.dumps(body),
            "attributes": {"ApproximateReceiveCount": "1"}, "messageAttributes": {}, "md5OfBody": "",
            "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:ap-southeast-2:123456789012:mwa-calib-requests",
            "awsRegion": "ap-southeast-2"}


def s3_event(key: str, bucket: str = "test-cal", event_time: str = "2025-06-01T12:34:56.789Z") -> dict:
    """An S3 ObjectCreated notification for one key."""
    return {"Records": [{
        "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "ap-southeast-2", "eventTime": event_time,
        "eventName": "ObjectCreated:Put", "userIdentity": {"principalId": "x"}, "requestParameters": {},
        "responseElements": {},
        "s3": {"s3SchemaVersion": "1.0", "configurationId": "c", "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}",
               "ownerIdentity": {"principalId": "x"}}, "object": {"key": key, "size": 10, "eTag": "e", "sequencer": "1"}},
    }]}
