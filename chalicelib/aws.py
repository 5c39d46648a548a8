"""Every boto3 client of the service: made on first use, one per service, its settings in one table.

A client made at import time would escape moto in tests and slow the cold start, so
:func:`client` makes it on first use and the container reuses it (boto3 clients are thread-safe;
making one is not, hence the lock). boto3 honours ``AWS_ENDPOINT_URL``, which the local stack
points at its moto server. :data:`SETTINGS` holds each service's timeouts, retries and signing as
plain data, so they can be derived from elsewhere (e.g. a request's deadline) without touching
how clients are made. :func:`aws_errors` is the one tuple of botocore failures callers catch.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from chalicelib.config import settings


@dataclass(frozen=True)
class ClientSettings:
    """How one service's client talks to AWS."""

    connect_timeout_s: float
    read_timeout_s: float
    max_attempts: int  # botocore "standard" retry mode: attempts in all, the first one included
    signature_version: str | None = None  # None: botocore's default for the service


SETTINGS: dict[str, ClientSettings] = {
    # presigned download URLs must be SigV4 (botocore would presign with SigV2 in us-east-1)
    "s3": ClientSettings(connect_timeout_s=5, read_timeout_s=30, max_attempts=3, signature_version="s3v4"),
    "sqs": ClientSettings(connect_timeout_s=5, read_timeout_s=30, max_attempts=3),
    "secretsmanager": ClientSettings(connect_timeout_s=5, read_timeout_s=10, max_attempts=3),
    "ssm": ClientSettings(connect_timeout_s=5, read_timeout_s=10, max_attempts=3),
}

_lock = threading.Lock()
_clients: dict[str, Any] = {}


def client_config(service: str) -> Any:
    """The botocore ``Config`` of a service's client, from :data:`SETTINGS` (KeyError for another service)."""
    from botocore.config import Config

    s = SETTINGS[service]
    kwargs: dict[str, Any] = {"connect_timeout": s.connect_timeout_s, "read_timeout": s.read_timeout_s,
                              "retries": {"max_attempts": s.max_attempts, "mode": "standard"}}
    if s.signature_version:
        kwargs["signature_version"] = s.signature_version
    return Config(**kwargs)


def client(service: str) -> Any:
    """The container's boto3 client of ``service`` (one of :data:`SETTINGS`), made on first use."""
    with _lock:
        made = _clients.get(service)
        if made is None:
            import boto3

            made = _clients[service] = boto3.client(service, region_name=settings().aws_region,
                                                    config=client_config(service))
        return made


def reset(*services: str) -> None:
    """Forget the clients of ``services`` (all when none are named); the next use makes new ones (tests, moto)."""
    with _lock:
        for service in services or list(_clients):
            _clients.pop(service, None)


def aws_errors() -> tuple[type[BaseException], ...]:
    """The botocore exceptions a call to AWS raises when AWS (or the way to it) fails."""
    from botocore.exceptions import BotoCoreError, ClientError

    return (BotoCoreError, ClientError)
