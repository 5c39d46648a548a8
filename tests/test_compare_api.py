"""GET /calib/compare end to end: two fits in the database, compared against Jones rebuilt independently here."""

from __future__ import annotations

import json

import numpy as np
import pytest
from chalice.test import Client

from tests.factories import fit, observation, seed, solution_rows, tiles

C = 299792458.0
TARGET, CAL = 1_400_000_000, 1_400_000_600
FIT_A, FIT_B = 1_700_000_000_000_000, 1_700_000_100_000_000


@pytest.fixture
def client(clean_db, aws):
    from app import app

    ts = tiles(8)
    ids = [t.tile_id for t in ts]
    seed([observation(TARGET, tiles=ts), observation(CAL, calibration=True, tiles=ts)],
         [(fit(FIT_A, CAL), solution_rows(ids, delay_scale=2.0, nan_tiles=(14,))), (fit(FIT_B, CAL), solution_rows(ids))])
    with Client(app) as c:
        yield c


def test_two_fits_compared_per_tile(client):
    r = client.http.get(f"/calib/compare?obsid_a={CAL}&fitid_a={FIT_A}&obsid_b={CAL}&fitid_b={FIT_B}")
    assert r.status_code == 200, r.body
    body = json.loads(r.body)
    assert body["channels"] == list(range(109, 133))
    by_tile = {t["tileid"]: t for t in body["tiles"]}
    # factories.solution_row: tile k has x_delay = scale * 0.5 k m, equal gains in both fits (ratio 1), same
    # intercept, same Y; so the X phase difference is 2 pi f (2 - 1) 0.5 k / c over the band, Y's is 0
    freqs = (np.arange(109 * 1.28e6 - 0.64e6, 133 * 1.28e6 - 0.64e6, 160e3) + 80e3)
    for k, tileid in enumerate(range(11, 19)):
        t = by_tile[tileid]
        if tileid == 14:
            assert t["XX"]["channels"] == 0 and t["XX"]["amp_ratio_median"] is None
            continue
        dphi = (2 * np.pi * freqs * 0.5 * k / C + np.pi) % (2 * np.pi) - np.pi
        assert t["XX"]["channels"] == len(freqs) == 192
        assert t["XX"]["amp_ratio_median"] == pytest.approx(1.0, abs=1e-9)
        assert t["YY"]["phase_diff_rms"] == pytest.approx(0.0, abs=1e-9)
        assert abs(t["XX"]["phase_diff_median"]) == pytest.approx(abs(np.median(dphi)), abs=0.05)
        assert t["XX"]["phase_diff_rms"] == pytest.approx(np.sqrt(np.mean(dphi ** 2)), abs=0.05)


def test_an_observation_alone_is_its_served_solution(client):
    r = client.http.get(f"/calib/compare?obsid_a={TARGET}&obsid_b={CAL}&fitid_b={FIT_B}")
    body = json.loads(r.body)
    assert r.status_code == 200 and body["a"]["served"] and body["a"]["fitid"] == FIT_B  # FIT_B ran later
    assert all(t["XX"]["phase_diff_rms"] == pytest.approx(0.0, abs=1e-9) for t in body["tiles"])


def test_bad_sides_are_400s_naming_them(client):
    for q, name in [(f"obsid_b={CAL}", "obsid_a"), (f"obsid_a=5&obsid_b={CAL}", "obsid_a"),
                    (f"obsid_a={CAL}&fitid_a=99&obsid_b={CAL}", "fitid_a")]:
        r = client.http.get(f"/calib/compare?{q}")
        assert r.status_code == 400 and json.loads(r.body)["parameter"] == name, (q, r.body)
