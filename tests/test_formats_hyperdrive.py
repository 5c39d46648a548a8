"""hyperdrive FITS solutions: written files look like real hyperdrive output; real files read correctly."""

from __future__ import annotations

import io
import subprocess
import sys

import numpy as np
import pytest
from astropy.io import fits

from chalicelib.formats.hyperdrive import HyperdriveSolutions, read_hyperdrive, write_hyperdrive
from chalicelib.solution import CalibrationSolution, TileInfo
from tests.mwa_files import PROJECT_ROOT, mwa_file

OBSID = "1369821496"
REAL = f"hyp_soln_{OBSID}_ch100_solutions.fits"


def _real_path(name: str = REAL):
    return mwa_file(OBSID, name)


def _solution_from(h: HyperdriveSolutions, flagged: set[int] = frozenset()) -> CalibrationSolution:
    """A CalibrationSolution carrying what a hyperdrive file holds (rx/slot/tile_id are placeholders)."""
    tiles = [
        TileInfo(antenna=a, tile_id=a + 1000, name=n, rx=a // 8 + 1, slot=a % 8 + 1, flagged=a in flagged)
        for a, n in zip(h.tile_antennas.tolist(), h.tile_names)
    ]
    return CalibrationSolution(
        jones=h.jones,
        tiles=tiles,
        freqs_hz=h.chanblock_freqs,
        times_gps=[(float(s), float(e)) for s, e, _ in h.timeblocks],
        cal_obsid=h.obsid,
        fitid=1773831785589944,
    )


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

    assert h.obsid == int(OBSID)
    assert h.jones.shape == (1, 144, 32, 4)
    assert h.jones.dtype == np.complex128
    np.testing.assert_array_equal(h.chanblock_freqs, freqs)
    assert h.chanblock_freqs[0] == 100 * 1.28e6 - 640e3  # receiver channel 100, MWAX fine channel 0
    np.testing.assert_array_equal(h.jones, raw[..., 0::2] + 1j * raw[..., 1::2])
    assert h.tile_names == names and h.tile_names[0] == "Tile011"
    np.testing.assert_array_equal(h.tile_antennas, np.arange(144))
    np.testing.assert_array_equal(h.results, results)
    assert h.timeblocks.shape == (1, 3)
    assert tuple(h.timeblocks[0]) == (tb["Start"][0], tb["End"][0], tb["Average"][0])
    assert h.software == "Created by mwa_hyperdrive v0.2.1"
    # 9 tiles have no solution, the two chanblocks at each coarse-channel edge failed everywhere
    assert np.isnan(h.jones).all(axis=(0, 2, 3)).sum() == 9
    assert np.isnan(h.results[0]).tolist() == [True, True] + [False] * 28 + [True, True]


def test_read_accepts_bytes() -> None:
    from_path = read_hyperdrive(_real_path())
    from_bytes = read_hyperdrive(_real_path().read_bytes())
    np.testing.assert_array_equal(from_bytes.jones, from_path.jones)
    assert from_bytes.tile_names == from_path.tile_names


def test_written_file_has_the_layout_of_a_real_one() -> None:
    written = fits.open(io.BytesIO(write_hyperdrive(_solution_from(read_hyperdrive(_real_path())))))
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
    assert h.obsid == 1369821496
    assert h.jones.shape == sol.jones.shape
    # bit-for-bit: NaN positions, signed zeros and every finite value
    np.testing.assert_array_equal(h.jones.view(np.uint64), sol.jones.view(np.uint64))
    assert h.tile_names == [t.name for t in sol.tiles]
    np.testing.assert_array_equal(h.tile_antennas, [t.antenna for t in sol.tiles])
    np.testing.assert_array_equal(h.chanblock_freqs, sol.freqs_hz)
    np.testing.assert_array_equal(h.timeblocks[:, :2], np.array(sol.times_gps))
    assert h.results.shape == (2, 6)


def test_real_file_round_trips_through_writer() -> None:
    original = read_hyperdrive(_real_path(f"hyp_soln_{OBSID}_ch170_solutions.fits"))
    again = read_hyperdrive(write_hyperdrive(_solution_from(original)))
    np.testing.assert_array_equal(again.jones, original.jones)
    np.testing.assert_array_equal(again.chanblock_freqs, original.chanblock_freqs)
    assert again.tile_names == original.tile_names


def test_importing_the_module_does_not_import_astropy() -> None:
    code = "import sys, chalicelib.formats.hyperdrive; print('astropy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
