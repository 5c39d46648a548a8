"""The callback URL check: run by add_cal_request (400 when it fails) and again before every POST.

A callback URL must be http or https, at most 2048 printable ASCII characters, carry no user
name or password, and its host must resolve only to public addresses: loopback, private,
link-local (169.254.169.254, the cloud metadata service, among them), shared (CGNAT), reserved,
multicast, unspecified and the other special ranges are refused, for IPv4 and IPv6 alike. An IPv6
address that carries an IPv4 one (IPv4-mapped ``::ffff:a.b.c.d`` and -translated ``::ffff:0:a.b.c.d``,
IPv4-compatible ``::a.b.c.d``, 6to4 ``2002::/16``, NAT64 ``64:ff9b::/96``, Teredo ``2001::/32``: its
server and its client, the last 32 bits inverted) is refused when that IPv4 address would be; the
local-use NAT64 prefix ``64:ff9b:1::/48`` is refused whole (where it embeds the IPv4 address is the
operator's choice). The port must be 1-65535 (``:0`` is refused, not taken as the default). Hosts named in ``CALIB_CALLBACK_ALLOW_HOSTS`` (comma-separated, exact, case-blind:
e.g. ``127.0.0.1,localhost`` for local runs and tests) skip the address rules.

The check returns the resolved addresses; :mod:`chalicelib.calrequests.transport` connects to those
and no others, so a name that resolves differently a moment later (DNS rebinding) cannot steer
the POST to an address that was not checked.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from chalicelib.errors import BadRequest

MAX_URL_LENGTH = 2048
SCHEMES = {"http": 80, "https": 443}
# Cloud instance-metadata endpoints (most are also caught as link-local / private / shared).
METADATA_ADDRESSES = frozenset(ipaddress.ip_address(a) for a in (
    "169.254.169.254", "169.254.170.2", "fd00:ec2::254", "100.100.100.200", "192.0.0.192"))

_getaddrinfo = socket.getaddrinfo  # tests replace it to simulate DNS answers


class CallbackURLError(BadRequest):
    """The callback URL is not acceptable (400 at the route; a failed attempt when sending)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, parameter="callback_url")


@dataclass(frozen=True)
class CallbackTarget:
    """A checked callback URL: where to connect and what to ask for."""

    url: str
    scheme: str
    host: str  # the name (or literal address) from the URL, for the Host header and TLS
    port: int
    target: str  # path and query, as sent in the request line
    addresses: tuple[str, ...]  # the checked addresses to connect to, in resolver order


NAT64_WELL_KNOWN = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052: the IPv4 address in the last 32 bits
NAT64_LOCAL_USE = ipaddress.ip_network("64:ff9b:1::/48")  # RFC 8215: where the IPv4 address sits is local choice
IPV4_COMPATIBLE = ipaddress.ip_network("::/96")  # RFC 4291 (deprecated): ::a.b.c.d
IPV4_TRANSLATED = ipaddress.ip_network("::ffff:0:0:0/96")  # RFC 2765 (SIIT): ::ffff:0:a.b.c.d


def embedded_ipv4(ip: ipaddress.IPv6Address) -> tuple[tuple[str, ipaddress.IPv4Address], ...]:
    """The IPv4 addresses an IPv6 transition address carries, each with the form's name (none: native IPv6)."""
    low32 = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.ipv4_mapped is not None:
        return (("an IPv4-mapped address", ip.ipv4_mapped),)
    if ip in IPV4_TRANSLATED:
        return (("an IPv4-translated address", low32),)
    if ip in IPV4_COMPATIBLE and int(ip) > 1:  # :: and ::1 are the unspecified and loopback addresses
        return (("an IPv4-compatible address", low32),)
    if ip.sixtofour is not None:
        return (("a 6to4 address", ip.sixtofour),)
    if ip in NAT64_WELL_KNOWN:
        return (("a NAT64 address", low32),)
    if ip.teredo is not None:
        server, client = ip.teredo
        return (("a Teredo address (client)", client), ("a Teredo address (server)", server))
    return ()


def _ip_reason(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """Why this one address (taken as it is) may not receive callbacks."""
    if ip in METADATA_ADDRESSES:
        return "a cloud metadata address"
    for flag, what in (("is_loopback", "a loopback"), ("is_unspecified", "an unspecified"),
                       ("is_link_local", "a link-local"), ("is_private", "a private"),
                       ("is_multicast", "a multicast"), ("is_reserved", "a reserved")):
        if getattr(ip, flag):
            return f"{what} address"
    if not ip.is_global:
        return "a non-public address"
    return None


def blocked_reason(address: str) -> str | None:
    """Why an IP address may not receive callbacks (an embedded IPv4 address included), or None when it may."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        if ip in NAT64_LOCAL_USE:
            return "a local-use NAT64 address (a non-public address)"
        for form, ipv4 in embedded_ipv4(ip):
            reason = _ip_reason(ipv4)
            if reason:
                return f"{form} of {ipv4}, {reason}"
        if ip.ipv4_mapped is not None:  # the socket talks IPv4 to it: the IPv4 address alone decides
            return None
    return _ip_reason(ip)


def _normalise_hosts(hosts: Iterable[str]) -> set[str]:
    return {h.strip().lower().strip("[]") for h in hosts if h and h.strip()}


def parse(url: str) -> tuple[str, str, int, str]:
    """(scheme, host, port, target) of a syntactically acceptable callback URL; CallbackURLError otherwise."""
    if not isinstance(url, str) or not url:
        raise CallbackURLError("callback_url is empty")
    if len(url) > MAX_URL_LENGTH:
        raise CallbackURLError(f"callback_url must be at most {MAX_URL_LENGTH} characters")
    if any(not (0x21 <= ord(ch) <= 0x7E) for ch in url):
        raise CallbackURLError("callback_url must be printable ASCII without spaces (percent-encode the rest)")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise CallbackURLError(f"callback_url is not a valid URL: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise CallbackURLError("callback_url must be an http or https URL")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise CallbackURLError("callback_url has no host")
    if parts.username is not None or parts.password is not None:
        raise CallbackURLError("callback_url must not contain a user name or password")
    if port == 0:  # urlsplit reads ":0" as port 0; "or default" would quietly send it to 80/443
        raise CallbackURLError("callback_url port must be between 1 and 65535")
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return scheme, host.lower(), SCHEMES[scheme] if port is None else port, target


def resolve(host: str, port: int) -> tuple[str, ...]:
    """The host's addresses (a literal address is its own), in resolver order, without repeats."""
    try:
        ipaddress.ip_address(host)
        return (host,)
    except ValueError:
        pass
    try:
        infos = _getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError) as exc:
        raise CallbackURLError(f"callback_url host {host!r} does not resolve ({exc})") from None
    out: list[str] = []
    for family, _type, _proto, _name, sockaddr in infos:
        if family in (socket.AF_INET, socket.AF_INET6) and sockaddr[0] not in out:
            out.append(sockaddr[0])
    if not out:
        raise CallbackURLError(f"callback_url host {host!r} has no IP address")
    return tuple(out)


def check(url: str, allow_hosts: Iterable[str] = ()) -> CallbackTarget:
    """Check a callback URL and resolve its host; CallbackURLError (a 400) explains a refusal."""
    scheme, host, port, target = parse(url)
    addresses = resolve(host, port)
    if host not in _normalise_hosts(allow_hosts):
        for address in addresses:
            reason = blocked_reason(address)
            if reason:
                raise CallbackURLError(
                    f"callback_url host {host!r} resolves to {address}, {reason}; callbacks go to public hosts only")
    return CallbackTarget(url=url, scheme=scheme, host=host, port=port, target=target, addresses=addresses)
