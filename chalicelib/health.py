"""The health check: can we reach the database and both buckets (and the request queue)?

The dependencies are asked at once, each in its own thread, and the answer waits for them one
dependency budget at most (:mod:`chalicelib.deadline`; 10 s of the default 20 s deadline): one that
has not answered by then is reported as not ok, so a dependency that hangs costs its own budget,
not the sum of everyone's.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Any

from chalicelib import db, deadline, storage
from chalicelib.config import settings
from chalicelib.errors import ServiceError

WAIT_MARGIN_S = 1.0  # beyond the budget, so a probe failing at its own timeout (on a busy machine) says why


def _probe(fn: Callable[[], Any]) -> dict[str, Any]:
    start = time.perf_counter()
    try:
        fn()
        return {"ok": True, "ms": round((time.perf_counter() - start) * 1000, 1)}
    except ServiceError as exc:
        return {"ok": False, "error": exc.message}


def check() -> dict[str, Any]:
    """Probe every dependency concurrently; ``ok`` is true only when all answered within the budget."""
    cfg = settings()
    probes: dict[str, Callable[[], Any]] = {
        "database": lambda: db.query("SELECT 1 AS one"),
        "calibration_bucket": lambda: storage.head_bucket(cfg.cal_bucket),
        "products_bucket": lambda: storage.head_bucket(cfg.products_bucket),
    }
    if cfg.request_queue_url:
        probes["request_queue"] = lambda: storage.queue_reachable(cfg.request_queue_url)
    now = deadline.current()
    budget = deadline.dependency_budget_s(now.total_s if now else cfg.request_deadline_s)
    pool = ThreadPoolExecutor(max_workers=len(probes), thread_name_prefix="health")
    try:
        # each probe runs in a copy of this context: the request's deadline (and its clients) go with it
        futures = {name: pool.submit(contextvars.copy_context().run, _probe, fn) for name, fn in probes.items()}
        done, _ = wait(futures.values(), timeout=budget + WAIT_MARGIN_S)
    finally:
        pool.shutdown(wait=False)  # a probe still waiting ends at its own timeout; nobody waits for it
    checks = {name: f.result() if f in done else {"ok": False, "error": f"no answer within {budget:g} s"}
              for name, f in futures.items()}
    return {"ok": all(c["ok"] for c in checks.values()), "checks": checks}
