"""The admin routes: read the query, check who calls, change the steering (with its audit row), answer JSON."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chalice import Response

from chalicelib import params
from chalicelib.admin.auth import caller
from chalicelib.db import steering
from chalicelib.errors import BadRequest
from chalicelib.gpstime import datetime_to_gps, parse_iso
from chalicelib.web import json_response

Query = Mapping[str, str] | None
MAX_WHY = 1000


def _why(query: Query) -> str:
    why = params.text(query, "why", max_length=MAX_WHY)
    if not why:
        raise BadRequest("why is required: say why the change is made (it is kept in the audit trail)",
                         parameter="why")
    if any(ord(c) < 32 and c not in "\t\n" for c in why):  # PostgreSQL text holds no NUL; keep the trail printable
        raise BadRequest("why must not contain control characters", parameter="why")
    return why


def _fitid(query: Query) -> int:
    return params.integer(query, "fitid", required=True, minimum=0)  # type: ignore[return-value]


def _ids(query: Query, name: str, maximum: int) -> tuple[int, ...]:
    """A comma-separated list of non-negative integers (receivers, tile ids)."""
    raw = params.text(query, name, max_length=4000)
    if raw is None:
        return ()
    out = []
    for part in raw.split(","):
        out.append(params.integer({name: part}, name, required=True, minimum=0, maximum=maximum))
    return tuple(sorted(set(out)))


def _boundary(query: Query) -> int:
    """The epoch boundary: GPS seconds, or an ISO 8601 UTC time."""
    raw = params.text(query, "boundary", max_length=64)
    if raw is None:
        raise BadRequest("boundary is required (GPS seconds or ISO 8601 UTC)", parameter="boundary")
    if raw.strip().isascii() and raw.strip().isdigit():
        return params.integer(query, "boundary", minimum=0, maximum=10**11)  # type: ignore[return-value]
    try:
        return int(datetime_to_gps(parse_iso(raw)))
    except (ValueError, OverflowError) as exc:
        raise BadRequest(f"boundary must be GPS seconds or an ISO 8601 time, got {raw[:40]!r}",
                         parameter="boundary") from exc


def retire(query: Query, context: Mapping[str, Any] | None) -> Response:
    who = caller(context)
    return json_response(steering.retire(_fitid(query), _why(query), who))


def restore(query: Query, context: Mapping[str, Any] | None) -> Response:
    who = caller(context)
    return json_response(steering.restore(_fitid(query), _why(query), who))


def prefer(query: Query, context: Mapping[str, Any] | None) -> Response:
    who = caller(context)
    obsid = params.integer(query, "obsid", minimum=0)
    return json_response(steering.prefer(_fitid(query), _why(query), who, obsid))


def add_epoch(query: Query, context: Mapping[str, Any] | None) -> Response:
    who = caller(context)
    return json_response(steering.add_epoch(_boundary(query), _why(query), who,
                                            receivers=_ids(query, "receivers", 10_000),
                                            tiles=_ids(query, "tiles", 2**31 - 1)))


def list_epochs(query: Query, context: Mapping[str, Any] | None) -> Response:
    caller(context)
    return json_response({"epochs": steering.list_epochs(params.flag(query, "all", default=False))})


def end_epoch(epoch_id: str, query: Query, context: Mapping[str, Any] | None) -> Response:
    who = caller(context)
    eid = params.integer({"epoch_id": epoch_id}, "epoch_id", required=True, minimum=0, maximum=2**63 - 1)
    return json_response(steering.end_epoch(eid, _why(query), who))  # type: ignore[arg-type]


def audit(query: Query, context: Mapping[str, Any] | None) -> Response:
    caller(context)
    limit = params.integer(query, "limit", default=100, minimum=1, maximum=10_000)
    fitid = params.integer(query, "fitid", minimum=0)
    epoch_id = params.integer(query, "epoch_id", minimum=0)
    return json_response({"audit": steering.audit_trail(limit, fitid, epoch_id)})  # type: ignore[arg-type]
