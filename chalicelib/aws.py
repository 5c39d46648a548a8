"""Every boto3 client of the service: made on first use, one per service, its settings in one table.

A client made at import time would escape moto in tests and slow the cold start, so
:func:`client` makes it on first use and the container reuses it (boto3 clients are thread-safe;
making one is not, hence the lock). boto3 honours ``AWS_ENDPOINT_URL``, which the local stack
points at its moto server. :data:`SETTINGS` holds each service's timeouts, retries and signing as
plain data: the event functions' (they run up to 300 s). Inside an API request (a deadline is set,
:mod:`chalicelib.deadline`) :func:`request_settings` derives them from the deadline instead, so one
call, retries and backoff included, takes at most the dependency budget (10 s of the default 20 s),
or the whole seconds left before the deadline when fewer remain; with less than one attempt's worth
left the call is not made (a 503). The kinds of client are kept apart. :func:`aws_errors` is the
one tuple of botocore failures callers catch.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Any

from chalicelib import deadline
from chalicelib.config import settings
from chalicelib.errors import StorageUnavailable


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

# Inside an API request: attempts per call (an SQS send is never repeated by botocore: a timed-out
# send may have arrived, and the caller decides what to tell; see chalicelib.calrequests.intake).
REQUEST_ATTEMPTS = {"s3": 2, "sqs": 1, "secretsmanager": 2, "ssm": 2}
RETRY_BACKOFF_S = 1.0  # at most what botocore's standard mode waits before a retry (<= 1 s, throttled)
REQUEST_CONNECT_S = 2.0  # the longest TCP connect inside a request (AWS endpoints connect in milliseconds)
MIN_ATTEMPT_TIMEOUTS_S = 1.0  # connect + read of one attempt at least; fewer attempts when the budget is short
# Time an attempt may spend beyond its timeouts: botocore waits up to 1 s for "100 Continue" after an
# S3 upload's headers before it goes on.
ATTEMPT_WAIT_S = {"s3": 1.0}

_lock = threading.Lock()
_clients: dict[tuple[str, ClientSettings], Any] = {}


class NoTimeLeft(StorageUnavailable):
    """Too little of the request's deadline is left for one attempt: the call is not made (503)."""


def request_settings(service: str, budget_s: float) -> ClientSettings:
    """A service's settings for one call that must end within ``budget_s``, every attempt and backoff included."""
    budget = budget_s
    wait = ATTEMPT_WAIT_S.get(service, 0.0)
    attempts = REQUEST_ATTEMPTS[service]
    while True:
        timeouts = (budget - RETRY_BACKOFF_S * (attempts - 1)) / attempts - wait  # connect + read of one attempt
        if attempts == 1 or timeouts >= MIN_ATTEMPT_TIMEOUTS_S:
            break
        attempts -= 1
    if timeouts < MIN_ATTEMPT_TIMEOUTS_S:
        raise NoTimeLeft(f"no time left in the request's deadline for {service}: {budget_s:g} s is less than "
                         f"one attempt needs")
    connect = min(REQUEST_CONNECT_S, timeouts / 3)
    return ClientSettings(connect_timeout_s=connect, read_timeout_s=timeouts - connect, max_attempts=attempts,
                          signature_version=SETTINGS[service].signature_version)


def current_settings(service: str) -> ClientSettings:
    """The settings a call made now uses: :data:`SETTINGS` outside a request; inside one, sized to end in time.

    The budget is the dependency budget, or the whole seconds left before the deadline when fewer
    remain (whole seconds: a container makes at most one client per second of budget). NoTimeLeft
    when not even one attempt fits.
    """
    now = deadline.current()
    if now is None:
        return SETTINGS[service]
    budget = min(deadline.dependency_budget_s(now.total_s), float(math.floor(max(now.remaining_s(), 0.0))))
    return request_settings(service, budget)


def client_config(service: str, s: ClientSettings | None = None) -> Any:
    """The botocore ``Config`` of a service's client (from :func:`current_settings` unless given)."""
    from botocore.config import Config

    s = s or current_settings(service)
    kwargs: dict[str, Any] = {"connect_timeout": s.connect_timeout_s, "read_timeout": s.read_timeout_s,
                              # total_max_attempts counts the first attempt; botocore's "max_attempts" key
                              # counts retries only (max_attempts=3 was four attempts in all)
                              "retries": {"total_max_attempts": s.max_attempts, "mode": "standard"}}
    if s.signature_version:
        kwargs["signature_version"] = s.signature_version
    return Config(**kwargs)


def client(service: str) -> Any:
    """The container's boto3 client of ``service`` (one of :data:`SETTINGS`) for calls made now, made on first use.

    One per service and settings: the event functions' client, and inside API requests the one sized
    by the deadline (a container runs one function, so it holds one of them in practice).
    """
    s = current_settings(service)
    with _lock:
        made = _clients.get((service, s))
        if made is None:
            import boto3

            made = _clients[(service, s)] = boto3.client(service, region_name=settings().aws_region,
                                                         config=client_config(service, s))
        return made


def reset(*services: str) -> None:
    """Forget the clients of ``services`` (all when none are named); the next use makes new ones (tests, moto)."""
    with _lock:
        for key in list(_clients):
            if not services or key[0] in services:
                del _clients[key]


def aws_errors() -> tuple[type[BaseException], ...]:
    """The botocore exceptions a call to AWS raises when AWS (or the way to it) fails."""
    from botocore.exceptions import BotoCoreError, ClientError

    return (BotoCoreError, ClientError)
