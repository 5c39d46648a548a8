"""The plot routes: PNGs rendered once, kept in the products bucket, served as a 302; cache keys.

Hand-built data (summary_fixtures): 17 tiles on two receivers plus one without a receiver.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import numpy as np
import pytest
from chalice.test import Client

from chalicelib.plots import KINDS
from tests import summary_fixtures as fx
from tests.plot_images import check_png, key_of

PROJECT = Path(__file__).resolve().parent.parent
DAY = 86400


@pytest.fixture
def client(clean_db, aws):
    fx.seed()
    from app import app

    with Client(app) as c:
        yield c


def fetch(aws, key: str) -> tuple[bytes, str]:
    obj = aws["s3"].get_object(Bucket="test-products", Key=key)
    return obj["Body"].read(), obj["ContentType"]


def plot(client, kind: str, fitid: int, obsid: int | None = None, extra: str = ""):
    q = f"fitid={fitid}" + (f"&obsid={obsid}" if obsid is not None else "") + extra
    return client.http.get(f"/calib/plot/{kind}?{q}")


@pytest.mark.parametrize("kind", KINDS)
def test_each_plot_is_a_redirect_to_a_stored_png(client, aws, kind):
    r = plot(client, kind, fx.F_CALVIN, fx.A)
    assert r.status_code == 302
    loc = r.headers["Location"]
    q = parse_qs(urlparse(loc).query)
    assert "X-Amz-Signature" in q and q["response-content-type"] == ["image/png"]
    key = key_of(loc)
    assert key.startswith(f"plots/v2/{kind}/{fx.A}/{fx.F_CALVIN}/") and key.endswith("/1440px.png")
    png, ctype = fetch(aws, key)
    assert ctype == "image/png"
    # calvin fits are drawn red (X) and orange (Y), xydiff in the X colour only; the window plots
    # show mwa fits (blue X) in the history too
    colours = ("#d62728",) + (("#ff8c00",) if kind != "xydiff" else ()) + (
        ("#1f5fbf",) if kind in ("timediff", "gaintimes", "xydiff") else ())
    check_png(png, colours=colours)


def test_cache_keys_follow_what_each_plot_depends_on(client):
    keys = {k: key_of(plot(client, k, fx.F_CALVIN, fx.A).headers["Location"]) for k in KINDS}
    assert keys["tilediff"] == f"plots/v2/tilediff/{fx.A}/{fx.F_CALVIN}/1440px.png"
    assert keys["gains"] == f"plots/v2/gains/{fx.A}/{fx.F_CALVIN}/1440px.png"
    # window plots: n fits in the window + digest; 4 fits in [A - 7 d, A], 5 in [A - 30 d, A]
    assert keys["timediff"].startswith(f"plots/v2/timediff/{fx.A}/{fx.F_CALVIN}/w4-")
    assert keys["gaintimes"].startswith(f"plots/v2/gaintimes/{fx.A}/{fx.F_CALVIN}/w4-")
    assert keys["xydiff"].startswith(f"plots/v2/xydiff/{fx.A}/{fx.F_CALVIN}/w5-")
    older = {k: key_of(plot(client, k, fx.F_C_CALVIN, fx.C).headers["Location"]) for k in KINDS}

    # a new fit of an observation 1 day before A: in A's windows, not in C's (C is 2 days earlier)
    from chalicelib import db
    from chalicelib.db import writes
    from chalicelib.records import Fit, Observation

    new_obs = fx.A - DAY
    with db.transaction() as tx:
        writes.insert_observation(tx, Observation(obsid=new_obs, stoptime=new_obs + 120, obsname="Cal_New",
                                                  channels=fx.CONTIGUOUS, gain_control_value=1.0, calibration=True,
                                                  tiles=fx.tiles()))
        writes.insert_fit(tx, Fit(fitid=1773750000000000, obsid=new_obs, fit_time=None, creator="calvin"),
                          fx.rows(fx.F_CALVIN, fx.A))
    after = {k: key_of(plot(client, k, fx.F_CALVIN, fx.A).headers["Location"]) for k in KINDS}
    assert after["tilediff"] == keys["tilediff"] and after["gains"] == keys["gains"]
    for k in ("timediff", "gaintimes", "xydiff"):
        assert after[k] != keys[k], k
    assert after["timediff"].startswith(f"plots/v2/timediff/{fx.A}/{fx.F_CALVIN}/w5-")
    assert {k: key_of(plot(client, k, fx.F_C_CALVIN, fx.C).headers["Location"]) for k in KINDS} == older


def test_a_stored_plot_is_not_rendered_again(client, aws, monkeypatch):
    from chalicelib.plots import service

    first = plot(client, "timediff", fx.F_CALVIN, fx.A)
    monkeypatch.setattr(service, "render", lambda *a: pytest.fail("rendered again"))
    again = plot(client, "timediff", fx.F_CALVIN, fx.A)
    assert again.status_code == 302 and key_of(again.headers["Location"]) == key_of(first.headers["Location"])
    # an expired object (lifecycle rule) is rendered again
    monkeypatch.undo()
    aws["s3"].delete_object(Bucket="test-products", Key=key_of(first.headers["Location"]))
    assert plot(client, "timediff", fx.F_CALVIN, fx.A).status_code == 302
    assert fetch(aws, key_of(first.headers["Location"]))[0][:4] == b"\x89PNG"


def test_forgetting_an_observation_drops_only_its_plots(client, aws):
    from chalicelib.plots import service

    a = key_of(plot(client, "tilediff", fx.F_CALVIN, fx.A).headers["Location"])
    c = key_of(plot(client, "tilediff", fx.F_C_CALVIN, fx.C).headers["Location"])
    assert service.forget_observation(fx.A) == 3  # the plot at each of its three widths
    keys = [o["Key"] for o in aws["s3"].list_objects_v2(Bucket="test-products").get("Contents", [])]
    assert a not in keys and c in keys and len(keys) == 3


def png_image(png: bytes):
    from PIL import Image

    return Image.open(io.BytesIO(png))


def test_each_width_is_the_same_drawing_scaled_and_all_come_from_one_render(client, aws, monkeypatch):
    from PIL import Image

    from chalicelib.plots import service

    calls = []
    real_render = service.render
    monkeypatch.setattr(service, "render", lambda *a: calls.append(a[0]) or real_render(*a))
    r = plot(client, "timediff", fx.F_CALVIN, fx.A, "&width=480")
    assert r.status_code == 302 and key_of(r.headers["Location"]).endswith("/480px.png")
    full_key = key_of(plot(client, "timediff", fx.F_CALVIN, fx.A).headers["Location"])
    mid_key = key_of(plot(client, "timediff", fx.F_CALVIN, fx.A, "&width=960").headers["Location"])
    assert calls == ["timediff"]  # one drawing, stored at every width
    full = png_image(fetch(aws, full_key)[0]).convert("RGB")
    assert full.width == 1440
    for key, width in ((key_of(r.headers["Location"]), 480), (mid_key, 960)):
        png, ctype = fetch(aws, key)
        im = png_image(png)
        assert ctype == "image/png" and im.mode == "P" and len(im.getcolors(256) or []) <= 256  # a palette PNG
        assert im.width == width and abs(im.height - full.height * width / 1440) <= 0.5
        # the same picture: the full drawing shrunk here with another filter differs by little
        ours = np.asarray(im.convert("RGB"), dtype=float)
        box = np.asarray(full.resize(im.size, Image.Resampling.BOX), dtype=float)
        assert np.abs(ours - box).mean() < 6, key
        assert len(png) < len(fetch(aws, full_key)[0]) * (0.35 if width == 480 else 0.85)


@pytest.mark.parametrize("width", ["500", "0", "-480", "abc", "1440.0", "99999999999999999999"])
def test_a_width_not_served_is_a_400_naming_width(client, width):
    r = plot(client, "tilediff", fx.F_CALVIN, fx.A, f"&width={width}")
    assert r.status_code == 400, width
    body = json.loads(r.body)
    assert body["parameter"] == "width" and body["error"] == "bad_request"


def test_openapi_describes_the_width(client):
    from chalicelib import openapi
    from chalicelib.plots import pngs

    doc = json.loads(client.http.get("/calib/openapi.json").body)
    params = {p["name"]: p for p in doc["paths"]["/calib/plot/{kind}"]["get"]["parameters"]}
    assert params["width"]["schema"]["enum"] == list(pngs.WIDTHS) and params["width"]["schema"]["default"] == 1440
    assert openapi.PLOT_WIDTHS == pngs.WIDTHS


def test_plot_data_as_json(client):
    r = plot(client, "timediff", fx.F_CALVIN, fx.A, "&format=json")
    assert r.status_code == 200
    body = json.loads(r.body)
    t = {t["tileid"]: t for t in body["tiles"]}
    assert t[12]["x"] == 0.12 and t[fx.FLAGGED]["x"] is None and t[fx.FLAGGED]["flagged"] is True
    assert t[12]["history"]["fitid"] == [fx.F_C_MWA, fx.F_C_CALVIN, fx.F_MWA]
    assert body["meta"]["obsname"] == "Cal_PicA_Ch121" and body["meta"]["ran_awst"] == "2026-03-18 19:03"


def test_plot_parameters(client):
    assert plot(client, "nosuchplot", fx.F_CALVIN, fx.A).status_code == 404
    assert client.http.get("/calib/plot/tilediff").status_code == 400
    assert plot(client, "tilediff", 12345, fx.A).status_code == 404
    assert plot(client, "tilediff", fx.F_CALVIN, fx.B).status_code == 404  # that fit is of A only
    r = plot(client, "tilediff", fx.F_MWA)  # two observations: which one?
    assert r.status_code == 400 and json.loads(r.body)["parameter"] == "obsid"
    r = plot(client, "tilediff", fx.F_CALVIN)  # one observation: no need to say
    assert r.status_code == 302 and f"/{fx.A}/" in r.headers["Location"]


def test_importing_the_app_does_not_import_matplotlib():
    code = "import sys, app; print('matplotlib' in sys.modules, 'jinja2' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=PROJECT, capture_output=True, text=True, timeout=60,
                         env={"POWERTOOLS_SERVICE_NAME": "t", "POWERTOOLS_METRICS_NAMESPACE": "t",
                              "POWERTOOLS_TRACE_DISABLED": "true", "AWS_DEFAULT_REGION": "ap-southeast-2",
                              "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "False"]
