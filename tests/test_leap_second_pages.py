"""Observations from before the 2017 leap second on the summary page, the fit page and Grafana.

GPS - UTC was 16 s in 2013 and 17 s in 2015 (18 s since 2017-01-01), so a fixed 18 s offset shows
these observations one or two seconds late. The truths (written here, not computed):
obsid 1120493008 started 2015-07-09 16:03:11 UTC (2015-07-10 00:03:11 AWST, Unix 1436457791);
obsid 1060000000 started 2013-08-08 12:26:24 UTC (20:26:24 AWST, Unix 1375964784).
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
from chalice.test import Client

from chalicelib import gpstime
from tests import factories
from tests import summary_fixtures as fx

OBS_2015, OBS_2013 = 1120493008, 1060000000
FIT_2015 = 1436460000  # an old 'mwa' fit id: Unix seconds, 2015-07-09 16:40:00 UTC
FIT_2013 = 1375970000000000  # Unix microseconds, 2013-08-08 13:53:20 UTC


@pytest.fixture
def client(clean_db, aws):
    observations = [factories.observation(o, calibration=True, tiles=factories.tiles(8)) for o in (OBS_2013, OBS_2015)]
    rows = factories.solution_rows([t.tile_id for t in observations[0].tiles])
    factories.seed(observations, [(factories.fit(FIT_2013, OBS_2013), rows),
                                  (factories.fit(FIT_2015, OBS_2015, creator="mwa"), rows)])
    from app import app

    with Client(app) as c:
        yield c


def _summary(client, query: str):
    r = client.http.get(f"/calib/summary?{query}")
    assert r.status_code == 200, r.body[:300]
    return fx.parse_html(r.body.decode())


def _listed(doc) -> dict[int, str]:
    """{obsid: the UTC start time its link shows}."""
    return {int(a.text()): a.attrs["title"] for a in doc.find_all("a", "obsid")}


@pytest.mark.parametrize("awst, obsid, shown", [
    ("2015-07-10T00:03:11", OBS_2015, "2015-07-09 16:03:11 UTC"),
    ("2013-08-08T20:26:24", OBS_2013, "2013-08-08 12:26:24 UTC"),
])
def test_summary_finds_the_observation_at_its_awst_second_and_shows_its_utc_start(client, awst, obsid, shown):
    listed = _listed(_summary(client, f"start={awst}&end={awst}"))  # a one-second range
    assert list(listed) == [obsid]
    assert f"({shown})" in listed[obsid]
    # one second either side of it: not there
    before = awst[:-2] + f"{int(awst[-2:]) - 1:02d}"
    assert _listed(_summary(client, f"start={before}&end={before}")) == {}


def test_summary_form_shows_gps_ranges_in_awst(client):
    doc = _summary(client, f"start={OBS_2015}&end={OBS_2015}")
    assert list(_listed(doc)) == [OBS_2015]
    assert doc.find("input", id="start").attrs["value"] == "2015-07-10T00:03"
    assert doc.find("input", id="end").attrs["value"] == "2015-07-10T00:03"
    ran = [td.text().strip() for td in doc.find_all("td") if td.attrs.get("data-label") == "Fit ran (AWST)"]
    assert ran == ["2015-07-10 00:40:00"]


def test_summary_default_range_follows_the_pinned_clock(client, monkeypatch):
    monkeypatch.setattr(gpstime, "now", lambda: datetime(2015, 7, 9, 16, 10, tzinfo=timezone.utc))
    doc = _summary(client, "")
    assert list(_listed(doc)) == [OBS_2015]  # the last 7 days of 2015-07-10 00:10 AWST
    assert doc.find("input", id="start").attrs["value"] == "2015-07-03T00:10"
    assert doc.find("input", id="end").attrs["value"] == "2015-07-10T00:10"


@pytest.mark.parametrize("query, field", [
    ("start=1980-01-06T07:59&end=2015-07-10", "start"),  # before the GPS epoch (00:00 UTC)
    ("start=2015-07-10&end=999999999999", "end"),  # a GPS count no date can show
    ("start=2015-07-10&end=9999-12-31", "end"),
])
def test_summary_refuses_times_outside_gps_dates(client, query, field):
    r = client.http.get(f"/calib/summary?{query}")
    assert r.status_code == 400
    assert field in fx.parse_html(r.body.decode()).find("p", "error").text()


def test_fit_page_shows_the_utc_start(client):
    r = client.http.get(f"/calib/fit?fitid={FIT_2015}")
    assert r.status_code == 200
    doc = fx.parse_html(r.body.decode())
    assert [s.find("a", "obsid").text() for s in doc.find_all("section", "obsrow")] == [str(OBS_2015)]
    assert "started 2015-07-09 16:03:11 UTC" in " ".join(doc.find("section", "obsrow").text().split())
    assert "2015-07-10 00:40:00 AWST" in doc.find("dl", "meta").text()
    r = client.http.get(f"/calib/fit?fitid={FIT_2013}")
    assert "started 2013-08-08 12:26:24 UTC" in " ".join(fx.parse_html(r.body.decode()).text().split())


def _query(client, frm: str, to: str, *targets: dict) -> list[dict]:
    body = {"range": {"from": frm, "to": to}, "maxDataPoints": 1000, "targets": list(targets)}
    r = client.http.post("/calib/grafana/query", body=json.dumps(body), headers={"Content-Type": "application/json"})
    assert r.status_code == 200, r.body[:300]
    return json.loads(r.body)


REC01 = {"refId": "A", "target": "rec01", "payload": {"style": "full"}}


def test_grafana_point_of_a_2015_observation_is_at_its_utc_start(client):
    frames = _query(client, "2015-07-09T16:03:11.000Z", "2015-07-09T16:03:11.000Z", REC01)  # that one ms
    times = {t for f in frames for t in f["data"]["values"][0]}
    assert times == {1436457791000}
    later = _query(client, "2015-07-09T16:03:11.001Z", "2015-07-09T16:03:12.000Z", REC01)
    assert [t for f in later for t in f["data"]["values"][0]] == []


def test_grafana_points_and_sources_table_across_2013_to_2015(client):
    frames = _query(client, "2013-01-01T00:00:00Z", "2016-01-01T00:00:00Z", REC01,
                    {"refId": "S", "target": "sources", "payload": {}})
    tiles = [f for f in frames if f["schema"]["refId"] == "A"]
    assert tiles and all(f["data"]["values"][0] == [1375964784000, 1436457791000] for f in tiles)
    table = next(f for f in frames if f["schema"]["refId"] == "S")
    names = [f["name"] for f in table["schema"]["fields"]]
    values = dict(zip(names, table["data"]["values"]))
    assert values["first"] == [1375964784000] and values["last"] == [1436457791000]
