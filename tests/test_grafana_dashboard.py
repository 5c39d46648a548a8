"""grafana/dashboard.json: its variables and every panel's query work against the service."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from chalice.test import Client

from tests import test_grafana_data as gd

DASHBOARD = Path(__file__).resolve().parent.parent / "grafana" / "dashboard.json"
PLUGIN = "simpod-json-datasource"


@pytest.fixture(scope="module")
def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


@pytest.fixture
def data(clean_db) -> gd.Data:
    d = gd.build()
    gd.seed(d)
    return d


@pytest.fixture
def client(data):
    from app import app

    with Client(app) as c:
        yield c


def _variables(dashboard: dict) -> dict[str, dict]:
    return {v["name"]: v for v in dashboard["templating"]["list"]}


def test_dashboard_shape(dashboard):
    variables = _variables(dashboard)
    assert {"ds", "receiver", "source", "channel", "clip"} <= set(variables)
    assert variables["ds"]["type"] == "datasource" and variables["ds"]["query"] == PLUGIN
    for name in ("source", "channel"):
        assert variables[name]["includeAll"] and variables[name]["allValue"] == "ANY"
    assert not variables["receiver"]["includeAll"]
    styles = []
    for panel in dashboard["panels"]:
        assert panel["datasource"] == {"type": PLUGIN, "uid": "${ds}"}
        for t in panel["targets"]:
            assert t["datasource"]["type"] == PLUGIN and t["editorMode"] == "builder"
            if t["target"] == "$receiver":
                styles.append(t["payload"]["style"])
    assert sorted(styles) == sorted(["full", "Y-X", "recmean", "tilemean", "quality"])  # one panel per style
    assert any(t["target"] == "sources" for p in dashboard["panels"] for t in p["targets"])


def _interpolate(value, values: dict[str, str]):
    """What Grafana's template service does to a builder payload value (single-value variables)."""
    if isinstance(value, dict):
        return {k: _interpolate(v, values) for k, v in value.items()}
    return re.sub(r"\$(\w+)", lambda m: values[m.group(1)], value)


# What each receiver panel's style plots, per written row (metres, except quality).
STYLE_VALUES = {
    "full": lambda r: (r.x_delay_m, r.y_delay_m),
    "Y-X": lambda r: (r.y_delay_m - r.x_delay_m,),
    "tilemean": lambda r: ((r.x_delay_m + r.y_delay_m) / 2,),
    "quality": lambda r: (r.x_phase_fit_quality, r.y_phase_fit_quality),
}


def _expected_frames(data: gd.Data, payload: dict, rx: int) -> dict[str, list[tuple]]:
    """{frame name: rows} a receiver panel must show for its (interpolated) payload."""
    clip = None if payload["clip"] == "None" else float(payload["clip"])
    filters = {}
    if payload["source"] != "ANY":
        filters["sources"] = {payload["source"]}
    if payload["channel"] != "ANY":
        filters["channels"] = {int(payload["channel"])}
    style = payload["style"]
    if style == "recmean":
        return {f"rec{rx:02d} mean": gd.expected_recmean(data, rx, clip, **filters)}
    return gd.expected_tile_rows(data, rx, STYLE_VALUES[style], clip=None if style == "quality" else clip,
                                 **filters)


def _query(client, targets: list[dict]) -> list[dict]:
    r = client.http.post("/calib/grafana/query", body=json.dumps(gd.query_body(*targets)),
                         headers={"Content-Type": "application/json"})
    assert r.status_code == 200, r.body
    return json.loads(r.body)


def _clipped(rows: list[tuple], clip: float) -> list[tuple]:
    """Rows with the values beyond the clip removed (a row with none left goes)."""
    out = [(t, *[v if v is None or abs(v) <= clip else None for v in vs]) for t, *vs in rows]
    return [r for r in out if any(v is not None for v in r[1:])]


def test_variable_queries_and_panels_answer(client, data, dashboard):
    rng = {"from": gd.iso(gd.RANGE_FROM), "to": gd.iso(gd.RANGE_TO), "raw": {"from": "now-30d", "to": "now"}}
    variables = _variables(dashboard)
    first = {}
    for name in ("receiver", "source", "channel"):
        q = variables[name]["query"]
        body = {"payload": {"target": q["query"]} if q["format"] == "string" else json.loads(q["query"]),
                "range": rng}
        r = client.http.post("/calib/grafana/variable", body=json.dumps(body),
                             headers={"Content-Type": "application/json"})
        assert r.status_code == 200, r.body
        options = json.loads(r.body)
        assert options, name
        first[name] = options[0]["__value"]
    beyond = {"0.5": 0, "2": 0}  # values the clip dropped, per clip
    within = {"0.5": 0, "2": 0}
    for choice in ({"receiver": first["receiver"], "source": "ANY", "channel": "ANY", "clip": "None"},
                   {"receiver": first["receiver"], "source": first["source"], "channel": "ANY", "clip": "0.5"},
                   {"receiver": first["receiver"], "source": "ANY", "channel": first["channel"], "clip": "2"},
                   {"receiver": first["receiver"], "source": "ANY", "channel": "ANY", "clip": "2"}):
        for panel in dashboard["panels"]:
            targets = [{**t, "target": _interpolate(t["target"], choice), "payload": _interpolate(t["payload"], choice)}
                       for t in panel["targets"]]
            frames = _query(client, targets)
            assert frames, panel["title"]
            target = targets[0]
            if target["target"] == "sources":
                continue
            # the frames hold exactly the written values that the panel's filters and clip keep
            style = target["payload"]["style"]
            expected = _expected_frames(data, target["payload"], int(target["target"][3:]))
            got = {f["schema"]["name"]: gd.rows(f) for f in frames}
            assert set(got) <= set(expected) and {n for n, v in expected.items() if v} <= set(got)
            for name, frame_rows in got.items():
                gd.approx_rows(frame_rows, expected[name])
            if choice["clip"] == "None" or style in ("quality", "recmean"):
                continue
            # against the same panel unclipped: values beyond the clip dropped, those within kept
            clip = float(choice["clip"])
            unclipped = {f["schema"]["name"]: gd.rows(f) for f in _query(client, [
                {**target, "payload": {**target["payload"], "clip": "None"}}])}
            for name, frame_rows in unclipped.items():
                assert got.get(name, []) == _clipped(frame_rows, clip), (panel["title"], name)
                values = [abs(v) for _, *vs in frame_rows for v in vs if v is not None]
                beyond[choice["clip"]] += sum(v > clip for v in values)
                within[choice["clip"]] += sum(v <= clip for v in values)
    assert all(beyond.values()) and all(within.values()), (beyond, within)  # both cases were exercised


def test_clip_variable_offers_exactly_the_service_clip_options(client, dashboard):
    clip = _variables(dashboard)["clip"]
    offered = clip["query"].split(",")
    assert [o["value"] for o in clip["options"]] == [o["text"] for o in clip["options"]] == offered
    assert [o["value"] for o in clip["options"] if o["selected"]] == [clip["current"]["value"]] == ["None"]
    r = client.http.post("/calib/grafana/metrics", body="{}", headers={"Content-Type": "application/json"})
    receiver = json.loads(r.body)[0]["value"]
    r = client.http.post("/calib/grafana/metric-payload-options",
                         body=json.dumps({"metric": receiver, "name": "clip", "payload": {}}),
                         headers={"Content-Type": "application/json"})
    assert r.status_code == 200
    assert offered == [o["value"] for o in json.loads(r.body)]  # the query builder's list, in its order
    panel = next(p for p in dashboard["panels"] if any(t["target"] == "$receiver" for t in p["targets"]))
    for value in offered:  # and each one draws the panel
        choice = {"receiver": receiver, "source": "ANY", "channel": "ANY", "clip": value}
        targets = [{**t, "target": _interpolate(t["target"], choice), "payload": _interpolate(t["payload"], choice)}
                   for t in panel["targets"]]
        r = client.http.post("/calib/grafana/query", body=json.dumps(gd.query_body(*targets)),
                             headers={"Content-Type": "application/json"})
        assert r.status_code == 200 and json.loads(r.body), value
