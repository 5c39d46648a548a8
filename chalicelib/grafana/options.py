"""What the query builder offers: metrics, their payloads and options; variables and ad hoc tags.

Channel and source options come from the fitted observations (all of them, or those in the
dashboard's time range when the request carries one), each narrowed by the other payload when that
one is already chosen. Receivers are every receiver in observation_tile (the hardware list).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chalicelib.db import grafana as sql
from chalicelib.errors import BadRequest
from chalicelib.grafana import timerange as tr
from chalicelib.grafana import request as rq

ANY = {"label": "ANY", "value": "ANY"}
CLIP_LIMITS_M = ("0.05", "0.1", "0.2", "0.5", "1", "2", "5", "10")
COARSE_MHZ = 1.28

PAYLOAD_LABELS = {"channel": "Channel", "source": "Source", "style": "Style", "clip": "Clip (m)"}
RECEIVER_PAYLOADS = ("channel", "source", "style", "clip")
SOURCES_PAYLOADS = ("channel", "source")


def style_options() -> list[dict[str, str]]:
    return [{"label": label, "value": value} for label, value in rq.STYLES]


def clip_options() -> list[dict[str, str]]:
    return [{"label": "None", "value": "None"}] + [{"label": f"{v} m", "value": v} for v in CLIP_LIMITS_M]


def channel_label(channel: int) -> str:
    return f"{channel} ({channel * COARSE_MHZ:.2f} MHz)"


class Facets:
    """Sources and centre channels of fitted observations (in a range), queried once."""

    def __init__(self, rng: tr.TimeRange | None = None) -> None:
        self._pairs = sql.facets(rng.obsid_low, rng.obsid_high) if rng else sql.facets()

    def channels(self, sources: frozenset[str] | None = None) -> list[int]:
        return sorted({c for s, c in self._pairs if c is not None and (sources is None or s in sources)})

    def sources(self, channels: frozenset[int] | None = None) -> list[str]:
        return sorted({s for s, c in self._pairs if s is not None and (channels is None or c in channels)})


def channel_options(facets: Facets, sources: frozenset[str] | None = None) -> list[dict[str, str]]:
    return [ANY] + [{"label": channel_label(c), "value": str(c)} for c in facets.channels(sources)]


def source_options(facets: Facets, channels: frozenset[int] | None = None) -> list[dict[str, str]]:
    return [ANY] + [{"label": s, "value": s} for s in facets.sources(channels)]


def _payload_config(name: str, options: list[dict[str, str]]) -> dict[str, Any]:
    return {"name": name, "label": PAYLOAD_LABELS[name], "type": "select", "placeholder": options[0]["label"],
            "width": 24 if name == "source" else 16, "options": options}


def metrics() -> list[dict[str, Any]]:
    """POST /metrics: recNN per receiver present, then ``sources``; every payload with its options."""
    facets = Facets()
    shared = {
        "channel": _payload_config("channel", channel_options(facets)),
        "source": _payload_config("source", source_options(facets)),
        "style": _payload_config("style", style_options()),
        "clip": _payload_config("clip", clip_options()),
    }
    out = [{"label": rq.receiver_name(rx), "value": rq.receiver_name(rx),
            "payloads": [shared[p] for p in RECEIVER_PAYLOADS]} for rx in sql.receivers()]
    out.append({"label": "Calibrator sources", "value": rq.SOURCES_METRIC,
                "payloads": [shared[p] for p in SOURCES_PAYLOADS]})
    return out


def known_metric(metric: str, where: str = "metric") -> tuple[str, tuple[str, ...]]:
    """(canonical metric name, its payload names); 400 for a metric not in the data."""
    if metric.lower() == rq.SOURCES_METRIC:
        return rq.SOURCES_METRIC, SOURCES_PAYLOADS
    rx = rq.receiver_number(metric)
    if rx is None or not sql.receiver_exists(rx):
        raise BadRequest(f"unknown metric {metric[:40]!r}: POST /metrics lists the receivers and sources",
                         parameter=where)
    return rq.receiver_name(rx), RECEIVER_PAYLOADS


def payload_options(data: Mapping[str, Any]) -> list[dict[str, str]]:
    """POST /metric-payload-options: the options of payload ``name`` given the payload so far."""
    _, names = known_metric(rq.metric_name(data.get("metric"), "metric"))
    name = data.get("name")
    if name not in names:
        raise BadRequest(f"name must be one of {', '.join(names)}, got {str(name)[:40]!r}", parameter="name")
    if name == "style":
        return style_options()
    if name == "clip":
        return clip_options()
    chosen = rq.payload_object(data.get("payload"))
    facets = Facets(tr.time_range(data, required=False))
    if name == "channel":
        return channel_options(facets, rq.sources(chosen.get("source")))
    return source_options(facets, rq.channels(chosen.get("channel")))


# ---- variables and ad hoc filters ------------------------------------------------------------

VARIABLE_TARGETS = {"receivers": "receiver", "receiver": "receiver", "sources": "source", "source": "source",
                    "channels": "channel", "channel": "channel"}


def values_of(key: str, rng: tr.TimeRange | None) -> list[tuple[str, str]]:
    """(text, value) pairs for a variable or tag key: receivers, sources or centre channels."""
    if key == "receiver":
        return [(rq.receiver_name(rx), rq.receiver_name(rx)) for rx in sql.receivers()]
    facets = Facets(rng)
    if key == "source":
        return [(s, s) for s in facets.sources()]
    return [(str(c), str(c)) for c in facets.channels()]


def variable(data: Mapping[str, Any]) -> list[dict[str, str]]:
    """POST /variable: ``payload.target`` names the list (receivers, sources or channels)."""
    raw = data.get("payload")
    if isinstance(raw, str) and raw.strip() and not raw.strip().startswith("{"):
        target = raw  # a bare query string
    else:
        target = rq.payload_object(raw).get("target", data.get("target"))
    if not isinstance(target, str) or target.strip().lower() not in VARIABLE_TARGETS:
        raise BadRequest("payload.target must be one of receivers, sources, channels, got "
                         f"{str(target)[:40]!r}", parameter="payload.target")
    key = VARIABLE_TARGETS[target.strip().lower()]
    return [{"__text": t, "__value": v} for t, v in values_of(key, tr.time_range(data, required=False))]


def tag_keys() -> list[dict[str, str]]:
    """POST /tag-keys: the ad hoc filter keys /query understands."""
    return [{"type": "string", "text": k, "key": k} for k in rq.ADHOC_KEYS]


def tag_values(data: Mapping[str, Any]) -> list[dict[str, str]]:
    """POST /tag-values: the values of one key (in the time range when one is sent)."""
    key = data.get("key")
    if key not in rq.ADHOC_KEYS:
        raise BadRequest(f"key must be one of {', '.join(rq.ADHOC_KEYS)}, got {str(key)[:40]!r}", parameter="key")
    return [{"text": t} for t, _ in values_of(key, tr.time_range(data, required=False))]
