"""The metadata service misbehaving: refused, silent, trickling, 404, garbage, too big, redirecting elsewhere.

Each case runs against a real HTTP server (or a bare listening socket) on loopback. What the user
sees: a 503 MetadataUnavailable that says what happened, within the time limit, or the spec's 400
on obs_id when the service says the observation does not exist; nothing unusable is stored.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from chalicelib import metadata
from chalicelib.errors import BadRequest, MetadataUnavailable
from chalicelib.metadata import webservice
from tests.metadata_support import FETCHED, STORED, metafits_path

FIFTY_MB = 50 * 1024 * 1024
CAP = 16 * 1024 * 1024


class Scripted:
    """A real HTTP server on 127.0.0.1 whose GET answer is a function of the handler; it records paths."""

    def __init__(self, answer: Callable[[BaseHTTPRequestHandler], None]) -> None:
        self.paths: list[str] = []
        self.sent = 0  # body bytes written by answers that stream
        self.done = threading.Event()
        state = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's name
                state.paths.append(self.path)
                try:
                    answer(self)
                except OSError:  # the client went away
                    pass
                finally:
                    state.done.set()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def base(self, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}/metadata/fits?obs_id="

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def scripted(monkeypatch):
    """Start Scripted servers; the service is pointed at the first, loopback allowed, 1 s / 2 s limits."""
    servers: list[Scripted] = []
    monkeypatch.setenv("CALIB_METADATA_ALLOW_HOSTS", "127.0.0.1,localhost")
    monkeypatch.setenv("CALIB_METADATA_CONNECT_TIMEOUT_S", "1")
    monkeypatch.setenv("CALIB_METADATA_TOTAL_TIMEOUT_S", "2")

    def start(answer: Callable[[BaseHTTPRequestHandler], None], point: bool = True) -> Scripted:
        srv = Scripted(answer)
        servers.append(srv)
        if point:
            monkeypatch.setenv("CALIB_METADATA_URL", srv.base())
        return srv

    yield start
    for srv in servers:
        srv.stop()


def send(handler: BaseHTTPRequestHandler, status: int, body: bytes = b"", **headers: str) -> None:
    handler.send_response(status)
    for name, value in headers.items():
        handler.send_header(name.replace("_", "-"), value)
    if "Content_Length" not in headers:
        handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


def unavailable(obsid: int = FETCHED) -> tuple[MetadataUnavailable, float]:
    t0 = time.monotonic()
    with pytest.raises(MetadataUnavailable) as caught:
        webservice.fetch(obsid)
    return caught.value, time.monotonic() - t0


def test_a_good_answer_is_the_metafits_bytes(scripted):
    srv = scripted(lambda h: send(h, 200, metafits_path(FETCHED).read_bytes()))

    assert webservice.fetch(FETCHED) == metafits_path(FETCHED).read_bytes()
    assert srv.paths == [f"/metadata/fits?obs_id={FETCHED}"]


def test_connection_refused_is_a_503_saying_so(monkeypatch):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    monkeypatch.setenv("CALIB_METADATA_URL", f"http://127.0.0.1:{port}/metadata/fits?obs_id=")
    monkeypatch.setenv("CALIB_METADATA_ALLOW_HOSTS", "127.0.0.1")

    exc, elapsed = unavailable()

    assert exc.status == 503 and exc.body()["error"] == "metadata_unavailable"
    assert "connection refused" in exc.message and "cannot be reached" in exc.message
    assert elapsed < 1.0


def test_a_service_that_accepts_and_never_answers_is_a_503_within_the_total_timeout(monkeypatch):
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # the kernel completes the handshake; nobody ever reads or answers
    monkeypatch.setenv("CALIB_METADATA_URL", f"http://127.0.0.1:{silent.getsockname()[1]}/metadata/fits?obs_id=")
    monkeypatch.setenv("CALIB_METADATA_ALLOW_HOSTS", "127.0.0.1")
    monkeypatch.setenv("CALIB_METADATA_TOTAL_TIMEOUT_S", "1")
    try:
        exc, elapsed = unavailable()
    finally:
        silent.close()

    assert "timed out" in exc.message and "1 s" in exc.message
    assert 0.9 <= elapsed < 1.5


def test_a_service_that_trickles_its_body_is_cut_at_the_total_timeout(scripted):
    def trickle(h):
        h.send_response(200)
        h.send_header("Content-Length", "100000")
        h.end_headers()
        for _ in range(100):
            h.wfile.write(b"x")
            h.wfile.flush()
            time.sleep(0.1)

    scripted(trickle)

    exc, elapsed = unavailable()

    assert "timed out" in exc.message
    assert 1.9 <= elapsed < 2.6


@pytest.mark.parametrize("status", [404, 400])
def test_the_service_saying_the_observation_does_not_exist_is_the_spec_400_on_obs_id(scripted, status):
    scripted(lambda h: send(h, status, b"no such observation"))

    with pytest.raises(BadRequest) as caught:
        webservice.fetch(FETCHED)

    assert caught.value.status == 400 and caught.value.parameter == "obs_id"
    assert f"HTTP {status}" in caught.value.message


def test_a_server_error_is_a_503_naming_the_status(scripted):
    scripted(lambda h: send(h, 502, b"bad gateway"))

    exc, _ = unavailable()

    assert "HTTP 502" in exc.message


def test_garbage_is_a_503_and_is_not_stored(clean_db, aws, scripted):
    scripted(lambda h: send(h, 200, b"<html><body>Service temporarily unavailable</body></html>",
                            Content_Type="text/html"))

    with pytest.raises(MetadataUnavailable) as caught:
        metadata.observation_tiles(FETCHED)

    assert "not a readable metafits" in caught.value.message
    assert aws["s3"].list_objects_v2(Bucket="test-products").get("KeyCount") == 0


def test_a_metafits_of_another_observation_is_garbage(clean_db, aws, scripted):
    scripted(lambda h: send(h, 200, metafits_path(STORED).read_bytes()))

    with pytest.raises(MetadataUnavailable) as caught:
        metadata.observation_tiles(FETCHED)

    assert f"of observation {STORED} (GPSTIME), not of {FETCHED}" in caught.value.message
    assert aws["s3"].list_objects_v2(Bucket="test-products").get("KeyCount") == 0


def stream_zeros(srv_ref: list, declare_length: bool):
    def answer(h):
        h.send_response(200)
        if declare_length:
            h.send_header("Content-Length", str(FIFTY_MB))
        h.end_headers()
        chunk = bytes(256 * 1024)
        while srv_ref[0].sent < FIFTY_MB:
            h.wfile.write(chunk)
            srv_ref[0].sent += len(chunk)
    return answer


def test_a_50_mb_answer_with_its_length_is_refused_before_reading_it(scripted):
    ref: list = []
    ref.append(scripted(stream_zeros(ref, declare_length=True)))

    exc, elapsed = unavailable()

    assert f"sent {FIFTY_MB} bytes" in exc.message and str(CAP) in exc.message
    assert elapsed < 1.0
    assert ref[0].done.wait(5)
    assert ref[0].sent < FIFTY_MB  # the client hung up long before the end


def test_a_50_mb_answer_without_a_length_stops_at_the_cap(scripted):
    ref: list = []
    ref.append(scripted(stream_zeros(ref, declare_length=False)))

    exc, elapsed = unavailable()

    assert f"more than {CAP} bytes" in exc.message
    assert elapsed < 2.0
    assert ref[0].done.wait(5)
    assert ref[0].sent < FIFTY_MB


def test_a_redirect_to_another_host_is_refused_and_never_followed(scripted):
    elsewhere = scripted(lambda h: send(h, 200, metafits_path(FETCHED).read_bytes()), point=False)
    scripted(lambda h: send(h, 302, Location=f"{elsewhere.base('localhost')}{FETCHED}"))

    exc, _ = unavailable()

    assert "redirected to another host (http://localhost:" in exc.message and "not followed" in exc.message
    assert paths_after_a_moment(elsewhere) == []


def paths_after_a_moment(srv: Scripted) -> list[str]:
    time.sleep(0.1)  # a request that was going to arrive has arrived
    return srv.paths


def test_a_redirect_to_another_port_of_the_same_host_is_refused(scripted):
    elsewhere = scripted(lambda h: send(h, 200, metafits_path(FETCHED).read_bytes()), point=False)
    scripted(lambda h: send(h, 301, Location=f"{elsewhere.base()}{FETCHED}"))

    exc, _ = unavailable()

    assert "another host" in exc.message
    assert paths_after_a_moment(elsewhere) == []


def test_a_redirect_on_the_same_host_is_followed(scripted):
    def answer(h):
        if h.path.startswith("/metadata/fits"):
            send(h, 302, Location=f"/files/{FETCHED}_metafits.fits")
        else:
            send(h, 200, metafits_path(FETCHED).read_bytes())

    srv = scripted(answer)

    assert webservice.fetch(FETCHED) == metafits_path(FETCHED).read_bytes()
    assert srv.paths == [f"/metadata/fits?obs_id={FETCHED}", f"/files/{FETCHED}_metafits.fits"]


def test_a_loopback_service_is_refused_unless_allow_listed(scripted, monkeypatch):
    srv = scripted(lambda h: send(h, 200, metafits_path(FETCHED).read_bytes()))
    monkeypatch.setenv("CALIB_METADATA_ALLOW_HOSTS", "")

    exc, _ = unavailable()

    assert "resolves to 127.0.0.1, a loopback address: refused" in exc.message
    assert "CALIB_METADATA_ALLOW_HOSTS" in exc.message
    assert srv.paths == []


@pytest.mark.parametrize("url", ["ftp://127.0.0.1/metadata?obs_id=", "file:///etc/passwd#", "http:///no-host?obs_id="])
def test_only_http_and_https_urls_are_fetched(monkeypatch, url):
    monkeypatch.setenv("CALIB_METADATA_URL", url)

    exc, _ = unavailable()

    assert "CALIB_METADATA_URL is not an http(s) URL" in exc.message
