"""get_cal_solution and get_cal_fits end to end: Chalice test client, real PostgreSQL, moto S3."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import requests
from chalice.test import Client

from chalicelib import db
from chalicelib.formats.metafits import calibdata_rows, fit_from_metafits, observation_from_metafits, read_metafits
from tests.factories import fit, observation, seed, solution_rows, tiles
from tests.flag_script import tiles_flagged
from tests.mwa_files import mwa_file
from tests.served_files import fetch_zip, read_bin

C = 299792458.0
REAL_TARGET = 1457904016
REAL_CAL = 1457865688
REAL_FIT = 1773831785589944


@pytest.fixture
def client(clean_db, aws):
    from app import app

    with Client(app) as c:
        yield c


def get(client, path: str):
    return client.http.get(path)


@pytest.fixture
def real_fit(clean_db):
    """The target 1457904016 and its calibrator, seeded from the real CALIBDATA in its metafits."""
    info = read_metafits(mwa_file(str(REAL_TARGET), f"{REAL_TARGET}_metafits.fits"))
    target = observation_from_metafits(info)
    cal = observation(REAL_CAL, calibration=True, gain=target.gain_control_value, channels=target.channels,
                      tiles=target.tiles, name="calibrator")
    seed([target, cal], [(fit_from_metafits(info), calibdata_rows(info))])
    return info


def test_real_fit_rebuilt_bin_matches_calibdata(client, real_fit, tmp_path):
    z = fetch_zip(client, f"/calib/get_cal_solution?obs_id={REAL_TARGET}")
    assert sorted(z.namelist()) == sorted([f"{REAL_CAL}.bin", f"{REAL_TARGET}_flagged_tiles.txt",
                                           f"{REAL_TARGET}_flags.py"])
    jones, start, end = read_bin(z.read(f"{REAL_CAL}.bin"))
    assert jones.shape == (1, 256, 768, 4)
    assert (start, end) == (REAL_CAL, REAL_CAL + 120)

    # Expected Jones straight from the CALIBDATA columns, evaluated here with the domain.md formula.
    from astropy.io import fits

    with fits.open(mwa_file(str(REAL_TARGET), f"{REAL_TARGET}_metafits.fits")) as hdus:
        cd = hdus["CALIBDATA"].data
        tiledata = hdus["TILEDATA"].data
        antenna_of_tile = {int(t): int(a) for t, a in zip(tiledata["Tile"], tiledata["Antenna"])}
        params = {}
        for row in cd:
            params[(antenna_of_tile[int(row["Tile"])], row["Pol"].strip())] = (
                float(row["Calib_Delay"]), float(row["intercept"]), np.asarray(row["Calib_Gains"], float))
    channels = list(range(109, 133))
    nu = np.array([n * 1.28e6 - 640e3 + i * 40e3 for n in channels for i in range(32)])
    coarse_of = np.repeat(np.arange(24), 32)
    flagged_expected = []
    for ant in range(256):
        (dx, ix, gx), (dy, iy, gy) = params[(ant, "X")], params[(ant, "Y")]
        with np.errstate(invalid="ignore"):  # NaN rows of failed tiles
            jxx = np.exp(1j * (ix - 2 * np.pi * nu * dx / C)) / gx[coarse_of]
            jyy = np.exp(1j * (iy - 2 * np.pi * nu * dy / C)) / gy[coarse_of]
        bad = np.isnan(jxx) | np.isnan(jyy)
        got = jones[0, ant]
        assert np.array_equal(np.isnan(got[:, 0]), bad), ant
        assert np.all(np.isnan(got[bad])), ant
        ok = ~bad
        np.testing.assert_allclose(got[ok, 0], jxx[ok], rtol=1e-12, atol=0)
        np.testing.assert_allclose(got[ok, 3], jyy[ok], rtol=1e-12, atol=0)
        assert np.all(got[ok, 1] == 0) and np.all(got[ok, 2] == 0)
        if bad.all():
            flagged_expected.append(ant)
    assert flagged_expected, "the real fit has failed tiles"
    listed = [int(x) for x in z.read(f"{REAL_TARGET}_flagged_tiles.txt").decode().split()]
    assert listed == flagged_expected
    script = z.read(f"{REAL_TARGET}_flags.py").decode()
    names = {int(a): n.strip() for a, n in zip(tiledata["Antenna"], tiledata["TileName"])}
    assert tiles_flagged(script, list(names.values()), tmp_path) == [names[a] for a in flagged_expected]


T0 = 1_400_000_000


def test_subarray_target_gets_its_tiles_in_its_antenna_order(client):
    cal_tiles = tiles(32)
    # the target uses 8 of the calibrator's tiles in another order, plus a tile the fit lacks
    target_tiles = tiles([30, 12, 25, 11, 99, 20, 21, 22])
    seed([observation(T0 - 600, calibration=True, tiles=cal_tiles),
           observation(T0, tiles=target_tiles, channels=range(121, 133))],
          [(fit(1_700_000_000_000_000, T0 - 600), solution_rows([t.tile_id for t in cal_tiles], nan_tiles=(21,)))])
    z = fetch_zip(client, f"/calib/get_cal_solution?obs_id={T0}&fine_chan_khz=80")
    jones, _, _ = read_bin(z.read(f"{T0 - 600}.bin"))
    assert jones.shape == (1, 8, 12 * 16, 4)  # 12 target channels of 16 x 80 kHz
    nu = np.array([n * 1.28e6 - 640e3 + i * 80e3 for n in range(121, 133) for i in range(16)])
    for ant, tileid in enumerate([30, 12, 25, 11, 99, 20, 21, 22]):
        if tileid in (99, 21):  # 99: not in the fit; 21: failed in the fit
            assert np.all(np.isnan(jones[0, ant]))
            continue
        k = tileid - 11
        gx = np.array([1.0 + 0.01 * c for c in range(12, 24)]).repeat(16)  # gains of channels 121..132
        expected = np.exp(1j * (0.1 * k - 2 * np.pi * nu * (0.5 * k) / C)) / gx
        np.testing.assert_allclose(jones[0, ant, :, 0], expected, rtol=1e-12)
    assert z.read(f"{T0}_flagged_tiles.txt").decode().split() == ["4", "6"]


def test_get_cal_fits_lists_candidates_best_first(client):
    seed([observation(T0 - 3000, calibration=True), observation(T0 + 1000, calibration=True),
           observation(T0 + 500, calibration=True, gain=3.0), observation(T0)],
          [(fit(1_700_000_000, T0 - 3000, creator="mwa"), solution_rows(range(11, 27))),
           (fit(1_700_000_100_000_000, T0 + 1000), solution_rows(range(11, 27))),
           (fit(1_700_000_900_000_000, T0 + 1000), solution_rows(range(11, 27))),
           (fit(1_700_000_200_000_000, T0 + 500), solution_rows(range(11, 27)))])
    db.execute("INSERT INTO calibration_fit_file (fitid, obsid, bucket_key) VALUES "
               "(1700000900000000, :o, 'fits/x/hyp_soln.fits')", {"o": T0 + 1000})
    r = get(client, f"/calib/get_cal_fits?obs_id={T0}")
    assert r.status_code == 200
    body = json.loads(r.body)
    assert list(body) == ["1700000900000000", "1700000100000000", "1700000000"]
    assert body["1700000900000000"] == [T0 + 1000, 1000, "fits/x/hyp_soln.fits"]
    assert body["1700000000"] == [T0 - 3000, 3000, None]
    r = get(client, f"/calib/get_cal_fits?obs_id={T0}&allow_after=0")
    assert list(json.loads(r.body)) == ["1700000000"]


def test_cached_zip_is_reused_and_nocache_rebuilds(client, aws):
    seed([observation(T0 - 10, calibration=True), observation(T0)],
          [(fit(1_700_000_000_000_000, T0 - 10), solution_rows(range(11, 27)))])
    first = fetch_zip(client, f"/calib/get_cal_solution?obs_id={T0}")
    keys = [o["Key"] for o in aws["s3"].list_objects_v2(Bucket="test-products")["Contents"]]
    assert len(keys) == 1 and str(T0) in keys[0] and "fit1700000000000000" in keys[0] and "aocal_40khz" in keys[0]
    # change the table behind the cached zip: a cached answer keeps the old numbers, nocache=1 rebuilds
    db.execute("UPDATE calibration_solutions SET x_gains = array_fill(4.0::float8, ARRAY[24]) WHERE tileid = 12")
    again = fetch_zip(client, f"/calib/get_cal_solution?obs_id={T0}")
    assert again.read(f"{T0 - 10}.bin") == first.read(f"{T0 - 10}.bin")
    rebuilt = fetch_zip(client, f"/calib/get_cal_solution?obs_id={T0}&nocache=1")
    jones, _, _ = read_bin(rebuilt.read(f"{T0 - 10}.bin"))
    assert abs(jones[0, 1, 0, 0]) == pytest.approx(0.25)


def test_download_name_is_obs_cal_solution_zip(client):
    seed([observation(T0 - 10, calibration=True), observation(T0)],
          [(fit(1_700_000_000_000_000, T0 - 10), solution_rows(range(11, 27)))])
    r = get(client, f"/calib/get_cal_solution?obs_id={T0}")
    got = requests.get(r.headers["Location"], timeout=10)
    assert f'filename="{T0}_cal_solution.zip"' in got.headers["Content-Disposition"]


def test_hyperdrive_output_has_the_real_files_layout(client):
    from astropy.io import fits

    seed([observation(T0 - 10, calibration=True), observation(T0)],
          [(fit(1_700_000_000_000_000, T0 - 10), solution_rows(range(11, 27)))])
    z = fetch_zip(client, f"/calib/get_cal_solution?obs_id={T0}&output_format=hyperdrive")
    name = f"{T0 - 10}_solutions.fits"
    assert name in z.namelist()
    ours = fits.open(io.BytesIO(z.read(name)))
    real = fits.open(mwa_file("1369821496", "hyp_soln_1369821496_ch100_solutions.fits"))
    assert [h.name for h in ours] == [h.name for h in real]
    assert ours["SOLUTIONS"].data.shape == (1, 16, 768, 8)
    assert ours["SOLUTIONS"].data.ndim == real["SOLUTIONS"].data.ndim
    for table in ("TIMEBLOCKS", "CHANBLOCKS"):
        assert [c.name for c in ours[table].columns] == [c.name for c in real[table].columns]
    assert [c.name for c in ours["TILES"].columns] == [c.name for c in real["TILES"].columns][:3]


def test_auto_format_follows_the_hyperdrive_file_in_the_bucket(client):
    seed([observation(T0 - 10, calibration=True), observation(T0)],
          [(fit(1_700_000_000_000_000, T0 - 10), solution_rows(range(11, 27)))])
    z = fetch_zip(client, f"/calib/get_cal_solution?obs_id={T0}&output_format=auto")
    assert f"{T0 - 10}.bin" in z.namelist()
    db.execute("INSERT INTO calibration_fit_file (fitid, obsid, bucket_key) VALUES (1700000000000000, :o, 'k')",
               {"o": T0 - 10})
    z = fetch_zip(client, f"/calib/get_cal_solution?obs_id={T0}&output_format=auto")
    assert f"{T0 - 10}_solutions.fits" in z.namelist()


def test_auto_is_cached_under_the_format_it_wrote(client, aws):
    """auto is resolved once: the zip is kept (and found again) under the format actually written."""
    seed([observation(T0 - 10, calibration=True), observation(T0)],
          [(fit(1_700_000_000_000_000, T0 - 10), solution_rows(range(11, 27)))])
    fetch_zip(client, f"/calib/get_cal_solution?obs_id={T0}&output_format=auto")
    fetch_zip(client, f"/calib/get_cal_solution?obs_id={T0}&output_format=aocal")
    keys = [o["Key"] for o in aws["s3"].list_objects_v2(Bucket="test-products")["Contents"]]
    assert keys == [f"cal_solutions/{T0}/{T0}_cal{T0 - 10}_fit1700000000000000_aocal_40khz.zip"]
    db.execute("INSERT INTO calibration_fit_file (fitid, obsid, bucket_key) VALUES (1700000000000000, :o, 'k')",
               {"o": T0 - 10})
    z = fetch_zip(client, f"/calib/get_cal_solution?obs_id={T0}&output_format=auto")
    assert f"{T0 - 10}_solutions.fits" in z.namelist()
    keys = sorted(o["Key"] for o in aws["s3"].list_objects_v2(Bucket="test-products")["Contents"])
    assert [k.rsplit("_", 2)[1] for k in keys] == ["aocal", "hyperdrive"]


@pytest.mark.parametrize("query, parameter", [
    ("", "obs_id"),
    ("obs_id=abc", "obs_id"),
    ("obs_id=12.5", "obs_id"),
    (f"obs_id={T0 + 77}", "obs_id"),  # not in the schedule
    (f"obs_id={T0}&max_time_separation=-1", "max_time_separation"),
    (f"obs_id={T0}&allow_after=2", "allow_after"),
    (f"obs_id={T0}&nocache=yes", "nocache"),
    (f"obs_id={T0}&output_format=uvfits", "output_format"),
    (f"obs_id={T0}&fine_chan_khz=30", "fine_chan_khz"),
    (f"obs_id={T0}&prefer_fitid=x", "prefer_fitid"),
])
def test_bad_parameters_are_400_naming_the_parameter(client, query, parameter):
    seed([observation(T0)], [])
    for endpoint in ("get_cal_solution", "get_cal_fits"):
        if endpoint == "get_cal_fits" and parameter in ("nocache", "output_format", "fine_chan_khz"):
            continue
        r = get(client, f"/calib/{endpoint}?{query}")
        assert r.status_code == 400, (endpoint, query, r.body)
        body = json.loads(r.body)
        assert body["parameter"] == parameter and body["message"]


def test_no_candidate_is_404_saying_what_was_searched_and_the_nearest_rejection(client):
    seed([observation(T0 - 100, calibration=True, gain=2.0), observation(T0)],
          [(fit(1_700_000_000, T0 - 100), solution_rows(range(11, 27)))])
    for endpoint in ("get_cal_solution", "get_cal_fits"):
        r = get(client, f"/calib/{endpoint}?obs_id={T0}")
        assert r.status_code == 404
        body = json.loads(r.body)
        assert body["searched"]["gain_control_value"] == 1.0
        assert body["searched"]["max_time_separation"] == 86400
        assert body["searched"]["channels"] == list(range(109, 133))
        assert body["nearest_rejected"]["cal_id"] == T0 - 100
        assert "gain_control_value" in body["nearest_rejected"]["reason"]


def test_prefer_fitid_that_is_no_candidate_is_404_with_the_reason(client):
    seed([observation(T0 - 100, calibration=True), observation(T0)],
          [(fit(1_700_000_000, T0 - 100), solution_rows(range(11, 27)))])
    r = get(client, f"/calib/get_cal_solution?obs_id={T0}&prefer_fitid=123")
    assert r.status_code == 404
    assert json.loads(r.body)["parameter"] == "prefer_fitid"


def test_calibrator_itself_with_zero_separation(client):
    seed([observation(T0 - 100, calibration=True), observation(T0, calibration=True)],
          [(fit(1_700_000_000, T0 - 100), solution_rows(range(11, 27))),
           (fit(1_600_000_000, T0), solution_rows(range(11, 27)))])
    z = fetch_zip(client, f"/calib/get_cal_solution?obs_id={T0}&max_time_separation=0")
    assert f"{T0}.bin" in z.namelist()
