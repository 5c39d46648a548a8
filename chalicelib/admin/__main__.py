"""The engineers' client for the admin routes, signing each call with the caller's AWS credentials (SigV4).

    python -m chalicelib.admin retire FITID --why "..."      python -m chalicelib.admin epoch add BOUNDARY --why "..."
    python -m chalicelib.admin restore FITID --why "..."     python -m chalicelib.admin epoch list [--all]
    python -m chalicelib.admin prefer FITID --why "..."      python -m chalicelib.admin epoch end EPOCH_ID --why "..."
    python -m chalicelib.admin audit [--limit N] [--fitid F] [--epoch-id E]

``--url`` is the service's base (default ``CALIB_ADMIN_URL``, else the prod URL); the region is
``AWS_REGION`` (config). Credentials come from the usual AWS chain (env, profile, SSO, instance role);
without any, only a local stack URL (127.0.0.1 / localhost) is called, unsigned.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from urllib.parse import quote, urlencode, urlsplit

from chalicelib.config import settings

PROD_URL = "https://ws.mwatelescope.org"
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
TIMEOUT_S = 30


def parser() -> argparse.ArgumentParser:
    """The command line: one sub-command per admin action."""
    p = argparse.ArgumentParser(prog="python -m chalicelib.admin",
                                description="Steer what the calibration service serves (admin routes, SigV4-signed).")
    p.add_argument("--url", default=settings().admin_url,
                   help=f"service base URL (default: CALIB_ADMIN_URL, else {PROD_URL})")
    p.add_argument("--region", default=None, help="AWS region to sign for (default: AWS_REGION, config)")
    sub = p.add_subparsers(dest="action", required=True, metavar="ACTION",
                           title="actions (retire, restore, prefer, epoch add|list|end, audit)")
    for name, text in (("retire", "retire a fit: never served, never a candidate"),
                       ("restore", "restore a retired fit"),
                       ("prefer", "prefer a fit on its calibrator (replaces the preferred one)")):
        a = sub.add_parser(name, help=text, description=text)
        a.add_argument("fitid", type=int)
        a.add_argument("--why", required=True, help="why (kept in the audit trail)")
        if name == "prefer":
            a.add_argument("--obsid", type=int, help="the calibrator, when the fit covers several observations")
    epoch = sub.add_parser("epoch", help="validity epochs: add, list, end", description="validity epochs")
    esub = epoch.add_subparsers(dest="epoch_action", required=True, metavar="EPOCH_ACTION")
    add = esub.add_parser("add", help="open an epoch: no calibrator before BOUNDARY serves a target after it")
    add.add_argument("boundary", help="GPS seconds or ISO 8601 UTC")
    add.add_argument("--why", required=True)
    add.add_argument("--receivers", help="comma-separated receivers (only their tiles are NaN)")
    add.add_argument("--tiles", help="comma-separated tile ids (only they are NaN)")
    lst = esub.add_parser("list", help="the epochs in force")
    lst.add_argument("--all", action="store_true", help="ended ones too")
    end = esub.add_parser("end", help="end an epoch")
    end.add_argument("epoch_id", type=int)
    end.add_argument("--why", required=True)
    audit = sub.add_parser("audit", help="the audit trail, newest first")
    audit.add_argument("--limit", type=int, default=100)
    audit.add_argument("--fitid", type=int)
    audit.add_argument("--epoch-id", type=int)
    return p


def request_for(args: argparse.Namespace) -> tuple[str, str, dict[str, str]]:
    """(method, path, query) of the admin route the parsed command calls."""
    def q(**kw: object) -> dict[str, str]:
        return {k: str(v) for k, v in kw.items() if v is not None and v is not False}

    if args.action in ("retire", "restore", "prefer"):
        return "POST", f"/calib/admin/{args.action}", q(fitid=args.fitid, why=args.why,
                                                         obsid=getattr(args, "obsid", None))
    if args.action == "audit":
        return "GET", "/calib/admin/audit", q(limit=args.limit, fitid=args.fitid, epoch_id=args.epoch_id)
    if args.epoch_action == "add":
        return "POST", "/calib/admin/epochs", q(boundary=args.boundary, why=args.why, receivers=args.receivers,
                                                tiles=args.tiles)
    if args.epoch_action == "list":
        return "GET", "/calib/admin/epochs", q(all=1 if args.all else None)
    return "POST", f"/calib/admin/epochs/{args.epoch_id}/end", q(why=args.why)


def signed_headers(method: str, url: str, region: str) -> dict[str, str]:
    """SigV4 headers (service execute-api) from the caller's AWS credentials; {} for a local URL without any."""
    import botocore.session
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest

    creds = botocore.session.Session().get_credentials()
    if creds is None:
        if urlsplit(url).hostname in LOCAL_HOSTS:
            return {}
        raise SystemExit("no AWS credentials found: the admin routes need a SigV4-signed call (aws sso login, a "
                         "profile, or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)")
    req = AWSRequest(method=method, url=url, data=b"")
    SigV4Auth(creds.get_frozen_credentials(), "execute-api", region).add_auth(req)
    return dict(req.headers.items())


def call(method: str, url: str, headers: dict[str, str]) -> tuple[int, str]:
    """Send the request; (status, body text)."""
    req = urllib.request.Request(url, method=method, headers=headers, data=b"" if method == "POST" else None)
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT_S) as resp:  # noqa: S310 - the operator's own URL
            return resp.status, resp.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8", "replace")


def main(argv: Sequence[str] | None = None) -> int:
    """Run one admin action; prints the JSON answer, exit 0 on 2xx, 1 otherwise."""
    args = parser().parse_args(argv)
    method, path, query = request_for(args)
    # spaces as %20, not "+": the canonical query string SigV4 signs (and API Gateway checks) is RFC 3986
    url = args.url.rstrip("/") + path + ("?" + urlencode(query, quote_via=quote, safe="-_.~") if query else "")
    status, body = call(method, url, signed_headers(method, url, args.region or settings().aws_region))
    try:
        print(json.dumps(json.loads(body), indent=2))
    except ValueError:
        print(body)
    if not 200 <= status < 300:
        print(f"HTTP {status}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
