"""The fit page links each observation to the comparison with the previous fit of its calibrator and with
the newest fit of its source; the links answer the comparison."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import pytest
from chalice.test import Client

from tests import summary_fixtures as fx


@pytest.fixture
def client(clean_db, aws):
    from app import app

    fx.seed()
    with Client(app) as c:
        yield c


def test_fit_page_compare_links(client):
    r = client.http.get(f"/calib/fit?fitid={fx.F_CALVIN}")
    assert r.status_code == 200
    doc = fx.parse_html(r.body.decode())
    links = [(a.text(), a.attrs["href"]) for a in doc.find_all("a", "compare")]
    queries = [{k: int(v[0]) for k, v in parse_qs(urlsplit(href).query).items()} for _, href in links]
    # F_MWA ran half an hour before F_CALVIN on A; every fixture observation lists calibrators "PicA", and the
    # latest of them, G, has one fit: F_G
    assert queries[0] == {"fitid_a": fx.F_CALVIN, "obsid_a": fx.A, "fitid_b": fx.F_MWA, "obsid_b": fx.A}
    assert "previous fit of this calibrator" in links[0][0]
    assert queries[1] == {"fitid_a": fx.F_CALVIN, "obsid_a": fx.A, "fitid_b": fx.F_G, "obsid_b": fx.G}
    assert "newest fit of this source" in links[1][0]
    answer = client.http.get("/calib/" + links[0][1])
    assert answer.status_code == 200 and json.loads(answer.body)["b"]["fitid"] == fx.F_MWA
