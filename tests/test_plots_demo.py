"""The pages and plots on realistic data: devstack.demo (8 days, the real 256-tile array, the real
fit 1773831785589944), checked against numbers computed here from the generated records
(DemoData), not read back from the database.
"""

from __future__ import annotations

import io
import json
import math
from datetime import timedelta, timezone

import numpy as np
import pytest

from chalicelib.plots import KINDS
from tests.plot_images import check_png, key_of

DAY = 86400
AWST = timezone(timedelta(hours=8))


@pytest.fixture
def client(demo_client):
    return demo_client


def fit_rows(data, fitid):
    """(Fit, rows, Observation) of every observation of a fit, from the generated records."""
    obs = {o.obsid: o for o in data.observations}
    return [(f, rows, obs[f.obsid]) for f, rows in (data.fits[i] for i, s in enumerate(data.fits.specs)
                                                    if s.fit.fitid == fitid)]


def test_summary_page_lists_exactly_the_fits_of_the_range(client, demo_data):
    from tests.summary_fixtures import parse_html

    lo, hi = demo_data.end_gps - 7 * DAY, demo_data.end_gps
    want = {}
    for s in demo_data.fits.specs:
        if lo <= s.fit.obsid <= hi:
            want[s.fit.fitid] = s.fit
    seen = {}
    page = 1
    while True:
        doc = parse_html(client.http.get(f"/calib/summary?start={lo}&end={hi}&per_page=20&page={page}").body.decode())
        rows = doc.find_all("table", id="fits")
        if not rows:
            break
        for tr in rows[0].find("tbody").find_all("tr"):
            cells = {td.attrs["data-label"]: td for td in tr.find_all("td")}
            seen[int(cells["Fit ID"].text().strip())] = (cells["Fit ran (AWST)"].text().strip(),
                                                         cells["Creator"].text().strip())
        page += 1
    assert set(seen) == set(want)
    for fitid, (ran, creator) in seen.items():
        fit = want[fitid]
        assert ran == fit.fit_time.astimezone(AWST).strftime("%Y-%m-%d %H:%M:%S"), fitid
        assert creator == fit.creator


def test_fit_page_medians_of_the_real_fit(client, demo_data):
    from devstack.demo import REAL_FITID

    body = json.loads(client.http.get(f"/calib/fit?fitid={REAL_FITID}&format=json").body)
    (fit, rows, obs), = fit_rows(demo_data, REAL_FITID)
    rx_of = {t.tile_id: t.rx for t in obs.tiles}
    xs: dict[int, list[float]] = {}
    ys: dict[int, list[float]] = {}
    for r in rows:
        if not math.isnan(r.x_delay_m):
            xs.setdefault(rx_of[r.tileid], []).append(r.x_delay_m)
        if not math.isnan(r.y_delay_m):
            ys.setdefault(rx_of[r.tileid], []).append(r.y_delay_m)
    got = {r["rx"]: r for r in body["receivers"]}
    assert set(got) == {t.rx for t in obs.tiles}
    for rx, row in got.items():
        x, y = xs.get(rx, []), ys.get(rx, [])
        assert row["n_x"] == len(x) and row["n_y"] == len(y)
        if x:
            assert row["median_x_m"] == pytest.approx(float(np.median(x)), abs=1e-12)
            assert row["median_xy_m"] == pytest.approx(float(np.median(x + y)), abs=1e-12)
    tiles = {t["tileid"]: t for t in body["tiles"]}
    assert len(tiles) == len(rows) == 256
    for r in rows[:40]:
        t = tiles[r.tileid]
        assert t["median_x_m"] == (None if math.isnan(r.x_delay_m) else pytest.approx(r.x_delay_m))
        assert t["n_x"] == (0 if math.isnan(r.x_delay_m) else 1)


def test_timediff_data_from_the_database_matches_the_generated_fits(client, demo_data):
    from devstack.demo import REAL_CAL_OBSID, REAL_FITID

    body = json.loads(client.http.get(f"/calib/plot/timediff?fitid={REAL_FITID}&obsid={REAL_CAL_OBSID}"
                                      "&format=json").body)
    got = {t["tileid"]: t for t in body["tiles"]}
    # independent: every other generated fit of an observation in [obsid - 7 d, obsid]
    window = [(f, rows) for f, rows in demo_data.fits
              if REAL_CAL_OBSID - 7 * DAY <= f.obsid <= REAL_CAL_OBSID
              and (f.fitid, f.obsid) != (REAL_FITID, REAL_CAL_OBSID)]
    assert window
    (fit, rows, obs), = fit_rows(demo_data, REAL_FITID)
    flagged = {t.tile_id for t in obs.tiles if t.flagged}
    assert {tid for tid, t in got.items() if t["flagged"]} == flagged
    for tile in sorted(got)[::37]:
        expect = []
        for f, rws in window:
            r = next((r for r in rws if r.tileid == tile), None)
            if r is not None and not (math.isnan(r.x_delay_m) and math.isnan(r.y_delay_m)):
                expect.append((REAL_CAL_OBSID - f.obsid, f.fitid, f.obsid, r.x_delay_m, f.creator))
        expect.sort(key=lambda e: (-e[0], e[1], e[2]))
        h = got[tile]["history"]
        assert h["fitid"] == [e[1] for e in expect], tile
        assert h["creator"] == [e[4] for e in expect]
        assert h["x"] == pytest.approx([e[3] for e in expect])
        assert h["age_s"] == [e[0] for e in expect]
        own = next(r for r in rows if r.tileid == tile)
        assert got[tile]["x"] == (None if math.isnan(own.x_delay_m) else pytest.approx(own.x_delay_m))


@pytest.mark.parametrize("kind", KINDS)
def test_every_plot_of_a_256_tile_fit(client, aws, demo_data, kind):
    from devstack.demo import REAL_CAL_OBSID, REAL_FITID

    r = client.http.get(f"/calib/plot/{kind}?fitid={REAL_FITID}&obsid={REAL_CAL_OBSID}")
    assert r.status_code == 302
    png = aws["s3"].get_object(Bucket="test-products", Key=key_of(r.headers["Location"]))["Body"].read()
    check_png(png, colours=("#d62728",), min_height=2000)  # 32 receivers: 8 rows of 4


@pytest.mark.parametrize("kind", ["tilediff", "gaintimes"])
def test_plots_of_a_128_tile_array(kind):
    """Straight from generated records (no database): 16 receivers in 4 rows."""
    from PIL import Image

    from chalicelib.plots import gaintimes, tilediff
    from devstack import demo

    data = demo.generate(days=3, n_tiles=128)
    fit, rows = data.fits[len(data.fits) - 1]
    obs = next(o for o in data.observations if o.obsid == fit.obsid)
    tiles = [{"tileid": t.tile_id, "tile_name": t.name, "rx": t.rx, "slot": t.slot, "flagged": t.flagged}
             for t in obs.tiles]
    sols = [{"tileid": r.tileid, "x_delay_m": r.x_delay_m, "y_delay_m": r.y_delay_m, "x_gains": r.x_gains,
             "y_gains": r.y_gains} for r in rows]
    if kind == "tilediff":
        d = tilediff.compute(tiles, sols, fitid=fit.fitid, obsid=fit.obsid, creator=fit.creator)
        png = tilediff.render(d)
    else:
        blocks = [{"fitid": f.fitid, "obsid": f.obsid, "creator": f.creator,
                   "tileid": [r.tileid for r in rs], "x_gains": [r.x_gains for r in rs],
                   "y_gains": [r.y_gains for r in rs]} for f, rs in data.fits]
        chans = {o.obsid: o.channels for o in data.observations}
        d = gaintimes.compute(tiles, sols, blocks, channels=obs.channels, channels_by_obs=chans, fitid=fit.fitid,
                              obsid=fit.obsid, creator=fit.creator)
        assert sum(len(t["history"]["fitid"]) for t in d["tiles"]) > 0
        png = gaintimes.render(d)
    assert len(d["tiles"]) == 128
    check_png(png, min_height=1000)
    assert Image.open(io.BytesIO(png)).size[1] < 1600  # 4 rows, not 8
