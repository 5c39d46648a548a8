"""The JSON body of a Grafana datasource request, and how a refused value is described to Grafana."""

from __future__ import annotations

import json
from typing import Any

from chalicelib.errors import BadRequest

MAX_BODY_CHARS = 1_000_000
MAX_TEXT = 200


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def strict_json(text: str) -> Any:
    """``json.loads`` that refuses NaN and Infinity (not JSON, though Python's parser takes them)."""
    return json.loads(text, parse_constant=_reject_constant)


def body(raw: bytes | str | None) -> dict[str, Any]:
    """The request body as a JSON object; an empty body is ``{}``."""
    if raw is None:
        return {}
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise BadRequest("the request body is not UTF-8 text") from None
    if len(raw) > MAX_BODY_CHARS:
        raise BadRequest(f"the request body is larger than {MAX_BODY_CHARS} characters")
    if not raw.strip():
        return {}
    try:
        value = strict_json(raw)
    except (ValueError, RecursionError) as exc:
        raise BadRequest(f"the request body is not valid JSON: {str(exc)[:80]}") from None
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadRequest(f"the request body must be a JSON object, got {kind_of(value)}")
    return value


def kind_of(value: Any) -> str:
    """How a JSON value is named in an error message ('an object', 'a list', ...)."""
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}.get(type(value), "a number")
