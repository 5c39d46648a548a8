"""Reading query parameters: each problem is a BadRequest naming the parameter.

One rule for empty values (``name=``): an integer, 0/1 or enumerated parameter given without a
value is a 400 (it is not taken as the default); a free-text parameter given empty is as if absent
(the OpenAPI document declares ``allowEmptyValue`` on exactly those).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from chalicelib.errors import BadRequest

_INTEGER = re.compile(r"[+-]?([0-9]+)")  # ASCII digits only: int() would also take "1_000" and "١٢٣"
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1  # what a PostgreSQL bigint holds
DEFAULT_MAX_TIME_SEPARATION = 86400  # seconds: the spec's default window around the target
MAX_TIME_SEPARATION = 10 * 365 * 86400  # anything wider is a typo, and would scan the whole schedule


def _raw(query: Mapping[str, str] | None, name: str) -> str | None:
    if not query or name not in query:
        return None
    value = query[name]
    return value.strip() if isinstance(value, str) else value


def integer(query: Mapping[str, str] | None, name: str, *, default: int | None = None, required: bool = False,
            minimum: int | None = None, maximum: int | None = None) -> int | None:
    """An integer parameter; 400 when it is missing (if required), not an integer, or out of range."""
    raw = _raw(query, name)
    if raw is None:
        if required:
            raise BadRequest(f"{name} is required", parameter=name)
        return default
    if raw == "":
        raise BadRequest(f"{name} needs a value (an integer); leave it out for the default", parameter=name)
    match = _INTEGER.fullmatch(raw)
    if not match:
        raise BadRequest(f"{name} must be an integer, got {raw[:40]!r}", parameter=name)
    value = int(raw) if len(match[1]) <= 19 else None  # more digits are past any bigint (and int()'s limit)
    if value is None or not INT64_MIN <= value <= INT64_MAX:
        raise BadRequest(f"{name} is out of range: {raw[:40]}", parameter=name)
    if minimum is not None and value < minimum:
        raise BadRequest(f"{name} must be at least {minimum}, got {value}", parameter=name)
    if maximum is not None and value > maximum:
        raise BadRequest(f"{name} must be at most {maximum}, got {value}", parameter=name)
    return value


_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]{1,3})?")  # ASCII only; no nan/inf


def fraction(query: Mapping[str, str] | None, name: str, *, default: float = 0.0) -> float:
    """A number in [0, 1] (e.g. ``0.8``, ``1e-1``); 400 when it is not a plain decimal, NaN, infinite or outside."""
    raw = _raw(query, name)
    if raw is None or raw == "":
        return default
    if not _DECIMAL.fullmatch(raw):
        raise BadRequest(f"{name} must be a number from 0 to 1, got {raw[:40]!r}", parameter=name)
    value = float(raw)
    if not 0.0 <= value <= 1.0:
        raise BadRequest(f"{name} must be from 0 to 1, got {raw[:40]}", parameter=name)
    return value


def flag(query: Mapping[str, str] | None, name: str, *, default: bool) -> bool:
    """A 0/1 parameter."""
    value = integer(query, name, default=int(default))
    if value not in (0, 1):
        raise BadRequest(f"{name} must be 0 or 1, got {value}", parameter=name)
    return bool(value)


def present(query: Mapping[str, str] | None, name: str) -> bool:
    """Whether a parameter is present at all, with or without a value (e.g. ``&any_gain``)."""
    return bool(query) and name in query


def choice(query: Mapping[str, str] | None, name: str, options: Sequence[str], *, default: str) -> str:
    """One of a fixed set of strings."""
    raw = _raw(query, name)
    if raw is None:
        return default
    if raw == "":
        raise BadRequest(f"{name} needs a value, one of {', '.join(options)}; leave it out for the default",
                         parameter=name)
    if raw not in options:
        raise BadRequest(f"{name} must be one of {', '.join(options)}, got {raw[:40]!r}", parameter=name)
    return raw


def text(query: Mapping[str, str] | None, name: str, *, max_length: int = 2048) -> str | None:
    """A free-text parameter, length-limited."""
    raw = _raw(query, name)
    if raw is None or raw == "":
        return None
    if len(raw) > max_length:
        raise BadRequest(f"{name} must be at most {max_length} characters", parameter=name)
    return raw


def observation_id(query: Mapping[str, str] | None, name: str = "obs_id") -> int:
    """A required observation id (GPS seconds), as every endpoint takes it."""
    return integer(query, name, required=True, minimum=0)  # type: ignore[return-value]


def max_time_separation(query: Mapping[str, str] | None) -> int:
    """``max_time_separation`` (seconds) as every endpoint that searches for a calibrator takes it."""
    return integer(query, "max_time_separation", default=DEFAULT_MAX_TIME_SEPARATION, minimum=0,
                   maximum=MAX_TIME_SEPARATION)  # type: ignore[return-value]
