"""GET /calib/summary: the form, the table of fits, links, escaping, paging, errors."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from urllib.parse import parse_qs, urlparse

import pytest
from chalice.test import Client

from tests import summary_fixtures as fx

ALL = f"start={fx.E - 10}&end={fx.G + 10}"


@pytest.fixture
def client(clean_db, aws, monkeypatch):
    monkeypatch.setenv("CALIB_OBS_PAGE_BASE_URL", "https://obs.example.org/info?obs=")
    fx.seed()
    from app import app

    with Client(app) as c:
        yield c


def get_page(client, query: str):
    r = client.http.get(f"/calib/summary?{query}")
    return r, fx.parse_html(r.body.decode())


def fit_rows(doc) -> list:
    return doc.find("table", id="fits").find("tbody").find_all("tr")


def cells(tr) -> dict[str, object]:
    return {td.attrs["data-label"]: td for td in tr.find_all("td")}


def test_page_is_html_with_the_form_and_no_external_assets(client):
    r, doc = get_page(client, ALL)
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/html")
    assert "default-src 'none'" in r.headers["Content-Security-Policy"]
    body = r.body.decode()
    form = doc.find("form")
    assert form.attrs["method"] == "get"
    assert {i.attrs["name"] for i in form.find_all("input")} == {"start", "end"}
    assert '<meta name="viewport"' in body and "@media (max-width" in body
    assert "<script" not in body and "@import" not in body
    # the one <link> is the page's own icon, answered by the service itself
    assert re.findall(r"<link[^>]*>", body) == ['<link rel="icon" href="favicon.svg" type="image/svg+xml">']
    icon = client.http.get("/calib/favicon.svg")
    assert icon.status_code == 200 and icon.headers["Content-Type"] == "image/svg+xml"
    assert icon.body.decode().startswith("<svg") and "max-age" in icon.headers["Cache-Control"]
    # every src/href is relative, except the observation information pages (config)
    for m in re.finditer(r'(?:src|href)="([^"]+)"', body):
        url = m.group(1)
        assert not url.startswith(("http:", "https:", "//")) or url.startswith("https://obs.example.org/info?obs=")


def test_fits_are_newest_observation_first_with_all_columns(client):
    _, doc = get_page(client, ALL)
    rows = fit_rows(doc)
    ids = [int(cells(tr)["Fit ID"].text().strip()) for tr in rows]
    # by latest observation (G, B, A, C, D, E), re-fits of one observation by when they ran
    assert ids == [fx.F_G, fx.F_MWA, fx.F_CALVIN, fx.F_C_CALVIN, fx.F_C_MWA, fx.F_D, fx.F_E]
    by_id = dict(zip(ids, rows))
    mwa = cells(by_id[fx.F_MWA])
    assert mwa["Creator"].text().strip() == "mwa"
    assert mwa["Code version"].text().strip() == "0.17.69"
    assert mwa["Niter/Limit"].text().strip() == "45/50"
    assert cells(by_id[fx.F_CALVIN])["Niter/Limit"].text().strip() == "3/0"
    assert mwa["Fit ID"].find("a").attrs["href"] == f"fit?fitid={fx.F_MWA}"


def test_fit_time_in_awst_for_second_and_microsecond_fitids_and_fit_time(client):
    _, doc = get_page(client, ALL)
    ran = {int(cells(tr)["Fit ID"].text().strip()): cells(tr)["Fit ran (AWST)"].text().strip()
           for tr in fit_rows(doc)}
    assert ran[fx.F_MWA] == "2026-03-18 18:33:20"  # fitid in seconds, fit_time NULL
    assert ran[fx.F_CALVIN] == "2026-03-18 19:03:05"  # fitid in microseconds, fit_time NULL
    assert ran[fx.F_C_MWA] == "2026-03-15 18:00:00"  # fit_time set (10:00 UTC)


def test_observations_link_to_the_solution_the_obs_page_and_six_plots(client):
    _, doc = get_page(client, ALL)
    row = next(tr for tr in fit_rows(doc) if cells(tr)["Fit ID"].text().strip() == str(fx.F_MWA))
    items = cells(row)["Observations"].find_all("li")
    assert [li.find("a", "obsid").text() + "=" + li.find("a", "obsname").text() for li in items] == [
        f"{fx.A}=Cal_PicA_Ch121", f"{fx.B}=Cal_PicA_Ch145"]
    for li, obsid in zip(items, (fx.A, fx.B)):
        sol = urlparse(li.find("a", "obsid").attrs["href"])
        assert sol.path == "get_cal_solution"
        assert parse_qs(sol.query) == {"obs_id": [str(obsid)], "prefer_fitid": [str(fx.F_MWA)],
                                       "max_time_separation": ["0"]}
        assert li.find("a", "obsname").attrs["href"] == f"https://obs.example.org/info?obs={obsid}"
        plots = li.find_all("a", "plot")
        assert [p.text() for p in plots] == ["tilediff", "timediff", "xydiff", "gains", "gaintimes", "phasefit"]
        for p in plots:
            u = urlparse(p.attrs["href"])
            assert u.path == f"plot/{p.text()}"
            assert parse_qs(u.query) == {"fitid": [str(fx.F_MWA)], "obsid": [str(obsid)]}


def test_the_range_selects_fits_by_observation_and_shows_all_their_observations(client):
    _, doc = get_page(client, f"start={fx.B - 5}&end={fx.B + 5}")  # only B is in range
    rows = fit_rows(doc)
    assert [cells(tr)["Fit ID"].text().strip() for tr in rows] == [str(fx.F_MWA)]
    assert len(cells(rows[0])["Observations"].find_all("li")) == 2  # A is shown too
    # AWST dates: 2026-03-18 is A and B (18:41 and 18:51 AWST), the calvin fit of A too
    _, doc = get_page(client, "start=2026-03-18&end=2026-03-18")
    assert {cells(tr)["Fit ID"].text().strip() for tr in fit_rows(doc)} == {str(fx.F_MWA), str(fx.F_CALVIN)}
    # the form shows the range back as AWST minutes
    assert doc.find("input", id="start").attrs["value"] == "2026-03-18T00:00"
    assert doc.find("input", id="end").attrs["value"] == "2026-03-18T23:59"


def test_observation_names_are_escaped(clean_db, aws):
    evil = '<script>alert("x")</script><img src=x onerror=alert(1)>&amp;'
    fx.seed({fx.A: evil})
    from app import app

    with Client(app) as c:
        r = c.http.get(f"/calib/summary?{ALL}")
        fitr = c.http.get(f"/calib/fit?fitid={fx.F_CALVIN}")
    for body in (r.body.decode(), fitr.body.decode()):
        assert "<script>" not in body and "<img src=x" not in body
        assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;&amp;amp;" in body
    doc = fx.parse_html(r.body.decode())
    assert evil in [a.text() for a in doc.find_all("a", "obsname")]


def test_paging(client):
    _, doc = get_page(client, ALL + "&per_page=3")
    assert len(fit_rows(doc)) == 3
    assert "7 fits" in doc.find("p", id="range-note").text()
    nav = doc.find("nav", "pager")
    nxt = nav.find("a", rel="next").attrs["href"]
    q = parse_qs(urlparse(nxt).query)
    assert q["page"] == ["2"] and q["per_page"] == ["3"]
    _, doc2 = get_page(client, urlparse(nxt).query)
    ids2 = [cells(tr)["Fit ID"].text().strip() for tr in fit_rows(doc2)]
    assert ids2 == [str(fx.F_C_CALVIN), str(fx.F_C_MWA), str(fx.F_D)]
    _, doc3 = get_page(client, ALL + "&per_page=3&page=3")
    assert [cells(tr)["Fit ID"].text().strip() for tr in fit_rows(doc3)] == [str(fx.F_E)]
    assert not doc3.find("nav", "pager").find_all("a", rel="next")
    r, doc9 = get_page(client, ALL + "&per_page=3&page=9")  # past the end: no rows, still 200
    assert r.status_code == 200 and not doc9.find_all("table", id="fits")


def test_default_range_is_the_last_7_days(clean_db, aws):
    from chalicelib.summary import views

    fx.seed()
    now = datetime(2026, 3, 18, 11, 0, tzinfo=timezone.utc)  # 19:00 AWST, 19 min after A
    r = views.summary_page({}, now=now)
    doc = fx.parse_html(r.body)
    ids = {int(cells(tr)["Fit ID"].text().strip()) for tr in fit_rows(doc)}
    assert ids == {fx.F_MWA, fx.F_CALVIN, fx.F_C_MWA, fx.F_C_CALVIN}  # not D (10 d ago) nor G (tomorrow)
    assert doc.find("input", id="start").attrs["value"] == "2026-03-11T19:00"
    assert doc.find("input", id="end").attrs["value"] == "2026-03-18T19:00"


def test_no_parameters_use_now(client):
    r, doc = get_page(client, "")
    assert r.status_code == 200
    assert doc.find("input", id="start").attrs["value"]  # some time 7 days ago, whatever today is


@pytest.mark.parametrize("query, field", [
    ("start=yesterday", "start"), ("end=2026-02-30", "end"),
    (f"start={fx.G}&end={fx.A}", "start"), ("per_page=0", "per_page"), ("page=-1", "page"),
])
def test_bad_form_values_are_400_html_naming_the_field(client, query, field):
    r, doc = get_page(client, query)
    assert r.status_code == 400
    assert r.headers["Content-Type"].startswith("text/html")
    assert field in doc.find("p", "error").text()
    assert doc.find("form")  # the form is still there to correct it


@pytest.mark.parametrize("query, field, raw", [
    ("start=yesterday&end=2026-03-18T23:59", "start", "yesterday"),
    ("start=2026-03-12T00:00&end=2026-02-30", "end", "2026-02-30"),
    ('start="><script>alert(1)</script>', "start", '"><script>alert(1)</script>'),
    ("start=2026-03-19T00:00&end=2026-03-18T00:00", "start", "2026-03-19T00:00"),
])
def test_the_field_at_fault_is_marked_and_shows_what_was_sent(client, query, field, raw):
    from urllib.parse import quote

    r, doc = get_page(client, "&".join(f"{k}={quote(v)}" for k, v in (p.split("=", 1) for p in query.split("&"))))
    assert r.status_code == 400
    body = r.body.decode()
    assert "<script>" not in body  # the refused value is escaped wherever it is shown
    assert doc.find("title").text().startswith("Error")
    inputs = {i.attrs["name"]: i for i in doc.find("form").find_all("input")}
    bad = inputs[field]
    assert bad.attrs["aria-invalid"] == "true" and bad.attrs["value"] == raw
    message = doc.find("p", id=bad.attrs["aria-describedby"])
    assert raw[:40] in message.text() and field in message.text()
    # a value a date-time input would drop is shown in a text field; a well-formed one stays a date-time
    assert bad.attrs["type"] == ("datetime-local" if raw.startswith("2026-03-") else "text")
    other = inputs["end" if field == "start" else "start"]
    assert "aria-invalid" not in other.attrs


def test_a_bad_page_number_shows_the_value_without_marking_a_field(client):
    r, doc = get_page(client, "page=-1")
    assert r.status_code == 400
    assert "-1" in doc.find("p", "error").text()
    assert not [i for i in doc.find("form").find_all("input") if "aria-invalid" in i.attrs]


def test_pages_skip_to_the_table_and_describe_themselves(client):
    _, doc = get_page(client, ALL)
    skip = doc.find("body").find_all("a")[0]
    assert skip.attrs["href"] == "#fits" and doc.find("table", id="fits")
    assert len(doc.find("meta", name="description").attrs["content"]) > 40
    _, empty = get_page(client, "start=0&end=0")  # no fits: the skip link goes to the content
    assert empty.find("body").find_all("a")[0].attrs["href"] == "#main" and empty.find("main", id="main")


def test_the_data_set_is_what_the_doc_says(clean_db):
    from chalicelib import db

    fx.seed()
    n = db.query("SELECT count(*) AS n FROM calibration_fits")[0]["n"]
    assert n == len(fx.FITS)
    r = db.query("SELECT x_delay_m, y_delay_m FROM calibration_solutions WHERE fitid = :f AND obsid = :o"
                 " AND tileid = 12", {"f": fx.F_MWA, "o": fx.B})[0]
    assert r["x_delay_m"] == 0.12 + 0.06 and r["y_delay_m"] == -0.06 + 0.03
    assert not db.query("SELECT 1 FROM observation_tile WHERE tileid = :t", {"t": fx.LOOSE})
    assert not db.query("SELECT 1 FROM calibration_solutions WHERE fitid = :f AND tileid = :t",
                        {"f": fx.F_CALVIN, "t": fx.MISSING_IN_CALVIN})
