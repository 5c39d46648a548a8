"""The time range and point budget of a Grafana request: epoch ms in, GPS obsid bounds out (leap-aware)."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from chalicelib import gpstime
from chalicelib.errors import BadRequest
from chalicelib.grafana.body import kind_of



@dataclass(frozen=True)
class TimeRange:
    """A time range in Unix epoch milliseconds, both ends included."""

    from_ms: int
    to_ms: int

    @property
    def obsid_low(self) -> int:
        """The first obsid (GPS s) whose start time is in the range."""
        return gpstime.first_gps_from_ms(self.from_ms)

    @property
    def obsid_high(self) -> int:
        """The last obsid (GPS s) whose start time is in the range."""
        return gpstime.last_gps_until_ms(self.to_ms)


def obsid_ms(obsid: int) -> int:
    """An observation's start time as Unix epoch milliseconds (GPS -> UTC with the leap seconds)."""
    return gpstime.gps_to_unix_ms(obsid)


MAX_ABS_MS = 10**14  # about year 5100: anything beyond is not a time Grafana sends


def _instant(value: Any, where: str) -> int:
    """An ISO 8601 time (as Grafana sends ``range.from``) or epoch milliseconds, as epoch ms."""
    ms = _epoch_ms(value, where)
    if abs(ms) > MAX_ABS_MS:
        raise BadRequest(f"{where} is out of range", parameter=where)
    return ms


def _epoch_ms(value: Any, where: str) -> int:
    if isinstance(value, bool) or value is None:
        raise BadRequest(f"{where} must be an ISO 8601 time, got {json.dumps(value)}", parameter=where)
    if isinstance(value, (int, float)):
        if not math.isfinite(value):
            raise BadRequest(f"{where} must be a finite time", parameter=where)
        return int(value)
    if not isinstance(value, str):
        raise BadRequest(f"{where} must be an ISO 8601 time, got {kind_of(value)}", parameter=where)
    text = value.strip()
    if re.fullmatch(r"\d{10,16}", text):
        return int(text)
    try:
        when = gpstime.parse_iso(text)
    except ValueError:
        raise BadRequest(f"{where} must be an ISO 8601 time such as 2024-05-01T00:00:00.000Z, "
                         f"got {text[:40]!r}", parameter=where) from None
    return round(when.timestamp() * 1000)


def time_range(data: Mapping[str, Any], *, required: bool) -> TimeRange | None:
    """The body's ``range`` (or ``timeRange``, as Grafana names it for ad hoc tag values)."""
    raw = data.get("range")
    if raw is None:
        raw = data.get("timeRange")
    if raw is None:
        if required:
            raise BadRequest("range is required: {\"from\": ISO time, \"to\": ISO time}", parameter="range")
        return None
    if not isinstance(raw, Mapping):
        raise BadRequest(f"range must be an object with from and to, got {kind_of(raw)}", parameter="range")
    start = _instant(raw.get("from"), "range.from")
    end = _instant(raw.get("to"), "range.to")
    if start > end:
        raise BadRequest("range.from is after range.to", parameter="range")
    return TimeRange(start, end)


def max_data_points(data: Mapping[str, Any]) -> int | None:
    """``maxDataPoints``: the most points one series may have (None: no limit)."""
    raw = data.get("maxDataPoints")
    if raw is None or raw == "":
        return None
    try:
        if isinstance(raw, bool):
            raise ValueError
        value = float(raw)
        if not math.isfinite(value) or value != int(value):
            raise ValueError
        value = int(value)
    except (TypeError, ValueError, OverflowError):
        raise BadRequest(f"maxDataPoints must be a whole number, got {json.dumps(raw)[:40]}",
                         parameter="maxDataPoints") from None
    if value < 1:
        raise BadRequest(f"maxDataPoints must be at least 1, got {value}", parameter="maxDataPoints")
    return value
