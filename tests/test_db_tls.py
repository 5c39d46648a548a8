"""CALIB_DB_SSL: in prod the functions reach PostgreSQL through RDS Proxy, which requires TLS; the client
must then refuse any server whose certificate or host name it cannot verify, and never fall back to
plain text.

The stand-in for the proxy is a TLS-terminating relay in front of the test database: it answers
PostgreSQL's SSLRequest with "S", does the TLS handshake with a certificate for ``localhost`` signed
by a CA made here, and relays the decrypted protocol to the real server (as RDS Proxy does).
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import ssl
import struct
import threading
from pathlib import Path

import pytest

SSL_REQUEST = struct.pack("!ii", 8, 80877103)


def _certificates(folder: Path) -> dict[str, Path]:
    """A CA, and a server certificate for DNS name localhost signed by it (PEM files)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.timezone.utc)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name("mwa-calib test CA")).issuer_name(name("mwa-calib test CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(name("localhost")).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = {"ca": folder / "ca.pem", "cert": folder / "server.pem", "key": folder / "server.key"}
    paths["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths["cert"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths["key"].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
    return paths


class TlsRelay:
    """Accepts only TLS sessions (SSLRequest first, as PostgreSQL clients send it) and relays them to the database."""

    def __init__(self, certs: dict[str, Path], backend: dict[str, str]) -> None:
        self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._context.load_cert_chain(certs["cert"], certs["key"])
        self._backend = backend
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.tls_sessions = 0
        self.refused_plain = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _connect_backend(self) -> socket.socket:
        if self._backend.get("CALIB_DB_UNIX_SOCK"):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.connect(self._backend["CALIB_DB_UNIX_SOCK"])
            return sock
        return socket.create_connection((self._backend["CALIB_DB_HOST"], int(self._backend["CALIB_DB_PORT"])))

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            if client.recv(8, socket.MSG_WAITALL) != SSL_REQUEST:
                self.refused_plain += 1
                return
            client.sendall(b"S")
            tls = self._context.wrap_socket(client, server_side=True)
        except (OSError, ssl.SSLError):
            client.close()
            return
        self.tls_sessions += 1
        backend = self._connect_backend()
        threading.Thread(target=self._pump, args=(backend, tls), daemon=True).start()
        self._pump(tls, backend)

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.close()
                except OSError:
                    pass

    def close(self) -> None:
        self._listener.close()


@pytest.fixture
def relay(database, tmp_path):
    certs = _certificates(tmp_path)
    r = TlsRelay(certs, database)
    yield r, certs
    r.close()


@pytest.fixture
def through_relay(relay, monkeypatch):
    """Settings that point the app at the relay as prod points it at the proxy (TCP, host name, TLS)."""
    from chalicelib import db

    r, certs = relay
    monkeypatch.delenv("CALIB_DB_UNIX_SOCK", raising=False)
    monkeypatch.setenv("CALIB_DB_HOST", "localhost")
    monkeypatch.setenv("CALIB_DB_PORT", str(r.port))
    monkeypatch.setenv("CALIB_DB_SSL", "1")
    monkeypatch.setenv("CALIB_DB_SSL_ROOT_CERT", str(certs["ca"]))
    db.close()
    yield r, certs
    db.close()


def test_with_ssl_on_the_app_talks_tls_to_a_server_it_can_verify(clean_db, through_relay):
    from chalicelib import db

    relay, _ = through_relay
    assert db.query("SELECT current_database() AS name")[0]["name"] == clean_db["CALIB_DB_NAME"]
    assert relay.tls_sessions == 1 and relay.refused_plain == 0
    db.execute("INSERT INTO mwa_setting (starttime, stoptime, obsname) VALUES (1, 2, 'tls')")
    assert db.query("SELECT obsname FROM mwa_setting") == [{"obsname": "tls"}]
    assert relay.tls_sessions == 1  # one connection per container, reused


def test_with_ssl_on_an_unknown_certificate_authority_is_refused(clean_db, through_relay, monkeypatch):
    from chalicelib import db
    from chalicelib.errors import DatabaseUnavailable

    relay, _ = through_relay
    monkeypatch.delenv("CALIB_DB_SSL_ROOT_CERT")  # the system's trust store does not know the test CA
    with pytest.raises(DatabaseUnavailable):
        db.query("SELECT 1")
    assert relay.tls_sessions == 0


def test_with_ssl_on_a_certificate_for_another_host_is_refused(clean_db, through_relay, monkeypatch):
    from chalicelib import db
    from chalicelib.errors import DatabaseUnavailable

    relay, _ = through_relay
    monkeypatch.setenv("CALIB_DB_HOST", "127.0.0.1")  # the certificate names localhost only
    with pytest.raises(DatabaseUnavailable):
        db.query("SELECT 1")
    assert relay.tls_sessions == 0


def test_with_ssl_on_a_server_without_tls_is_refused_not_used_in_plain_text(clean_db, monkeypatch):
    """The test database itself offers no TLS: with CALIB_DB_SSL=1 the app does not fall back."""
    from chalicelib import db
    from chalicelib.errors import DatabaseUnavailable

    monkeypatch.setenv("CALIB_DB_SSL", "1")
    db.close()
    try:
        with pytest.raises(DatabaseUnavailable):
            db.query("SELECT 1")
    finally:
        monkeypatch.delenv("CALIB_DB_SSL")
        db.close()
    assert db.query("SELECT 1 AS one") == [{"one": 1}]  # off (the default): the local server as before


def test_ssl_is_on_in_prod_and_off_locally():
    import json

    from chalicelib.config import settings

    cfg = json.loads((Path(__file__).resolve().parent.parent / ".chalice" / "config.json").read_text())
    assert cfg["stages"]["prod"]["environment_variables"]["CALIB_DB_SSL"] == "1"
    assert "CALIB_DB_SSL" not in cfg["stages"]["dev"].get("environment_variables", {})
    assert "CALIB_DB_SSL" not in os.environ and settings().db_ssl is False
