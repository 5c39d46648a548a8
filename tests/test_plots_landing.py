"""A fit's plots are drawn when it lands, so its fit page's first view finds them stored.

The real hyperdrive fit of obs 1369821496 (../shared/fixtures/mwa) lands through the S3 event, as
in Lambda: by manifest, and as the site pipeline's ``<cal_id>_solutions.fits`` after its rows.
"""

from __future__ import annotations

import json
import re
from html import unescape
from urllib.parse import urljoin, urlsplit

import pytest
from chalice.test import Client

from chalicelib.plots import KINDS
from tests.real_fit import fixture_files
from tests.requests_support import s3_event

CAL = 1369821496
FITID = 1685856000123456
SITE_FITID = 1685856999000000
PREFIX = f"fits/{CAL}/{FITID}/"
WIDTHS = (480, 960, 1440)
IMMUTABLE = "public, max-age=31536000, immutable"


@pytest.fixture(autouse=True)
def drawing_at_landing(monkeypatch):
    """As deployed (the suite's default turns it off to keep other landings quick)."""
    monkeypatch.setenv("CALIB_PLOTS_AT_LANDING", "1")


def _land_manifest(aws) -> list[dict]:
    """Upload the real fit's files and then its manifest, and hand the manifest's S3 event to on_cal_file."""
    from app import app

    solutions, metafits = fixture_files()
    for path in [*solutions, metafits]:
        aws["s3"].put_object(Bucket="test-cal", Key=PREFIX + path.name, Body=path.read_bytes())
    manifest = {"solutions": [p.name for p in solutions], "metafits": metafits.name, "creator": "calvin",
                "finished_datetime": "2023-06-04T05:20:00Z"}
    aws["s3"].put_object(Bucket="test-cal", Key=PREFIX + "manifest.json", Body=json.dumps(manifest).encode())
    return app.handler_map["on_cal_file"](s3_event(PREFIX + "manifest.json"), None)


def _stored_plots(aws, fitid: int) -> dict[str, list[str]]:
    """The products bucket's plot keys of the fit's observation, by kind."""
    out: dict[str, list[str]] = {}
    for o in aws["s3"].list_objects_v2(Bucket="test-products", Prefix="plots/").get("Contents", []):
        kind, obsid, fit = o["Key"].split("/")[2:5]
        if (int(obsid), int(fit)) == (CAL, fitid):
            out.setdefault(kind, []).append(o["Key"])
    return out


def _page_plot_urls(client, fitid: int) -> list[str]:
    """Every plot URL the fit page's <img srcset> asks for."""
    r = client.http.get(f"/calib/fit?fitid={fitid}")
    assert r.status_code == 200
    html = r.body.decode()
    urls = [urljoin("/calib/fit", unescape(u.rsplit(" ", 1)[0])) for s in re.findall(r'srcset="([^"]+)"', html) for u in s.split(", ")]
    assert len(urls) == len(KINDS) * len(WIDTHS)
    return urls


def _no_drawing(monkeypatch) -> None:
    from chalicelib.plots import service

    monkeypatch.setattr(service, "render", lambda *a: pytest.fail("a plot was drawn on a page view"))


def test_a_landed_fit_has_every_plot_stored_before_any_view(clean_db, aws, monkeypatch):
    [report] = _land_manifest(aws)
    assert report["success"] is True and report["ingest"]["written"] is True
    assert (report["plots"]["drawn"], report["plots"]["failed"]) == (len(KINDS), 0)

    stored = _stored_plots(aws, FITID)
    assert sorted(stored) == sorted(KINDS)
    for kind, keys in stored.items():
        assert sorted(int(k.rsplit("/", 1)[1].removesuffix("px.png")) for k in keys) == sorted(WIDTHS), kind
        for key in keys:
            obj = aws["s3"].get_object(Bucket="test-products", Key=key)
            assert obj["CacheControl"] == IMMUTABLE and obj["ContentType"] == "image/png"
            assert obj["Body"].read()[:8] == b"\x89PNG\r\n\x1a\n"

    # the first view: every plot the page asks for is a redirect to one of them, none drawn now
    _no_drawing(monkeypatch)
    from app import app

    all_keys = {k for keys in stored.values() for k in keys}
    with Client(app) as client:
        for url in _page_plot_urls(client, FITID):
            r = client.http.get(url)
            assert r.status_code == 302, url
            assert urlsplit(r.headers["Location"]).path.lstrip("/") in all_keys
            assert r.headers["Cache-Control"].startswith("public, max-age=")


def test_a_repeated_landing_draws_nothing_again(clean_db, aws, monkeypatch):
    _land_manifest(aws)
    _no_drawing(monkeypatch)
    from app import app

    [again] = app.handler_map["on_cal_file"](s3_event(PREFIX + "manifest.json"), None)
    assert again["ingest"]["written"] is False
    assert (again["plots"]["drawn"], again["plots"]["stored"], again["plots"]["failed"]) == (0, len(KINDS), 0)


def test_a_plot_that_cannot_be_drawn_never_fails_the_landing(clean_db, aws, callback_env, receiver, monkeypatch):
    from app import app
    from chalicelib import db
    from chalicelib.plots import service
    from tests.requests_support import sqs_record

    msg = {"version": 1, "request_key": "req-1", "obs_id": CAL, "cal_id": CAL, "asvo_job_id": 7,
           "callback_url": receiver.url}
    app.handler_map["store_request"]({"Records": [sqs_record(msg, "m-req-1")]}, None)

    def broken(kind, data):
        raise RuntimeError("matplotlib fell over")

    monkeypatch.setattr(service, "render", broken)
    [report] = _land_manifest(aws)
    assert report["success"] is True and report["ingest"]["rows"] == 144
    assert (report["plots"]["drawn"], report["plots"]["failed"]) == (0, len(KINDS))
    assert db.query("SELECT count(*) AS n FROM calibration_solutions WHERE fitid = :f", {"f": FITID})[0]["n"] == 144
    [sent] = receiver.successes()
    assert sent.json()["success"] is True
    assert _stored_plots(aws, FITID) == {}

    monkeypatch.undo()  # the page then draws it on demand, as before
    with Client(app) as client:
        r = client.http.get(f"/calib/plot/gains?fitid={FITID}&obsid={CAL}&width=480")
    assert r.status_code == 302 and sorted(_stored_plots(aws, FITID)) == ["gains"]


def test_the_site_pipelines_landing_draws_its_plots_after_its_rows(clean_db, aws):
    from app import app
    from chalicelib.formats.metafits import observation_from_metafits, read_metafits
    from chalicelib.ingest.fit_inputs import load_fit_inputs
    from chalicelib.ingest.fitting import fit_result
    from chalicelib.ingest.store import fit_record, store_fit

    solutions, metafits = fixture_files()
    key = f"fits/{CAL}/{SITE_FITID}/{CAL}_solutions.fits"
    one = next(p for p in solutions if "_ch100_" in p.name)
    aws["s3"].put_object(Bucket="test-cal", Key=key, Body=one.read_bytes())
    # before its rows are written the landing draws nothing (and still succeeds)
    [early] = app.handler_map["on_cal_file"](s3_event(key), None)
    assert early["success"] is True and early["plots"]["drawn"] == 0 and _stored_plots(aws, SITE_FITID) == {}

    result = fit_result(load_fit_inputs(solutions, metafits))
    store_fit(fit_record(None, fitid=SITE_FITID, obsid=CAL, creator="mwa"), result.rows(),
              observation_from_metafits(read_metafits(metafits)))
    [report] = app.handler_map["on_cal_file"](s3_event(key), None)
    assert (report["plots"]["drawn"], report["plots"]["failed"]) == (len(KINDS), 0)
    assert sorted(_stored_plots(aws, SITE_FITID)) == sorted(KINDS)


def test_a_failed_fit_draws_nothing(clean_db, aws):
    from app import app

    key = f"fits/{CAL}/{FITID}/{CAL}_error.json"
    aws["s3"].put_object(Bucket="test-cal", Key=key, Body=json.dumps({"message": "hyperdrive: out of memory"}).encode())
    [report] = app.handler_map["on_cal_file"](s3_event(key), None)
    assert report["success"] is False and "plots" not in report


def test_with_drawing_at_landing_off_a_landing_draws_nothing(clean_db, aws, monkeypatch):
    monkeypatch.setenv("CALIB_PLOTS_AT_LANDING", "0")
    [report] = _land_manifest(aws)
    assert report["success"] is True and "plots" not in report
    assert _stored_plots(aws, FITID) == {}

