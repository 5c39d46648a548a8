"""GET /calib/compare?format=png: the comparison plot, stored once at every width, its data from the table rows.

The plotted values are checked against the domain.md formula (phi = intercept - 2 pi nu delay / c,
J = exp(i phi) / G) evaluated here on the seeded rows, not against the service's own rebuild.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from chalice.test import Client

from tests.factories import N_CHAN, fit, observation, seed, solution_rows, tiles
from tests.plot_images import key_of

C = 299792458.0
TARGET, CAL = 1_400_000_000, 1_400_000_600
FIT_A, FIT_B = 1_700_000_000_000_000, 1_700_000_100_000_000
CHANNELS = list(range(109, 133))
FLAGGED, NAN_TILE = 17, 14


@pytest.fixture
def client(clean_db, aws):
    from app import app

    ts = tiles(8, flagged=(FLAGGED,))
    ids = [t.tile_id for t in ts]
    seed([observation(TARGET, tiles=ts), observation(CAL, calibration=True, tiles=ts)],
         [(fit(FIT_A, CAL), solution_rows(ids, delay_scale=2.0, nan_tiles=(NAN_TILE,))),
          (fit(FIT_B, CAL), solution_rows(ids, y_gain_slope=0.05))])
    with Client(app) as c:
        yield c


def image(aws, key: str):
    from PIL import Image

    body = aws["s3"].get_object(Bucket="test-products", Key=key)["Body"].read()
    assert body[:8] == b"\x89PNG\r\n\x1a\n"
    return Image.open(io.BytesIO(body)).convert("RGB")


def query(extra: str = "") -> str:
    return f"/calib/compare?obsid_a={CAL}&fitid_a={FIT_A}&obsid_b={CAL}&fitid_b={FIT_B}{extra}"


def has_colour(im, hexcol: str, at_least: int = 20) -> bool:
    px = np.asarray(im).reshape(-1, 3).astype(int)
    rgb = np.array([int(hexcol[i:i + 2], 16) for i in (1, 3, 5)])
    return int((np.abs(px - rgb).sum(axis=1) < 20).sum()) >= at_least


def test_the_png_is_drawn_once_stored_at_every_width_and_redirected(client, aws, monkeypatch):
    r = client.http.get(query("&format=png"))
    assert r.status_code == 302, r.body
    key = key_of(r.headers["Location"])
    assert "X-Amz-Signature" in r.headers["Location"]
    # the key names side a's observation, both calibrators and both fits, and a drawing version
    assert key == f"plots/compare/v2/{CAL}/a{CAL}-{CAL}-{FIT_A}/b{CAL}-{CAL}-{FIT_B}/1440px.png"
    full = image(aws, key)
    assert full.width == 1440 and full.height > 600
    assert has_colour(full, "#1f5fbf") and has_colour(full, "#2ca02c")  # XX and YY lines
    assert has_colour(full, "#f8d7d4", 200)  # the flagged tile's band

    from chalicelib.compare import plot

    monkeypatch.setattr(plot, "render", lambda *a: pytest.fail("drawn again"))
    small = client.http.get(query("&format=png&width=480"))
    assert small.status_code == 302 and key_of(small.headers["Location"]).endswith("/480px.png")
    im = image(aws, key_of(small.headers["Location"]))
    assert im.width == 480 and im.height == round(full.height * 480 / 1440)
    # kept by browsers like the fit plots: the stored objects are immutable, the redirect cacheable
    for k in (key, key_of(small.headers["Location"])):
        assert aws["s3"].get_object(Bucket="test-products", Key=k)["CacheControl"] == \
            "public, max-age=31536000, immutable"
    assert small.headers["Cache-Control"].startswith("public, max-age=")
    again = client.http.get(query("&format=png&width=480"))
    assert again.headers["Location"] == small.headers["Location"]


def test_a_served_side_is_named_by_the_fit_chosen_for_it(client, aws):
    r = client.http.get(f"/calib/compare?obsid_a={TARGET}&obsid_b={CAL}&fitid_b={FIT_A}&format=png&width=960")
    assert r.status_code == 302, r.body
    # the target is served FIT_B (it ran later); the plot is on the target's tiles
    assert key_of(r.headers["Location"]) == (f"plots/compare/v2/{TARGET}/a{TARGET}-{CAL}-{FIT_B}/"
                                             f"b{CAL}-{CAL}-{FIT_A}/960px.png")
    assert image(aws, key_of(r.headers["Location"])).width == 960


def expected(k: int, nu: np.ndarray, coarse: np.ndarray) -> dict[str, np.ndarray]:
    """|J_a|/|J_b| and arg(J_a conj J_b) (deg) of tile k from factories.solution_row's values, by domain.md."""
    def jones(delay, intercept, gains):
        return np.exp(1j * (intercept - 2 * np.pi * nu * delay / C)) / gains[coarse]

    a_x = jones(2.0 * 0.5 * k, 0.1 * k, np.array([1.0 + 0.01 * c for c in range(N_CHAN)]))
    a_y = jones(-0.25 * k, -0.05 * k, np.full(N_CHAN, 2.0))
    b_x = jones(0.5 * k, 0.1 * k, np.array([1.0 + 0.01 * c for c in range(N_CHAN)]))
    b_y = jones(-0.25 * k, -0.05 * k, np.array([2.0 + 0.05 * c for c in range(N_CHAN)]))
    return {"ratio_xx": np.abs(a_x) / np.abs(b_x), "ratio_yy": np.abs(a_y) / np.abs(b_y),
            "phase_xx_deg": np.degrees(np.angle(a_x * np.conj(b_x))),
            "phase_yy_deg": np.degrees(np.angle(a_y * np.conj(b_y)))}


def test_the_plotted_ratio_and_phase_are_the_rows_by_the_domain_formula(client):
    from chalicelib.compare import api

    q = {"obsid_a": str(CAL), "fitid_a": str(FIT_A), "obsid_b": str(CAL), "fitid_b": str(FIT_B)}
    data = api.plot_data(*api.sides(q))
    # 8 fine channels of 160 kHz per coarse channel n: n * 1.28 MHz - 640 kHz + i * 160 kHz
    nu = np.array([n * 1.28e6 - 640e3 + i * 160e3 for n in CHANNELS for i in range(8)])
    coarse = np.repeat(np.arange(N_CHAN), 8)
    assert np.allclose(data["freq_mhz"], nu / 1e6)
    assert [(t["tileid"], t["rx"], t["slot"]) for t in data["tiles"]] == [(11 + i, 1, 1 + i) for i in range(8)]
    for k, t in enumerate(data["tiles"]):
        if t["tileid"] == NAN_TILE:  # failed in fit a: no value, marked no data
            assert t["no_data"]
            assert np.isnan(t["ratio_xx"]).all() and np.isnan(t["phase_yy_deg"]).all()
            continue
        assert not t["no_data"] and t["flagged"] == (t["tileid"] == FLAGGED)
        want = expected(k, nu, coarse)
        for key in ("ratio_xx", "ratio_yy"):
            assert np.allclose(t[key], want[key], rtol=1e-9), (t["tileid"], key)
        for key in ("phase_xx_deg", "phase_yy_deg"):
            diff = (np.asarray(t[key]) - want[key] + 180.0) % 360.0 - 180.0
            assert np.abs(diff).max() < 1e-6, (t["tileid"], key)
    # the plot's direction (a over b, as the JSON) is spelled out in its data
    assert data["values"]["ratio"] == "|J_a|/|J_b|"


def test_the_figure_grows_a_row_per_four_receivers():
    from chalicelib.compare import plot
    from chalicelib.solutions import TileInfo

    def drawn(n_tiles: int):
        from PIL import Image

        ts = [TileInfo(antenna=i, tile_id=100 + i, name=f"Tile{100 + i}", rx=1 + i // 8, slot=1 + i % 8)
              for i in range(n_tiles)]
        freqs = np.arange(4) * 1.28e6 + 150e6
        j = np.ones((n_tiles, 4, 4), complex)
        side = api_side()
        data = plot.compute(ts, 2 * j, j, freqs, a=side, b=side, channels=[117, 118, 119, 120])
        assert all(np.allclose(t["ratio_xx"], 2.0) for t in data["tiles"])
        with Image.open(io.BytesIO(plot.render(data))) as im:
            return im.size

    one, four, five = drawn(8), drawn(32), drawn(33)
    assert one == four  # up to 4 receivers side by side in a row
    assert five[0] == 1440 and five[1] > four[1]  # a fifth receiver starts a second row in both figures


def api_side():
    from chalicelib.compare.api import Side

    return Side(fitid=FIT_A, cal_obsid=CAL, cal_stoptime=CAL + 120, cal_channels=tuple(CHANNELS), obsid=CAL,
                served=False)


@pytest.mark.parametrize("extra,name", [("&format=gif", "format"), ("&format=png&width=7", "width"),
                                        ("&width=7", "width"), ("&format=", "format")])
def test_bad_format_or_width_is_a_400_naming_it(client, extra, name):
    r = client.http.get(query(extra))
    assert r.status_code == 400, r.body
    assert json.loads(r.body)["parameter"] == name


def test_the_openapi_document_offers_the_plot_and_its_widths():
    from chalicelib import openapi
    from chalicelib.compare import api
    from chalicelib.plots import pngs

    op = openapi.document()["paths"]["/calib/compare"]["get"]
    schema = {p["name"]: p["schema"] for p in op["parameters"]}
    assert tuple(schema["format"]["enum"]) == api.FORMATS == ("json", "png")
    assert tuple(schema["width"]["enum"]) == pngs.WIDTHS and schema["width"]["default"] == 1440
    assert "302" in op["responses"]


def test_the_fit_page_offers_each_comparison_as_a_plot(clean_db, aws):
    from urllib.parse import parse_qs, urlsplit

    from app import app
    from tests import summary_fixtures as fx

    fx.seed()
    with Client(app) as c:
        doc = fx.parse_html(c.http.get(f"/calib/fit?fitid={fx.F_CALVIN}").body.decode())
        plots = [a.attrs["href"] for a in doc.find_all("a", "compare-plot")]
        tables = [a.attrs["href"] for a in doc.find_all("a", "compare")]
        assert len(plots) == len(tables) == 2
        for table, href in zip(tables, plots):
            assert parse_qs(urlsplit(href).query) == {**parse_qs(urlsplit(table).query), "format": ["png"]}
        r = c.http.get("/calib/" + plots[0])
        assert r.status_code == 302, r.body
        k = key_of(r.headers["Location"])
        assert k == f"plots/compare/v2/{fx.A}/a{fx.A}-{fx.A}-{fx.F_CALVIN}/b{fx.A}-{fx.A}-{fx.F_MWA}/1440px.png"
        assert image(aws, k).width == 1440
