"""Reading Grafana's request bodies, and the pure parts of frame building (no database)."""

from __future__ import annotations

import numpy as np
import pytest

from chalicelib.errors import BadRequest
from chalicelib.grafana import query
from chalicelib.grafana import body as gbody
from chalicelib.grafana import timerange as tr
from chalicelib.grafana import request as rq


def test_range_iso_strings_to_obsid_bounds():
    # 2024-05-01T00:00:00Z = Unix 1714521600 = GPS 1398556818
    r = tr.time_range({"range": {"from": "2024-05-01T00:00:00.000Z", "to": "2024-05-01T00:00:10.500Z"}},
                      required=True)
    assert (r.from_ms, r.to_ms) == (1714521600000, 1714521610500)
    assert (r.obsid_low, r.obsid_high) == (1398556818, 1398556828)
    r = tr.time_range({"range": {"from": "2024-05-01T00:00:00.001Z", "to": "2024-05-01T08:00:10+08:00"}},
                      required=True)
    assert r.obsid_low == 1398556819  # an observation starting at .000 is before the range
    assert r.to_ms == 1714521610000
    assert tr.time_range({"range": {"from": 1714521600000, "to": "1714521600000"}}, required=True).to_ms == \
        1714521600000
    assert tr.time_range({"timeRange": {"from": "2024-05-01T00:00:00Z", "to": "2024-05-02T00:00:00Z"}},
                         required=False).to_ms == 1714608000000
    assert tr.time_range({}, required=False) is None
    assert tr.obsid_ms(1398556818) == 1714521600000


@pytest.mark.parametrize("rng", [None, "x", {"from": "now-6h", "to": "now"}, {"from": True, "to": 1},
                                 {"from": "2024-05-02T00:00:00Z", "to": "2024-05-01T00:00:00Z"}, {"to": "2024"}])
def test_bad_ranges(rng):
    with pytest.raises(BadRequest) as e:
        tr.time_range({"range": rng}, required=True)
    assert "range" in e.value.message


def test_body_parsing():
    assert gbody.body(b"") == {} and gbody.body(None) == {} and gbody.body(b"null") == {} and gbody.body(" \n") == {}
    assert gbody.body(b'{"a": 1}') == {"a": 1}
    for raw in (b"[]", b'"x"', b"{", b'{"a": NaN}', b"\xff", b"1"):
        with pytest.raises(BadRequest):
            gbody.body(raw)


def test_payload_values_as_the_builder_sends_them():
    p = rq.payload({"channel": "121", "source": "HydA", "style": "Y-X", "clip": "0.5"})
    assert p == rq.Payload(channels=frozenset({121}), sources=frozenset({"HydA"}), style="Y-X", clip=0.5)
    assert rq.payload({}) == rq.Payload()
    assert rq.payload("") == rq.Payload()
    assert rq.payload('{"channel": 121, "clip": 2}') == rq.Payload(channels=frozenset({121}), clip=2.0)
    assert rq.payload({"channel": "ANY", "source": "any", "clip": "None", "style": ""}) == rq.Payload()
    assert rq.payload({"channel": "$__all", "source": "All", "clip": ""}) == rq.Payload()
    assert rq.payload({"channel": ["121", "145"]}).channels == frozenset({121, 145})
    assert rq.payload({"source": "J1234\\+56"}).sources == frozenset({"J1234+56"})  # regex-escaped variable
    assert rq.payload({"style": "Receiver Mean"}).style == "recmean"
    assert rq.payload({"style": "y-x"}).style == "Y-X"
    assert rq.payload({"clip": "1.5 m"}).clip == 1.5
    assert rq.payload({"channel": 121.0}).channels == frozenset({121})
    assert rq.payload({"unknown": "ignored"}) == rq.Payload()


@pytest.mark.parametrize("payload, word", [
    ({"channel": "12a"}, "channel"), ({"channel": 300}, "channel"), ({"channel": True}, "channel"),
    ({"source": {"x": 1}}, "source"), ({"source": "x" * 500}, "source"),
    ({"style": "fancy"}, "style"), ({"style": 3}, "style"),
    ({"clip": "0"}, "clip"), ({"clip": -1}, "clip"), ({"clip": "inf"}, "clip"), ({"clip": True}, "clip"),
    ([1], "payload"), ("{oops", "payload"), (5, "payload"),
])
def test_bad_payloads(payload, word):
    with pytest.raises(BadRequest) as e:
        rq.payload(payload)
    assert word in e.value.message


def test_receiver_names():
    assert rq.receiver_name(1) == "rec01" and rq.receiver_name(32) == "rec32"
    assert rq.receiver_number("rec05") == 5 and rq.receiver_number("REC5") == 5
    assert rq.receiver_number("sources") is None and rq.receiver_number("rec") is None


def test_query_request_keeps_visible_targets_in_order():
    body = {"range": {"from": "2024-05-01T00:00:00Z", "to": "2024-05-02T00:00:00Z"}, "maxDataPoints": "500",
            "targets": [{"refId": "A", "target": "rec01", "payload": {"style": "quality"}},
                        {"refId": "B", "target": "rec02", "hide": True},
                        {"refId": "C"},
                        {"refId": "D", "target": ""},
                        {"refId": "E", "target": "sources", "payload": {"source": "HydA", "style": "ignored"}}],
            "adhocFilters": [{"key": "source", "operator": "=", "value": "HydA"}],
            "filters": [{"key": "source", "operator": "=", "value": "HydA"}]}
    req = rq.query_request(body)
    assert req.max_points == 500
    assert [(t.ref_id, t.metric, t.receiver) for t in req.targets] == [("A", "rec01", 1), ("E", "sources", None)]
    assert req.targets[0].payload.style == "quality"
    assert req.targets[1].payload.sources == frozenset({"HydA"})
    assert len(req.filters) == 1 and req.filters[0].matches("HydA") and not req.filters[0].matches("PicA")


def test_adhoc_operators():
    def f(op, value):
        return rq.adhoc_filters({"filters": [{"key": "source", "operator": op, "value": value}]})[0]

    assert f("!=", "HydA").matches("PicA")
    assert f("=~", "Hyd.*").matches("HydA") and not f("=~", "Hyd").matches("HydA")
    assert f("!~", "Hyd.*").matches("PicA")


def test_downsample_buckets_and_means():
    rng = tr.TimeRange(0, 999)
    nan = float("nan")
    s = query.Series("t", {}, ("X", "Y"), times=np.array([0, 100, 600, 700, 900]),
                     values=np.array([[1.0, nan], [3.0, 2.0], [5.0, 4.0], [7.0, nan], [9.0, 6.0]]))
    query.downsample(s, 2, rng)
    assert s.times.tolist() == [50, 733]
    assert s.values.tolist() == [[2.0, 2.0], [7.0, 5.0]]
    s2 = query.Series("t", {}, ("X",), times=np.array([1, 2]), values=np.array([[1.0], [2.0]]))
    query.downsample(s2, 5, rng)
    assert s2.times.tolist() == [1, 2]  # under the limit: untouched
    s3 = query.Series("t", {}, ("X",), times=np.array([10, 20, 30]), values=np.array([[nan], [nan], [4.0]]))
    query.downsample(s3, 1, rng)
    assert s3.times.tolist() == [20] and s3.values.tolist() == [[4.0]]


def test_series_drops_rows_without_any_value():
    nan = float("nan")
    s = query.Series.of("t", {}, ("X", "Y"), np.array([1, 2, 3]), np.array([[nan, nan], [1.0, nan], [nan, 2.0]]))
    assert s.times.tolist() == [2, 3]


def test_frame_shape():
    s = query.Series("Tile011", {"tile": "Tile011", "receiver": "rec01", "slot": "1"}, ("X", "Y"),
                     times=np.array([1714521600000]), values=np.array([[0.5, float("nan")]]))
    f = query.frame(s, "A", "lengthm")
    assert f["schema"]["name"] == "Tile011" and f["schema"]["refId"] == "A"
    assert [x["name"] for x in f["schema"]["fields"]] == ["time", "X", "Y"]
    assert f["schema"]["fields"][0]["type"] == "time"
    assert f["schema"]["fields"][2]["config"]["displayNameFromDS"] == "Tile011 Y"
    assert f["data"]["values"] == [[1714521600000], [0.5], [None]]
    assert isinstance(f["data"]["values"][0][0], int)


@pytest.mark.parametrize("body", [
    b'{"maxDataPoints": 1e999}', b'{"maxDataPoints": 100000000000000000000000000000000000000000000000000000000000'
    b'0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000'
    b'0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000'
    b'00000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000.5}',
])
def test_absurd_numbers_are_400(body):
    with pytest.raises(BadRequest):
        tr.max_data_points(gbody.body(body))


def test_absurd_times_are_400():
    for value in (1e300, 10**20, -(10**20), "99999999999999999"):
        with pytest.raises(BadRequest):
            tr.time_range({"range": {"from": value, "to": value}}, required=True)
