"""SigV4 presigned S3 URLs signed as of a chosen moment, so one object keeps one URL for a while.

botocore signs a presigned URL with the current time, so every URL differs and a browser's cache
(keyed by the whole URL) never hits. :func:`signed_as_of` takes the URL botocore made (its
endpoint, path and operation parameters, resolved by the client as for any call) and signs it
again with botocore's own query signer (``S3SigV4QueryAuth``) at the given moment: the signature
parameters are dropped and rebuilt, ``X-Amz-Date`` is that moment, ``X-Amz-Expires`` the expiry.
The same (URL, moment, credentials) always gives the same bytes. botocore is imported only here,
when a URL is signed.
"""

from __future__ import annotations

import functools
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from chalicelib import gpstime

SIGV4_TIMESTAMP = "%Y%m%dT%H%M%SZ"
SIGNATURE_PARAMS = frozenset({"X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires",
                              "X-Amz-SignedHeaders", "X-Amz-Security-Token", "X-Amz-Signature"})
MAX_EXPIRY_S = 7 * 86400  # SigV4's longest presigned lifetime


def rounded_down(at: datetime, step_s: int) -> datetime:
    """``at`` (aware) rounded down to a whole multiple of ``step_s`` seconds since the Unix epoch (UTC)."""
    seconds = int(at.timestamp())
    return datetime.fromtimestamp(seconds - seconds % int(step_s), tz=timezone.utc)


@functools.lru_cache(maxsize=1)
def _signer_class() -> type:
    """botocore's S3 query signer with the signing moment given instead of read from the clock."""
    from botocore.auth import S3SigV4QueryAuth

    class SignedAsOf(S3SigV4QueryAuth):
        """S3SigV4QueryAuth whose timestamp is the one given (it sets the request's before anything is signed)."""

        def __init__(self, credentials: Any, region_name: str, expires: int, timestamp: str) -> None:
            super().__init__(credentials, "s3", region_name, expires=expires)
            self._timestamp = timestamp

        def _modify_request_before_signing(self, request: Any) -> None:
            request.context["timestamp"] = self._timestamp  # scope, X-Amz-Date and signature all read it
            super()._modify_request_before_signing(request)

    return SignedAsOf


def signing_scope(url: str) -> tuple[str, str]:
    """(access key id, region) a SigV4 presigned S3 URL was signed with (its X-Amz-Credential)."""
    credential = dict(parse_qsl(urlsplit(url).query, keep_blank_values=True)).get("X-Amz-Credential", "")
    parts = credential.split("/")
    if len(parts) != 5 or parts[3] != "s3":
        raise ValueError("not a SigV4 presigned S3 URL")
    return parts[0], parts[2]


def signed_as_of(url: str, at: datetime, expires_s: int, credentials: Any) -> str:
    """The SigV4 presigned ``url`` signed again as of ``at``, valid for ``expires_s`` seconds from then.

    ``at`` must be aware, not in the future and less than ``expires_s`` ago (else the URL would
    not work now): ValueError otherwise, as for ``credentials`` (botocore's, frozen) other than
    those that signed ``url``.
    """
    if at.tzinfo is None:
        raise ValueError("the signing moment must be aware (UTC)")
    expires_s = int(expires_s)
    if not 1 <= expires_s <= MAX_EXPIRY_S:
        raise ValueError(f"a presigned URL lives 1 s to 7 days, not {expires_s} s")
    now = gpstime.now()
    if at > now or now - at >= timedelta(seconds=expires_s):
        raise ValueError(f"a URL signed at {at.isoformat()} for {expires_s} s would not work at {now.isoformat()}")
    from botocore.awsrequest import AWSRequest

    access_key, region = signing_scope(url)
    if credentials.access_key != access_key:
        raise ValueError("the credentials given are not the ones the URL was signed with")
    parts = urlsplit(url)
    kept = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in SIGNATURE_PARAMS]
    request = AWSRequest(method="GET", url=urlunsplit((*parts[:3], urlencode(kept), parts[4])))
    timestamp = at.astimezone(timezone.utc).strftime(SIGV4_TIMESTAMP)
    _signer_class()(credentials, region, expires_s, timestamp).add_auth(request)
    return request.url
