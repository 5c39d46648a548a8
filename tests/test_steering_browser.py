"""In a real browser (headless Debian chromium, as tests/test_summary_browser.py): a fit retired through the
local stack's admin route is struck through on the summary and fit pages, its reason visible."""

from __future__ import annotations

import http.client
from urllib.parse import urlencode, urlparse

from tests import test_summary_fixtures as fx
from tests.test_summary_browser import ARTIFACTS, browser, local_service  # noqa: F401 - the fixture

REASON = "receiver 3 cable fault during the fit"


def post(url: str) -> int:
    u = urlparse(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
    conn.request("POST", f"{u.path}?{u.query}")
    status = conn.getresponse().status
    conn.close()
    return status


def test_a_retired_fit_is_struck_through_with_its_reason(local_service):  # noqa: F811
    base = local_service
    assert post(f"{base}/calib/admin/retire?" + urlencode({"fitid": fx.F_CALVIN, "why": REASON})) == 200
    week = urlencode({"start": "2026-03-12T00:00", "end": "2026-03-18T23:59"})
    doc = fx.parse_html(browser(f"{base}/calib/summary?{week}"))
    struck = doc.find_all("del", "retired")
    assert [d.find("a", "fitid").text() for d in struck] == [str(fx.F_CALVIN)]
    assert struck[0].attrs["title"] == f"retired: {REASON}"
    reasons = [s.text() for s in doc.find_all("span", "retired-reason")]
    assert reasons == [f"retired: {REASON}"]
    # the other fits are not struck through
    assert {a.text() for a in doc.find_all("a", "fitid")} - {str(fx.F_CALVIN)} == {
        str(fx.F_MWA), str(fx.F_C_CALVIN), str(fx.F_C_MWA)}
    ARTIFACTS.mkdir(exist_ok=True)
    browser(f"{base}/calib/summary?{week}", screenshot=ARTIFACTS / "summary-retired.png", width=1280, height=1000)

    fit = fx.parse_html(browser(f"{base}/calib/fit?fitid={fx.F_CALVIN}"))
    assert fit.find("h1").find("del", "retired").text() == str(fx.F_CALVIN)
    assert REASON in fit.find("p", "retired-reason").text()
    other = fx.parse_html(browser(f"{base}/calib/fit?fitid={fx.F_MWA}"))
    assert other.find_all("del") == [] and other.find_all("p", "retired-reason") == []
