"""One callback POST: to the checked addresses only, no redirects, no proxies, hard time limits.

``http.client`` is used directly rather than ``urllib``: urllib resolves the host name again
(so the address check could be bypassed by a name that changes its answer) and honours proxy
environment variables; http.client does neither and never follows a redirect. A 3xx answer is
recorded as a failed attempt, like any answer outside 2xx.

Time limits: ``connect_timeout_s`` for each TCP connect; ``total_timeout_s`` for the whole
attempt (connect, TLS handshake, request and response headers). A watchdog shuts the socket at
the total deadline, so a server that trickles bytes cannot hold the attempt longer.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
import time
from dataclasses import dataclass

from chalicelib.calrequests.urls import CallbackTarget

USER_AGENT = "mwa-calib-callback/1"


@dataclass(frozen=True)
class PostResult:
    """What one attempt got: the HTTP status (None when no answer) and, unless 2xx, why it failed."""

    status: int | None
    error: str | None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """An HTTP connection to a fixed, already checked address; the URL's host goes in the Host header."""

    def __init__(self, host: str, port: int, *, address: str, connect_timeout: float, deadline: float) -> None:
        super().__init__(host, port, timeout=connect_timeout)
        self._address = address
        self._connect_timeout = connect_timeout
        self._deadline = deadline
        self._watchdog: threading.Timer | None = None
        self.expired = False

    def _raw_socket(self) -> socket.socket:
        sock = socket.create_connection((self._address, self.port), timeout=self._connect_timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(max(0.001, self._deadline - time.monotonic()))
        return sock

    def _arm(self) -> None:
        self._watchdog = threading.Timer(max(0.0, self._deadline - time.monotonic()), self._expire)
        self._watchdog.daemon = True
        self._watchdog.start()

    def _expire(self) -> None:
        self.expired = True
        sock = self.sock
        if sock is not None:
            try:  # the plain socket method: it also cuts a TLS socket mid-read from this thread
                socket.socket.shutdown(sock, socket.SHUT_RDWR)
            except OSError:
                pass

    def connect(self) -> None:
        self.sock = self._raw_socket()
        self._arm()

    def close(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        super().close()


class _PinnedHTTPSConnection(_PinnedHTTPConnection):
    """The same over TLS, verifying the certificate against the URL's host name."""

    default_port = 443

    def __init__(self, host: str, port: int, *, context: ssl.SSLContext, **kwargs) -> None:
        super().__init__(host, port, **kwargs)
        self._context = context

    def connect(self) -> None:
        raw = self._raw_socket()
        self.sock = self._context.wrap_socket(raw, server_hostname=self.host, do_handshake_on_connect=False)
        self._arm()
        self.sock.do_handshake()


def _describe(exc: BaseException, expired: bool, total_timeout_s: float, connect_timeout_s: float,
              connected: bool) -> str:
    if expired:
        return f"timed out: no answer within the total {total_timeout_s:g} s"
    if isinstance(exc, (TimeoutError, socket.timeout)):
        return (f"timed out: {'no answer' if connected else 'could not connect'} within "
                f"{total_timeout_s if connected else connect_timeout_s:g} s")
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ssl.SSLError):
        return f"TLS error: {exc}"[:500]
    return f"{type(exc).__name__}: {exc}"[:500]


def post(target: CallbackTarget, body: bytes, headers: dict[str, str], *, connect_timeout_s: float,
         total_timeout_s: float, context: ssl.SSLContext | None = None) -> PostResult:
    """POST ``body`` to the target; never raises for network failures (they are the result)."""
    deadline = time.monotonic() + total_timeout_s
    all_headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT, "Connection": "close",
                   **headers}
    last = PostResult(None, "no address to connect to")
    for address in target.addresses:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        kwargs = dict(address=address, connect_timeout=min(connect_timeout_s, remaining), deadline=deadline)
        if target.scheme == "https":
            conn: _PinnedHTTPConnection = _PinnedHTTPSConnection(
                target.host, target.port, context=context or ssl.create_default_context(), **kwargs)
        else:
            conn = _PinnedHTTPConnection(target.host, target.port, **kwargs)
        try:
            try:
                conn.connect()
            except OSError as exc:  # could not reach this address: try the next one
                why = _describe(exc, conn.expired, total_timeout_s, connect_timeout_s, False)
                last = PostResult(None, f"{address}: {why}")
                continue
            try:
                conn.request("POST", target.target, body=body, headers=all_headers)
                resp = conn.getresponse()
                status = resp.status
            except (OSError, http.client.HTTPException) as exc:  # the request may have arrived: do not resend
                return PostResult(None, _describe(exc, conn.expired, total_timeout_s, connect_timeout_s, True))
            if 200 <= status < 300:
                return PostResult(status, None)
            if 300 <= status < 400:
                where = resp.getheader("Location")
                return PostResult(status, f"HTTP {status}: redirect to {where!r} not followed"[:500])
            return PostResult(status, f"HTTP {status} {resp.reason}"[:500])
        finally:
            conn.close()
    return last
