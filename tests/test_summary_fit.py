"""GET /calib/fit: median residual delays per receiver and per tile (HTML, CSV, JSON), sorting.

Expectations are computed here with ``statistics.median`` from the data set's formulas
(summary_fixtures), not from the database or the code under test.
"""

from __future__ import annotations

import csv
import io
import json
import math
import statistics
from urllib.parse import parse_qs, urlparse

import pytest
from chalice.test import Client

from tests import summary_fixtures as fx


@pytest.fixture
def client(clean_db, aws):
    fx.seed()
    from app import app

    with Client(app) as c:
        yield c


def expected_receivers(fitid: int, obsids: list[int]) -> dict[int, dict]:
    out = {}
    for rx, ids in ((1, fx.RX1), (3, fx.RX3)):
        xs, ys, tiles = [], [], set()
        for o in obsids:
            for t in ids:
                if t not in fx.solution_tiles(fitid, o):
                    continue
                tiles.add(t)
                x, y = fx.delay(t, fitid, o)
                xs += [x] if not math.isnan(x) else []
                ys += [y] if not math.isnan(y) else []
        out[rx] = {"rx": rx, "tiles": len(tiles), "median_x_m": statistics.median(xs), "n_x": len(xs),
                   "median_y_m": statistics.median(ys), "n_y": len(ys),
                   "median_xy_m": statistics.median(xs + ys), "n_xy": len(xs) + len(ys)}
    return out


def expected_tile(tile: int, fitid: int, obsids: list[int]) -> dict:
    vals = [fx.delay(tile, fitid, o) for o in obsids if tile in fx.solution_tiles(fitid, o)]
    xs = [v[0] for v in vals if not math.isnan(v[0])]
    ys = [v[1] for v in vals if not math.isnan(v[1])]
    med = statistics.median
    return {"median_x_m": med(xs) if xs else None, "n_x": len(xs), "median_y_m": med(ys) if ys else None,
            "n_y": len(ys), "median_xy_m": med(xs + ys) if xs + ys else None, "n_xy": len(xs) + len(ys),
            "observations": len(vals)}


def test_json_tables_match_independent_medians(client):
    r = client.http.get(f"/calib/fit?fitid={fx.F_MWA}&format=json")
    assert r.status_code == 200
    body = json.loads(r.body)
    assert body["fitid"] == fx.F_MWA and body["creator"] == "mwa" and body["units"] == "m"
    assert [o["obsid"] for o in body["observations"]] == [fx.A, fx.B]
    exp = expected_receivers(fx.F_MWA, [fx.A, fx.B])
    assert [r["rx"] for r in body["receivers"]] == [1, 3]  # tile 99 has no receiver: in no median
    for row in body["receivers"]:
        for k, v in exp[row["rx"]].items():
            assert row[k] == pytest.approx(v, abs=1e-12), (row["rx"], k)
    assert exp[1]["n_x"] == 14  # 7 unflagged tiles x 2 observations
    tiles = {t["tileid"]: t for t in body["tiles"]}
    assert set(tiles) == set(fx.RX1 + fx.RX3 + [fx.LOOSE])
    for tid, row in tiles.items():
        for k, v in expected_tile(tid, fx.F_MWA, [fx.A, fx.B]).items():
            assert row[k] == (pytest.approx(v, abs=1e-12) if v is not None else None), (tid, k)
    assert tiles[fx.FLAGGED]["flagged"] == 2 and tiles[fx.FLAGGED]["median_x_m"] is None
    assert tiles[fx.LOOSE]["rx"] is None and tiles[fx.LOOSE]["tile_name"] == "Tile099"
    assert (tiles[12]["rx"], tiles[12]["slot"], tiles[12]["tile_name"]) == (1, 2, "Tile012")


def test_a_tile_missing_from_the_fit_is_left_out(client):
    body = json.loads(client.http.get(f"/calib/fit?fitid={fx.F_CALVIN}&format=json").body)
    assert fx.MISSING_IN_CALVIN not in {t["tileid"] for t in body["tiles"]}
    rx3 = next(r for r in body["receivers"] if r["rx"] == 3)
    assert rx3["tiles"] == 7 and rx3["n_x"] == 7
    assert rx3["median_x_m"] == pytest.approx(statistics.median([t / 100 for t in fx.RX3[:-1]]))


def test_csv_tables(client):
    r = client.http.get(f"/calib/fit?fitid={fx.F_MWA}&format=csv&table=receivers")
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/csv")
    assert f"fit_{fx.F_MWA}_receivers.csv" in r.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(r.body.decode())))
    exp = expected_receivers(fx.F_MWA, [fx.A, fx.B])
    assert [int(row["rx"]) for row in rows] == [1, 3]
    for row in rows:
        assert float(row["median_xy_m"]) == exp[int(row["rx"])]["median_xy_m"]  # full precision
        assert int(row["n_y"]) == exp[int(row["rx"])]["n_y"]
    r = client.http.get(f"/calib/fit?fitid={fx.F_MWA}&format=csv&table=tiles")
    rows = {int(row["tileid"]): row for row in csv.DictReader(io.StringIO(r.body.decode()))}
    assert rows[fx.FLAGGED]["median_x_m"] == "" and rows[fx.FLAGGED]["n_x"] == "0"
    assert float(rows[33]["median_y_m"]) == pytest.approx(expected_tile(33, fx.F_MWA, [fx.A, fx.B])["median_y_m"])


def test_html_tables_sort_with_links_and_missing_values_last(client):
    r = client.http.get(f"/calib/fit?fitid={fx.F_MWA}")
    assert r.status_code == 200
    doc = fx.parse_html(r.body.decode())
    table = doc.find("table", id="tile-table")

    def first_column(tbl):
        return [tr.find_all("td")[0].text().strip() for tr in tbl.find("tbody").find_all("tr")]

    # default: receiver, slot; the tile without a receiver last
    assert first_column(table) == [str(t) for t in fx.RX1 + fx.RX3 + [fx.LOOSE]]
    link = next(a.attrs["href"] for a in table.find("thead").find_all("a") if a.text().startswith("Median X "))
    assert parse_qs(urlparse(link).query)["tile_sort"] == ["median_x_m"]
    doc = fx.parse_html(client.http.get("/calib/" + link.split("#")[0]).body.decode())
    asc = first_column(doc.find("table", id="tile-table"))
    assert asc[0] == "11" and asc[-2] == str(fx.LOOSE) and asc[-1] == str(fx.FLAGGED)
    # the active column's link now sorts descending; missing values still last
    th = doc.find("table", id="tile-table").find("thead")
    active = next(t for t in th.find_all("th") if t.attrs.get("aria-sort") == "ascending")
    desc_link = active.find("a").attrs["href"]
    assert parse_qs(urlparse(desc_link).query)["tile_sort"] == ["-median_x_m"]
    doc = fx.parse_html(client.http.get("/calib/" + desc_link.split("#")[0]).body.decode())
    desc = first_column(doc.find("table", id="tile-table"))
    assert desc[0] == str(fx.LOOSE) and desc[-1] == str(fx.FLAGGED)
    # the receiver table keeps its own sort, and the page shows metres to the millimetre
    rx = doc.find("table", id="receiver-table")
    assert first_column(rx) == ["1", "3"]
    exp = expected_receivers(fx.F_MWA, [fx.A, fx.B])
    assert rx.find("tbody").find_all("tr")[0].find_all("td")[2].text() == f"{exp[1]['median_x_m']:.3f}"


def test_fit_page_lists_observations_with_plots_and_downloads(client):
    doc = fx.parse_html(client.http.get(f"/calib/fit?fitid={fx.F_MWA}").body.decode())
    rows = doc.find_all("section", "obsrow")
    assert [s.find("a", "obsid").text() for s in rows] == [str(fx.A), str(fx.B)]
    imgs = rows[0].find_all("img", "plot")
    assert [urlparse(i.attrs["src"]).path for i in imgs] == [
        "plot/tilediff", "plot/timediff", "plot/xydiff", "plot/gains", "plot/gaintimes", "plot/phasefit"]
    hrefs = [a.attrs["href"] for a in doc.find_all("a") if "format=" in a.attrs.get("href", "")]
    kinds = {(parse_qs(urlparse(h).query)["format"][0], parse_qs(urlparse(h).query).get("table", ["both"])[0])
             for h in hrefs}
    assert kinds >= {("csv", "receivers"), ("csv", "tiles"), ("json", "receivers"), ("json", "tiles")}
    assert "18:33:20 AWST" in doc.find("dl", "meta").text()


@pytest.mark.parametrize("query, status", [
    ("", 400), ("fitid=abc", 400), ("fitid=12345", 404), (f"fitid={fx.F_MWA}&format=xml", 400),
])
def test_fit_page_errors(client, query, status):
    r = client.http.get(f"/calib/fit?{query}")
    assert r.status_code == status


def test_fit_page_errors_are_html_for_browsers_and_json_for_data(client):
    r = client.http.get("/calib/fit?fitid=12345")
    assert r.headers["Content-Type"].startswith("text/html") and "12345" in r.body.decode()
    r = client.http.get("/calib/fit?fitid=12345&format=json")
    assert r.status_code == 404 and json.loads(r.body)["error"] == "not_found"
    r = client.http.get(f"/calib/fit?fitid={fx.F_MWA}&format=csv")
    assert r.status_code == 400 and json.loads(r.body)["parameter"] == "table"


def test_plot_images_have_their_size_every_width_and_load_lazily_after_the_second(client, aws):
    from PIL import Image

    doc = fx.parse_html(client.http.get(f"/calib/fit?fitid={fx.F_MWA}").body.decode())
    imgs = doc.find_all("img", "plot")
    assert len(imgs) == 12  # six kinds, two observations
    assert [i.attrs.get("loading") for i in imgs] == ["eager", "eager"] + ["lazy"] * 10
    assert [i.attrs.get("fetchpriority") for i in imgs] == ["high"] + [None] * 11
    for img in imgs[:5] + imgs[-1:]:
        candidates = dict(reversed(c.rsplit(" ", 1)) for c in img.attrs["srcset"].split(", "))
        assert sorted(candidates) == ["1440w", "480w", "960w"]
        for descriptor, url in candidates.items():
            r = client.http.get("/calib/" + url)
            assert r.status_code == 302
            key = urlparse(r.headers["Location"]).path.lstrip("/")
            png = aws["s3"].get_object(Bucket="test-products", Key=key)["Body"].read()
            size = Image.open(io.BytesIO(png)).size
            want_w = int(descriptor[:-1])
            assert size[0] == want_w
            if want_w == 1440:  # <img width height> is the full drawing's size
                assert size == (int(img.attrs["width"]), int(img.attrs["height"]))
    assert doc.find("body").find_all("a")[0].attrs["href"] == "#receivers" and doc.find("h2", id="receivers")


def test_the_fit_error_page_marks_the_fit_id(client):
    r = client.http.get("/calib/fit?fitid=%3Cb%3E12")
    assert r.status_code == 400
    doc = fx.parse_html(r.body.decode())
    assert "<b>" not in r.body.decode()
    assert doc.find("title").text().startswith("Error 400")
    field = doc.find("input", id="fitid")
    assert field.attrs["aria-invalid"] == "true" and field.attrs["value"] == "<b>12"
    assert "fitid" in doc.find("p", id=field.attrs["aria-describedby"]).text()
    r = client.http.get("/calib/fit?fitid=12345")  # a fit that does not exist: its id is at fault too
    assert r.status_code == 404 and fx.parse_html(r.body.decode()).find("input", id="fitid").attrs["value"] == "12345"
