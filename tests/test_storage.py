"""The S3 module: what it sends to S3 when it stores an object."""

from __future__ import annotations

import os

from chalicelib import storage


def test_crc32_checksum_is_the_standard_crc32_in_s3s_encoding():
    # the CRC-32 check value of "123456789" is 0xCBF43926 (ISO-HDLC / zlib); S3 wants it big-endian, base64
    assert storage.crc32_checksum(b"123456789") == "y/Q5Jg=="
    assert storage.crc32_checksum(b"") == "AAAAAA=="


def test_put_object_sends_the_body_as_is_with_its_crc32_for_s3_to_verify(aws):
    body = os.urandom(3 * 1024 * 1024 + 17)
    sent: list = []
    client = storage._client("s3")
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
