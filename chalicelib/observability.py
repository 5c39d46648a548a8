"""Structured logs, metrics and tracing for every function (aws-lambda-powertools).

Logs: one JSON object per line (powertools ``Logger``), service from ``POWERTOOLS_SERVICE_NAME``.
Every line of an HTTP request carries ``request_id`` (API Gateway's request id, also the id a 500
answer quotes), ``path``, ``method``, ``obs_id`` / ``cal_id`` (when the query names them) and the
Lambda context (``function_name``, ``function_request_id``, ``cold_start``). Event functions carry
the Lambda context and what their event names: ``obs_id`` / ``cal_id`` of a queued request, the
S3 ``bucket``/``key`` (and ``cal_id``/``fitid`` of a fit file), the SQS ``message_ids``.

Metrics: CloudWatch embedded-metric-format lines, namespace from
``POWERTOOLS_METRICS_NAMESPACE`` (``MWACalib`` when unset), flushed at the end of every invocation
(HTTP by ``app.answer_errors``, events by :func:`observe_event`). HTTP: ``Requests``,
``ClientErrors``, ``ServerErrors`` (counts) and ``Latency`` (ms), dimension ``endpoint`` (the
route, e.g. ``/calib/get_cal_solution``); events: ``Invocations``, ``Errors``, dimension
``function``; ``ColdStart`` for both. Other modules count their named events with
:func:`count` (``count(CACHE_HIT)``, ``count(CALLBACK_FAILED)``, ...): the counts get the
invocation's dimension.

Tracing (X-Ray): API Gateway and every Lambda function trace actively (stage config ``xray`` and
the template). The powertools ``Tracer`` (X-Ray SDK, boto3 subsegments, annotations) costs ~0.3 s
to start, so it runs in the event functions only, never on the JSON routes' cold path; it is off
outside Lambda and when ``POWERTOOLS_TRACE_DISABLED`` is true. :func:`trace` opens a subsegment
where a tracer runs and does nothing elsewhere.
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from aws_lambda_powertools import Logger, Metrics

# Metric names other modules count with count(NAME).
CACHE_HIT = "CacheHit"                # a solution zip (or plot) served from the products bucket
CACHE_MISS = "CacheMiss"              # ... built because it was not cached
CALLBACK_SENT = "CallbackSent"        # a callback POST answered 2xx
CALLBACK_FAILED = "CallbackFailed"    # a callback attempt failed (will be retried, or gave up)
CALLBACK_GAVE_UP = "CallbackGaveUp"   # ... and it was the last one: the retry window is over (alarmed)
SELECTION_MISS = "SelectionMiss"      # no calibrator/fit matched (the 404 of the selection)
METRIC_NAMES = (CACHE_HIT, CACHE_MISS, CALLBACK_SENT, CALLBACK_FAILED, CALLBACK_GAVE_UP, SELECTION_MISS)

DEFAULT_NAMESPACE = "MWACalib"

logger = Logger(service=None)  # service from POWERTOOLS_SERVICE_NAME
metrics = Metrics()            # namespace from POWERTOOLS_METRICS_NAMESPACE
if not metrics.provider.namespace:
    metrics.provider.namespace = DEFAULT_NAMESPACE

_HTTP_KEYS = ["request_id", "path", "method", "obs_id", "cal_id", "function_name", "function_request_id",
              "function_arn", "function_memory_size", "cold_start"]
_EVENT_KEYS = ["function", "function_name", "function_request_id", "function_arn", "function_memory_size",
               "cold_start", "obs_id", "cal_id", "fitid", "bucket", "key", "message_ids", "event_id"]
_FIT_KEY = re.compile(r"^fits/(?P<cal>[0-9]{1,19})/(?P<fit>[0-9]{1,19})/")
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")

_cold = {"http": True, "event": True}
_http = threading.local()  # this thread's request: its start time (chalice local answers requests in threads)
_tracer: Any = None


def count(name: str, value: float = 1) -> None:
    """Count ``value`` occurrences of the named event in this invocation's metrics (never raises)."""
    try:
        if not _NAME.match(name):
            raise ValueError(f"bad metric name {name!r}")
        metrics.add_metric(name=name, unit="Count", value=value)
    except Exception:  # noqa: BLE001 - a metric must never fail the request
        logger.warning("metric not recorded", extra={"metric": name})


def flush() -> None:
    """Write this invocation's metrics (one EMF line) and start a new set; nothing when empty."""
    try:
        if metrics.provider.metric_set:
            metrics.flush_metrics(raise_on_empty_metrics=False)
        else:
            metrics.clear_metrics()
    except Exception:  # noqa: BLE001
        logger.warning("metrics not flushed", exc_info=True)
        metrics.clear_metrics()


def _short(value: Any, limit: int = 40) -> str | None:
    if value is None:
        return None
    text = str(value)
    return text[:limit]


def _lambda_keys(context: Any, kind: str) -> dict[str, Any]:
    cold = _cold[kind]
    _cold[kind] = False
    keys: dict[str, Any] = {"cold_start": cold}
    if context is not None:
        for attr, key in (("function_name", "function_name"), ("aws_request_id", "function_request_id"),
                          ("invoked_function_arn", "function_arn"), ("memory_limit_in_mb", "function_memory_size")):
            value = getattr(context, attr, None)
            if value is not None:
                keys[key] = value
    return keys


# --- HTTP (called by app.answer_errors) ------------------------------------------------------------

def begin_request(request: Any) -> str:
    """Start observing an HTTP request: log keys and metric dimension; returns its request id."""
    ctx = getattr(request, "context", None) or {}
    query = getattr(request, "query_params", None) or {}
    request_id = ctx.get("requestId") or str(uuid.uuid4())
    endpoint = ctx.get("resourcePath") or "unknown"
    keys = _lambda_keys(getattr(request, "lambda_context", None), "http")
    metrics.clear_metrics()
    # per-thread keys: concurrent requests of one process (chalice local) each log their own request id
    logger.thread_safe_append_keys(request_id=request_id, path=endpoint, method=getattr(request, "method", None),
                                   obs_id=_short(query.get("obs_id")), cal_id=_short(query.get("cal_id")),
                                   **keys)
    metrics.add_dimension("endpoint", endpoint)
    if keys["cold_start"]:
        count("ColdStart")
    _http.started = time.perf_counter()
    return request_id


def request_id() -> str | None:
    """The id of the HTTP request this thread is answering (the one its log lines and 5xx bodies carry)."""
    return logger.thread_safe_get_current_keys().get("request_id")


def end_request(status: int) -> None:
    """Finish an HTTP request: one access log line, its counts and latency, flush, drop the keys."""
    started = getattr(_http, "started", None)
    _http.started = None
    ms = round((time.perf_counter() - (started or time.perf_counter())) * 1000, 1)
    try:
        count("Requests")
        if 400 <= status < 500:
            count("ClientErrors")
        elif status >= 500:
            count("ServerErrors")
        metrics.add_metric(name="Latency", unit="Milliseconds", value=ms)
        logger.info("request", extra={"status": status, "ms": ms})
    finally:
        flush()
        logger.thread_safe_remove_keys(_HTTP_KEYS)


# --- event functions (SQS, S3, schedule) ------------------------------------------------------------

def _function(context: Any, fallback: str) -> str:
    """The handler name: the Lambda name is <app>-<stage>-<handler>, and handlers use underscores."""
    name = getattr(context, "function_name", None) or ""
    return name.rsplit("-", 1)[-1] if name else fallback


def event_keys(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Log keys for an SQS, S3 or scheduled event, read with powertools' event data classes."""
    from aws_lambda_powertools.utilities.data_classes import EventBridgeEvent, S3Event, SQSEvent

    records = raw.get("Records") if isinstance(raw, Mapping) else None
    keys: dict[str, Any] = {}
    try:
        if records and records[0].get("eventSource") == "aws:sqs":
            sqs = SQSEvent(dict(raw))
            keys["message_ids"] = [r.message_id for r in sqs.records][:10]
            body = next(iter(sqs.records)).body
            doc = json.loads(body) if body else None
            if isinstance(doc, dict):
                keys.update(obs_id=_short(doc.get("obs_id")), cal_id=_short(doc.get("cal_id")))
        elif records and records[0].get("eventSource") == "aws:s3":
            first = next(iter(S3Event(dict(raw)).records))
            key = first.s3.get_object.key
            keys.update(bucket=first.s3.bucket.name, key=key)
            m = _FIT_KEY.match(key or "")
            if m:
                keys.update(cal_id=m.group("cal"), fitid=m.group("fit"))
        elif isinstance(raw, Mapping) and raw.get("detail-type"):
            keys["event_id"] = EventBridgeEvent(dict(raw)).get_id
    except Exception:  # noqa: BLE001 - log keys are best effort; the handler reports bad events
        pass
    return {k: v for k, v in keys.items() if v is not None}


def tracer() -> Any:
    """The powertools Tracer, started on first use (boto3 patched); None where tracing is off."""
    global _tracer
    if _tracer is None:
        from aws_lambda_powertools import Tracer

        if Tracer._is_tracer_disabled():  # outside Lambda, chalice local, POWERTOOLS_TRACE_DISABLED
            _tracer = False
        else:
            _tracer = Tracer(patch_modules=("botocore",))
    return _tracer or None


@contextmanager
def trace(name: str, **annotations: Any) -> Iterator[Any]:
    """A subsegment named ``name`` with annotations where a tracer runs; a no-op elsewhere."""
    t = _tracer or None
    if t is None:
        yield None
        return
    with t.provider.in_subsegment(name=name) as segment:
        for key, value in annotations.items():
            if value is not None and segment is not None:
                segment.put_annotation(key=key, value=value if isinstance(value, (int, float, bool)) else str(value))
        yield segment


def install(app: Any) -> None:
    """Wire the app: :func:`observe_event` around every event function, and Chalice's own log
    (e.g. "Caught exception for path ...", with the traceback of a 500) through the JSON logger,
    so it carries the request id the 500 answer quotes."""
    for event_type in ("sqs", "pure_lambda", "scheduled"):
        app.register_middleware(observe_event, event_type)
    app.log = logger


def observe_event(event: Any, get_response: Any) -> Any:
    """Chalice middleware for the event functions: log keys, tracing, Invocations/Errors, flush."""
    context = getattr(event, "context", None)
    raw = event.to_dict() if hasattr(event, "to_dict") else {}
    name = _function(context, type(event).__name__)
    keys = {"function": name, **_lambda_keys(context, "event"), **event_keys(raw)}
    metrics.clear_metrics()
    logger.append_keys(**keys)
    metrics.add_dimension("function", name)
    if keys["cold_start"]:
        count("ColdStart")
    tracer()
    try:
        with trace(f"## {name}", function=name, ColdStart=keys["cold_start"],
                   obs_id=keys.get("obs_id"), cal_id=keys.get("cal_id")):
            result = get_response(event)
        count("Invocations")
        return result
    except Exception:
        count("Invocations")
        count("Errors")
        logger.exception("handler failed")
        raise
    finally:
        flush()
        logger.remove_keys(_EVENT_KEYS)
