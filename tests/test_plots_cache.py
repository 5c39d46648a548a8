"""Plots a browser keeps: immutable stored objects, one presigned URL per plot for a while, cacheable redirects.

The signature is checked with SigV4 as AWS documents it (canonical request, string to sign, HMAC
chain), written out here with hashlib/hmac, not with botocore, which made it.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import os
import re
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qsl, quote, urlsplit

import pytest
import requests
from chalice.test import Client

from chalicelib.plots import KINDS
from tests import summary_fixtures as fx

IMMUTABLE = "public, max-age=31536000, immutable"
T0 = datetime(2026, 3, 20, 10, 0, 0, tzinfo=timezone.utc)  # a whole hour


@pytest.fixture
def client(clean_db, aws):
    fx.seed()
    from app import app

    with Client(app) as c:
        yield c


@pytest.fixture
def clock(monkeypatch):
    """Set the service's clock: clock(datetime)."""
    from chalicelib import gpstime

    def set_to(at: datetime) -> None:
        monkeypatch.setattr(gpstime, "now", lambda: at)

    return set_to


def plot(client, kind: str = "tilediff", width: int = 480):
    r = client.http.get(f"/calib/plot/{kind}?fitid={fx.F_CALVIN}&obsid={fx.A}&width={width}")
    assert r.status_code == 302, r.body
    return r


def query(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))


def max_age(response) -> int:
    cc = response.headers["Cache-Control"]
    m = re.fullmatch(r"public, max-age=(\d+)", cc)
    assert m, cc
    return int(m.group(1))


def sigv4_signature(url: str, secret: str) -> str:
    """The X-Amz-Signature AWS's SigV4 query-string rules give for a GET of ``url`` (host the only signed header)."""
    parts = urlsplit(url)
    q = query(url)
    canonical_query = "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}"
                               for k, v in sorted(q.items()) if k != "X-Amz-Signature")
    canonical = "\n".join(["GET", parts.path, canonical_query, f"host:{parts.netloc}", "", "host", "UNSIGNED-PAYLOAD"])
    date, region, service, terminator = q["X-Amz-Credential"].split("/")[1:]
    scope = f"{date}/{region}/{service}/{terminator}"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", q["X-Amz-Date"], scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = f"AWS4{secret}".encode()
    for part in (date, region, service, terminator):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


def test_stored_plots_carry_an_immutable_cache_control_that_s3_answers_with(client, aws):
    loc = plot(client, "gains").headers["Location"]
    prefix = f"plots/v2/gains/{fx.A}/{fx.F_CALVIN}/"
    keys = [o["Key"] for o in aws["s3"].list_objects_v2(Bucket="test-products", Prefix=prefix)["Contents"]]
    assert sorted(keys) == sorted(f"{prefix}{w}px.png" for w in (480, 960, 1440))
    for key in keys:
        assert aws["s3"].head_object(Bucket="test-products", Key=key)["CacheControl"] == IMMUTABLE
    got = requests.get(loc, timeout=10)  # the browser's download, through the presigned URL
    assert got.status_code == 200 and got.content[:8] == b"\x89PNG\r\n\x1a\n"
    assert got.headers["Cache-Control"] == IMMUTABLE


def test_views_within_the_half_hour_get_the_same_url_and_a_redirect_kept_until_it_expires(client, clock):
    clock(T0 + timedelta(minutes=5))
    first = plot(client)
    clock(T0 + timedelta(minutes=25, seconds=30))
    second = plot(client)
    assert second.headers["Location"] == first.headers["Location"]
    q = query(first.headers["Location"])
    assert q["X-Amz-Date"] == "20260320T100000Z" and q["X-Amz-Expires"] == "3600"  # the default expiry
    assert q["X-Amz-Credential"] == f"{os.environ['AWS_ACCESS_KEY_ID']}/20260320/ap-southeast-2/s3/aws4_request"
    # kept until the URL expires (11:00) less a margin of two minutes
    assert max_age(first) == 55 * 60 - 120
    assert max_age(second) == 34 * 60 + 30 - 120
    clock(T0 + timedelta(minutes=31))
    later = plot(client)
    assert later.headers["Location"] != first.headers["Location"]
    assert query(later.headers["Location"])["X-Amz-Date"] == "20260320T103000Z"
    assert max_age(later) == 59 * 60 - 120


@pytest.mark.parametrize("minute", [0, 17, 29, 30, 59])
def test_the_url_is_valid_for_as_long_as_the_browser_keeps_the_redirect(client, clock, minute):
    now = T0 + timedelta(minutes=minute, seconds=41)
    clock(now)
    r = plot(client, "timediff")
    q = query(r.headers["Location"])
    signed = datetime.strptime(q["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
    expires = signed + timedelta(seconds=int(q["X-Amz-Expires"]))
    assert signed <= now
    assert now + timedelta(seconds=max_age(r)) <= expires - timedelta(seconds=60)
    assert max_age(r) >= 1800 - 120 - 41  # at least half the URL's life is left for the browser


def test_the_rounded_signature_is_a_valid_sigv4_signature_and_the_url_downloads(client, clock, aws):
    clock(T0 + timedelta(minutes=12))
    loc = plot(client, "xydiff", width=960).headers["Location"]
    q = query(loc)
    assert q["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256" and q["X-Amz-SignedHeaders"] == "host"
    assert q["X-Amz-Security-Token"] == os.environ["AWS_SESSION_TOKEN"] and q["response-content-type"] == "image/png"
    assert q["X-Amz-Signature"] == sigv4_signature(loc, secret=os.environ["AWS_SECRET_ACCESS_KEY"])
    got = requests.get(loc, timeout=10)
    assert got.status_code == 200 and got.headers["Content-Type"] == "image/png"
    from PIL import Image

    assert Image.open(io.BytesIO(got.content)).width == 960


def test_a_longer_expiry_signs_as_of_the_hour_and_a_short_one_is_not_cached(client, clock, monkeypatch):
    monkeypatch.setenv("CALIB_PRESIGN_EXPIRY_S", "7200")
    clock(T0 + timedelta(minutes=50))
    a = plot(client)
    clock(T0 + timedelta(minutes=59, seconds=59))
    b = plot(client)
    assert a.headers["Location"] == b.headers["Location"]  # the same hour: the same URL
    q = query(a.headers["Location"])
    assert (q["X-Amz-Date"], q["X-Amz-Expires"]) == ("20260320T100000Z", "7200")
    assert max_age(a) == 70 * 60 - 120
    monkeypatch.setenv("CALIB_PRESIGN_EXPIRY_S", "200")  # 100 s steps: never 120 s of life left to cache
    clock(T0 + timedelta(seconds=90))
    short = plot(client)
    assert short.headers["Cache-Control"] == "no-store"
    assert query(short.headers["Location"])["X-Amz-Date"] == "20260320T100000Z"


def test_json_plot_data_and_solution_zips_stay_uncached(client):
    """A zip's key is rebuilt from the database on demand and its URL is a one-off download: no-store, as before."""
    r = client.http.get(f"/calib/plot/tilediff?fitid={fx.F_CALVIN}&obsid={fx.A}&format=json")
    assert r.status_code == 200 and "max-age" not in r.headers.get("Cache-Control", "")
    z = client.http.get(f"/calib/get_cal_solution?obs_id={fx.A}")
    assert z.status_code == 302 and z.headers["Cache-Control"] == "no-store"


def test_every_kind_is_served_cacheable(client, clock):
    clock(T0 + timedelta(minutes=1))
    for kind in KINDS:
        assert max_age(plot(client, kind)) == 59 * 60 - 120, kind
