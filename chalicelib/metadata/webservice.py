"""The MWA metadata web service: one bounded GET of an observation's metafits.

``GET <CALIB_METADATA_URL><obs_id>`` (default ``https://ws.mwatelescope.org/metadata/fits?obs_id=``).
The API function answers within API Gateway's 29 s, so the GET is bounded on every side:

- time: ``CALIB_METADATA_CONNECT_TIMEOUT_S`` (3 s) for each TCP connect, ``CALIB_METADATA_TOTAL_TIMEOUT_S``
  (8 s) for the whole fetch, redirects and body included: at the deadline the socket is shut (the
  callback transport's watchdog during connect and headers, ``_Cutoff`` during the body), so a
  server that trickles bytes cannot hold it longer;
- size: ``CALIB_METADATA_MAX_BYTES`` (16 MiB; a 256-tile metafits is ~0.3 MB). A larger
  Content-Length is refused before the body is read; a body without one stops at the cap;
- address: http(s) only, and the callback URLs' address rules (:mod:`chalicelib.calrequests.urls`):
  a host resolving to a loopback, private, link-local or cloud-metadata address is refused unless
  it is in ``CALIB_METADATA_ALLOW_HOSTS`` (its own list: callback URLs come from callers, this URL
  from the operator, and the local stack's 127.0.0.1 must not open callbacks to loopback). The
  connection goes to the checked address only (:mod:`chalicelib.calrequests.transport`), no proxies;
- redirects: followed (at most 3) only to the same scheme, host and port; any other is refused.

Outcomes: the body; ``BadRequest`` (parameter obs_id) when the service answers 404 or 400, its
way of saying the observation does not exist; ``MetadataUnavailable`` (503) for everything else
(unreachable, slow, another status, too big, a refused address or redirect).
"""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
import time
from urllib.parse import urljoin

from chalicelib.config import Settings, settings
from chalicelib.errors import BadRequest, MetadataUnavailable
from chalicelib.calrequests import urls
from chalicelib.calrequests.transport import _describe, _PinnedHTTPConnection, _PinnedHTTPSConnection

USER_AGENT = "mwa-calib-metadata/1"
MAX_REDIRECTS = 3
NOT_FOUND_STATUSES = (400, 404)  # the service's answer for an obsid it does not know
_CHUNK = 64 * 1024


def url_for(obsid: int, cfg: Settings | None = None) -> str:
    """The metadata service URL of one observation's metafits (empty when the service is disabled)."""
    base = (cfg or settings()).metadata_url
    return f"{base}{obsid}" if base else ""


def fetch(obsid: int, cfg: Settings | None = None) -> bytes:
    """The metafits bytes the metadata service gives for ``obsid`` (see the module doc for the errors)."""
    cfg = cfg or settings()
    url = url_for(obsid, cfg)
    if not url:
        raise MetadataUnavailable("the MWA metadata service is disabled (CALIB_METADATA_URL is empty)")
    deadline = time.monotonic() + cfg.metadata_total_timeout_s  # the name lookup counts too
    target = _checked_target(url, cfg.metadata_allow_hosts)
    current, path = url, target.target
    for _hop in range(MAX_REDIRECTS + 1):
        status, location, body = _get_once(target, path, deadline, cfg)
        if status == 200:
            return body
        if status in NOT_FOUND_STATUSES:
            raise BadRequest(f"observation {obsid} does not exist: the MWA metadata service answered HTTP {status}",
                             parameter="obs_id")
        if 300 <= status < 400 and location:
            current = urljoin(current, location)
            path = _same_origin_path(target, current)
            continue
        raise MetadataUnavailable(f"the MWA metadata service at {target.host} answered HTTP {status}")
    raise MetadataUnavailable(f"the MWA metadata service at {target.host} redirected more than {MAX_REDIRECTS} times")


def _checked_target(url: str, allow_hosts: tuple[str, ...]) -> urls.CallbackTarget:
    """The URL parsed and its host resolved and checked with the callback URLs' address rules."""
    try:
        scheme, host, port, path = urls.parse(url)
    except urls.CallbackURLError:
        raise MetadataUnavailable(f"CALIB_METADATA_URL is not an http(s) URL with a host: {url[:200]!r}") from None
    try:
        addresses = urls.resolve(host, port)
    except urls.CallbackURLError:
        raise MetadataUnavailable(f"the MWA metadata service host {host!r} does not resolve") from None
    if host not in {h.strip("[]") for h in allow_hosts}:
        for address in addresses:
            reason = urls.blocked_reason(address)
            if reason:
                raise MetadataUnavailable(
                    f"the MWA metadata service host {host!r} resolves to {address}, {reason}: refused "
                    f"(CALIB_METADATA_ALLOW_HOSTS names hosts allowed on such addresses)")
    return urls.CallbackTarget(url=url, scheme=scheme, host=host, port=port, target=path, addresses=addresses)


def _same_origin_path(target: urls.CallbackTarget, location: str) -> str:
    """The path of a redirect to the same scheme, host and port; MetadataUnavailable for any other."""
    try:
        scheme, host, port, path = urls.parse(location)
    except urls.CallbackURLError:
        raise MetadataUnavailable("the MWA metadata service redirected to an unusable URL: not followed") from None
    if (scheme, host, port) != (target.scheme, target.host, target.port):
        raise MetadataUnavailable(
            f"the MWA metadata service redirected to another host ({scheme}://{host}:{port}): not followed")
    return path


def _connection(target: urls.CallbackTarget, address: str, deadline: float,
                cfg: Settings) -> _PinnedHTTPConnection:
    remaining = max(0.001, deadline - time.monotonic())
    kwargs = dict(address=address, connect_timeout=min(cfg.metadata_connect_timeout_s, remaining), deadline=deadline)
    if target.scheme == "https":
        return _PinnedHTTPSConnection(target.host, target.port, context=ssl.create_default_context(), **kwargs)
    return _PinnedHTTPConnection(target.host, target.port, **kwargs)


def _get_once(target: urls.CallbackTarget, path: str, deadline: float,
              cfg: Settings) -> tuple[int, str | None, bytes]:
    """(status, Location, body) of one GET to the first checked address that accepts the connection."""
    why = "no address to connect to"
    total = cfg.metadata_total_timeout_s
    for address in target.addresses:
        if deadline - time.monotonic() <= 0:
            why = f"timed out: no answer within the total {total:g} s"
            break
        conn = _connection(target, address, deadline, cfg)
        resp: http.client.HTTPResponse | None = None
        cutoff: _Cutoff | None = None
        try:
            try:
                conn.connect()
            except OSError as exc:  # this address is unreachable: try the next one
                why = _describe(exc, conn.expired, total, cfg.metadata_connect_timeout_s, False)
                continue
            cutoff = _Cutoff(conn.sock, deadline)
            try:
                conn.request("GET", path, headers={"User-Agent": USER_AGENT, "Accept": "application/fits, */*",
                                                   "Accept-Encoding": "identity", "Connection": "close"})
                resp = conn.getresponse()
                if resp.status != 200:
                    return resp.status, resp.getheader("Location"), b""
                body = _read_capped(resp, cfg.metadata_max_bytes, target.host)
            except (OSError, http.client.HTTPException) as exc:
                why = _describe(exc, conn.expired or cutoff.fired, total, cfg.metadata_connect_timeout_s, True)
                raise MetadataUnavailable(f"the MWA metadata service at {target.host} failed: {why}") from None
            if conn.expired or cutoff.fired:  # the body was cut short at the deadline
                raise MetadataUnavailable(f"the MWA metadata service at {target.host} failed: timed out: "
                                          f"no answer within the total {total:g} s")
            return 200, None, body
        finally:
            if cutoff is not None:
                cutoff.cancel()
            if resp is not None:
                resp.close()  # the response holds the socket once http.client hands it over
            conn.close()
    raise MetadataUnavailable(f"the MWA metadata service at {target.host} cannot be reached: {why}")


class _Cutoff:
    """Shuts the socket at the deadline, so the BODY read is bounded too.

    The pinned connection's own watchdog bounds connect, request and response headers, but
    http.client closes the connection object (cancelling it) when it hands the socket to a
    response that ends with the connection; the body is read after that.
    """

    def __init__(self, sock: socket.socket | None, deadline: float) -> None:
        self.fired = False
        self._sock = sock
        self._timer = threading.Timer(max(0.0, deadline - time.monotonic()), self._fire)
        self._timer.daemon = True
        self._timer.start()

    def _fire(self) -> None:
        self.fired = True
        if self._sock is not None:
            try:  # the plain socket method also cuts a TLS socket mid-read
                socket.socket.shutdown(self._sock, socket.SHUT_RDWR)
            except OSError:
                pass

    def cancel(self) -> None:
        self._timer.cancel()


def _read_capped(resp: http.client.HTTPResponse, cap: int, host: str) -> bytes:
    """The body, refusing (before reading) a declared length over the cap and stopping a longer one at it."""
    if resp.length is not None and resp.length > cap:
        raise MetadataUnavailable(
            f"the MWA metadata service at {host} sent {resp.length} bytes; a metafits is at most {cap}")
    declared = resp.length
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = resp.read(min(_CHUNK, cap + 1 - size))
        if not chunk:
            if declared is not None and size < declared:
                raise http.client.IncompleteRead(b"", declared - size)
            return b"".join(chunks)
        size += len(chunk)
        if size > cap:
            raise MetadataUnavailable(
                f"the MWA metadata service at {host} sent more than {cap} bytes; a metafits is at most {cap}")
        chunks.append(chunk)
