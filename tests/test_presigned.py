"""Presigned URLs signed as of a chosen moment (chalicelib.presigned, storage.presigned_url(signed_at=...)).

botocore's own presigned URL is the reference: signed again as of the moment botocore signed it,
the URL must come out byte for byte the same.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qsl, urlsplit

import pytest

from chalicelib import gpstime, presigned, storage


def _q(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))


def _signed_time(url: str) -> datetime:
    return datetime.strptime(_q(url)["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)


def test_signed_as_of_botocores_own_moment_is_botocores_url(aws):
    url = storage.presigned_url("test-products", "plots/v2/gains/1/2/480px.png", content_type="image/png")
    again = storage.presigned_url("test-products", "plots/v2/gains/1/2/480px.png", content_type="image/png",
                                  signed_at=_signed_time(url))
    assert again == url


def test_the_same_moment_gives_the_same_url_and_another_moment_another(aws):
    at = gpstime.now().replace(microsecond=0) - timedelta(minutes=20)
    a = storage.presigned_url("test-products", "k/a.png", content_type="image/png", signed_at=at)
    b = storage.presigned_url("test-products", "k/a.png", content_type="image/png", signed_at=at)
    c = storage.presigned_url("test-products", "k/a.png", content_type="image/png", signed_at=at - timedelta(seconds=1))
    assert a == b != c
    assert _signed_time(a) == at and _q(a)["X-Amz-Expires"] == "3600"
    assert storage.presigned_url("test-products", "k/b.png", signed_at=at) != a  # another object


@pytest.mark.parametrize("offset", [timedelta(minutes=5), -timedelta(seconds=3600), -timedelta(days=2)])
def test_a_moment_the_url_would_not_work_at_gives_a_url_signed_now(aws, offset):
    """In the future, or an expiry or more ago: such a URL would be refused, so the URL signed now is served."""
    before = gpstime.now().replace(microsecond=0)
    url = storage.presigned_url("test-products", "k/a.png", signed_at=before + offset)
    assert before <= _signed_time(url) <= gpstime.now() + timedelta(seconds=1)


def test_signing_refuses_credentials_other_than_the_urls_and_naive_times(aws):
    from botocore.credentials import ReadOnlyCredentials

    url = storage.presigned_url("test-products", "k/a.png")
    now = gpstime.now()
    with pytest.raises(ValueError, match="not the ones"):
        presigned.signed_as_of(url, now, 3600, ReadOnlyCredentials("someone-else", "x", None))
    with pytest.raises(ValueError, match="aware"):
        presigned.signed_as_of(url, now.replace(tzinfo=None), 3600, storage._signing_credentials())
    with pytest.raises(ValueError, match="SigV4"):
        presigned.signed_as_of("https://example.org/k/a.png", now, 3600, storage._signing_credentials())


def test_rounded_down_steps_from_the_unix_epoch():
    at = datetime(2026, 3, 20, 10, 47, 13, 500000, tzinfo=timezone.utc)
    assert presigned.rounded_down(at, 3600) == datetime(2026, 3, 20, 10, 0, tzinfo=timezone.utc)
    assert presigned.rounded_down(at, 1800) == datetime(2026, 3, 20, 10, 30, tzinfo=timezone.utc)
    assert presigned.rounded_down(at, 1) == datetime(2026, 3, 20, 10, 47, 13, tzinfo=timezone.utc)
    assert presigned.rounded_down(at.astimezone(timezone(timedelta(hours=8))), 3600) == \
        datetime(2026, 3, 20, 10, 0, tzinfo=timezone.utc)
