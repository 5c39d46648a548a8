"""get_cal_solution?interpolate=1&source=file|best: two fits' own solution files combined, checked by the formula.

The fit before is the real hyperdrive fit of obs 1369821496 (its 24 files as they are); the fit
after is the same files changed here with astropy (every Jones times a per-tile gain and a phase
that runs with channel, one tile blanked, a tile the first fit lacks filled in), as another fit of
another calibrator 4000 s later. Both fits' rows come from the factories, so each fit's reference
tile is known (the tile whose row is 0). The .bin is read with the independent reader of
tests/served_files.py and every Jones is compared with the formula evaluated here with numpy:
each side times exp(-i arg J_ref) (XX, YX by the reference's XX phase, XY, YY by its YY phase),
then w J_b' + (1 - w) J_a', a side NaN taking the other, both NaN staying NaN.
"""

from __future__ import annotations

import io
import json
import warnings
from dataclasses import replace

import numpy as np
import pytest
from chalice.test import Client

from tests.factories import fit, observation, seed, solution_rows, tile
from tests.real_fit import fixture_files
from tests.served_files import fetch_zip, read_bin

CAL_B = 1369821496  # the calibrator before the target: the real fit's observation
CAL_A = CAL_B + 4000  # the calibrator after
TARGET = CAL_B + 1000
W = (CAL_A - TARGET) / (CAL_A - CAL_B)  # 0.75 on the fit before
FIT_B = 1685856000654321
FIT_A = 1685860000654321
QUERY = f"/calib/get_cal_solution?obs_id={TARGET}&interpolate=1"


# --- the fixture, read here with astropy ------------------------------------------------------

@pytest.fixture(scope="module")
def meta() -> dict:
    """The metafits' tiles (Antenna order, one TileInfo each, named as the files name them) and channels."""
    from astropy.io import fits

    _, metafits = fixture_files()
    with fits.open(metafits) as hdus:
        td = hdus["TILEDATA"].data
        seen = {}
        for a, t, n in zip(td["Antenna"], td["Tile"], td["TileName"]):
            seen[int(a)] = (int(t), str(n).strip())
        channels = sorted(int(c) for c in hdus[0].header["CHANNELS"].split(","))
    tiles = [replace(tile(a, seen[a][0]), name=seen[a][1]) for a in sorted(seen)]
    return {"tiles": tiles, "channels": channels, "ids": [t.tile_id for t in tiles]}


@pytest.fixture(scope="module")
def originals_bytes() -> dict[str, bytes]:
    solutions, _ = fixture_files()
    return {p.name: p.read_bytes() for p in solutions}


def read_files(bodies: list[bytes], n_ant: int) -> dict:
    """Jones (Antenna, chanblock, 4) of hyperdrive files over their chanblocks by frequency; TILES/CHANBLOCKS flags NaN."""
    from astropy.io import fits

    parts, freqs = [], []
    for body in bodies:
        with fits.open(io.BytesIO(body)) as hdus:
            raw = np.array(hdus["SOLUTIONS"].data, dtype=np.float64)[0]
            j = np.full((n_ant, raw.shape[1], 4), complex(np.nan, np.nan))
            ant = np.asarray(hdus["TILES"].data["Antenna"]).astype(int)
            j[ant] = raw[..., 0::2] + 1j * raw[..., 1::2]
            j[ant[np.asarray(hdus["TILES"].data["Flag"]) != 0]] = np.nan
            j[:, np.asarray(hdus["CHANBLOCKS"].data["Flag"]) != 0] = np.nan
            parts.append(j)
            freqs.append(np.asarray(hdus["CHANBLOCKS"].data["Freq"], dtype=np.float64))
    f = np.concatenate(freqs)
    order = np.argsort(f)
    return {"jones": np.concatenate(parts, axis=1)[:, order], "freqs": f[order]}


def rewrite(body: bytes, change, obsid: int, pairs: bool = False) -> bytes:
    """A hyperdrive file with its Jones (tile row, chanblock, 4) changed by ``change``, its OBSID set;
    ``pairs`` averages each two neighbouring chanblocks (an 80 kHz fit from a 40 kHz one)."""
    from astropy.io import fits

    with fits.open(io.BytesIO(body)) as hdus:
        raw = np.array(hdus["SOLUTIONS"].data, dtype=np.float64)
        j = raw[..., 0::2] + 1j * raw[..., 1::2]
        freq = np.asarray(hdus["CHANBLOCKS"].data["Freq"], dtype=np.float64)
        flag = np.asarray(hdus["CHANBLOCKS"].data["Flag"]).astype(np.uint8)
        res = np.asarray(hdus["RESULTS"].data, dtype=np.float64)
        if pairs:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                j = np.nanmean(j.reshape(j.shape[0], j.shape[1], -1, 2, 4), axis=3)
            freq, flag = freq.reshape(-1, 2).mean(axis=1), flag.reshape(-1, 2).max(axis=1)
            res = res.reshape(res.shape[0], -1, 2).mean(axis=2)
        j = change(j[0])[None]
        sol = np.empty(j.shape[:-1] + (8,))
        sol[..., 0::2], sol[..., 1::2] = j.real, j.imag
        hdus[0].header["OBSID"] = str(obsid)
        hdus["SOLUTIONS"].data = sol
        hdus["RESULTS"].data = res
        cb = fits.BinTableHDU.from_columns([
            fits.Column(name="Index", format="1J", array=np.arange(freq.size, dtype=np.int32)),
            fits.Column(name="Flag", format="1B", array=flag),
            fits.Column(name="Freq", format="1D", array=freq)], name="CHANBLOCKS")
        out = fits.HDUList([hdu if hdu.name != "CHANBLOCKS" else cb for hdu in hdus])
        buf = io.BytesIO()
        out.writeto(buf)
    return buf.getvalue()


BLANKED = 5  # Antenna the fit after has NaN (the fit before solves it)
FILLED = 33  # Antenna NaN in the real fit (before) that the fit after solves


def later(j: np.ndarray) -> np.ndarray:
    """The fit after: per-tile gain and phase, a common phase running with channel (the reference removes it)."""
    rows = np.arange(j.shape[0])[:, None, None]
    chans = np.arange(j.shape[1])[None, :, None]
    out = j * (1 + 0.002 * rows) * np.exp(1j * (0.4 + 0.003 * chans + 0.01 * rows))
    out[BLANKED] = np.nan
    out[FILLED] = out[0] * 0.9
    return out


# --- seeding the two fits ------------------------------------------------------------------------

def put_files(aws, fitid: int, cal: int, files: dict[str, bytes]) -> None:
    """The files in the calibration bucket, recorded as the fit's (as the ingest records them)."""
    from chalicelib.db import solution_files
    from chalicelib.solutions.files import describe_bytes

    described = []
    for name, body in files.items():
        key = f"fits/{cal}/{fitid}/{name}"
        aws["s3"].put_object(Bucket="test-cal", Key=key, Body=body)
        described.append(describe_bytes(key, body))
    assert solution_files.record_now(fitid, cal, described) == len(files)


def seed_fits(meta: dict, *, gains=(1.0, 1.0, 1.0), after_reference: int | None = None) -> None:
    """Both calibrators, the target between them (same tiles and channels) and a fit of each with rows.

    The rows' first tile is 0 (the fit's reference): the lowest tile id, or ``after_reference`` on the fit after.
    """
    ids = meta["ids"]
    after_ids = ids if after_reference is None else [after_reference] + [t for t in ids if t != after_reference]
    obs = [observation(CAL_B, calibration=True, tiles=meta["tiles"], channels=meta["channels"], gain=gains[0]),
           observation(TARGET, tiles=meta["tiles"], channels=meta["channels"], gain=gains[1]),
           observation(CAL_A, calibration=True, tiles=meta["tiles"], channels=meta["channels"], gain=gains[2])]
    seed(obs, [(fit(FIT_B, CAL_B), solution_rows(sorted(ids))), (fit(FIT_A, CAL_A), solution_rows(after_ids))])


@pytest.fixture
def client(clean_db, aws):
    from app import app

    with Client(app) as c:
        yield c


def referred(j: np.ndarray, ref: int) -> np.ndarray:
    """Jones (tile, channel, 4) times exp(-i phase of the reference): XX, YX by its XX; XY, YY by its YY."""
    out = j.copy()
    for cols, by in (((0, 2), 0), ((1, 3), 3)):
        rot = np.exp(-1j * np.angle(j[ref, :, by]))[None, :]
        for c in cols:
            out[..., c] = j[..., c] * rot
    return out


def expected_combination(jb: np.ndarray, ja: np.ndarray, ref: int, w: float = W) -> np.ndarray:
    """w J_b' + (1 - w) J_a' where both sides have the (tile, channel), else the side that has it, else NaN."""
    b, a = referred(jb, ref), referred(ja, ref)
    ok_b, ok_a = np.isfinite(b).all(axis=-1), np.isfinite(a).all(axis=-1)
    out = np.full(b.shape, complex(np.nan, np.nan))
    both = ok_b & ok_a
    out[both] = w * b[both] + (1 - w) * a[both]
    out[ok_b & ~ok_a] = b[ok_b & ~ok_a]
    out[ok_a & ~ok_b] = a[ok_a & ~ok_b]
    return out


def assert_jones(got: np.ndarray, expected: np.ndarray) -> None:
    assert got.shape == expected.shape
    nan = np.isnan(expected).any(axis=-1)
    assert np.array_equal(np.isnan(got).any(axis=-1), nan)
    np.testing.assert_allclose(got[~nan], expected[~nan], rtol=1e-12, atol=1e-15)


def usable_everywhere(jb: np.ndarray, ja: np.ndarray, ref: int) -> bool:
    """The tile has finite XX and YY on both sides in every channel where any tile has them on both."""
    def ok(j):
        return np.isfinite(j[..., 0]) & np.isfinite(j[..., 3])
    both = ok(jb) & ok(ja)
    return bool(both[ref, both.any(axis=0)].all())


@pytest.fixture
def two_fits(client, aws, meta, originals_bytes) -> dict:
    """The real files as the fit before, their changed copies as the fit after; the Jones of each read here."""
    seed_fits(meta)
    after = {n.replace(str(CAL_B), str(CAL_A)): rewrite(b, later, CAL_A) for n, b in originals_bytes.items()}
    put_files(aws, FIT_B, CAL_B, originals_bytes)
    put_files(aws, FIT_A, CAL_A, after)
    n = len(meta["tiles"])
    return {"before": read_files(list(originals_bytes.values()), n)["jones"],
            "after": read_files(list(after.values()), n)["jones"]}


# --- the tests -------------------------------------------------------------------------------------

def test_file_interpolation_is_the_weighted_sum_of_both_files_referred_to_the_reference_tile(client, meta,
                                                                                              two_fits):
    jb, ja = two_fits["before"], two_fits["after"]
    ref = meta["ids"].index(11)  # both fits' rows hold tile 11 at 0: their reference
    assert usable_everywhere(jb, ja, ref)
    z = fetch_zip(client, QUERY + "&source=file")
    got, start, end = read_bin(z.read(f"{CAL_B}_{CAL_A}.bin"))
    assert got.shape == (1, 144, 768, 4)
    assert (start, end) == (CAL_B, CAL_A + 120)  # one interval: calibrator before's start to after's end
    expected = expected_combination(jb, ja, ref)
    assert_jones(got[0], expected)
    # the tile NaN on one side takes the other's, NaN on both stays NaN
    assert np.isnan(ja[BLANKED]).all() and np.isfinite(got[0, BLANKED]).any()
    assert_jones(got[0, BLANKED], referred(jb, ref)[BLANKED])
    assert np.isnan(jb[FILLED]).all() and np.isfinite(got[0, FILLED]).any()
    assert_jones(got[0, FILLED], referred(ja, ref)[FILLED])
    both_nan = np.flatnonzero(np.isnan(jb).all(axis=(1, 2)) & np.isnan(ja).all(axis=(1, 2)))
    assert both_nan.size and np.isnan(got[0, both_nan]).all()
    # one phase reference: the reference tile's diagonal is real and positive wherever it is served
    diag = got[0, ref][:, [0, 3]]
    fin = np.isfinite(diag)
    np.testing.assert_allclose(diag[fin].imag, 0, atol=1e-12)
    assert (diag[fin].real > 0).all()
    # the flag files follow the combined solution
    served_nan = np.flatnonzero(np.isnan(got[0]).all(axis=(1, 2))).tolist()
    assert served_nan == both_nan.tolist()
    assert [int(a) for a in z.read(f"{TARGET}_flagged_tiles.txt").decode().split()] == served_nan
    script = z.read(f"{TARGET}_flags.py").decode()
    assert f"fit {FIT_B}" in script and f"fit {FIT_A}" in script and "tile 11 on both sides" in script
    # the table interpolation differs (the line model), and is what source=table still gives
    table, _, _ = read_bin(fetch_zip(client, QUERY + "&source=table").read(f"{CAL_B}_{CAL_A}.bin"))
    assert table.shape == got.shape and not np.allclose(table[np.isfinite(got)], got[np.isfinite(got)])


def test_hyperdrive_output_defaults_to_the_files_when_both_fits_have_them(client, meta, two_fits):
    from astropy.io import fits

    z = fetch_zip(client, QUERY + "&output_format=hyperdrive")  # source defaults to best
    with fits.open(io.BytesIO(z.read(f"{CAL_B}_{CAL_A}_solutions.fits"))) as hdus:
        raw = np.asarray(hdus["SOLUTIONS"].data, dtype=np.float64)
        names = [str(n).strip() for n in hdus["TILES"].data["TileName"]]
    assert raw.shape == (1, 144, 768, 8)
    assert names == [t.name for t in meta["tiles"]]
    expected = expected_combination(two_fits["before"], two_fits["after"], meta["ids"].index(11))
    assert_jones(raw[0][..., 0::2] + 1j * raw[0][..., 1::2], expected)


def test_the_fits_reference_is_used_on_both_sides_when_it_serves_both(client, aws, meta, originals_bytes):
    """The fit after lacks tile 11 (its rows refer to tile 12): both sides are divided by tile 12's phase."""
    seed_fits(meta, after_reference=12)
    t11 = meta["ids"].index(11)

    def without_11(j):
        out = later(j)
        out[t11] = np.nan
        return out

    after = {n: rewrite(b, without_11, CAL_A) for n, b in originals_bytes.items()}
    put_files(aws, FIT_B, CAL_B, originals_bytes)
    put_files(aws, FIT_A, CAL_A, after)
    jb = read_files(list(originals_bytes.values()), 144)["jones"]
    ja = read_files(list(after.values()), 144)["jones"]
    ref = meta["ids"].index(12)
    assert usable_everywhere(jb, ja, ref) and not usable_everywhere(jb, ja, t11)
    z = fetch_zip(client, QUERY + "&source=file")
    got, _, _ = read_bin(z.read(f"{CAL_B}_{CAL_A}.bin"))
    assert_jones(got[0], expected_combination(jb, ja, ref))
    assert_jones(got[0, t11], referred(jb, ref)[t11])  # the fit before's tile 11, referred to tile 12
    assert "tile 12 on both sides" in z.read(f"{TARGET}_flags.py").decode()


def test_best_with_one_fit_without_files_is_the_table_interpolation_and_file_is_the_404(client, aws, meta,
                                                                                        originals_bytes):
    seed_fits(meta)
    put_files(aws, FIT_B, CAL_B, originals_bytes)  # the fit after has no files
    best = fetch_zip(client, QUERY + "&source=best").read(f"{CAL_B}_{CAL_A}.bin")
    table = fetch_zip(client, QUERY + "&source=table").read(f"{CAL_B}_{CAL_A}.bin")
    assert best == table
    r = client.http.get(QUERY + "&source=file")
    assert r.status_code == 404
    body = json.loads(r.body)
    assert body["parameter"] == "source" and body["error"]
    assert f"fit {FIT_A} of calibrator {CAL_A} has no hyperdrive solution files" in body["message"]
    # the one-sided answer gives the same error for the same fit
    one = client.http.get(f"/calib/get_cal_solution?obs_id={CAL_A}&max_time_separation=0&source=file")
    assert one.status_code == 404 and json.loads(one.body)["message"] == body["message"]


def test_file_and_table_interpolations_have_their_own_cache_keys(client, aws, two_fits):
    fetch_zip(client, QUERY + "&source=table")
    fetch_zip(client, QUERY + "&source=file")
    keys = sorted(o["Key"] for o in aws["s3"].list_objects_v2(Bucket="test-products")["Contents"])
    stem = f"cal_solutions/{TARGET}/{TARGET}_cal{CAL_B}_fit{FIT_B}_cal{CAL_A}_fit{FIT_A}_w0.75_aocal_40khz"
    assert keys == [stem + "-file.zip", stem + ".zip"]


def test_fits_of_different_native_widths_are_combined_on_the_coarser_grid(client, aws, meta, originals_bytes):
    seed_fits(meta)
    after = {n: rewrite(b, later, CAL_A, pairs=True) for n, b in originals_bytes.items()}  # 80 kHz
    put_files(aws, FIT_B, CAL_B, originals_bytes)
    put_files(aws, FIT_A, CAL_A, after)
    jb40 = read_files(list(originals_bytes.values()), 144)["jones"]
    ja = read_files(list(after.values()), 144)["jones"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        jb = np.nanmean(jb40.reshape(144, 384, 2, 4), axis=2)  # the 40 kHz fit averaged in pairs
    got, _, _ = read_bin(fetch_zip(client, QUERY + "&source=file").read(f"{CAL_B}_{CAL_A}.bin"))
    assert got.shape == (1, 144, 384, 4)
    assert_jones(got[0], expected_combination(jb, ja, meta["ids"].index(11)))
    r = client.http.get(QUERY + "&source=file&fine_chan_khz=40")  # finer than the fit after's native width
    assert r.status_code == 400
    body = json.loads(r.body)
    assert body["parameter"] == "fine_chan_khz" and "80 kHz" in body["message"]
    got160, _, _ = read_bin(fetch_zip(client, QUERY + "&source=file&fine_chan_khz=160").read(f"{CAL_B}_{CAL_A}.bin"))
    assert got160.shape == (1, 144, 192, 4)


def test_attenuation_is_corrected_per_side_with_its_own_db(client, aws, meta, originals_bytes):
    seed_fits(meta, gains=(1.0, 3.0, 5.0))  # before 1 dB, target 3 dB, after 5 dB
    after = {n: rewrite(b, later, CAL_A) for n, b in originals_bytes.items()}
    put_files(aws, FIT_B, CAL_B, originals_bytes)
    put_files(aws, FIT_A, CAL_A, after)
    jb = read_files(list(originals_bytes.values()), 144)["jones"] * 10 ** ((3.0 - 1.0) / 20)
    ja = read_files(list(after.values()), 144)["jones"] * 10 ** ((3.0 - 5.0) / 20)
    z = fetch_zip(client, QUERY + "&source=file&correct_attenuation=1")
    got, _, _ = read_bin(z.read(f"{CAL_B}_{CAL_A}.bin"))
    assert_jones(got[0], expected_combination(jb, ja, meta["ids"].index(11)))
    script = z.read(f"{TARGET}_flags.py").decode()
    assert f"calibrator {CAL_B} x 10^((3 - 1)/20)" in script and f"calibrator {CAL_A} x 10^((3 - 5)/20)" in script
