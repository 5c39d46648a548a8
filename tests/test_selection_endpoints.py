"""The gates, interpolation and attenuation correction through get_cal_solution, get_cal_fits and get_cal_selection.

Real PostgreSQL and moto; expected Jones are evaluated here from the seeded rows with the
domain.md formula and the interpolation/attenuation formulas written out independently.
"""

from __future__ import annotations

import cmath
import json

import numpy as np
import pytest
from chalice.test import Client

from tests.factories import fit, observation, seed, solution_rows, tiles
from tests.served_files import fetch_zip, read_bin

C = 299792458.0
T0 = 1_400_000_000
FIT_B, FIT_A = 1_700_000_000_000_000, 1_700_000_500_000_000


@pytest.fixture
def client(clean_db, aws):
    from app import app

    with Client(app) as c:
        yield c


def get_json(client, path: str):
    r = client.http.get(path)
    return r.status_code, json.loads(r.body)


def nu_of(channels, khz=40):
    n = 1280 // khz
    return np.array([c * 1.28e6 - 640e3 + (i + 0.5) * khz * 1e3 - khz * 1e3 / 2 for c in channels for i in range(n)])


def test_a_gate_that_removes_every_fit_is_a_404_naming_the_gate_and_the_best_rejected_fit(client):
    ts = tiles(16)
    seed([observation(T0 - 100, calibration=True, tiles=ts), observation(T0, tiles=ts)],
         [(fit(FIT_B, T0 - 100), solution_rows([t.tile_id for t in ts], nan_tiles=(12, 13, 14, 15)))])
    for endpoint in ("get_cal_solution", "get_cal_fits"):
        status, body = get_json(client, f"/calib/{endpoint}?obs_id={T0}&min_tile_fraction=0.8")
        assert status == 404, body
        assert body["gate"] == "min_tile_fraction" and "min_tile_fraction" in body["message"]
        rej = body["nearest_rejected"]
        assert rej["fitid"] == FIT_B and rej["cal_id"] == T0 - 100
        assert (rej["tiles_counted"], rej["tiles_served"]) == (16, 12) and rej["tile_fraction"] == 0.75
        assert body["searched"]["min_tile_fraction"] == 0.8
    # 12 of 16 passes a gate of 0.75
    status, body = get_json(client, f"/calib/get_cal_fits?obs_id={T0}&min_tile_fraction=0.75")
    assert status == 200 and list(body) == [str(FIT_B)]


def test_get_cal_fits_ranks_through_the_phase_quality_gate(client):
    ts = tiles(16)
    seed([observation(T0 - 100, calibration=True, tiles=ts), observation(T0 + 400, calibration=True, tiles=ts),
          observation(T0, tiles=ts)],
         [(fit(FIT_B, T0 - 100), solution_rows([t.tile_id for t in ts])),
          (fit(FIT_A, T0 + 400), solution_rows([t.tile_id for t in ts], pols_and_quality=True))])
    # the nearer calibrator's fit has no phase_fit_quality recorded: the gate drops it
    status, body = get_json(client, f"/calib/get_cal_fits?obs_id={T0}")
    assert list(body) == [str(FIT_B), str(FIT_A)]
    status, body = get_json(client, f"/calib/get_cal_fits?obs_id={T0}&min_phase_quality=0.3")
    assert status == 200 and list(body) == [str(FIT_A)]
    # X 0.5 + 0.01 k and Y 0.25 + 0.01 k over k = 0..15, pooled: the median is (0.40 + 0.50) / 2 = 0.45
    status, body = get_json(client, f"/calib/get_cal_fits?obs_id={T0}&min_phase_quality=0.46")
    assert status == 404 and body["gate"] == "min_phase_quality"
    assert body["nearest_rejected"]["fitid"] == FIT_B  # the nearest calibrator's fit is the best rejected
    status, body = get_json(client, f"/calib/get_cal_fits?obs_id={T0}&min_phase_quality=0.44")
    assert list(body) == [str(FIT_A)]


def _independent_interpolation(rb, ra, w, nu):
    """Jones XX, YY (fine channels) of one tile from both sides' rows: the interpolation formulas written out."""
    out = []
    for pol in ("x", "y"):
        db_, da = rb[f"{pol}_delay_m"], ra[f"{pol}_delay_m"]
        ib, ia = rb[f"{pol}_intercept"], ra[f"{pol}_intercept"]
        d = w * db_ + (1 - w) * da
        i = cmath.phase(w * cmath.exp(1j * ib) + (1 - w) * cmath.exp(1j * ia))
        g = w * np.repeat(rb[f"{pol}_gains"], 32) + (1 - w) * np.repeat(ra[f"{pol}_gains"], 32)
        out.append(np.exp(1j * (i - 2 * np.pi * nu * d / C)) / g)
    return out


def test_interpolate_combines_the_calibrators_before_and_after(client, aws):
    ts = tiles(16)
    ids = [t.tile_id for t in ts]
    before, after = solution_rows(ids, nan_tiles=(13,)), solution_rows(ids, delay_scale=3.0, y_gain_slope=0.05,
                                                                       nan_tiles=(14,))
    seed([observation(T0 - 300, calibration=True, tiles=ts), observation(T0 + 900, calibration=True, tiles=ts),
          observation(T0, tiles=ts)], [(fit(FIT_B, T0 - 300), before), (fit(FIT_A, T0 + 900), after)])
    w = (T0 + 900 - T0) / 1200
    z = fetch_zip(client, f"/calib/get_cal_solution?obs_id={T0}&interpolate=1")
    name = f"{T0 - 300}_{T0 + 900}.bin"
    assert name in z.namelist()
    jones, start, end = read_bin(z.read(name))
    assert (start, end) == (T0 - 300, T0 + 900 + 120)  # one interval over both calibrators
    nu = nu_of(range(109, 133))
    vb, va = {r.tileid: r.__dict__ for r in before}, {r.tileid: r.__dict__ for r in after}
    for ant, tid in enumerate(ids):
        got = jones[0, ant]
        if tid in (13, 14):  # solved on one side only: that side's solution as it is
            side = va if tid == 13 else vb
            xx, yy = _independent_interpolation(side[tid], side[tid], 1.0, nu)
        else:
            xx, yy = _independent_interpolation(vb[tid], va[tid], w, nu)
        np.testing.assert_allclose(got[:, 0], xx, rtol=1e-9)
        np.testing.assert_allclose(got[:, 3], yy, rtol=1e-9)
    assert z.read(f"{T0}_flagged_tiles.txt") == b""  # every tile is solved on some side
    assert f"weight {w:.6g} on calibrator {T0 - 300}" in z.read(f"{T0}_flags.py").decode()
    keys = [o["Key"] for o in aws["s3"].list_objects_v2(Bucket="test-products")["Contents"]]
    assert len(keys) == 1 and f"fit{FIT_B}" in keys[0] and f"fit{FIT_A}" in keys[0] and f"_w{w:.12g}" in keys[0]
    # without interpolate the nearest (before) is served; with one side only the normal answer too
    z = fetch_zip(client, f"/calib/get_cal_solution?obs_id={T0}")
    assert f"{T0 - 300}.bin" in z.namelist()
    z = fetch_zip(client, f"/calib/get_cal_solution?obs_id={T0}&interpolate=1&allow_after=0")
    assert z.namelist() and f"{T0 - 300}.bin" in z.namelist()
    z = fetch_zip(client, f"/calib/get_cal_solution?obs_id={T0}&interpolate=1&prefer_fitid={FIT_A}")
    assert f"{T0 + 900}.bin" in z.namelist()


def test_correct_attenuation_scales_the_jones_and_says_so(client):
    ts = tiles(16)
    seed([observation(T0 - 100, calibration=True, tiles=ts, gain=1.0), observation(T0, tiles=ts, gain=9.0)],
         [(fit(FIT_B, T0 - 100), solution_rows([t.tile_id for t in ts]))])
    status, body = get_json(client, f"/calib/get_cal_fits?obs_id={T0}")
    assert status == 404 and "gain_control_value" in body["nearest_rejected"]["reason"]
    z = fetch_zip(client, f"/calib/get_cal_solution?obs_id={T0}&correct_attenuation=1")
    jones, _, _ = read_bin(z.read(f"{T0 - 100}.bin"))
    nu = nu_of(range(109, 133))
    k = 3  # tile 14
    gx = np.repeat([1.0 + 0.01 * c for c in range(24)], 32)
    expected = 10 ** (8 / 20) * np.exp(1j * (0.1 * k - 2 * np.pi * nu * (0.5 * k) / C)) / gx
    np.testing.assert_allclose(jones[0, 3, :, 0], expected, rtol=1e-12)
    script = z.read(f"{T0}_flags.py").decode()
    assert "2.51189" in script and "target 9 dB, calibrator 1 dB" in script
    status, body = get_json(client, f"/calib/get_cal_selection?obs_id={T0}&correct_attenuation=1")
    assert status == 200
    assert body["choice"]["attenuation"] == {"target_db": 9.0, "cal_db": 1.0, "factor": pytest.approx(10 ** 0.4)}


def test_correct_attenuation_prefers_the_targets_own_attenuation_at_equal_distance(client):
    ts = tiles(16)
    seed([observation(T0 - 100, calibration=True, tiles=ts, gain=3.0),
          observation(T0 + 100, calibration=True, tiles=ts, gain=1.0), observation(T0, tiles=ts, gain=1.0)],
         [(fit(FIT_B, T0 - 100), solution_rows([t.tile_id for t in ts])),
          (fit(FIT_A, T0 + 100), solution_rows([t.tile_id for t in ts]))])
    status, body = get_json(client, f"/calib/get_cal_fits?obs_id={T0}&correct_attenuation=1")
    assert list(body) == [str(FIT_A), str(FIT_B)]


def test_the_explanation_names_why_a_nearer_calibrator_was_not_used(client):
    ts = tiles(16)
    seed([observation(T0 - 50, calibration=True, tiles=ts, channels=range(57, 81)),
          observation(T0 - 80, calibration=True, tiles=ts, gain=2.0),
          observation(T0 - 400, calibration=True, tiles=ts), observation(T0, tiles=ts)],
         [(fit(FIT_B, T0 - 50), solution_rows([t.tile_id for t in ts])),
          (fit(FIT_B + 1, T0 - 80), solution_rows([t.tile_id for t in ts])),
          (fit(FIT_A, T0 - 400), solution_rows([t.tile_id for t in ts]))])
    status, body = get_json(client, f"/calib/get_cal_selection?obs_id={T0}")
    assert status == 200, body
    assert body["choice"]["cal_id"] == T0 - 400 and body["choice"]["fitid"] == FIT_A
    cals = {c["cal_id"]: c for c in body["calibrators"]}
    assert cals[T0 - 50]["code"] == "channels" and "109" in cals[T0 - 50]["reason"]
    assert cals[T0 - 80]["code"] == "attenuation" and not cals[T0 - 80]["accepted"]
    assert [c["cal_id"] for c in body["calibrators"]] == [T0 - 50, T0 - 80, T0 - 400]
    assert len(body["tiles"]) == 16 and all(t["served"] for t in body["tiles"])


@pytest.mark.parametrize("query, parameter", [
    ("min_tile_fraction=1.5", "min_tile_fraction"), ("min_tile_fraction=nan", "min_tile_fraction"),
    ("min_phase_quality=-0.1", "min_phase_quality"), ("min_phase_quality=inf", "min_phase_quality"),
    ("interpolate=2", "interpolate"), ("correct_attenuation=yes", "correct_attenuation"),
])
def test_bad_new_parameters_are_400_naming_them(client, query, parameter):
    seed([observation(T0)], [])
    for endpoint in ("get_cal_solution", "get_cal_fits", "get_cal_selection"):
        status, body = get_json(client, f"/calib/{endpoint}?obs_id={T0}&{query}")
        assert status == 400 and body["parameter"] == parameter, (endpoint, body)


def test_the_flag_scripts_header_note_stays_comments():
    import ast

    from chalicelib.formats.flags import casa_flag_script

    script = casa_flag_script(T0, ["Tile011"], note="factor 2.512\nimport os; os.remove('x')\r\nflagdata(vis='y')")
    header = script.split("\nimport ")[0]
    assert all(line.startswith("#") for line in header.splitlines())
    assert "# Note: factor 2.512 import os; os.remove('x') flagdata(vis='y')" in header  # one comment line
    calls = [n.func.id for n in ast.walk(ast.parse(script)) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)]
    assert calls.count("flagdata") == 1  # only the tile's own flagdata call is code


def test_the_selection_page_names_a_rejected_calibrator_that_has_no_fit(client):
    """The nearest rejection is a calibrator of another attenuation, rejected before any fit is looked at."""
    ts = tiles(8)
    seed([observation(T0 - 100, calibration=True, tiles=ts, gain=9.0), observation(T0, tiles=ts)],
         [(fit(FIT_B, T0 - 100), solution_rows([t.tile_id for t in ts]))])
    status, body = get_json(client, f"/calib/get_cal_selection?obs_id={T0}")
    assert status == 200 and body["nearest_rejected"]["cal_id"] == T0 - 100
    assert "fitid" not in body["nearest_rejected"]
    r = client.http.get(f"/calib/selection?obs_id={T0}")
    assert r.status_code == 200, r.body[:300]
    page = r.body.decode()
    assert "No calibrator serves this observation" in page and str(T0 - 100) in page
