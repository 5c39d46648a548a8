"""The one way to reach S3 and SQS: objects, presigned SigV4 download URLs, queue messages.

Clients come from :mod:`chalicelib.aws` (made on first use, reused by the container; their
timeouts, retries and signing are set there, inside an API request from its deadline). Every AWS
failure is raised as :class:`~chalicelib.errors.StorageUnavailable` (503); a missing key is an
answer (None / False). Inside an API request every call ends before the request's deadline
(:mod:`chalicelib.aws` sizes it so); with too little time left it fails at once with the same 503.
"""

from __future__ import annotations

import base64
import json
import zlib
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from chalicelib import aws, presigned
from chalicelib.config import settings
from chalicelib.errors import StorageUnavailable
from chalicelib.observability import logger

if TYPE_CHECKING:
    from botocore.exceptions import ClientError


def reset_clients() -> None:
    """Forget the cached clients (tests switch between moto mocks); the same as :func:`chalicelib.aws.reset`."""
    aws.reset()


def _client(service: str, doing: str) -> Any:
    """The service's client for a call made now (inside a request: one that ends before the deadline)."""
    try:
        return aws.client(service)
    except aws.NoTimeLeft as exc:
        raise StorageUnavailable(f"no time left in the request's deadline to {doing}") from exc


def _failed(message: str, exc: BaseException) -> StorageUnavailable:
    """The 503 for a failed call; one that timed out says so."""
    from botocore.exceptions import ConnectTimeoutError, ReadTimeoutError

    if isinstance(exc, (ConnectTimeoutError, ReadTimeoutError)):
        return StorageUnavailable(f"{message}: no answer in time ({type(exc).__name__})")
    return StorageUnavailable(message)


def _missing(exc: ClientError) -> bool:
    """Whether an S3 client error says the key does not exist (GET: NoSuchKey; HEAD: a bare 404)."""
    return exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound")


def get_object(bucket: str, key: str) -> bytes | None:
    """The object's bytes, or None when there is no such key."""
    from botocore.exceptions import ClientError

    doing = f"read s3://{bucket}/{key}"
    try:
        return _client("s3", doing).get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as exc:
        if _missing(exc):
            return None
        raise _failed(f"cannot {doing}", exc) from exc
    except aws.aws_errors() as exc:
        raise _failed(f"cannot {doing}", exc) from exc


def get_objects(bucket: str, keys: Sequence[str], threads: int = 8) -> dict[str, bytes | None]:
    """The objects' bytes by key (None for a missing key), fetched in parallel threads, each key once."""
    from concurrent.futures import ThreadPoolExecutor

    unique = list(dict.fromkeys(keys))
    if not unique:
        return {}
    with ThreadPoolExecutor(max_workers=max(1, min(threads, len(unique)))) as pool:
        return dict(zip(unique, pool.map(lambda k: get_object(bucket, k), unique)))


def list_objects(bucket: str, prefix: str) -> list[tuple[str, int]]:
    """Every (key, size) under the prefix, in key order (one paginated listing)."""
    out: list[tuple[str, int]] = []
    try:
        for page in aws.client("s3").get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            out.extend((o["Key"], int(o["Size"])) for o in page.get("Contents", []))
    except aws.aws_errors() as exc:
        raise StorageUnavailable(f"cannot list s3://{bucket}/{prefix}*") from exc
    return out


def exists(bucket: str, key: str) -> bool:
    """Whether the key exists."""
    from botocore.exceptions import ClientError

    doing = f"check s3://{bucket}/{key}"
    try:
        _client("s3", doing).head_object(Bucket=bucket, Key=key)
        return True
    except ClientError as exc:
        if _missing(exc):
            return False
        raise _failed(f"cannot {doing}", exc) from exc
    except aws.aws_errors() as exc:
        raise _failed(f"cannot {doing}", exc) from exc


def crc32_checksum(body: bytes) -> str:
    """The body's CRC32 as S3's ``x-amz-checksum-crc32`` header wants it (base64 of the big-endian value)."""
    return base64.b64encode(zlib.crc32(body).to_bytes(4, "big")).decode("ascii")


def put_object(bucket: str, key: str, body: bytes, content_type: str = "application/octet-stream",
               cache_control: str | None = None) -> None:
    """Store bytes under the key; S3 checks them against their CRC32 and refuses a corrupted upload.

    The checksum goes in a header, computed once here (~3 ms for a 12.6 MB zip), so botocore sends
    the body as it is instead of re-encoding it with a checksum trailer (aws-chunked).
    ``cache_control`` is kept as the object's Cache-Control metadata, which S3 answers every GET with.
    """
    doing = f"write s3://{bucket}/{key}"
    extra = {"CacheControl": cache_control} if cache_control else {}
    try:
        _client("s3", doing).put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type,
                                        ChecksumCRC32=crc32_checksum(body), **extra)
    except aws.aws_errors() as exc:
        raise _failed(f"cannot {doing}", exc) from exc


def delete_prefix(bucket: str, prefix: str) -> int:
    """Delete every object under the prefix; returns how many."""
    s3 = _client("s3", f"delete s3://{bucket}/{prefix}*")
    n = 0
    try:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if keys:
                s3.delete_objects(Bucket=bucket, Delete={"Objects": keys})
                n += len(keys)
    except aws.aws_errors() as exc:
        raise StorageUnavailable(f"cannot delete s3://{bucket}/{prefix}*") from exc
    return n


def presigned_url(bucket: str, key: str, download_name: str | None = None,
                  content_type: str | None = None, *, signed_at: datetime | None = None) -> str:
    """A SigV4 presigned GET URL, valid for the configured expiry from when it is signed.

    ``signed_at`` (aware, not in the future, less than the expiry ago) signs as of that moment
    instead of now: every call with the same ``signed_at`` gives the same URL, so a browser that
    cached what it points at need not download it again (the plot route rounds it down).
    """
    params: dict[str, str] = {"Bucket": bucket, "Key": key}
    if download_name:
        params["ResponseContentDisposition"] = f'attachment; filename="{download_name}"'
    if content_type:
        params["ResponseContentType"] = content_type
    expiry = settings().presign_expiry_s
    try:
        url = aws.client("s3").generate_presigned_url(  # signed here: no call to S3
            "get_object", Params=params, ExpiresIn=expiry)
        if signed_at is None:
            return url
        credentials = _signing_credentials()
    except aws.aws_errors() as exc:
        raise StorageUnavailable("cannot sign a download URL") from exc
    try:
        return presigned.signed_as_of(url, signed_at, expiry, credentials)
    except ValueError as exc:  # cannot sign as of that moment: the URL signed now works as well
        logger.warning("download URL signed now, not as asked", extra={"key": key, "error": str(exc)})
        return url


def _signing_credentials() -> Any:
    """The credentials the S3 client signs with (boto3's default session's, as :mod:`chalicelib.aws` makes clients)."""
    import boto3

    if boto3.DEFAULT_SESSION is None:
        boto3.setup_default_session()
    credentials = boto3.DEFAULT_SESSION.get_credentials()
    if credentials is None:
        from botocore.exceptions import NoCredentialsError

        raise NoCredentialsError()
    return credentials.get_frozen_credentials()


def head_bucket(bucket: str) -> None:
    """Raise StorageUnavailable unless the bucket is reachable."""
    try:
        _client("s3", f"reach bucket {bucket}").head_bucket(Bucket=bucket)
    except aws.aws_errors() as exc:
        raise _failed(f"bucket {bucket} is not reachable", exc) from exc


def send_message(queue_url: str, body: dict[str, Any], dedup_id: str | None = None) -> str:
    """Send one JSON message; returns its message id.

    Inside an API request the send is made once (no botocore retry). A failure is raised as
    StorageUnavailable; after a timeout the message may still have arrived (it was sent, the answer
    was not), so callers make messages that may arrive twice harmless.
    """
    kwargs: dict[str, Any] = {"QueueUrl": queue_url, "MessageBody": json.dumps(body, sort_keys=True)}
    if dedup_id and queue_url.endswith(".fifo"):
        kwargs.update(MessageDeduplicationId=dedup_id, MessageGroupId="requests")
    sqs = _client("sqs", "send to the request queue")  # no time left: nothing is sent
    try:
        return sqs.send_message(**kwargs)["MessageId"]
    except aws.aws_errors() as exc:
        raise _failed("the request queue did not take the message", exc) from exc


def queue_reachable(queue_url: str) -> None:
    """Raise StorageUnavailable unless the queue answers."""
    try:
        sqs = _client("sqs", "reach the request queue")
        sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])
    except aws.aws_errors() as exc:
        raise _failed("the request queue is not reachable", exc) from exc
