"""The engineers' admin client: each action calls its route, signed with SigV4 (checked by an independent signer here)."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, quote, urlsplit

import pytest

from chalicelib.admin.__main__ import main, parser

KEY_ID, SECRET = "AKIDEXAMPLEOPERATOR", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


@pytest.fixture
def server(monkeypatch):
    """A stand-in for the API: records each request, answers JSON."""
    seen: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def _answer(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            seen.append({"method": self.command, "path": self.path, "headers": dict(self.headers.items()),
                         "body": body})
            out = json.dumps({"ok": True}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        do_GET = do_POST = _answer

        def log_message(self, *a):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    yield f"http://127.0.0.1:{httpd.server_port}", seen
    httpd.shutdown()


def _expected_signature(req: dict, region: str) -> tuple[str, str]:
    """SigV4 recomputed from the AWS specification (canonical request, string to sign, derived key)."""
    h = {k.lower(): v for k, v in req["headers"].items()}
    auth = h["authorization"]
    assert auth.startswith("AWS4-HMAC-SHA256 ")
    fields = dict(part.strip().split("=", 1) for part in auth[len("AWS4-HMAC-SHA256 "):].split(","))
    signed = fields["SignedHeaders"].split(";")
    amz_date = h["x-amz-date"]
    scope = f"{amz_date[:8]}/{region}/execute-api/aws4_request"
    assert fields["Credential"] == f"{KEY_ID}/{scope}"
    url = urlsplit(req["path"])
    query = "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}"
                     for k, v in sorted(parse_qsl(url.query, keep_blank_values=True)))
    canonical = "\n".join([req["method"], quote(url.path, safe="/-_.~"), query,
                           "".join(f"{k}:{' '.join(h[k].split())}\n" for k in signed), ";".join(signed),
                           hashlib.sha256(req["body"]).hexdigest()])
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = ("AWS4" + SECRET).encode()
    for part in (amz_date[:8], region, "execute-api", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return fields["Signature"], hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


@pytest.mark.parametrize("argv, method, path, query", [
    (["retire", "1700000000000000", "--why", "cable fault rx 7"], "POST", "/calib/admin/retire",
     {"fitid": "1700000000000000", "why": "cable fault rx 7"}),
    (["restore", "17", "--why", "fine"], "POST", "/calib/admin/restore", {"fitid": "17", "why": "fine"}),
    (["prefer", "17", "--why", "ref", "--obsid", "1400000600"], "POST", "/calib/admin/prefer",
     {"fitid": "17", "why": "ref", "obsid": "1400000600"}),
    (["epoch", "add", "2026-01-01T00:00:00Z", "--why", "rx swap", "--receivers", "3,4"], "POST",
     "/calib/admin/epochs", {"boundary": "2026-01-01T00:00:00Z", "why": "rx swap", "receivers": "3,4"}),
    (["epoch", "list", "--all"], "GET", "/calib/admin/epochs", {"all": "1"}),
    (["epoch", "end", "5", "--why", "reverted"], "POST", "/calib/admin/epochs/5/end", {"why": "reverted"}),
    (["audit", "--limit", "5"], "GET", "/calib/admin/audit", {"limit": "5"}),
])
def test_each_action_calls_its_route_signed_for_execute_api(server, capsys, argv, method, path, query):
    url, seen = server
    assert main(["--url", url, "--region", "ap-southeast-2", *argv]) == 0
    assert json.loads(capsys.readouterr().out) == {"ok": True}
    req = seen[-1]
    assert req["method"] == method and urlsplit(req["path"]).path == path
    assert dict(parse_qsl(urlsplit(req["path"]).query)) == query
    got, expected = _expected_signature(req, "ap-southeast-2")
    assert got == expected


def test_help_lists_every_action(capsys):
    with pytest.raises(SystemExit):
        parser().parse_args(["--help"])
    out = capsys.readouterr().out
    for action in ("retire", "restore", "prefer", "epoch", "audit"):
        assert action in out
    with pytest.raises(SystemExit):
        parser().parse_args(["epoch", "--help"])
    out = capsys.readouterr().out
    assert all(a in out for a in ("add", "list", "end"))


def test_the_default_url_is_calib_admin_url_else_prod(monkeypatch):
    monkeypatch.delenv("CALIB_ADMIN_URL", raising=False)
    assert parser().parse_args(["audit"]).url == "https://ws.mwatelescope.org"
    monkeypatch.setenv("CALIB_ADMIN_URL", "http://127.0.0.1:8000")
    assert parser().parse_args(["audit"]).url == "http://127.0.0.1:8000"
