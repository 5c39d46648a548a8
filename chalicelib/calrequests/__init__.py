"""Calibration requests: ``add_cal_request`` -> SQS -> a stored request -> a fit finishes -> callbacks.

The path, one module per step:

``intake``     the route: validate, choose the calibrator to fit, check the callback URL, queue one
               SQS message (200, 400, 404, 409; 500 only for faults of ours).
``store``      the SQS handler: one ``calibration_request`` row per message (idempotent on the
               message's request key); completed at once when the calibrator already has a fit.
``callbacks``  completion of open requests, callback delivery (signed JSON POST), the attempt log
               and the retry schedule (growing delays for ``callback_retry_hours``, then 'failed').
``urls``       the callback URL check (scheme, length, no loopback/private/metadata addresses
               unless allow-listed); run by the route and again before every POST.
``transport``  the POST itself: pinned to the checked address, no redirects, no proxies,
               connect and total timeouts.

A fit finishing is told here by :mod:`chalicelib.ingest` (the S3 event of a landed fit file, or
the ingest CLI) calling :func:`callbacks.fit_finished`; nothing here knows the bucket's layout.
The SQL is in :mod:`chalicelib.db.requests`. ``app.py`` calls the three functions below.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

# The SQS queue the route writes to and ``store_request`` reads (the local stack uses this name).
REQUEST_QUEUE = "mwa-calib-requests"
# Messages per invocation of ``store_request``. One: Chalice 1.34 cannot report partial batch
# failures, so a failing message must fail alone (a batch would replay and dead-letter its
# neighbours too). Requests are few; idempotent storing would make larger batches safe, not cleaner.
REQUEST_BATCH_SIZE = 1


def add_cal_request(query: Mapping[str, str] | None) -> None:
    """The add_cal_request route: queue one request (raises a ServiceError for 400/404/409)."""
    from chalicelib.calrequests import intake

    intake.add(query)


def store_sqs_records(records: Iterable[Mapping[str, Any]], context: Any = None) -> list:
    """The SQS handler: store each queued request; raises when any failed (the message stays queued)."""
    from chalicelib.calrequests import store

    return store.handle_records(records, context=context)


def retry_callbacks(context: Any = None) -> dict:
    """The schedule: send the callbacks that are due (failed earlier, or not sent yet)."""
    from chalicelib.calrequests import callbacks

    return callbacks.retry_due(context=context)
