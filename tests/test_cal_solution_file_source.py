"""get_cal_solution?source=file: the fit's own hyperdrive files served exactly (fixture 1369821496 landed by manifest).

The 24 real solution files (or whole-band / per-band files built from them here with astropy) land
through the manifest path; what is served is compared with an independent reading of those files
(astropy, matched to the metafits Antenna by TileName), float for float, bit for bit.
"""

from __future__ import annotations

import io
import json
from dataclasses import replace

import numpy as np
import pytest
from chalice.test import Client

from tests.factories import fit, observation, seed, solution_rows, tile
from tests.mwa_files import mwa_file
from tests.real_fit import fixture_files
from tests.requests_support import s3_event
from tests.served_files import fetch_zip

CAL = 1369821496
FITID = 1685856000654321
METAFITS = f"{CAL}_metafits.fits"


# --- an independent reading of hyperdrive files and of what is served --------------------------

def _metafits() -> dict:
    from astropy.io import fits

    with fits.open(mwa_file(str(CAL), METAFITS)) as hdus:
        td = hdus["TILEDATA"].data
        names = {int(a): str(n).strip() for a, n in zip(td["Antenna"], td["TileName"])}
        tiles = {int(a): int(t) for a, t in zip(td["Antenna"], td["Tile"])}
        channels = sorted(int(c) for c in hdus[0].header["CHANNELS"].split(","))
    return {"name_of": names, "tile_of": tiles, "channels": channels, "n_ant": len(names)}


def read_solution_files(bodies: list[bytes]) -> dict:
    """SOLUTIONS floats (time, metafits Antenna, chanblock, 8) over every file's chanblocks sorted by frequency."""
    from astropy.io import fits

    meta = _metafits()
    antenna_of = {n: a for a, n in meta["name_of"].items()}
    parts, freqs, times = [], [], None
    for body in bodies:
        with fits.open(io.BytesIO(body)) as hdus:
            raw = np.array(hdus["SOLUTIONS"].data, dtype=np.float64)
            names = [str(n).strip() for n in hdus["TILES"].data["TileName"]]
            out = np.full((raw.shape[0], meta["n_ant"], raw.shape[2], 8), np.nan)
            for row, name in enumerate(names):
                out[:, antenna_of[name]] = raw[:, row]
            parts.append(out)
            freqs.append(np.array(hdus["CHANBLOCKS"].data["Freq"], dtype=np.float64))
            tb = hdus["TIMEBLOCKS"].data
            times = np.c_[tb["Start"], tb["End"], tb["Average"]].astype(np.float64)
    f = np.concatenate(freqs)
    order = np.argsort(f)
    return {"floats": np.concatenate(parts, axis=2)[:, :, order], "freqs": f[order], "times": times}


def bin_floats(data: bytes) -> tuple[np.ndarray, float, float]:
    """An AO-cal file as its float64 pairs (interval, antenna, channel, 8), with its start and end time."""
    n_int, n_ant, n_chan = np.frombuffer(data, "<u4", count=3, offset=16)
    start, end = np.frombuffer(data, "<f8", count=2, offset=32)
    assert len(data) == 48 + 64 * n_int * n_ant * n_chan
    return np.frombuffer(data, "<f8", offset=48).reshape(n_int, n_ant, n_chan, 8), float(start), float(end)


def assert_bit_exact(got: np.ndarray, expected: np.ndarray) -> None:
    """Every non-NaN float identical to the last bit, and NaN exactly where expected."""
    assert got.shape == expected.shape
    nan = np.isnan(expected)
    assert np.array_equal(np.isnan(got), nan)
    assert np.array_equal(got[~nan].view(np.uint64), expected[~nan].view(np.uint64))


# --- landing fits ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def originals_bytes() -> dict[str, bytes]:
    solutions, metafits = fixture_files()
    return {**{p.name: p.read_bytes() for p in solutions}, METAFITS: metafits.read_bytes()}


def combine(bodies: list[bytes], n_timeblocks: int = 1) -> bytes:
    """One hyperdrive file holding the chanblocks of several (frequency-sorted), built with astropy.

    ``n_timeblocks`` > 1 repeats the solutions with block k scaled by (k + 1), at times 600 s apart.
    """
    from astropy.io import fits

    opened = [fits.open(io.BytesIO(b)) for b in bodies]
    freq = np.concatenate([np.asarray(h["CHANBLOCKS"].data["Freq"], dtype=np.float64) for h in opened])
    flag = np.concatenate([np.asarray(h["CHANBLOCKS"].data["Flag"]) for h in opened])
    order = np.argsort(freq)
    sol = np.concatenate([np.asarray(h["SOLUTIONS"].data, dtype=np.float64) for h in opened], axis=2)[:, :, order]
    res = np.concatenate([np.asarray(h["RESULTS"].data, dtype=np.float64) for h in opened], axis=1)[:, order]
    first = opened[0]
    tb = first["TIMEBLOCKS"].data
    start, end, avg = float(tb["Start"][0]), float(tb["End"][0]), float(tb["Average"][0])
    if n_timeblocks > 1:
        sol = np.concatenate([sol * (k + 1) for k in range(n_timeblocks)], axis=0)
        res = np.concatenate([res] * n_timeblocks, axis=0)
    shift = 600.0 * np.arange(n_timeblocks)
    hdus = fits.HDUList([
        fits.PrimaryHDU(header=first[0].header),
        fits.ImageHDU(sol, name="SOLUTIONS"),
        fits.BinTableHDU.from_columns([fits.Column(name=n, format="1D", array=v + shift) for n, v in
                                       (("Start", start), ("End", end), ("Average", avg))], name="TIMEBLOCKS"),
        first["TILES"].copy(),
        fits.BinTableHDU.from_columns([
            fits.Column(name="Index", format="1J", array=np.arange(freq.size, dtype=np.int32)),
            fits.Column(name="Flag", format="1B", array=flag[order].astype(np.uint8)),
            fits.Column(name="Freq", format="1D", array=freq[order])], name="CHANBLOCKS"),
        fits.ImageHDU(res, name="RESULTS"),
        first["BASELINES"].copy(),
    ])
    buf = io.BytesIO()
    hdus.writeto(buf)
    for h in opened:
        h.close()
    return buf.getvalue()


def land(aws, files: dict[str, bytes], solutions: list[str], fitid: int = FITID) -> dict:
    """Upload the files and the metafits, then the manifest, and hand its S3 event to on_cal_file."""
    from app import app

    prefix = f"fits/{CAL}/{fitid}/"
    for name, body in files.items():
        aws["s3"].put_object(Bucket="test-cal", Key=prefix + name, Body=body)
    key = prefix + "manifest.json"
    aws["s3"].put_object(Bucket="test-cal", Key=key,
                         Body=json.dumps({"solutions": solutions, "metafits": METAFITS}).encode())
    [report] = app.handler_map["on_cal_file"](s3_event(key), None)
    assert report["ingest"]["written"] is True, report
    return report


def _names(files: dict[str, bytes]) -> list[str]:
    return sorted(n for n in files if n.startswith("hyp_soln_"))


@pytest.fixture
def client(clean_db, aws):
    from app import app

    with Client(app) as c:
        yield c


@pytest.fixture
def landed(client, aws, originals_bytes) -> dict:
    """The 24 per-coarse-channel files landed by manifest; the expected floats read from them."""
    land(aws, originals_bytes, _names(originals_bytes))
    return read_solution_files([originals_bytes[n] for n in _names(originals_bytes)])


CAL_QUERY = f"/calib/get_cal_solution?obs_id={CAL}&max_time_separation=0"


# --- the tests -------------------------------------------------------------------------------------

def test_file_source_bin_holds_the_24_files_values_exactly_in_antenna_order(client, landed):
    z = fetch_zip(client, CAL_QUERY + "&source=file")
    got, start, end = bin_floats(z.read(f"{CAL}.bin"))
    assert got.shape == (1, 144, 768, 8)
    assert_bit_exact(got, landed["floats"])
    assert (start, end) == tuple(landed["times"][0, :2])  # the timeblock's, not the observation's
    # the flag files follow the solution served: tiles NaN in every chanblock of the files
    nan_tiles = np.flatnonzero(np.isnan(landed["floats"][0]).all(axis=(1, 2))).tolist()
    assert [int(a) for a in z.read(f"{CAL}_flagged_tiles.txt").decode().split()] == nan_tiles
    names = _metafits()["name_of"]
    script = z.read(f"{CAL}_flags.py").decode()
    assert all(f"    {names[a]!r}," in script for a in nan_tiles)  # the script's TILES list
    assert script.count("flagdata(vis=") == 1  # one call flags them all


def test_table_source_is_unchanged_and_the_aocal_default(client, landed):
    default = fetch_zip(client, CAL_QUERY).read(f"{CAL}.bin")
    table = fetch_zip(client, CAL_QUERY + "&source=table").read(f"{CAL}.bin")
    exact = fetch_zip(client, CAL_QUERY + "&source=file").read(f"{CAL}.bin")
    assert default == table and table != exact
    got, start, end = bin_floats(table)
    assert (start, end) == (CAL, CAL + 120)  # the rebuild's interval: the calibrator observation
    ref = [a for a, t in _metafits()["tile_of"].items() if t == 11][0]  # the reference tile: phase 0 in the rows
    assert np.allclose(got[0, ref, :, 1], 0.0) and not np.allclose(landed["floats"][0, ref, 2:-2, 1], 0.0)


def test_hyperdrive_output_defaults_to_the_files(client, landed):
    from astropy.io import fits

    z = fetch_zip(client, CAL_QUERY + "&output_format=hyperdrive")
    with fits.open(io.BytesIO(z.read(f"{CAL}_solutions.fits"))) as hdus:
        assert_bit_exact(np.asarray(hdus["SOLUTIONS"].data, dtype=np.float64), landed["floats"])
        assert np.array_equal(hdus["CHANBLOCKS"].data["Freq"], landed["freqs"])
        assert [str(n).strip() for n in hdus["TILES"].data["TileName"]] == \
            [_metafits()["name_of"][a] for a in range(144)]
    # auto picks hyperdrive from the files too
    assert f"{CAL}_solutions.fits" in fetch_zip(client, CAL_QUERY + "&output_format=auto").namelist()


def test_subarray_target_gets_its_tiles_in_its_order_and_its_picket_fence_channels(client, aws, landed,
                                                                                    monkeypatch):
    from chalicelib import storage

    meta = _metafits()
    target = CAL + 600
    # 6 of the calibrator's tiles in another order (by tile id, at other Antenna indices) and one it lacks
    picked = [140, 3, 77, 12, 100, 0]
    tiles = [replace(tile(i, meta["tile_of"][a]), name=meta["name_of"][a]) for i, a in enumerate(picked)]
    tiles.append(tile(len(picked), 9999))
    channels = [60, 100, 105, 165]
    seed([observation(target, tiles=tiles, channels=channels)])
    fetched: list[str] = []
    real = storage.get_object
    monkeypatch.setattr(storage, "get_object", lambda b, k: fetched.append(k) or real(b, k))
    z = fetch_zip(client, f"/calib/get_cal_solution?obs_id={target}&source=file")
    # only the four files of the target's channels, each fetched once
    solution_keys = sorted(k for k in fetched if k.startswith("fits/"))
    assert solution_keys == sorted(f"fits/{CAL}/{FITID}/hyp_soln_{CAL}_ch{c}_solutions.fits" for c in channels)
    got, _, _ = bin_floats(z.read(f"{CAL}.bin"))
    assert got.shape == (1, 7, 4 * 32, 8)
    cols = np.flatnonzero(np.isin(np.floor(landed["freqs"] / 1.28e6 + 0.5 + 1e-9), channels))
    assert cols.size == 128
    assert_bit_exact(got[0, :6], landed["floats"][0][np.ix_(picked, cols)])
    assert np.isnan(got[0, 6]).all()  # the tile the fit lacks
    assert "6" in z.read(f"{target}_flagged_tiles.txt").decode().split()


@pytest.mark.parametrize("layout", ["whole band", "bands of 12"])
def test_one_whole_band_file_or_per_band_files_serve_the_same_values(client, aws, originals_bytes, layout):
    from chalicelib import db

    names = _names(originals_bytes)
    by_freq = sorted(names, key=lambda n: int(n.split("_ch")[1].split("_")[0]))
    groups = [by_freq] if layout == "whole band" else [by_freq[:12], by_freq[12:]]
    files = {f"{CAL}_band{i}_solutions.fits": combine([originals_bytes[n] for n in g]) for i, g in enumerate(groups)}
    land(aws, {**files, METAFITS: originals_bytes[METAFITS]}, sorted(files))
    rows = db.query("SELECT bucket_key, coarse_channels, n_chanblocks, n_timeblocks, size"
                    " FROM calibration_fit_solution_file ORDER BY bucket_key")
    meta = _metafits()
    chans = [meta["channels"]] if layout == "whole band" else [meta["channels"][:12], meta["channels"][12:]]
    assert [(r["bucket_key"].rsplit("/", 1)[1], r["coarse_channels"], r["n_chanblocks"], r["n_timeblocks"], r["size"])
            for r in rows] == [(n, c, 32 * len(c), 1, len(files[n])) for n, c in zip(sorted(files), chans)]
    expected = read_solution_files([originals_bytes[n] for n in names])["floats"]
    got, _, _ = bin_floats(fetch_zip(client, CAL_QUERY + "&source=file").read(f"{CAL}.bin"))
    assert_bit_exact(got, expected)


def test_aocal_takes_the_timeblock_nearest_the_target_and_hyperdrive_keeps_them_all(client, aws, originals_bytes):
    from astropy.io import fits

    names = _names(originals_bytes)
    two = combine([originals_bytes[n] for n in names], n_timeblocks=2)  # block 1: 600 s later, values x2
    land(aws, {"two_solutions.fits": two, METAFITS: originals_bytes[METAFITS]}, ["two_solutions.fits"])
    expected = read_solution_files([two])
    late_target = CAL + 660
    seed([observation(late_target, channels=_metafits()["channels"], tiles=[])])
    cases = {CAL: 0, late_target: 1}  # the calibrator itself: its first block; 660 s later: the second
    for target, block in cases.items():
        sep = "&max_time_separation=0" if target == CAL else ""
        got, start, end = bin_floats(fetch_zip(client, f"/calib/get_cal_solution?obs_id={target}&source=file{sep}")
                                     .read(f"{CAL}.bin"))
        assert got.shape[0] == 1
        assert_bit_exact(got[0], expected["floats"][block])
        assert (start, end) == tuple(expected["times"][block, :2])
    z = fetch_zip(client, CAL_QUERY + "&output_format=hyperdrive")
    with fits.open(io.BytesIO(z.read(f"{CAL}_solutions.fits"))) as hdus:
        assert_bit_exact(np.asarray(hdus["SOLUTIONS"].data, dtype=np.float64), expected["floats"])
        assert np.array_equal(np.c_[hdus["TIMEBLOCKS"].data["Start"], hdus["TIMEBLOCKS"].data["End"],
                                    hdus["TIMEBLOCKS"].data["Average"]], expected["times"])


def test_gain_max_cutoff_flags_jones_with_any_element_above_it(client, landed):
    from chalicelib import db

    floats = landed["floats"][0]
    amp = np.abs(floats[..., 0::2] + 1j * floats[..., 1::2]).max(axis=-1)  # the largest |element| of each Jones
    cutoff = float(np.nanpercentile(amp, 90))
    db.execute("UPDATE calibration_fits SET gain_max_cutoff = :c", {"c": cutoff})
    got, _, _ = bin_floats(fetch_zip(client, CAL_QUERY + "&source=file&nocache=1").read(f"{CAL}.bin"))
    expected = floats.copy()
    with np.errstate(invalid="ignore"):
        expected[amp > cutoff] = np.nan
    assert 0.05 < np.mean(amp > cutoff) < 0.15
    assert_bit_exact(got[0], expected)


def test_coarser_fine_chan_khz_averages_the_native_chanblocks(client, landed):
    got, _, _ = bin_floats(fetch_zip(client, CAL_QUERY + "&source=file&fine_chan_khz=160").read(f"{CAL}.bin"))
    assert got.shape == (1, 144, 24 * 8, 8)
    native = landed["floats"][0]
    jones = native[..., 0::2] + 1j * native[..., 1::2]  # (144, 768, 4)
    groups = jones.reshape(144, 24 * 8, 4, 4)  # 4 native 40 kHz chanblocks per 160 kHz channel
    ok = ~np.isnan(groups)
    count = ok.sum(axis=2)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(ok, groups, 0).sum(axis=2) / count
    mean[count == 0] = np.nan
    served = got[0, ..., 0::2] + 1j * got[0, ..., 1::2]
    assert np.array_equal(np.isnan(served), np.isnan(mean))
    good = ~np.isnan(mean)
    np.testing.assert_allclose(served[good], mean[good], rtol=1e-13, atol=1e-16)


def test_fine_chan_khz_finer_than_native_is_a_400_naming_the_native_width(client, landed):
    r = client.http.get(CAL_QUERY + "&source=file&fine_chan_khz=20")
    assert r.status_code == 400
    body = json.loads(r.body)
    assert body["parameter"] == "fine_chan_khz" and "40 kHz" in body["message"] and body["error"]
    r = client.http.get(CAL_QUERY + "&source=table&fine_chan_khz=20")  # the table has no native width
    assert r.status_code == 302


def test_file_source_on_a_fit_without_files_is_a_404_and_best_falls_back_to_the_table(client, aws):
    t0 = 1_400_000_000
    seed([observation(t0 - 10, calibration=True), observation(t0)],
         [(fit(1_700_000_000_000_000, t0 - 10), solution_rows(range(11, 27)))])
    r = client.http.get(f"/calib/get_cal_solution?obs_id={t0}&source=file")
    assert r.status_code == 404
    body = json.loads(r.body)
    assert body["parameter"] == "source" and "no hyperdrive solution files" in body["message"]
    z = fetch_zip(client, f"/calib/get_cal_solution?obs_id={t0}&source=best&output_format=hyperdrive")
    assert f"{t0 - 10}_solutions.fits" in z.namelist()
    r = client.http.get(f"/calib/get_cal_solution?obs_id={t0}&source=exact")
    assert r.status_code == 400 and json.loads(r.body)["parameter"] == "source"


def test_each_source_has_its_cache_key_and_nocache_rebuilds_from_the_same_source(client, aws, landed):
    fetch_zip(client, CAL_QUERY + "&source=table")
    fetch_zip(client, CAL_QUERY + "&source=file")
    keys = sorted(o["Key"] for o in aws["s3"].list_objects_v2(Bucket="test-products", Prefix="cal_solutions/")["Contents"])
    assert keys == [f"cal_solutions/{CAL}/{CAL}_cal{CAL}_fit{FITID}_aocal_40khz-file.zip",
                    f"cal_solutions/{CAL}/{CAL}_cal{CAL}_fit{FITID}_aocal_40khz.zip"]
    # a solution file gone from the bucket: the cached file answer still comes, a rebuild needs the file
    gone = f"fits/{CAL}/{FITID}/hyp_soln_{CAL}_ch100_solutions.fits"
    aws["s3"].delete_object(Bucket="test-cal", Key=gone)
    fetch_zip(client, CAL_QUERY + "&source=file")
    r = client.http.get(CAL_QUERY + "&source=file&nocache=1")
    assert r.status_code == 404 and gone in json.loads(r.body)["message"]
    fetch_zip(client, CAL_QUERY + "&source=table&nocache=1")  # the table needs no file


def test_the_site_pipelines_solutions_file_is_recorded_when_it_lands(client, aws, originals_bytes):
    from app import app
    from chalicelib import db

    meta = _metafits()
    fitid = 1685856000999999
    seed([observation(CAL, calibration=True, channels=meta["channels"], tiles=[])],
         [(fit(fitid, CAL), solution_rows(range(11, 27)))])
    key = f"fits/{CAL}/{fitid}/{CAL}_solutions.fits"
    body = combine([originals_bytes[n] for n in _names(originals_bytes)])
    aws["s3"].put_object(Bucket="test-cal", Key=key, Body=body)
    app.handler_map["on_cal_file"](s3_event(key), None)
    [row] = db.query("SELECT * FROM calibration_fit_solution_file")
    assert (row["fitid"], row["obsid"], row["bucket_key"]) == (fitid, CAL, key)
    assert (row["coarse_channels"], row["n_chanblocks"], row["size"]) == (meta["channels"], 768, len(body))
    # a site file of a fit the database does not know is not recorded (the backfill picks it up later)
    other = f"fits/{CAL}/1685856000888888/{CAL}_solutions.fits"
    aws["s3"].put_object(Bucket="test-cal", Key=other, Body=body)
    app.handler_map["on_cal_file"](s3_event(other), None)
    assert db.query("SELECT count(*) AS n FROM calibration_fit_solution_file")[0]["n"] == 1


def test_backfill_records_the_files_of_known_fits_from_one_listing(client, aws, originals_bytes, monkeypatch, capsys):
    from chalicelib import db, storage
    from chalicelib.ingest import backfill

    names = _names(originals_bytes)
    land(aws, originals_bytes, names)  # an ingested fit: its manifest lists 24 files
    columns = "fitid, obsid, bucket_key, coarse_channels, n_chanblocks, n_timeblocks, chanblock_hz, size"
    recorded_at_landing = db.query(f"SELECT {columns} FROM calibration_fit_solution_file ORDER BY bucket_key")
    assert len(recorded_at_landing) == 24
    site_fit = 1685856000999999  # a site-pipeline fit of the same calibrator, known to the database
    seed([], [(fit(site_fit, CAL), solution_rows(range(11, 27)))])
    body = combine([originals_bytes[n] for n in names])
    aws["s3"].put_object(Bucket="test-cal", Key=f"fits/{CAL}/{site_fit}/{CAL}_solutions.fits", Body=body)
    aws["s3"].put_object(Bucket="test-cal", Key=f"fits/{CAL}/{site_fit}/log.txt", Body=b"done")
    aws["s3"].put_object(Bucket="test-cal", Key=f"fits/{CAL}/1600000000000000/{CAL}_solutions.fits", Body=body)
    db.execute("DELETE FROM calibration_fit_solution_file")  # as before the migration

    listings = []
    real = storage.list_objects
    monkeypatch.setattr(storage, "list_objects", lambda b, p: listings.append((b, p)) or real(b, p))
    assert backfill.main([]) == 0
    assert listings == [("test-cal", "fits/")]
    out = capsys.readouterr().out
    assert "recorded 25 solution files of 2 fits" in out and "1 fits not in the database" in out
    rows = db.query(f"SELECT {columns} FROM calibration_fit_solution_file ORDER BY bucket_key")
    assert [r for r in rows if r["fitid"] == FITID] == recorded_at_landing
    [site] = [r for r in rows if r["fitid"] == site_fit]
    assert site["bucket_key"] == f"fits/{CAL}/{site_fit}/{CAL}_solutions.fits"
    assert (site["coarse_channels"], site["n_chanblocks"], site["size"]) == (_metafits()["channels"], 768, len(body))
    # served from the backfilled files, exactly
    got, _, _ = bin_floats(fetch_zip(client, CAL_QUERY + "&source=file").read(f"{CAL}.bin"))
    assert_bit_exact(got, read_solution_files([originals_bytes[n] for n in names])["floats"])
    # a second run finds everything recorded
    assert backfill.main([]) == 0
    assert "recorded 0 solution files of 0 fits; skipped 2 fits already recorded" in capsys.readouterr().out
