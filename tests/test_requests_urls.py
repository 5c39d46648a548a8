"""The callback URL check and the pinned POST (HTTPS included), without the database."""

from __future__ import annotations

import datetime as dt
import re
import socket
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from chalicelib.calrequests import transport, urls


@pytest.mark.parametrize("address, blocked", [
    ("8.8.8.8", None), ("2606:4700:4700::1111", None),
    ("127.0.0.1", "loopback"), ("::1", "loopback"), ("10.0.0.1", "private"), ("172.16.5.4", "private"),
    ("192.168.0.1", "private"), ("169.254.169.254", "metadata"), ("fd00:ec2::254", "metadata"),
    ("169.254.10.10", "link-local"), ("fe80::1", "link-local"), ("0.0.0.0", "unspecified"),
    ("224.0.0.1", "multicast"), ("100.64.1.1", "non-public"), ("::ffff:127.0.0.1", "loopback"),
    ("::ffff:10.1.1.1", "private"), ("240.0.0.1", "address"),  # class E: private or reserved
])
def test_blocked_addresses(address, blocked):
    reason = urls.blocked_reason(address)
    assert (reason is None) if blocked is None else (blocked in reason)


def _fake_dns(answers):
    def fake(host, port, **kw):
        if host not in answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [((socket.AF_INET6 if ":" in a else socket.AF_INET), socket.SOCK_STREAM, 6, "", (a, port))
                for a in answers[host]]
    return fake


def test_check_resolves_and_keeps_the_request_target(monkeypatch):
    monkeypatch.setattr(urls, "_getaddrinfo", _fake_dns({"asvo.example.org": ["93.184.216.34", "93.184.216.34"]}))
    t = urls.check("https://ASVO.example.org:8443/api/cb?job=1&x=%20y#frag")
    assert (t.scheme, t.host, t.port, t.target, t.addresses) == (
        "https", "asvo.example.org", 8443, "/api/cb?job=1&x=%20y", ("93.184.216.34",))
    assert urls.check("http://asvo.example.org").target == "/"


def test_allow_list_opens_chosen_hosts_only(monkeypatch):
    monkeypatch.setattr(urls, "_getaddrinfo", _fake_dns({"localhost": ["127.0.0.1"], "db.internal": ["10.0.0.9"]}))
    assert urls.check("http://localhost:8000/cb", ["LocalHost"]).addresses == ("127.0.0.1",)
    assert urls.check("http://[::1]:8000/cb", ["[::1]"]).addresses == ("::1",)
    with pytest.raises(urls.CallbackURLError, match="private"):
        urls.check("http://db.internal/cb", ["localhost"])


@pytest.mark.parametrize("url, why", [
    ("", "empty"), ("javascript:alert(1)", "http or https"), ("http://exa mple.org/", "printable"),
    ("http://example.org:99999/", "valid URL"), ("https://nowhere.invalid/cb", "does not resolve"),
    ("http://example.org/caf\u00e9", "printable"),
])
def test_refused_urls(monkeypatch, url, why):
    monkeypatch.setattr(urls, "_getaddrinfo", _fake_dns({"example.org": ["93.184.216.34"]}))
    with pytest.raises(urls.CallbackURLError, match=why) as info:
        urls.check(url)
    assert info.value.status == 400 and info.value.parameter == "callback_url"


# --- the pinned POST over TLS --------------------------------------------------------------------

def _self_signed(tmp_path, name: str):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@pytest.fixture
def tls_server(tmp_path):
    cert, key = _self_signed(tmp_path, "callbacks.test")
    seen = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            seen.append((self.headers["Host"], self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield server.server_address[1], cert, seen
    server.shutdown()
    server.server_close()


def test_https_post_goes_to_the_checked_address_and_verifies_the_url_host(tls_server):
    port, cert, seen = tls_server
    target = urls.CallbackTarget(url=f"https://callbacks.test:{port}/cb", scheme="https", host="callbacks.test",
                                 port=port, target="/cb", addresses=("127.0.0.1",))
    trusted = ssl.create_default_context(cafile=str(cert))
    result = transport.post(target, b'{"a":1}', {}, connect_timeout_s=1, total_timeout_s=2, context=trusted)
    assert result.ok and result.status == 204
    assert seen == [(f"callbacks.test:{port}", b'{"a":1}')]  # the name in Host, the pinned address on the wire

    wrong_name = urls.CallbackTarget(url="", scheme="https", host="other.test", port=port, target="/cb",
                                     addresses=("127.0.0.1",))
    result = transport.post(wrong_name, b"{}", {}, connect_timeout_s=1, total_timeout_s=2, context=trusted)
    assert not result.ok and result.status is None and "certificate" in result.error.lower()
    untrusted = transport.post(target, b"{}", {}, connect_timeout_s=1, total_timeout_s=2)  # system CAs only
    assert not untrusted.ok and "certificate" in untrusted.error.lower()
    assert len(seen) == 1


# --- IPv6 forms that carry an IPv4 address, and port 0 -------------------------------------------
# Each expected IPv4 is read off the address by the form's own layout (RFC 3056 6to4: bits 16-47;
# RFC 6052 NAT64 /96 and RFC 4291 mapped/compatible, RFC 2765 translated: the last 32 bits; RFC 4380
# Teredo: server in bits 32-63, client in the last 32 bits inverted).

@pytest.mark.parametrize("address, form, ipv4, why", [
    ("2002:7f00:1::", "6to4", "127.0.0.1", "loopback"),  # 7f00:0001 = 127.0.0.1
    ("2002:a9fe:a9fe::", "6to4", "169.254.169.254", "metadata"),  # a9fe:a9fe = 169.254.169.254
    ("2002:0a00:0001:1234::1", "6to4", "10.0.0.1", "private"),
    ("64:ff9b::7f00:1", "NAT64", "127.0.0.1", "loopback"),
    ("64:ff9b::a9fe:a9fe", "NAT64", "169.254.169.254", "metadata"),
    ("64:ff9b::c0a8:101", "NAT64", "192.168.1.1", "private"),
    ("2001:0:4136:e378:8000:63bf:80ff:fffe", "Teredo", "127.0.0.1", "loopback"),  # ~80ff:fffe = 7f00:0001
    ("2001:0:808:808:8000:63bf:5601:5601", "Teredo", "169.254.169.254", "metadata"),  # ~5601:5601 = a9fe:a9fe
    ("2001:0:a9fe:a9fe::f7ff:fffe", "Teredo", "169.254.169.254", "metadata"),  # the server half this time
    ("::ffff:169.254.169.254", "IPv4-mapped", "169.254.169.254", "metadata"),
    ("::ffff:7f00:1", "IPv4-mapped", "127.0.0.1", "loopback"),
    ("::127.0.0.1", "IPv4-compatible", "127.0.0.1", "loopback"),
    ("::a9fe:a9fe", "IPv4-compatible", "169.254.169.254", "metadata"),
    ("::ffff:0:7f00:1", "IPv4-translated", "127.0.0.1", "loopback"),
])
def test_ipv6_forms_carrying_a_forbidden_ipv4_address_are_blocked(address, form, ipv4, why):
    reason = urls.blocked_reason(address)
    assert reason is not None and form in reason and ipv4 in reason and why in reason, reason


def test_the_local_use_nat64_prefix_is_blocked_whole():
    for address in ("64:ff9b:1::7f00:1", "64:ff9b:1:ffff::808:808", "64:ff9b:1:0:8:808:800::"):
        assert "NAT64" in urls.blocked_reason(address)


def test_public_addresses_in_those_ranges_are_not_mistaken_for_transition_forms():
    # native IPv6 next to the transition prefixes, and an IPv4-mapped public address (an IPv4 socket to 8.8.8.8)
    for address in ("2003:7f00:1::1", "2001:4860:4860::8888", "::ffff:8.8.8.8"):
        assert urls.blocked_reason(address) is None, address


@pytest.mark.parametrize("url, why", [
    ("http://[2002:7f00:1::]:9301/x", "6to4 address of 127.0.0.1"),
    ("http://[2002:a9fe:a9fe::]/latest/meta-data/", "6to4 address of 169.254.169.254"),
    ("http://[64:ff9b::7f00:1]/cb", "NAT64 address of 127.0.0.1"),
    ("http://[64:ff9b:1::a9fe:a9fe]/cb", "local-use NAT64"),
    ("https://[2001:0:4136:e378:8000:63bf:80ff:fffe]/cb", "Teredo address (client) of 127.0.0.1"),
    ("http://[::ffff:169.254.169.254]/latest/meta-data/", "IPv4-mapped address of 169.254.169.254"),
    ("http://[::127.0.0.1]:8000/cb", "IPv4-compatible address of 127.0.0.1"),
    ("http://8.8.8.8:0/x", "port must be between 1 and 65535"),
    ("https://example.org:0/x", "port must be between 1 and 65535"),
])
def test_urls_of_those_forms_and_port_0_are_refused(monkeypatch, url, why):
    monkeypatch.setattr(urls, "_getaddrinfo", _fake_dns({"example.org": ["93.184.216.34"]}))
    with pytest.raises(urls.CallbackURLError, match=re.escape(why)) as info:
        urls.check(url)
    assert info.value.status == 400 and info.value.parameter == "callback_url"


def test_a_name_resolving_to_a_6to4_loopback_is_refused(monkeypatch):
    monkeypatch.setattr(urls, "_getaddrinfo", _fake_dns({"cb.example.org": ["93.184.216.34", "2002:7f00:1::1"]}))
    with pytest.raises(urls.CallbackURLError, match="2002:7f00:1::1, a 6to4 address of 127.0.0.1"):
        urls.check("https://cb.example.org/cb")


def test_explicit_ports_are_kept_and_a_missing_one_is_the_schemes():
    assert urls.parse("http://8.8.8.8:1/x")[2] == 1
    assert urls.parse("http://8.8.8.8/x")[2] == 80 and urls.parse("https://8.8.8.8/x")[2] == 443
    assert urls.parse("https://8.8.8.8:65535/x")[2] == 65535
