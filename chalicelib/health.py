"""The health check: can we reach the database and both buckets (and the request queue)?"""

from __future__ import annotations

import time
from typing import Any

from chalicelib import db, storage
from chalicelib.config import settings
from chalicelib.errors import ServiceError


def _probe(fn) -> dict[str, Any]:
    start = time.perf_counter()
    try:
        fn()
        return {"ok": True, "ms": round((time.perf_counter() - start) * 1000, 1)}
    except ServiceError as exc:
        return {"ok": False, "error": exc.message}


def check() -> dict[str, Any]:
    """Probe every dependency; ``ok`` is true only when all answered."""
    cfg = settings()
    checks = {
        "database": _probe(lambda: db.query("SELECT 1 AS one")),
        "calibration_bucket": _probe(lambda: storage.head_bucket(cfg.cal_bucket)),
        "products_bucket": _probe(lambda: storage.head_bucket(cfg.products_bucket)),
    }
    if cfg.request_queue_url:
        checks["request_queue"] = _probe(lambda: storage.queue_reachable(cfg.request_queue_url))
    return {"ok": all(c["ok"] for c in checks.values()), "checks": checks}
