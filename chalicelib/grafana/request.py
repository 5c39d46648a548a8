"""Reading the request bodies the Grafana JSON datasource plugin (simpod-json-datasource 0.6.x) sends.

Grafana is lenient about what it sends, so this is too: a payload may be an object, ``{}``, a JSON
string, or missing; in builder mode every payload value arrives as a string (``"0.5"``, ``"121"``,
template variables already replaced, regex-escaped). Anything that cannot be understood is a
``BadRequest`` whose message Grafana shows in the panel; nothing here raises anything else.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from chalicelib.errors import BadRequest
from chalicelib.grafana.body import MAX_TEXT, kind_of, strict_json
from chalicelib.grafana.timerange import TimeRange, max_data_points, time_range


# Payload values that mean "no filter": what the builder shows, what Grafana's "All" becomes, empty.
ANY_WORDS = frozenset({"", "any", "all", "$__all", "*", "none", "null"})

STYLES: tuple[tuple[str, str], ...] = (
    ("Full", "full"),
    ("Y-X", "Y-X"),
    ("Receiver Mean", "recmean"),
    ("Tile Mean", "tilemean"),
    ("Phase Fit Quality", "quality"),
)
STYLE_VALUES = tuple(v for _, v in STYLES)
DEFAULT_STYLE = "full"

ADHOC_KEYS = ("receiver", "source", "channel")
ADHOC_OPERATORS = ("=", "!=", "=~", "!~")

_RECEIVER = re.compile(r"^rec(\d{1,3})$", re.IGNORECASE)
_REGEX_ESCAPE = re.compile(r"\\(.)")


# ---- metrics ----------------------------------------------------------------------------------


def receiver_name(rx: int) -> str:
    """The metric name of a receiver: rec01 ... rec32 (zero-padded to two digits)."""
    return f"rec{rx:02d}"


def receiver_number(metric: str) -> int | None:
    """The receiver number of a ``recNN`` metric, or None when it is not one."""
    m = _RECEIVER.match(metric.strip())
    return int(m.group(1)) if m else None


def metric_name(value: Any, where: str = "target") -> str:
    if not isinstance(value, str):
        raise BadRequest(f"{where} must be a metric name (a string), got {kind_of(value)}", parameter=where)
    if len(value) > MAX_TEXT:
        raise BadRequest(f"{where} is longer than {MAX_TEXT} characters", parameter=where)
    return value.strip()


# ---- payloads ---------------------------------------------------------------------------------


def payload_object(raw: Any, where: str = "payload") -> dict[str, Any]:
    """A target's payload: an object, a JSON string of one (code mode), or nothing (``{}``)."""
    if raw is None:
        return {}
    if isinstance(raw, str):
        if not raw.strip():
            return {}
        try:
            raw = strict_json(raw)
        except ValueError:
            raise BadRequest(f"{where} is not a JSON object", parameter=where) from None
    if not isinstance(raw, dict):
        raise BadRequest(f"{where} must be an object, got {kind_of(raw)}", parameter=where)
    return raw


def _texts(raw: Any, where: str) -> list[str] | None:
    """A payload value as a list of strings, or None for ANY. Lists come from multi-value inputs."""
    items = raw if isinstance(raw, list) else [raw]
    out: list[str] = []
    for item in items:
        if item is None:
            continue
        if isinstance(item, bool) or isinstance(item, (dict, list)):
            raise BadRequest(f"{where} must be a string or a number, got {kind_of(item)}", parameter=where)
        if isinstance(item, float) and not math.isfinite(item):
            raise BadRequest(f"{where} must be finite", parameter=where)
        text = str(int(item)) if isinstance(item, float) and item == int(item) else str(item)
        # Grafana's "regex" interpolation escapes special characters in variable values.
        text = _REGEX_ESCAPE.sub(r"\1", text).strip()
        if len(text) > MAX_TEXT:
            raise BadRequest(f"{where} is longer than {MAX_TEXT} characters", parameter=where)
        if text.lower() in ANY_WORDS:
            return None
        out.append(text)
    return out or None


def channels(raw: Any, where: str = "payload.channel") -> frozenset[int] | None:
    """``channel``: ANY (None) or receiver channel numbers (0..255)."""
    texts = _texts(raw, where)
    if texts is None:
        return None
    out = set()
    for t in texts:
        if not re.fullmatch(r"\d{1,3}", t) or int(t) > 255:
            raise BadRequest(f"{where} must be ANY or a coarse channel number 0..255, got {t[:40]!r}",
                             parameter=where)
        out.add(int(t))
    return frozenset(out)


def sources(raw: Any, where: str = "payload.source") -> frozenset[str] | None:
    """``source``: ANY (None) or calibrator source names."""
    texts = _texts(raw, where)
    return None if texts is None else frozenset(texts)


def style(raw: Any, where: str = "payload.style") -> str:
    """``style``: one of the style values (labels and any letter case accepted); default full."""
    if raw is None or (isinstance(raw, str) and raw.strip() == ""):
        return DEFAULT_STYLE
    if isinstance(raw, str):
        text = _REGEX_ESCAPE.sub(r"\1", raw).strip().lower()
        for label, value in STYLES:
            if text in (value.lower(), label.lower()):
                return value
    raise BadRequest(f"{where} must be one of {', '.join(STYLE_VALUES)}, got {json.dumps(raw)[:40]}",
                     parameter=where)


def clip(raw: Any, where: str = "payload.clip") -> float | None:
    """``clip``: None, or a limit in metres (> 0); numbers may arrive as strings."""
    if raw is None:
        return None
    if isinstance(raw, str):
        text = _REGEX_ESCAPE.sub(r"\1", raw).strip()
        if text.lower() in ANY_WORDS:
            return None
        text = re.sub(r"\s*m$", "", text)
    elif isinstance(raw, (int, float)) and not isinstance(raw, bool):
        text = str(raw)
    else:
        text = None
    try:
        value = float(text) if text is not None else math.nan
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise BadRequest(f"{where} must be None or a positive limit in metres, got {json.dumps(raw)[:40]}",
                         parameter=where)
    return value


@dataclass(frozen=True)
class Payload:
    """A receiver target's payload, validated."""

    channels: frozenset[int] | None = None
    sources: frozenset[str] | None = None
    style: str = DEFAULT_STYLE
    clip: float | None = None


def payload(raw: Any, where: str = "payload") -> Payload:
    data = payload_object(raw, where)
    return Payload(
        channels=channels(data.get("channel"), f"{where}.channel"),
        sources=sources(data.get("source"), f"{where}.source"),
        style=style(data.get("style"), f"{where}.style"),
        clip=clip(data.get("clip"), f"{where}.clip"),
    )


# ---- ad hoc filters ---------------------------------------------------------------------------


@dataclass(frozen=True)
class AdhocFilter:
    """One ad hoc filter: ``key operator value`` (regex operators match the whole value)."""

    key: str
    operator: str
    value: str
    pattern: re.Pattern[str] | None = field(default=None, compare=False)

    def matches(self, candidate: str) -> bool:
        if self.operator == "=":
            return candidate == self.value
        if self.operator == "!=":
            return candidate != self.value
        hit = self.pattern.fullmatch(candidate) is not None  # type: ignore[union-attr]
        return hit if self.operator == "=~" else not hit


def adhoc_filters(data: Mapping[str, Any]) -> list[AdhocFilter]:
    """``adhocFilters`` (what plugin 0.6.x sends) and ``filters`` (newer Grafana), merged."""
    out: list[AdhocFilter] = []
    for name in ("adhocFilters", "filters"):
        raw = data.get(name)
        if raw is None:
            continue
        if not isinstance(raw, list):
            raise BadRequest(f"{name} must be a list, got {kind_of(raw)}", parameter=name)
        for i, item in enumerate(raw):
            where = f"{name}[{i}]"
            if not isinstance(item, Mapping):
                raise BadRequest(f"{where} must be an object", parameter=where)
            key, op, value = item.get("key"), item.get("operator", "="), item.get("value")
            if key not in ADHOC_KEYS:
                raise BadRequest(f"{where}.key must be one of {', '.join(ADHOC_KEYS)}, got {json.dumps(key)[:40]}",
                                 parameter=where)
            if op not in ADHOC_OPERATORS:
                raise BadRequest(f"{where}.operator must be one of {', '.join(ADHOC_OPERATORS)}, "
                                 f"got {json.dumps(op)[:20]}", parameter=where)
            if isinstance(value, bool) or not isinstance(value, (str, int, float)):
                raise BadRequest(f"{where}.value must be a string", parameter=where)
            value = str(value)
            if len(value) > MAX_TEXT:
                raise BadRequest(f"{where}.value is longer than {MAX_TEXT} characters", parameter=where)
            pattern = None
            if op in ("=~", "!~"):
                try:
                    pattern = re.compile(value)
                except re.error as exc:
                    raise BadRequest(f"{where}.value is not a valid regular expression: {exc}",
                                     parameter=where) from None
            f = AdhocFilter(key, op, value, pattern)
            if f not in out:
                out.append(f)
    return out


# ---- /query -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """One visible target of a /query request."""

    ref_id: str
    metric: str
    payload: Payload
    receiver: int | None  # None for the "sources" target


@dataclass(frozen=True)
class QueryRequest:
    range: TimeRange
    max_points: int | None
    targets: list[Target]
    filters: list[AdhocFilter]


SOURCES_METRIC = "sources"


def query_request(data: Mapping[str, Any]) -> QueryRequest:
    """A /query body: Grafana's whole request object; hidden and empty targets are dropped."""
    rng = time_range(data, required=True)
    points = max_data_points(data)
    raw_targets = data.get("targets")
    if raw_targets is None:
        raw_targets = []
    if not isinstance(raw_targets, list):
        raise BadRequest(f"targets must be a list, got {kind_of(raw_targets)}", parameter="targets")
    targets = []
    for i, t in enumerate(raw_targets):
        where = f"targets[{i}]"
        if not isinstance(t, Mapping):
            raise BadRequest(f"{where} must be an object, got {kind_of(t)}", parameter=where)
        if t.get("hide") is True or t.get("target") is None:
            continue  # Grafana's hidden queries, and the plugin's empty placeholder
        metric = metric_name(t.get("target"), f"{where}.target")
        if not metric:
            continue
        ref_id = t.get("refId")
        ref_id = str(ref_id)[:MAX_TEXT] if isinstance(ref_id, (str, int)) and not isinstance(ref_id, bool) else ""
        if metric.lower() == SOURCES_METRIC:
            data_payload = payload_object(t.get("payload"), f"{where}.payload")
            p = Payload(channels=channels(data_payload.get("channel"), f"{where}.payload.channel"),
                        sources=sources(data_payload.get("source"), f"{where}.payload.source"))
            targets.append(Target(ref_id, SOURCES_METRIC, p, None))
            continue
        rx = receiver_number(metric)
        if rx is None:
            raise BadRequest(f"unknown metric {metric[:40]!r}: use recNN (e.g. rec01) or sources",
                             parameter=f"{where}.target")
        targets.append(Target(ref_id, receiver_name(rx), payload(t.get("payload"), f"{where}.payload"), rx))
    return QueryRequest(rng, points, targets, adhoc_filters(data))
