"""The deprecated get_calfile_for_obsid / get_calfile_for_calid end to end, read as old scripts read them.

Public scripts fetch the URL (following the redirect), unzip the answer into a folder and read the
files there: the AO-cal .bin, the first column of <obs>_flagged_tiles.txt, the CASA script, and
the metafits (astropy and mwalib). Chalice test client, real PostgreSQL, moto S3/SQS.
"""

from __future__ import annotations

import io
import json
import re
import struct
import zipfile
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pytest
import requests
from astropy.io import fits
from chalice.test import Client

from chalicelib import db
from chalicelib.formats.metafits import calibdata_rows, fit_from_metafits, observation_from_metafits, read_metafits
from chalicelib.records import Fit, Observation, SolutionRow
from tests.factories import fit, observation, seed, solution_rows
from tests.flag_script import tiles_flagged
from tests.mwa_files import mwa_file

REAL_TARGET = 1457904016
REAL_CAL = 1457865688
T0 = 1_400_000_000
CAL = T0 - 600
NEW_FIT = 1_700_000_900_000_000
OLD_FIT = 1_700_000_000_000_000
CALIBDATA_VALUE_COLUMNS = ("Calib_Delay", "intercept", "Calib_Gains", "gains_pol1", "gains_pol0",
                           "phase_fit_quality", "gains_fit_quality")


@pytest.fixture
def client(clean_db, aws):
    from app import app

    with Client(app) as c:
        yield c


# ---------------------------------------------------------------------------------------------
# helpers: seeding and reading as scripts do


def _obs(obsid: int, **options: Any) -> Observation:
    """An observation as the legacy scripts see one: created by 'tester' in project G0009."""
    return observation(obsid, creator="tester", projectid="G0009", **options)


def _rows(tileids: Iterable[int], **options: Any) -> list[SolutionRow]:
    """A fit's rows with the sloped Y gains, pol0/pol1 gains and fit-quality figures the legacy scripts also read."""
    return solution_rows(tileids, y_gain_slope=0.001, pols_and_quality=True, **options)


def _fit(fitid: int, obsid: int) -> Fit:
    """A fit that records its iteration count and limit, which CALIBDATA carries."""
    return fit(fitid, obsid, fit_niter=3, fit_limit=0.0)


def _seed_standard(failed=(13,)):
    """A 16-tile target, its calibrator with two fits (the newer one is chosen), one failed tile."""
    seed([_obs(CAL, calibration=True), _obs(T0)],
          [(_fit(OLD_FIT, CAL), _rows(range(11, 27), delay_scale=3.0)),
           (_fit(NEW_FIT, CAL), _rows(range(11, 27), nan_tiles=failed))])


def _db_rows(fitid, obsid) -> dict[int, dict]:
    rows = db.query("SELECT * FROM calibration_solutions WHERE fitid = :f AND obsid = :o", {"f": fitid, "o": obsid})
    return {r["tileid"]: r for r in rows}


def download(client, path: str, tmp_path):
    """Fetch as scripts do (follow the redirect), unzip into a folder; (answer, folder, names)."""
    r = client.http.get(path)
    assert r.status_code == 302, r.body
    got = requests.get(r.headers["Location"], timeout=10)  # moto serves the presigned URL
    assert got.status_code == 200
    folder = tmp_path / "unzipped"
    folder.mkdir(exist_ok=True)
    with zipfile.ZipFile(io.BytesIO(got.content)) as z:
        assert z.testzip() is None
        z.extractall(folder)
        names = sorted(z.namelist())
    return r, folder, names


def read_bin(data: bytes):
    """An independent reading of the AO-cal layout in domain.md."""
    magic, = struct.unpack_from("<8s", data, 0)
    ftype, stype, n_int, n_ant, n_chan, n_pol = struct.unpack_from("<6I", data, 8)
    assert magic == b"MWAOCAL\0" and (ftype, stype, n_pol) == (0, 0, 4)
    assert len(data) == 48 + 64 * n_int * n_ant * n_chan
    values = np.frombuffer(data, dtype="<f8", offset=48).reshape(n_int, n_ant, n_chan, 4, 2)
    return values[..., 0] + 1j * values[..., 1]


def flagged_from_file(path) -> list[int]:
    """As user scripts read it: the first column of each line."""
    return [int(line.split()[0]) for line in path.read_text().splitlines() if line.strip()]


def run_flag_script(path) -> list[str]:
    """Run the CASA script outside CASA on a stand-in measurement set of tiles Tile000..Tile999; the tiles flagged."""
    return tiles_flagged(path.read_text(), [f"Tile{n:03d}" for n in range(1000)], path.parent)


def _deprecated_since(value: str) -> datetime:
    """RFC 9745's Deprecation value: an RFC 9651 structured-field date, "@" and an integer of Unix seconds."""
    assert re.fullmatch(r"@-?[0-9]{1,15}", value), value
    return datetime.fromtimestamp(int(value[1:]), tz=timezone.utc)


def assert_deprecated(answer, successor: str):
    assert _deprecated_since(answer.headers["Deprecation"]) == datetime(2026, 11, 24, tzinfo=timezone.utc)
    assert answer.headers["Link"] == f'<{successor}>; rel="successor-version"'


def mwalib_context(path):
    import mwalib

    return mwalib.MetafitsContext(str(path), None)


def assert_mwalib_fit_equals_rows(ctx, rows_by_tile: dict[int, dict], fitid: int, cal_obsid: int):
    """mwalib's calibration fit (per-input delays/gains, CALIBDATA fits, best_cal_*) equals the DB rows."""
    assert ctx.best_cal_fit_id == (fitid // 1_000_000 if fitid > 2**31 - 1 else fitid)
    assert ctx.best_cal_obs_id == cal_obsid
    assert ctx.num_calibration_fits == ctx.num_rf_inputs
    for rf in ctx.rf_inputs:
        p = str(rf.pol)[-1].lower()
        row = rows_by_tile[rf.tile_id]
        delay = np.float32(row[f"{p}_delay_m"])
        if np.isnan(delay):
            assert rf.calib_delay is None
        else:
            assert rf.calib_delay == delay
        np.testing.assert_array_equal(np.float32(rf.calib_gains), np.float32(row[f"{p}_gains"]))
    for f in ctx.calibration_fits:
        p = str(f.rf_input.pol)[-1].lower()
        row = rows_by_tile[f.rf_input.tile_id]
        np.testing.assert_array_equal(np.float32(f.delay_metres), np.float32(row[f"{p}_delay_m"]))
        quality = row[f"{p}_phase_fit_quality"]
        expected = np.float32(np.nan if quality is None else quality)
        np.testing.assert_array_equal(np.float32(f.phase_fit_quality), expected)


# ---------------------------------------------------------------------------------------------
# get_calfile_for_obsid


def test_obsid_zip_holds_the_four_files_with_a_generated_metafits(client, tmp_path):
    _seed_standard(failed=(13,))
    r, folder, names = download(client, f"/calib/get_calfile_for_obsid?obs_id={T0}&zipfile=1", tmp_path)
    assert_deprecated(r, f"/calib/get_cal_solution?obs_id={T0}")
    assert names == sorted([f"{CAL}.bin", f"{T0}_flagged_tiles.txt", f"{T0}_flags.py", f"{T0}.metafits"])

    # the .bin is get_cal_solution's, for the newest fit
    successor = client.http.get(f"/calib/get_cal_solution?obs_id={T0}")
    same = requests.get(successor.headers["Location"], timeout=10).content
    with zipfile.ZipFile(io.BytesIO(same)) as z:
        assert (folder / f"{CAL}.bin").read_bytes() == z.read(f"{CAL}.bin")
    jones = read_bin((folder / f"{CAL}.bin").read_bytes())
    assert jones.shape == (1, 16, 768, 4)
    assert np.isnan(jones[0, 2]).all() and not np.isnan(jones[0, 3]).any()

    assert flagged_from_file(folder / f"{T0}_flagged_tiles.txt") == [2]
    assert run_flag_script(folder / f"{T0}_flags.py") == ["Tile013"]

    rows = _db_rows(NEW_FIT, CAL)
    metafits = folder / f"{T0}.metafits"
    with fits.open(metafits) as f:
        h, cd, td = f[0].header, f["CALIBDATA"], f["TILEDATA"].data
        assert (h["GPSTIME"], h["EXPOSURE"], h["FILENAME"], h["ATTEN_DB"], h["PROJECT"]) == (
            T0, 120, "EoR0_121", 1.0, "G0009")
        assert (cd.header["CALFIT"], cd.header["CALFITID"], cd.header["CALOBSID"], cd.header["TAROBSID"]) == (
            NEW_FIT, NEW_FIT // 1_000_000, CAL, T0)
        assert (cd.header["CALCDVER"], cd.header["CALCRTR"], cd.header["CALITERS"], cd.header["CALITLIM"]) == (
            "1.1.3", "calvin", 3, 0)
        assert cd.header["CALDTIME"] == datetime.fromtimestamp(NEW_FIT / 1e6, tz=timezone.utc).isoformat()
        for i, (tile, pol) in enumerate(zip(cd.data["Tile"], cd.data["Pol"])):
            row, p = rows[int(tile)], pol.lower()
            np.testing.assert_array_equal(cd.data["Calib_Delay"][i], np.float32(row[f"{p}_delay_m"]))
            np.testing.assert_array_equal(cd.data["intercept"][i], np.float32(row[f"{p}_intercept"]))
            np.testing.assert_array_equal(cd.data["Calib_Gains"][i], np.float32(row[f"{p}_gains"]))
            for poly in ("gains_pol0", "gains_pol1"):  # a NULL polynomial is written as zeros (no fit)
                expected = row[f"{p}_{poly}"] if row[f"{p}_{poly}"] is not None else [0.0] * 24
                np.testing.assert_array_equal(cd.data[poly][i], np.float32(expected))
            np.testing.assert_array_equal(td["Calib_Delay"][i], cd.data["Calib_Delay"][i])
            np.testing.assert_array_equal(td["Calib_Gains"][i], cd.data["Calib_Gains"][i])
        assert sorted(set(td["Tile"][td["Flag"] == 1])) == [13]
    ctx = mwalib_context(metafits)
    assert ctx.obs_id == T0 and ctx.num_ants == 16
    assert_mwalib_fit_equals_rows(ctx, rows, NEW_FIT, CAL)
    assert [a.tile_id for a in ctx.antennas if a.rfinput_x.flagged] == [13]


def test_real_fixture_with_its_stored_metafits(client, aws, tmp_path):
    """The real metafits in the products bucket, the fit seeded from its own CALIBDATA: the same values."""
    real_path = mwa_file(str(REAL_TARGET), f"{REAL_TARGET}_metafits.fits")
    info = _seed_real(real_path)
    aws["s3"].put_object(Bucket="test-products", Key=f"metadata/{REAL_TARGET}_metafits.fits",
                         Body=real_path.read_bytes())
    r, folder, names = download(client, f"/calib/get_calfile_for_obsid?obs_id={REAL_TARGET}", tmp_path)
    assert names == sorted([f"{REAL_CAL}.bin", f"{REAL_TARGET}_flagged_tiles.txt", f"{REAL_TARGET}_flags.py",
                            f"{REAL_TARGET}.metafits"])
    metafits = folder / f"{REAL_TARGET}.metafits"
    with fits.open(real_path) as real, fits.open(metafits) as ours:
        assert [h.name for h in ours] == [h.name for h in real]  # the stored file, every HDU kept
        assert ours[0].header["RA"] == real[0].header["RA"]  # its real pointing, not a generated one
        assert_same_calibration(real, ours)
        # the stored flags stay; tiles whose fit failed are flagged too
        failed = flagged_from_file(folder / f"{REAL_TARGET}_flagged_tiles.txt")
        assert failed
        td_real, td_ours = real["TILEDATA"].data, ours["TILEDATA"].data
        expected = (td_real["Flag"] == 1) | np.isin(td_real["Antenna"], failed)
        np.testing.assert_array_equal(td_ours["Flag"] == 1, expected)
    ctx = mwalib_context(metafits)
    assert_mwalib_fit_equals_rows(ctx, _db_rows(info.calib.fitid, REAL_CAL), info.calib.fitid, REAL_CAL)
    assert {a.ant for a in ctx.antennas if a.rfinput_x.flagged} >= set(failed)


def test_real_fixture_metafits_generated_from_the_database(client, tmp_path):
    """No stored file: the metafits is built from the database and still carries the real CALIBDATA."""
    real_path = mwa_file(str(REAL_TARGET), f"{REAL_TARGET}_metafits.fits")
    info = _seed_real(real_path)
    _, folder, _ = download(client, f"/calib/get_calfile_for_obsid?obs_id={REAL_TARGET}", tmp_path)
    metafits = folder / f"{REAL_TARGET}.metafits"
    with fits.open(real_path) as real, fits.open(metafits) as ours:
        assert "Generated by mwa-calib-service" in str(ours[0].header["COMMENT"])
        assert ours[0].header["CHANNELS"] == real[0].header["CHANNELS"]
        assert ours[0].header["FREQCENT"] == real[0].header["FREQCENT"]
        assert ours[0].header["DATE-OBS"] == real[0].header["DATE-OBS"]
        assert_same_calibration(real, ours)
    ctx = mwalib_context(metafits)
    assert ctx.num_ants == 256
    assert_mwalib_fit_equals_rows(ctx, _db_rows(info.calib.fitid, REAL_CAL), info.calib.fitid, REAL_CAL)


def _seed_real(real_path):
    info = read_metafits(real_path)
    target = observation_from_metafits(info)
    cal = observation(REAL_CAL, calibration=True, gain=target.gain_control_value, channels=target.channels,
                      tiles=target.tiles, name="calibrator")
    seed([target, cal], [(fit_from_metafits(info), calibdata_rows(info))])
    return info


def assert_same_calibration(real, ours):
    """CALIBDATA values and header keys equal the real file's, input by input (Tile, Pol)."""
    a, b = real["CALIBDATA"], ours["CALIBDATA"]
    for key in ("CALFIT", "CALFITID", "CALOBSID", "TAROBSID", "CALCDVER", "CALDTIME", "CALCRTR", "CALITERS",
                "CALITLIM"):
        assert b.header[key] == a.header[key], key
    index = {(int(t), p.strip()): i for i, (t, p) in enumerate(zip(b.data["Tile"], b.data["Pol"]))}
    assert len(index) == len(a.data) == len(b.data)
    order = [index[(int(t), p.strip())] for t, p in zip(a.data["Tile"], a.data["Pol"])]
    for col in CALIBDATA_VALUE_COLUMNS:
        np.testing.assert_array_equal(b.data[col][order], a.data[col], err_msg=col)
    assert [str(n).strip() for n in b.data["TileName"][order]] == [str(n).strip() for n in a.data["TileName"]]
    np.testing.assert_array_equal(b.data["Antenna"][order], a.data["Antenna"])


@pytest.mark.parametrize("any_gain", ["&any_gain", "&any_gain=", "&any_gain=1", "&any_gain=0"])
def test_any_gain_with_or_without_a_value_drops_the_gain_rule(client, tmp_path, any_gain):
    seed([_obs(CAL, calibration=True, gain=3.0), _obs(T0)], [(_fit(NEW_FIT, CAL), _rows(range(11, 27)))])
    r = client.http.get(f"/calib/get_calfile_for_obsid?obs_id={T0}")
    assert r.status_code == 400
    assert "gain_control_value" in json.loads(r.body)["nearest_rejected"]["reason"]
    _, _, names = download(client, f"/calib/get_calfile_for_obsid?obs_id={T0}{any_gain}", tmp_path)
    assert f"{CAL}.bin" in names


def test_no_solution_is_400_json_with_what_was_searched(client):
    seed([_obs(CAL, calibration=True), _obs(T0)], [])
    r = client.http.get(f"/calib/get_calfile_for_obsid?obs_id={T0}")
    assert r.status_code == 400
    assert_deprecated(r, f"/calib/get_cal_solution?obs_id={T0}")
    body = json.loads(r.body)
    assert body["error"] == "bad_request" and body["parameter"] == "obs_id"
    assert "no calibration solution" in body["message"]
    assert body["searched"]["obs_id"] == T0 and body["nearest_rejected"]["cal_id"] == CAL
    assert "calibration_request" not in body


def test_add_request_queues_a_calibration_request_when_no_fit_is_found(client, aws):
    seed([_obs(CAL, calibration=True), _obs(T0)], [])
    r = client.http.get(f"/calib/get_calfile_for_obsid?obs_id={T0}&zipfile=1&add_request=1")
    assert r.status_code == 400
    body = json.loads(r.body)
    assert body["calibration_request"] == {"queued": True, "cal_id": CAL, "obs_id": T0}
    msgs = aws["sqs"].receive_message(QueueUrl=aws["queue_url"], MaxNumberOfMessages=10)["Messages"]
    assert [(json.loads(m["Body"])["obs_id"], json.loads(m["Body"])["cal_id"]) for m in msgs] == [(T0, CAL)]


def test_add_request_turned_off_queues_nothing_and_says_where_to_ask(client, aws, monkeypatch):
    """An operator can make the API-keyed add_cal_request the only way to queue a fit."""
    monkeypatch.setenv("CALIB_LEGACY_ADD_REQUEST", "0")
    seed([_obs(CAL, calibration=True), _obs(T0)], [])
    r = client.http.get(f"/calib/get_calfile_for_obsid?obs_id={T0}&add_request=1")
    assert r.status_code == 400  # still the spec's "no calibration solution"
    req = json.loads(r.body)["calibration_request"]
    assert req["queued"] is False and req["status"] == 403 and "add_cal_request" in req["message"]
    assert "Messages" not in aws["sqs"].receive_message(QueueUrl=aws["queue_url"])


def test_add_request_without_a_calibrator_says_nothing_was_queued(client, aws):
    seed([_obs(T0)], [])
    r = client.http.get(f"/calib/get_calfile_for_obsid?obs_id={T0}&add_request=1")
    assert r.status_code == 400
    assert json.loads(r.body)["calibration_request"]["queued"] is False
    assert json.loads(r.body)["calibration_request"]["status"] == 404
    assert "Messages" not in aws["sqs"].receive_message(QueueUrl=aws["queue_url"])


def test_add_request_with_a_fit_queues_nothing(client, aws, tmp_path):
    _seed_standard()
    download(client, f"/calib/get_calfile_for_obsid?obs_id={T0}&add_request=1", tmp_path)
    assert "Messages" not in aws["sqs"].receive_message(QueueUrl=aws["queue_url"])


@pytest.mark.parametrize("query, parameter", [
    ("", "obs_id"),
    ("obs_id=abc", "obs_id"),
    (f"obs_id={T0 + 77}", "obs_id"),  # not in the schedule
    (f"obs_id={T0}&zipfile=0", "zipfile"),
    (f"obs_id={T0}&zipfile=yes", "zipfile"),
    (f"obs_id={T0}&add_request=2", "add_request"),
])
def test_bad_obsid_requests_are_400_naming_the_parameter(client, query, parameter):
    _seed_standard()
    r = client.http.get(f"/calib/get_calfile_for_obsid?{query}")
    assert r.status_code == 400, r.body
    assert json.loads(r.body)["parameter"] == parameter
    assert _deprecated_since(r.headers["Deprecation"]) and "successor-version" in r.headers["Link"]


def test_obsid_zips_are_cached_and_the_stored_metafits_gets_its_own(client, aws, tmp_path):
    _seed_standard()
    download(client, f"/calib/get_calfile_for_obsid?obs_id={T0}", tmp_path)
    download(client, f"/calib/get_calfile_for_obsid?obs_id={T0}", tmp_path)
    keys = sorted(o["Key"] for o in aws["s3"].list_objects_v2(Bucket="test-products")["Contents"])
    assert len(keys) == 1 and keys[0].endswith("-metafits-dbmeta.zip") and f"fit{NEW_FIT}" in keys[0]

    # once the observation's metafits is stored, zips carry it (a new cache entry, not the generated one)
    stored = mo_generated_with_marker(T0)
    aws["s3"].put_object(Bucket="test-products", Key=f"metadata/{T0}_metafits.fits", Body=stored)
    _, folder, _ = download(client, f"/calib/get_calfile_for_obsid?obs_id={T0}", tmp_path)
    with fits.open(folder / f"{T0}.metafits") as f:
        assert f[0].header["MARKER"] == "stored"
        assert f["CALIBDATA"].header["CALFIT"] == NEW_FIT
    keys = sorted(o["Key"] for o in aws["s3"].list_objects_v2(Bucket="test-products")["Contents"]
                  if o["Key"].startswith("cal_solutions/"))
    assert len(keys) == 2 and any(k.endswith("-metafits.zip") for k in keys)


def mo_generated_with_marker(obsid: int) -> bytes:
    """A stored metafits for the seeded target (generated, with a marker key to recognise it)."""
    from chalicelib.formats import metafits_calib, metafits_generate

    hdus = metafits_generate.generate_metafits(_obs(obsid))
    hdus[0].header["MARKER"] = "stored"
    return metafits_calib.to_bytes(hdus)


# ---------------------------------------------------------------------------------------------
# get_calfile_for_calid


def test_calid_zip_holds_the_latest_fit_named_after_the_calibrator(client, aws, tmp_path):
    _seed_standard(failed=(12, 20))
    r, folder, names = download(client, f"/calib/get_calfile_for_calid?cal_id={CAL}", tmp_path)
    assert_deprecated(r, f"/calib/get_cal_solution?obs_id={CAL}&max_time_separation=0")
    assert names == sorted([f"{CAL}.bin", f"{CAL}_flagged_tiles.txt", f"{CAL}_flags.py"])
    jones = read_bin((folder / f"{CAL}.bin").read_bytes())
    assert jones.shape == (1, 16, 768, 4)
    # the newest fit: delays 0.5 m per tile step (the older fit has 1.5 m), tiles 12 and 20 failed
    nu = 109 * 1.28e6 - 640e3
    k = 3  # tile 14
    expected = np.exp(1j * (0.1 * k - 2 * np.pi * nu * 0.5 * k / 299792458.0)) / 1.0
    assert jones[0, k, 0, 0] == pytest.approx(expected, rel=1e-12)
    assert flagged_from_file(folder / f"{CAL}_flagged_tiles.txt") == [1, 9]
    assert run_flag_script(folder / f"{CAL}_flags.py") == ["Tile012", "Tile020"]
    # the same zip as the successor's, under the same cache key
    download(client, f"/calib/get_cal_solution?obs_id={CAL}&max_time_separation=0", tmp_path)
    keys = [o["Key"] for o in aws["s3"].list_objects_v2(Bucket="test-products")["Contents"]]
    assert len(keys) == 1 and f"fit{NEW_FIT}" in keys[0]


@pytest.mark.parametrize("case", ["missing", "not_a_number", "unknown", "not_a_calibrator", "no_fit", "all_failed"])
def test_calid_errors_are_400_json(client, case):
    seed([_obs(CAL, calibration=True), _obs(T0), _obs(CAL - 5000, calibration=True),
           _obs(CAL - 9000, calibration=True)],
          [(_fit(NEW_FIT, CAL), _rows(range(11, 27))),
           (_fit(OLD_FIT, CAL - 9000), _rows(range(11, 27), nan_tiles=range(11, 27)))])
    query = {"missing": "", "not_a_number": "cal_id=x", "unknown": f"cal_id={T0 + 1}",
             "not_a_calibrator": f"cal_id={T0}", "no_fit": f"cal_id={CAL - 5000}",
             "all_failed": f"cal_id={CAL - 9000}"}[case]
    r = client.http.get(f"/calib/get_calfile_for_calid?{query}")
    assert r.status_code == 400, r.body
    body = json.loads(r.body)
    assert body["error"] == "bad_request" and body["parameter"] == "cal_id" and body["message"]
    assert _deprecated_since(r.headers["Deprecation"])


def test_nothing_found_while_building_is_400_not_404(client):
    """Nothing found is the spec's 400 on the deprecated endpoints, whatever step finds nothing."""
    seed([_obs(CAL, calibration=True), _obs(T0)], [(_fit(NEW_FIT, CAL), _rows(range(11, 27)))])
    # no tile list for either observation: selection finds the fit, building the zip finds nothing to lay it out
    db.execute("DELETE FROM observation_tile")
    for path in (f"/calib/get_calfile_for_obsid?obs_id={T0}", f"/calib/get_calfile_for_calid?cal_id={CAL}"):
        r = client.http.get(path)
        assert r.status_code == 400, (path, r.body)
        assert "no tile list" in json.loads(r.body)["message"]
        assert _deprecated_since(r.headers["Deprecation"])
