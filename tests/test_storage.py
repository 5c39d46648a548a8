"""The S3/SQS module and its AWS clients: what it sends to S3, how it signs, how an outage reaches the caller."""

from __future__ import annotations

import os

from chalicelib import aws as clients
from chalicelib import storage


def test_crc32_checksum_is_the_standard_crc32_in_s3s_encoding():
    # the CRC-32 check value of "123456789" is 0xCBF43926 (ISO-HDLC / zlib); S3 wants it big-endian, base64
    assert storage.crc32_checksum(b"123456789") == "y/Q5Jg=="
    assert storage.crc32_checksum(b"") == "AAAAAA=="


def test_put_object_sends_the_body_as_is_with_its_crc32_for_s3_to_verify(aws):
    body = os.urandom(3 * 1024 * 1024 + 17)
    sent: list = []
    client = clients.client("s3")
    client.meta.events.register("before-send.s3.PutObject", lambda request, **_: sent.append(request))

    storage.put_object("test-products", "k/zip.zip", body, "application/zip")

    (request,) = sent
    headers = {k.lower(): v for k, v in request.headers.items()}
    value = headers["x-amz-checksum-crc32"]
    assert (value.decode() if isinstance(value, bytes) else value) == storage.crc32_checksum(body)
    assert "aws-chunked" not in str(headers.get("content-encoding", b""))  # no re-encoded trailer body
    assert "x-amz-trailer" not in headers
    sent_body = request.body if isinstance(request.body, bytes) else request.body.getvalue()
    assert sent_body == body  # the bytes themselves, not an aws-chunked encoding of them
    assert aws["s3"].get_object(Bucket="test-products", Key="k/zip.zip")["Body"].read() == body


def test_download_urls_are_sigv4_in_every_region(aws, monkeypatch):
    """boto3 alone presigns with SigV2 in us-east-1; the S3 client's settings ask for SigV4 everywhere."""
    from urllib.parse import parse_qs, urlsplit

    for region in ("us-east-1", "ap-southeast-2"):
        monkeypatch.setenv("AWS_REGION", region)
        clients.reset()
        query = parse_qs(urlsplit(storage.presigned_url("test-products", "a/b.zip")).query)
        assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"], region
        assert f"/{region}/s3/aws4_request" in query["X-Amz-Credential"][0]
        assert "Signature" not in query  # the SigV2 parameter


def test_one_client_per_service_shared_by_threads_until_reset(aws):
    from concurrent.futures import ThreadPoolExecutor

    clients.reset()
    with ThreadPoolExecutor(max_workers=8) as pool:
        made = list(pool.map(lambda _: clients.client("s3"), range(32)))
    assert len({id(c) for c in made}) == 1
    assert clients.client("sqs") is not made[0] and clients.client("sqs").meta.service_model.service_name == "sqs"
    clients.reset("sqs")
    assert clients.client("s3") is made[0]  # only the named service was forgotten
    clients.reset()
    assert clients.client("s3") is not made[0]


def test_an_unreachable_s3_is_storage_unavailable_not_a_crash(monkeypatch):
    """Every botocore failure (here: nothing listens at the endpoint) becomes the 503 StorageUnavailable."""
    import socket

    import pytest

    from chalicelib.errors import StorageUnavailable

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    clients.reset()
    try:
        for call in (lambda: storage.get_object("b", "k"), lambda: storage.exists("b", "k"),
                     lambda: storage.put_object("b", "k", b"x"), lambda: storage.head_bucket("b")):
            with pytest.raises(StorageUnavailable) as err:
                call()
            assert err.value.status == 503
    finally:
        clients.reset()
