"""The API's request deadline: one time limit per request, and the budget each dependency call gets from it.

API Gateway gives up on a request after 29 s and answers 504 itself, whatever the function does
later. So every API request runs under ONE deadline, ``CALIB_REQUEST_DEADLINE_S`` (default 20 s,
below 29), which the app's HTTP middleware sets for the request's context (:func:`request`).
Everything else is derived from it:

* one call to a dependency (S3, SQS, Secrets Manager, SSM, the database), its retries and their
  backoff included, may take at most :func:`dependency_budget_s`, half the deadline (10 s by
  default): :mod:`chalicelib.aws` sizes the API's clients so, and the database timeout is capped at
  it. A dependency that does not answer is the documented 503 (409 for add_cal_request) within it.
* no call outlasts the deadline: an AWS call gets the whole seconds left when fewer than its
  budget remain, a database statement starts only while its timeout fits (:func:`allows`), and
  with too little time left the call fails at once (the same 503); so the answer is given before
  the deadline however the time was spent. The health check asks its dependencies concurrently.

Outside a request -- the event functions, which run up to 300 s -- no deadline is set and the
longer settings (:data:`chalicelib.aws.SETTINGS`, ``CALIB_DB_TIMEOUT_S``) apply.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

API_GATEWAY_LIMIT_S = 29.0  # API Gateway's integration timeout: past it the caller gets a 504
MIN_DEADLINE_S = 4.0  # below it a dependency budget (2 s) leaves no time for one attempt of an S3 upload
DEPENDENCY_SHARE = 0.5  # the share of the deadline one dependency call may take, retries included


@dataclass(frozen=True)
class Deadline:
    """The deadline of the request being answered: its length and when it ends (``time.monotonic``)."""

    total_s: float
    ends_at: float

    def remaining_s(self) -> float:
        """Seconds left before the answer is due (negative once it is late)."""
        return self.ends_at - time.monotonic()


_current: ContextVar[Deadline | None] = ContextVar("calib_request_deadline", default=None)


def dependency_budget_s(total_s: float) -> float:
    """How long one dependency call may take, retries included, under a request deadline of ``total_s``."""
    return total_s * DEPENDENCY_SHARE


def current() -> Deadline | None:
    """The deadline of the request this code runs for, or None outside a request (event functions, CLI)."""
    return _current.get()


@contextmanager
def request(total_s: float) -> Iterator[Deadline]:
    """Run the body as one API request that must be answered within ``total_s`` seconds."""
    token = _current.set(Deadline(total_s=total_s, ends_at=time.monotonic() + total_s))
    try:
        yield _current.get()
    finally:
        _current.reset(token)


def allows(budget_s: float) -> bool:
    """Whether a call that may take ``budget_s`` can still finish before the deadline (always, outside a request)."""
    now = current()
    return now is None or now.remaining_s() >= budget_s


def capped_timeout_s(configured_s: float) -> float:
    """A dependency's timeout: as configured, but never more than one dependency budget inside a request."""
    now = current()
    return configured_s if now is None else min(configured_s, dependency_budget_s(now.total_s))
