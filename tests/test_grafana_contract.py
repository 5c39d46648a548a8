"""The Grafana JSON datasource end to end: request bodies shaped as simpod-json-datasource 0.6.x sends
them, through the Chalice test client, against a real PostgreSQL holding hand-built fits.

Every style's numbers are checked against the rows written (tests/test_grafana_data.py computes the
expectation from the Python objects, not from the service's SQL).
"""

from __future__ import annotations

import json

import pytest
from chalice.test import Client

from tests import test_grafana_data as gd

BASE = "/calib/grafana"


@pytest.fixture
def client(clean_db):
    from app import app

    with Client(app) as c:
        yield c


@pytest.fixture
def data(clean_db):
    d = gd.build()
    gd.seed(d)
    return d


def _strict(text: str):
    def no_constant(name):
        raise AssertionError(f"{name} in JSON: Grafana cannot read it")

    return json.loads(text, parse_constant=no_constant)


def post(client, action: str, body, *, raw: bool = False, headers: dict | None = None):
    payload = body if raw else json.dumps(body)
    r = client.http.post(f"{BASE}/{action}", body=payload,
                         headers={"Content-Type": "application/json", "Origin": "http://grafana:3000",
                                  **(headers or {})})
    return r, _strict(r.body.decode()) if r.body else None


def assert_data_frame(frame: dict) -> None:
    """What @grafana/data's toDataFrame needs to take the DataFrameJSON path (dataFrameFromJSON)."""
    assert set(frame) == {"schema", "data"}, "no top-level fields/target/datapoints/columns keys"
    fields = frame["schema"]["fields"]
    values = frame["data"]["values"]
    assert isinstance(fields, list) and fields and isinstance(values, list)
    assert len(values) == len(fields)
    assert len({len(v) for v in values}) == 1, "every field has one value per row"
    for f, col in zip(fields, values):
        assert f["type"] in ("time", "number", "string")
        if f["type"] == "time":
            assert all(isinstance(t, int) and 1e12 < t < 1e13 for t in col), "epoch milliseconds"
        if f["type"] == "number":
            assert all(v is None or isinstance(v, (int, float)) for v in col)
        for k, v in (f.get("labels") or {}).items():
            assert isinstance(k, str) and isinstance(v, str)


def frames_of(client, *targets, **kw):
    r, body = post(client, "query", gd.query_body(*targets, **kw))
    assert r.status_code == 200, body
    for f in body:
        assert_data_frame(f)
    return body


def by_name(frames: list[dict]) -> dict[str, dict]:
    return {f["schema"]["name"]: f for f in frames}


# ---- health, CORS ------------------------------------------------------------------------------


def test_health_is_200_for_save_and_test(client):
    r = client.http.get(BASE, headers={"Origin": "http://grafana:3000"})
    assert r.status_code == 200
    assert r.headers["Access-Control-Allow-Origin"] == "*"


def test_cors_preflight_allows_post_with_json(client):
    # The test client cannot read the body-less preflight answer; its gateway can.
    gateway = client.http._local_gateway
    for path in (f"{BASE}/query", f"{BASE}/metrics", BASE):
        resp = gateway.handle_request(method="OPTIONS", path=path, body=b"", headers={
            "Origin": "http://grafana:3000", "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type,authorization,x-grafana-org-id,x-dashboard-uid"})
        assert resp["statusCode"] == 200
        headers = {k.lower(): v for k, v in resp["headers"].items()}
        assert headers["access-control-allow-origin"] == "*"
        allowed = {h.strip().lower() for h in headers["access-control-allow-headers"].split(",")}
        # what the plugin sends, and what a Grafana front end adds to requests it makes itself
        assert {"content-type", "authorization", "x-grafana-org-id", "x-dashboard-uid", "x-panel-id"} <= allowed
        assert "OPTIONS" in headers["access-control-allow-methods"]
        assert headers["access-control-max-age"] == "600"  # a dashboard refresh needs no new preflight
    resp = gateway.handle_request(method="OPTIONS", path=f"{BASE}/query", body=b"", headers={})
    assert "POST" in resp["headers"]["Access-Control-Allow-Methods"]


def test_answers_and_errors_carry_cors_headers(client, data):
    r, _ = post(client, "metrics", {})
    assert r.headers["Access-Control-Allow-Origin"] == "*"
    r, body = post(client, "query", {**gd.query_body(), "targets": "nope"})
    assert r.status_code == 400
    assert r.headers["Access-Control-Allow-Origin"] == "*"
    assert "targets" in body["message"]


# ---- metrics and payload options ---------------------------------------------------------------


def test_metrics_lists_each_receiver_present_and_sources(client, data):
    r, body = post(client, "metrics", {})
    assert r.status_code == 200
    assert [m["value"] for m in body] == ["rec01", "rec03", "sources"]
    rec = body[0]
    assert [p["name"] for p in rec["payloads"]] == ["channel", "source", "style", "clip"]
    p = {x["name"]: x for x in rec["payloads"]}
    assert all(x["type"] == "select" for x in rec["payloads"])
    # centre channel = sorted(channels)[12]: 121 (A, D, E), 145 (C), the picket fence's 117 (B)
    assert data.centre(gd.B) == 117
    assert [o["value"] for o in p["channel"]["options"]] == ["ANY", "117", "121", "145"]
    assert p["channel"]["options"][2]["label"] == "121 (154.88 MHz)"
    assert [o["value"] for o in p["source"]["options"]] == ["ANY", "HydA", "PicA"]
    assert p["style"]["options"] == [
        {"label": "Full", "value": "full"}, {"label": "Y-X", "value": "Y-X"},
        {"label": "Receiver Mean", "value": "recmean"}, {"label": "Tile Mean", "value": "tilemean"},
        {"label": "Phase Fit Quality", "value": "quality"}]
    assert p["clip"]["options"][0] == {"label": "None", "value": "None"}
    assert all(float(o["value"]) > 0 for o in p["clip"]["options"][1:])
    # The plugin's reload request carries the current metric and payload; same answer.
    r2, body2 = post(client, "metrics", {"metric": "rec01", "payload": {"style": "full"}})
    assert body2 == body


def test_metrics_with_no_body_and_an_empty_database(client):
    r = client.http.post(f"{BASE}/metrics", body=b"", headers={"Content-Type": "application/json"})
    assert r.status_code == 200
    assert [m["value"] for m in _strict(r.body.decode())] == ["sources"]


def test_payload_options_for_style_is_the_spec_example(client, data):
    body = {"metric": "rec01", "payload": {"channel": "ANY", "source": "ANY", "style": "tilemean", "clip": "None"},
            "name": "style"}
    r, answer = post(client, "metric-payload-options", body)
    assert r.status_code == 200
    assert answer == [{"label": "Full", "value": "full"}, {"label": "Y-X", "value": "Y-X"},
                      {"label": "Receiver Mean", "value": "recmean"}, {"label": "Tile Mean", "value": "tilemean"},
                      {"label": "Phase Fit Quality", "value": "quality"}]


def test_payload_options_for_channel_and_source_follow_range_and_choice(client, data):
    def values(name, payload, **extra):
        r, answer = post(client, "metric-payload-options",
                         {"metric": "rec03", "payload": payload, "name": name, **extra})
        assert r.status_code == 200, answer
        return [o["value"] for o in answer]

    assert values("channel", {}) == ["ANY", "117", "121", "145"]
    assert values("channel", {"source": "PicA"}) == ["ANY", "117"]
    assert values("source", {"channel": "145"}) == ["ANY", "HydA"]
    assert values("source", {"channel": "ANY"}) == ["ANY", "HydA", "PicA"]
    only_a = {"from": gd.iso(gd.ms(gd.A)), "to": gd.iso(gd.ms(gd.A))}
    assert values("channel", {}, range=only_a) == ["ANY", "121"]
    assert values("source", {}, range=only_a) == ["ANY", "HydA"]
    assert values("clip", {})[0] == "None"
    r, answer = post(client, "metric-payload-options", {"metric": "sources", "payload": {}, "name": "source"})
    assert [o["value"] for o in answer] == ["ANY", "HydA", "PicA"]


@pytest.mark.parametrize("body, word", [
    ({"metric": "rec07", "payload": {}, "name": "style"}, "rec07"),
    ({"metric": "tile11", "payload": {}, "name": "style"}, "tile11"),
    ({"metric": "rec01", "payload": {}, "name": "colour"}, "name"),
    ({"metric": "sources", "payload": {}, "name": "clip"}, "name"),
    ({"metric": "rec01", "payload": {"source": "ANY"}, "name": "channel", "range": {"from": "yesterday"}}, "range"),
    ({"metric": 5, "payload": {}, "name": "style"}, "metric"),
    ({"metric": "rec01", "payload": [1], "name": "channel"}, "payload"),
])
def test_payload_options_rejects_what_it_cannot_answer(client, data, body, word):
    r, answer = post(client, "metric-payload-options", body)
    assert r.status_code == 400
    assert word in answer["message"]


# ---- query: every style against the rows -------------------------------------------------------


def test_full_style_is_x_and_y_per_tile_with_labels(client, data):
    frames = frames_of(client, gd.target("rec01", "A", style="full"))
    assert [f["schema"]["name"] for f in frames] == ["Tile011", "Tile012", "Tile013"]
    expected = gd.expected_tile_rows(data, 1, lambda r: (r.x_delay_m, r.y_delay_m))
    for f in frames:
        s = f["schema"]
        assert s["refId"] == "A"
        assert [x["name"] for x in s["fields"]] == ["time", "X", "Y"]
        assert s["fields"][1]["config"]["unit"] == "lengthm"
        gd.approx_rows(gd.rows(f), expected[s["name"]])
    labels = {f["schema"]["name"]: f["schema"]["fields"][1]["labels"] for f in frames}
    assert labels["Tile012"] == {"tile": "Tile012", "tileid": "12", "receiver": "rec01", "slot": "2"}
    assert labels["Tile013"]["slot"] == "3"
    f11 = by_name(frames)["Tile011"]
    # A has two fits: two points at A's time; FIT3 spans B and C: one point for each.
    assert [t for t, *_ in gd.rows(f11)] == [gd.ms(gd.A), gd.ms(gd.A), gd.ms(gd.B), gd.ms(gd.C)]
    assert gd.rows(f11)[0][2] is None  # its Y is NaN in FIT1: null, X kept
    # Tile013 is flagged (NaN) in B: no point at B's time.
    assert gd.ms(gd.B) not in [t for t, *_ in gd.rows(by_name(frames)["Tile013"])]
    # Tile012 moved to rec03 for C: its rec01 series stops at B.
    assert [t for t, *_ in gd.rows(by_name(frames)["Tile012"])] == [gd.ms(gd.A), gd.ms(gd.A), gd.ms(gd.B)]


def test_a_tile_that_moved_is_plotted_on_the_receiver_of_that_observation(client, data):
    frames = by_name(frames_of(client, gd.target("rec03", "B", style="full")))
    assert list(frames) == ["Tile031", "Tile032", "Tile012"]  # slot 1, 2, then 4
    assert [t for t, *_ in gd.rows(frames["Tile012"])] == [gd.ms(gd.C)]
    assert frames["Tile012"]["schema"]["fields"][1]["labels"]["slot"] == "4"
    expected = gd.expected_tile_rows(data, 3, lambda r: (r.x_delay_m, r.y_delay_m))
    for name, f in frames.items():
        gd.approx_rows(gd.rows(f), expected[name])


def test_y_minus_x_style(client, data):
    frames = frames_of(client, gd.target("rec01", style="Y-X"))
    expected = gd.expected_tile_rows(data, 1, lambda r: (r.y_delay_m - r.x_delay_m,))
    assert len(frames) == 3
    for f in frames:
        assert [x["name"] for x in f["schema"]["fields"]] == ["time", "Y-X"]
        gd.approx_rows(gd.rows(f), expected[f["schema"]["name"]])
    # Tile011's first point (Y NaN) is skipped entirely.
    assert len(gd.rows(by_name(frames)["Tile011"])) == 3


def test_tilemean_style(client, data):
    frames = frames_of(client, gd.target("rec01", style="tilemean"))
    expected = gd.expected_tile_rows(data, 1, lambda r: ((r.x_delay_m + r.y_delay_m) / 2,))
    for f in frames:
        assert [x["name"] for x in f["schema"]["fields"]] == ["time", "mean"]
        gd.approx_rows(gd.rows(f), expected[f["schema"]["name"]])


def test_quality_style(client, data):
    frames = frames_of(client, gd.target("rec01", style="quality", clip="0.1"))
    expected = gd.expected_tile_rows(data, 1, lambda r: (r.x_phase_fit_quality, r.y_phase_fit_quality))
    for f in frames:
        assert f["schema"]["fields"][1]["config"]["unit"] == "percentunit"
        gd.approx_rows(gd.rows(f), expected[f["schema"]["name"]])  # clip is in metres: not applied
        assert all(0 <= v <= 1 for _, *vals in gd.rows(f) for v in vals if v is not None)


def test_recmean_style_is_one_frame_of_the_mean_over_the_receivers_tiles(client, data):
    frames = frames_of(client, gd.target("rec01", "R", style="recmean"))
    assert len(frames) == 1
    f = frames[0]
    assert f["schema"]["name"] == "rec01 mean" and f["schema"]["refId"] == "R"
    assert f["schema"]["fields"][1]["labels"] == {"receiver": "rec01"}
    expected = gd.expected_recmean(data, 1)
    gd.approx_rows(gd.rows(f), expected)
    assert len(gd.rows(f)) == 4  # FIT1@A, FIT2@A, FIT3@B, FIT3@C


def test_clip_drops_values_beyond_the_limit(client, data):
    frames = by_name(frames_of(client, gd.target("rec01", style="full", clip="1.5")))
    expected = gd.expected_tile_rows(data, 1, lambda r: (r.x_delay_m, r.y_delay_m), clip=1.5)
    for name, f in frames.items():
        gd.approx_rows(gd.rows(f), expected[name])
        assert all(abs(v) <= 1.5 for _, *vals in gd.rows(f) for v in vals if v is not None)
    assert all(v != 25.0 for _, v, _y in gd.rows(frames["Tile012"]))
    # recmean: the 25 m tile is left out of the mean, not the whole point
    f = frames_of(client, gd.target("rec01", style="recmean", clip="1.5"))[0]
    gd.approx_rows(gd.rows(f), gd.expected_recmean(data, 1, clip=1.5))
    unclipped = frames_of(client, gd.target("rec01", style="recmean"))[0]
    assert gd.rows(f)[0][1] != gd.rows(unclipped)[0][1]


@pytest.mark.parametrize("clip", ["1.5", 1.5, "1.5 m"])
def test_clip_as_string_or_number(client, data, clip):
    frames = frames_of(client, gd.target("rec01", payload={"style": "Y-X", "clip": clip}))
    expected = gd.expected_tile_rows(data, 1, lambda r: (r.y_delay_m - r.x_delay_m,), clip=1.5)
    for f in frames:
        gd.approx_rows(gd.rows(f), expected[f["schema"]["name"]])


def test_channel_and_source_filter_the_fits(client, data):
    cases = [({"channel": "121"}, {"channels": {121}}),
             ({"channel": 145}, {"channels": {145}}),
             ({"source": "PicA"}, {"sources": {"PicA"}}),
             ({"source": "HydA", "channel": "145"}, {"sources": {"HydA"}, "channels": {145}})]
    for payload, filters in cases:
        frames = frames_of(client, gd.target("rec01", payload={"style": "full", **payload}))
        expected = gd.expected_tile_rows(data, 1, lambda r: (r.x_delay_m, r.y_delay_m), **filters)
        got = {f["schema"]["name"]: gd.rows(f) for f in frames}
        assert set(got) == set(expected), payload
        for name in got:
            gd.approx_rows(got[name], expected[name])
    frames = frames_of(client, gd.target("rec01", source="PicA"))
    assert {t for f in frames for t, *_ in gd.rows(f)} == {gd.ms(gd.B)}
    assert frames_of(client, gd.target("rec01", source="3C444")) == []


def test_empty_payload_means_full_with_no_filters(client, data):
    for payload in ({}, "", None):
        t = gd.target("rec01")
        t["payload"] = payload
        frames = frames_of(client, t)
        expected = gd.expected_tile_rows(data, 1, lambda r: (r.x_delay_m, r.y_delay_m))
        assert len(frames) == 3
        for f in frames:
            gd.approx_rows(gd.rows(f), expected[f["schema"]["name"]])


def test_code_mode_payload_string_and_template_variable_values(client, data):
    t = gd.target("rec01", payload='{"style": "Y-X", "source": "HydA", "channel": "121"}')
    t["editorMode"] = "code"
    frames = frames_of(client, t)
    assert {t for f in frames for t, *_ in gd.rows(f)} == {gd.ms(gd.A)}
    # Variables interpolated with Grafana's regex format arrive escaped; "All" with allValue ANY.
    frames = frames_of(client, gd.target("rec01", source="Hyd\\A", channel="$__all"))
    assert {t for f in frames for t, *_ in gd.rows(f)} == {gd.ms(gd.A), gd.ms(gd.C)}


def test_range_limits_points_to_observations_starting_inside_it(client, data):
    frames = frames_of(client, gd.target("rec01"), frm=gd.ms(gd.B), to=gd.ms(gd.C) - 1)
    assert {t for f in frames for t, *_ in gd.rows(f)} == {gd.ms(gd.B)}
    wide = frames_of(client, gd.target("rec01"), frm=gd.ms(gd.A), to=gd.ms(gd.D))
    assert gd.ms(gd.D) in {t for f in wide for t, *_ in gd.rows(f)}


def test_several_targets_keep_their_ref_ids_and_hidden_ones_are_skipped(client, data):
    frames = frames_of(client,
                       gd.target("rec01", "A", style="full"),
                       gd.target("rec03", "B", style="recmean"),
                       gd.target("rec01", "C", style="quality", hide=True),
                       gd.target("sources", "D", payload={}),
                       {"refId": "E", "datasource": {"uid": "mwa-calib"}, "hide": False})  # no metric chosen yet
    assert [f["schema"]["refId"] for f in frames] == ["A", "A", "A", "B", "D"]
    assert frames[3]["schema"]["name"] == "rec03 mean"


def test_sources_target_is_one_table(client, data):
    frames = frames_of(client, gd.target("sources", "S", payload={}))
    assert len(frames) == 1
    f = frames[0]
    assert [x["name"] for x in f["schema"]["fields"]] == ["source", "observations", "fitted", "first", "last"]
    assert [x["type"] for x in f["schema"]["fields"]] == ["string", "number", "number", "time", "time"]
    # In range: A, C, E observe HydA (E has no fit), B observes PicA; D is outside the range.
    assert gd.rows(f) == [("HydA", 3, 2, gd.ms(gd.A), gd.ms(gd.E)), ("PicA", 1, 1, gd.ms(gd.B), gd.ms(gd.B))]
    f = frames_of(client, gd.target("sources", payload={"channel": "145"}))[0]
    assert gd.rows(f) == [("HydA", 1, 1, gd.ms(gd.C), gd.ms(gd.C))]


def test_empty_range_answers_empty_frames_not_errors(client, data):
    frames = frames_of(client, gd.target("rec01"), gd.target("sources", "B"), frm=gd.ms(gd.D) + 1000,
                       to=gd.ms(gd.D) + 5000)
    assert len(frames) == 1 and frames[0]["data"]["values"] == [[], [], [], [], []]


def test_a_tile_with_only_nan_rows_still_gets_an_empty_frame(client, data):
    frames = by_name(frames_of(client, gd.target("rec01"), frm=gd.ms(gd.B), to=gd.ms(gd.B)))
    assert frames["Tile013"]["data"]["values"] == [[], [], []]
    assert [x["name"] for x in frames["Tile013"]["schema"]["fields"]] == ["time", "X", "Y"]


def test_max_data_points_averages_into_time_buckets(client, data):
    # 4 points for Tile011 (A, A, B, C); 2 buckets over [A, C]: {A, A, B} and {C}.
    frm, to = gd.ms(gd.A), gd.ms(gd.C)
    frames = by_name(frames_of(client, gd.target("rec01", style="tilemean"), frm=frm, to=to, max_points=2))
    assert all(len(gd.rows(f)) <= 2 for f in frames.values())
    pts = gd.expected_tile_rows(data, 1, lambda r: ((r.x_delay_m + r.y_delay_m) / 2,), hi_ms=to)["Tile013"]
    assert len(pts) == 3  # A, A, C (NaN in B)
    width = (to - frm + 1) / 2
    buckets: dict[int, list] = {}
    for t, v in pts:
        buckets.setdefault(min(1, int((t - frm) / width)), []).append((t, v))
    expected = [(round(sum(t for t, _ in b) / len(b)), sum(v for _, v in b) / len(b))
                for _, b in sorted(buckets.items())]
    gd.approx_rows(gd.rows(frames["Tile013"]), expected)
    frames = frames_of(client, gd.target("rec01"), max_points=1)
    assert all(len(gd.rows(f)) <= 1 for f in frames)


def test_adhoc_filters_on_source_channel_and_receiver(client, data):
    t = gd.target("rec01")
    frames = frames_of(client, t, adhocFilters=[{"key": "source", "operator": "=", "value": "PicA"}])
    assert {x for f in frames for x, *_ in gd.rows(f)} == {gd.ms(gd.B)}
    frames = frames_of(client, t, adhocFilters=[{"key": "channel", "operator": "!=", "value": "121"}])
    assert {x for f in frames for x, *_ in gd.rows(f)} == {gd.ms(gd.B), gd.ms(gd.C)}
    frames = frames_of(client, t, filters=[{"key": "source", "operator": "=~", "value": "Hyd.*"}])
    assert {x for f in frames for x, *_ in gd.rows(f)} == {gd.ms(gd.A), gd.ms(gd.C)}
    frames = frames_of(client, t, gd.target("rec03", "B"),
                       adhocFilters=[{"key": "receiver", "operator": "=", "value": "rec03"}])
    assert {f["schema"]["refId"] for f in frames} == {"B"}


# ---- variables and ad hoc tags -----------------------------------------------------------------


def test_variable_lists_receivers_sources_and_channels(client, data):
    rng = {"from": gd.iso(gd.RANGE_FROM), "to": gd.iso(gd.RANGE_TO), "raw": {"from": "now-7d", "to": "now"}}
    r, body = post(client, "variable", {"payload": {"target": "receivers"}, "range": rng})
    assert r.status_code == 200
    assert body == [{"__text": "rec01", "__value": "rec01"}, {"__text": "rec03", "__value": "rec03"}]
    _, body = post(client, "variable", {"payload": {"target": "sources"}, "range": rng})
    assert [v["__value"] for v in body] == ["HydA", "PicA"]
    _, body = post(client, "variable", {"payload": {"target": "channels"},
                                        "range": {"from": gd.iso(gd.ms(gd.B)), "to": gd.iso(gd.ms(gd.C))}})
    assert [v["__value"] for v in body] == ["117", "145"]
    r, body = post(client, "variable", {"payload": {"target": "tiles"}, "range": rng})
    assert r.status_code == 400 and "receivers" in body["message"]


def test_tag_keys_and_values(client, data):
    r, keys = post(client, "tag-keys", {})
    assert r.status_code == 200
    assert [k["text"] for k in keys] == ["receiver", "source", "channel"]
    assert all(k["type"] == "string" for k in keys)
    _, values = post(client, "tag-values", {"key": "receiver", "filters": []})
    assert values == [{"text": "rec01"}, {"text": "rec03"}]
    _, values = post(client, "tag-values", {"key": "source"})
    assert values == [{"text": "HydA"}, {"text": "PicA"}]
    r, body = post(client, "tag-values", {"key": "colour"})
    assert r.status_code == 400 and "key" in body["message"]


# ---- malformed requests: 400 with a message, never 500 -----------------------------------------

BAD_QUERIES = [
    ("not json", "JSON"),
    ("", "range"),  # no body: an empty query, which lacks its range
    ("1e999", "object"),
    ('{"targets": [' * 50, "JSON"),
    ("[1, 2]", "object"),
    ('{"targets": [], "range": {"from": "2024-05-01T00:00:00Z", "to": NaN}}', "JSON"),
    (gd.query_body(gd.target("rec01"), range=None), "range"),
    (gd.query_body(gd.target("rec01"), range="last week"), "range"),
    (gd.query_body(gd.target("rec01"), range={"from": "now-6h", "to": "now"}), "range.from"),
    (gd.query_body(gd.target("rec01"), frm=gd.RANGE_TO, to=gd.RANGE_FROM), "after"),
    (gd.query_body(gd.target("rec01"), max_points="many"), "maxDataPoints"),
    (gd.query_body(gd.target("rec01"), max_points=0), "maxDataPoints"),
    (gd.query_body(gd.target("rec99")), "rec99"),
    (gd.query_body(gd.target("upper_50")), "upper_50"),
    (gd.query_body(gd.target("$receiver")), "$receiver"),
    (gd.query_body({"refId": "A", "target": 7}), "target"),
    (gd.query_body("rec01"), "targets[0]"),
    (gd.query_body(gd.target("rec01", style="fancy")), "style"),
    (gd.query_body(gd.target("rec01", clip="-1")), "clip"),
    (gd.query_body(gd.target("rec01", clip="lots")), "clip"),
    (gd.query_body(gd.target("rec01", channel="121.5")), "channel"),
    (gd.query_body(gd.target("rec01", channel="999")), "channel"),
    (gd.query_body(gd.target("rec01", payload="{not json")), "payload"),
    (gd.query_body(gd.target("rec01", payload=[1, 2])), "payload"),
    (gd.query_body(gd.target("rec01", payload={"source": {"a": 1}})), "source"),
    (gd.query_body(gd.target("rec01"), adhocFilters=[{"key": "colour", "operator": "=", "value": "x"}]), "key"),
    (gd.query_body(gd.target("rec01"), adhocFilters=[{"key": "source", "operator": "<", "value": "x"}]),
     "operator"),
    (gd.query_body(gd.target("rec01"), adhocFilters=[{"key": "source", "operator": "=~", "value": "(("}]),
     "regular expression"),
]


@pytest.mark.parametrize("body, word", BAD_QUERIES)
def test_bad_query_is_400_with_a_message(client, data, body, word):
    r, answer = post(client, "query", body if isinstance(body, str) else json.dumps(body), raw=True)
    assert r.status_code == 400, answer
    assert word in answer["message"]
    assert r.headers["Access-Control-Allow-Origin"] == "*"


def test_unknown_action_and_odd_content_types(client, data):
    r, body = post(client, "search", {"target": "rec"})
    assert r.status_code == 400 and "search" in body["message"]
    r = client.http.post(f"{BASE}/metrics", body=b"{}", headers={"Content-Type": "text/plain"})
    assert r.status_code == 200
    r = client.http.post(f"{BASE}/query", body=b"\xff\xfe", headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and "message" in _strict(r.body.decode())


def test_database_down_is_503_with_a_message_and_cors(client, monkeypatch):
    from chalicelib import db

    db.close()
    monkeypatch.setenv("CALIB_DB_UNIX_SOCK", "/nonexistent/.s.PGSQL.5432")
    monkeypatch.delenv("CALIB_DB_HOST", raising=False)
    try:
        r = client.http.get(BASE)
        assert r.status_code == 503
        assert "message" in _strict(r.body.decode())
        assert r.headers["Access-Control-Allow-Origin"] == "*"
        r, body = post(client, "query", gd.query_body(gd.target("rec01")))
        assert r.status_code == 503 and body["message"]
    finally:
        db.close()


ODD_VALUES = [None, [], {}, True, -1e300, 10**30, "", "x" * 300, "NaN", [None, {"a": []}],
              "1e400", "9" * 40, "\u00b2", -1, 0]


def _leaf_paths(value, path=()):
    if isinstance(value, dict) and value:
        for k, v in value.items():
            yield from _leaf_paths(v, path + (k,))
    elif isinstance(value, list) and value:
        for i, v in enumerate(value):
            yield from _leaf_paths(v, path + (i,))
    else:
        yield path


def _replaced(value, path, new):
    if not path:
        return new
    copy = json.loads(json.dumps(value))
    node = copy
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = new
    return copy


@pytest.mark.parametrize("action, body", [
    ("query", gd.query_body(gd.target("rec01", "A"), gd.target("sources", "B", payload={}),
                            adhocFilters=[{"key": "source", "operator": "=~", "value": "H.*"}])),
    ("metric-payload-options", {"metric": "rec01", "payload": {"channel": "121", "source": "ANY"}, "name": "source",
                                "range": {"from": gd.iso(gd.RANGE_FROM), "to": gd.iso(gd.RANGE_TO)}}),
    ("variable", {"payload": {"target": "sources"},
                  "range": {"from": gd.iso(gd.RANGE_FROM), "to": gd.iso(gd.RANGE_TO)}}),
    ("tag-values", {"key": "source", "filters": [{"key": "source", "operator": "=", "value": "HydA"}]}),
    ("metrics", {"metric": "rec01", "payload": {"style": "full"}}),
])
def test_no_odd_value_anywhere_makes_a_500(client, data, action, body):
    """The whole body and every leaf of a valid one replaced by odd values: always 200 or 400 with a message."""
    for path in [(), *_leaf_paths(body)]:
        for new in ODD_VALUES:
            r, answer = post(client, action, _replaced(body, path, new))
            assert r.status_code in (200, 400), (path, new, answer)
            if r.status_code == 400:
                assert isinstance(answer["message"], str) and answer["message"]
