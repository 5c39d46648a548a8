"""hyperdrive FITS solutions: written files look like real hyperdrive output; real files read correctly."""

from __future__ import annotations

import dataclasses
import io
import subprocess
import sys

import numpy as np
import pytest
from astropy.io import fits

from chalicelib.formats.hyperdrive import read_hyperdrive, write_hyperdrive
from chalicelib.solutions import CalibrationSolution, TileInfo
from tests.mwa_files import PROJECT_ROOT, mwa_file
from tests.real_fit import fixture_files

OBSID = "1369821496"
REAL = f"hyp_soln_{OBSID}_ch100_solutions.fits"


def _real_path(name: str = REAL):
    return mwa_file(OBSID, name)


def _names(sol: CalibrationSolution) -> list[str]:
    return [t.name for t in sol.tiles]


def _as_from_the_database(sol: CalibrationSolution) -> CalibrationSolution:
    """The read solution without what only a file carries: what a solution rebuilt from the database holds."""
    return dataclasses.replace(sol, fitid=1773831785589944, software="mwa-calib-service", header={},
                               chanblock_flags=None, results=None, time_averages_gps=None)


def _small_solution() -> CalibrationSolution:
    rng = np.random.default_rng(7)
    shape = (2, 5, 6, 4)
    jones = rng.normal(size=shape) + 1j * rng.normal(size=shape)
    jones[:, 3] = np.nan  # tile 3 has no solution
    jones[:, :, 0] = np.nan  # chanblock 0 flagged in every tile
    jones[1, :, 4] = np.nan  # chanblock 4 failed in time block 1 only
    jones[0, 1, 2, 1] = -0.0  # signed zero must survive
    tiles = [
        TileInfo(antenna=a, tile_id=tile_id, name=name, rx=1, slot=a + 1, flagged=(a == 4))
        for a, (tile_id, name) in enumerate(
            [(11, "Tile011"), (12, "Tile012"), (1017, "HexS17"), (2049, "LBA1"), (2050, "Tile250")]
        )
    ]
    return CalibrationSolution(
        jones=jones,
        tiles=tiles,
        freqs_hz=np.arange(6) * 40e3 + 127.36e6,
        times_gps=[(1369821498.0, 1369821558.0), (1369821558.0, 1369821616.0)],
        cal_obsid=1369821496,
    )


def test_read_real_file_shapes_and_metadata() -> None:
    h = read_hyperdrive(_real_path())
    with fits.open(_real_path()) as real:
        raw = real["SOLUTIONS"].data.astype(np.float64)
        freqs = np.array(real["CHANBLOCKS"].data["Freq"], dtype=np.float64)
        names = [str(n) for n in real["TILES"].data["TileName"]]
        results = np.array(real["RESULTS"].data, dtype=np.float64)
        tb = real["TIMEBLOCKS"].data

    assert h.cal_obsid == int(OBSID)
    assert h.jones.shape == (1, 144, 32, 4)
    assert h.jones.dtype == np.complex128
    np.testing.assert_array_equal(h.freqs_hz, freqs)
    assert h.freqs_hz[0] == 100 * 1.28e6 - 640e3  # receiver channel 100, MWAX fine channel 0
    np.testing.assert_array_equal(h.jones, raw[..., 0::2] + 1j * raw[..., 1::2])
    assert _names(h) == names and _names(h)[0] == "Tile011"
    assert [t.antenna for t in h.tiles] == list(range(144))
    np.testing.assert_array_equal(h.results, results)
    assert h.timeblocks().shape == (1, 3)
    assert tuple(h.timeblocks()[0]) == (tb["Start"][0], tb["End"][0], tb["Average"][0])
    assert h.software == "Created by mwa_hyperdrive v0.2.1"
    # 9 tiles have no solution, the two chanblocks at each coarse-channel edge failed everywhere
    assert np.isnan(h.jones).all(axis=(0, 2, 3)).sum() == 9
    assert np.isnan(h.results[0]).tolist() == [True, True] + [False] * 28 + [True, True]


def test_every_file_of_the_real_fit_reads_bit_for_bit() -> None:
    """All 24 per-coarse-channel files: Jones bits, tiles, frequencies and RESULTS as astropy reads them."""
    solutions, _ = fixture_files()
    for path in solutions:
        sol = read_hyperdrive(path)
        with fits.open(path) as real:
            raw = np.asarray(real["SOLUTIONS"].data).astype("<f8")  # big-endian on disk: same bits, native order
            tiles = real["TILES"].data
            names = [str(n) for n in tiles["TileName"]]
            antennas = np.asarray(tiles["Antenna"]).tolist()
            flags = (np.asarray(tiles["Flag"]) != 0).tolist()
            freqs = np.asarray(real["CHANBLOCKS"].data["Freq"], dtype=np.float64)
            chan_flags = (np.asarray(real["CHANBLOCKS"].data["Flag"]) != 0).tolist()
            results = np.asarray(real["RESULTS"].data, dtype=np.float64)
            obsid = real[0].header["OBSID"]
        assert sol.jones.shape == (1, 144, 32, 4), path.name
        # the complex values are the float64 pairs themselves: every bit, NaN payloads included
        np.testing.assert_array_equal(sol.jones.view(np.float64).view(np.uint64), raw.view(np.uint64))
        assert [(t.antenna, t.name, t.flagged) for t in sol.tiles] == list(zip(antennas, names, flags))
        np.testing.assert_array_equal(sol.freqs_hz, freqs)
        assert sol.chanblock_flags.tolist() == chan_flags
        np.testing.assert_array_equal(sol.results, results)
        assert str(sol.cal_obsid) == obsid == OBSID
        channel = int(path.name.split("_ch")[1].split("_")[0])
        assert freqs.min() == channel * 1.28e6 - 640e3 and freqs.max() == channel * 1.28e6 + 600e3


def test_what_a_real_file_carries_is_written_back() -> None:
    """Written from what was read: RESULTS, flags, TIMEBLOCKS and the PRIMARY keys are the file's own."""
    path = _real_path()
    again = write_hyperdrive(read_hyperdrive(path))
    with fits.open(io.BytesIO(again)) as ours, fits.open(path) as real:
        assert ours[0].header["OBSID"] == real[0].header["OBSID"] == OBSID
        for key in ("SOFTWARE", "MAXITER", "S_THRESH", "M_THRESH", "UVW_MIN", "UVW_MIN_L", "UVW_MAX", "UVW_MAX_L",
                    "BEAMFILE", "MODELLER", "CMDLINE"):
            assert ours[0].header[key] == real[0].header[key], key
        assert "FITID" not in ours[0].header  # hyperdrive's file has none; none is made up
        # every value and NaN position (the writer gives every NaN one bit pattern, so equal solutions zip equally)
        np.testing.assert_array_equal(ours["SOLUTIONS"].data, real["SOLUTIONS"].data)
        np.testing.assert_array_equal(ours["RESULTS"].data, real["RESULTS"].data)  # the convergence values
        for table, columns in (("TIMEBLOCKS", ("Start", "End", "Average")), ("CHANBLOCKS", ("Index", "Freq")),
                               ("TILES", ("Antenna",))):
            for col in columns:
                assert ours[table].data[col].tolist() == real[table].data[col].tolist(), (table, col)
        names = [[n.rstrip() for n in f["TILES"].data["TileName"]] for f in (ours, real)]
        assert names[0] == names[1]
        # hyperdrive leaves the 9 tiles and the 4 edge chanblocks without a solution unflagged; we flag them
        nan = np.isnan(real["SOLUTIONS"].data)
        no_tile, no_chan = nan.all(axis=(0, 2, 3)), nan.all(axis=(0, 1, 3))
        assert (no_tile.sum(), no_chan.sum()) == (9, 4)
        np.testing.assert_array_equal(ours["TILES"].data["Flag"], (real["TILES"].data["Flag"] != 0) | no_tile)
        np.testing.assert_array_equal(ours["CHANBLOCKS"].data["Flag"], (real["CHANBLOCKS"].data["Flag"] != 0) | no_chan)


def test_read_accepts_bytes() -> None:
    from_path = read_hyperdrive(_real_path())
    from_bytes = read_hyperdrive(_real_path().read_bytes())
    np.testing.assert_array_equal(from_bytes.jones, from_path.jones)
    assert _names(from_bytes) == _names(from_path)


def test_written_file_has_the_layout_of_a_real_one() -> None:
    written = fits.open(io.BytesIO(write_hyperdrive(_as_from_the_database(read_hyperdrive(_real_path())))))
    real = fits.open(_real_path())
    try:
        ours = [hdu.name for hdu in written]
        theirs = [hdu.name for hdu in real]
        # same HDUs in the same order
        assert ours == ["PRIMARY", "SOLUTIONS", "TIMEBLOCKS", "TILES", "CHANBLOCKS", "RESULTS", "BASELINES"]
        assert theirs == ours
        # one baseline weight per tile pair, as in the real file; zero where a tile is flagged
        assert written["BASELINES"].data.shape == real["BASELINES"].data.shape == (144 * 143 // 2,)

        assert written["PRIMARY"].header["OBSID"] == real["PRIMARY"].header["OBSID"] == OBSID  # a string
        assert "SOFTWARE" in written["PRIMARY"].header

        for key in ("BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "NAXIS3", "NAXIS4"):
            assert written["SOLUTIONS"].header[key] == real["SOLUTIONS"].header[key], key
        assert written["SOLUTIONS"].data.shape == real["SOLUTIONS"].data.shape == (1, 144, 32, 8)
        # the numbers themselves, NaNs included, are the real ones
        np.testing.assert_array_equal(written["SOLUTIONS"].data, real["SOLUTIONS"].data)

        for table in ("TIMEBLOCKS", "TILES", "CHANBLOCKS"):
            ours_cols = [(c.name, c.format) for c in written[table].columns]
            theirs_cols = [(c.name, c.format) for c in real[table].columns]
            assert ours_cols == theirs_cols[: len(ours_cols)], table
        assert [c.name for c in written["TILES"].columns] == ["Antenna", "Flag", "TileName"]
        assert [c.name for c in written["CHANBLOCKS"].columns] == ["Index", "Flag", "Freq"]

        np.testing.assert_array_equal(written["CHANBLOCKS"].data["Freq"], real["CHANBLOCKS"].data["Freq"])
        np.testing.assert_array_equal(written["CHANBLOCKS"].data["Index"], np.arange(32))
        assert list(written["TILES"].data["TileName"]) == list(real["TILES"].data["TileName"])
        for col in ("Start", "End", "Average"):
            assert written["TIMEBLOCKS"].data[col][0] == pytest.approx(real["TIMEBLOCKS"].data[col][0], abs=0.5)

        assert written["RESULTS"].header["NAXIS1"] == 32 and written["RESULTS"].header["NAXIS2"] == 1
        # NaN exactly where hyperdrive reported a failed chanblock; 0.0 (no precision known) elsewhere
        np.testing.assert_array_equal(np.isnan(written["RESULTS"].data), np.isnan(real["RESULTS"].data))
        assert np.all(written["RESULTS"].data[~np.isnan(written["RESULTS"].data)] == 0.0)
    finally:
        written.close()
        real.close()


def test_written_flags() -> None:
    sol = _small_solution()
    with fits.open(io.BytesIO(write_hyperdrive(sol))) as f:
        # tile 3 is NaN everywhere, tile 4 is flagged in the metafits
        assert f["TILES"].data["Flag"].tolist() == [0, 0, 0, 1, 1]
        assert f["TILES"].data["Antenna"].tolist() == [0, 1, 2, 3, 4]
        # chanblock 0 is NaN in every tile and time; chanblock 4 only in one time block
        assert f["CHANBLOCKS"].data["Flag"].tolist() == [1, 0, 0, 0, 0, 0]
        assert np.isnan(f["RESULTS"].data).tolist() == [
            [True, False, False, False, False, False],
            [True, False, False, False, True, False],
        ]
        assert f["TIMEBLOCKS"].data["Average"].tolist() == [1369821528.0, 1369821587.0]


def test_write_then_read_round_trips_exactly() -> None:
    sol = _small_solution()
    h = read_hyperdrive(write_hyperdrive(sol))
    assert h.cal_obsid == 1369821496
    assert h.jones.shape == sol.jones.shape
    # bit-for-bit: NaN positions, signed zeros and every finite value
    np.testing.assert_array_equal(h.jones.view(np.uint64), sol.jones.view(np.uint64))
    assert _names(h) == [t.name for t in sol.tiles]
    assert [t.antenna for t in h.tiles] == [t.antenna for t in sol.tiles]
    np.testing.assert_array_equal(h.freqs_hz, sol.freqs_hz)
    np.testing.assert_array_equal(np.array(h.times_gps), np.array(sol.times_gps))
    assert h.results.shape == (2, 6)


def test_real_file_round_trips_through_writer() -> None:
    original = read_hyperdrive(_real_path(f"hyp_soln_{OBSID}_ch170_solutions.fits"))
    again = read_hyperdrive(write_hyperdrive(original))
    np.testing.assert_array_equal(again.jones, original.jones)
    np.testing.assert_array_equal(again.freqs_hz, original.freqs_hz)
    assert _names(again) == _names(original)


def test_an_ao_cal_file_goes_to_hyperdrive_and_back_unchanged() -> None:
    """Readers and writers share one type: AO-cal -> hyperdrive FITS -> AO-cal gives the original bytes."""
    from chalicelib.formats.aocal import read_aocal, write_aocal

    raw = mwa_file("1454343616", "1454343616_256_0032_109_calfile.bin").read_bytes()
    fits_bytes = write_hyperdrive(read_aocal(raw))
    with fits.open(io.BytesIO(fits_bytes)) as f:
        assert "OBSID" not in f[0].header  # AO-cal does not say which observation
        assert f["SOLUTIONS"].data.shape == (1, 256, 32, 8)
    assert write_aocal(read_hyperdrive(fits_bytes)) == raw


def test_importing_the_module_does_not_import_astropy() -> None:
    code = "import sys, chalicelib.formats.hyperdrive; print('astropy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
