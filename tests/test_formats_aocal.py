"""AO-cal (.bin) reader/writer against real hyperdrive-written files, read independently with struct."""

from __future__ import annotations

import struct
import time

import numpy as np
import pytest

from chalicelib.formats.aocal import read_aocal, write_aocal
from chalicelib.solutions import CalibrationSolution, TileInfo
from tests.mwa_files import mwa_file

# (folder, file, antennas, channels), as the fixture README describes them
FIXTURES = [
    ("1186438304", "1186438304_ch142-149_solutions.bin", 128, 256),
    ("1454343616", "1454343616_256_0032_109_calfile.bin", 256, 32),
    ("1454343616", "1454343616_256_0032_110_calfile.bin", 256, 32),
]


@pytest.mark.parametrize(("folder", "name", "n_ant", "n_chan"), FIXTURES)
def test_real_file_round_trips_byte_for_byte(folder: str, name: str, n_ant: int, n_chan: int) -> None:
    original = mwa_file(folder, name).read_bytes()
    decoded = read_aocal(original)
    assert decoded.jones.shape == (1, n_ant, n_chan, 4)
    assert write_aocal(decoded) == original


@pytest.mark.parametrize(("folder", "name", "n_ant", "n_chan"), FIXTURES)
def test_header_and_values_match_independent_struct_reading(folder: str, name: str, n_ant: int, n_chan: int) -> None:
    raw = mwa_file(folder, name).read_bytes()
    magic = raw[:8]
    file_type, structure_type, n_int, ants, chans, pols = struct.unpack("<6I", raw[8:32])
    start, end = struct.unpack("<2d", raw[32:48])
    assert magic == b"MWAOCAL\0"
    assert (file_type, structure_type, pols) == (0, 0, 4)
    assert (ants, chans) == (n_ant, n_chan)
    assert len(raw) == 48 + 64 * ants * chans * n_int
    # obsid-named files: start/end are GPS seconds shortly after the obsid
    assert int(folder) <= start < end < int(folder) + 600

    f = read_aocal(raw)
    assert f.jones.shape == (n_int, ants, chans, pols)  # the header's counts; fileType 0 is the only one read
    assert (f.times_gps[0][0], f.times_gps[-1][1]) == (start, end)

    # a spread of individual values, located by the documented [interval][antenna][channel][pol] order
    rng = np.random.default_rng(0)
    checked_finite = 0
    for _ in range(200):
        a, c, p = int(rng.integers(ants)), int(rng.integers(chans)), int(rng.integers(4))
        offset = 48 + 16 * ((a * chans + c) * 4 + p)
        re, im = struct.unpack("<2d", raw[offset : offset + 16])
        got = f.jones[0, a, c, p]
        if np.isnan(re):
            assert np.isnan(got.real) and np.isnan(got.imag)
        else:
            assert (got.real, got.imag) == (re, im)
            checked_finite += 1
    assert checked_finite > 50


def test_flagged_antennas_are_nan_in_every_channel() -> None:
    f = read_aocal(mwa_file("1186438304", "1186438304_ch142-149_solutions.bin").read_bytes())
    nan_tiles = np.isnan(f.jones).all(axis=(0, 2, 3))
    assert 0 < nan_tiles.sum() < f.n_tiles  # some tiles flagged, most solved
    assert f.flagged_antennas() == list(np.flatnonzero(nan_tiles))


def test_writer_header_follows_the_solution() -> None:
    rng = np.random.default_rng(3)
    jones = rng.normal(size=(2, 3, 5, 4)) + 1j * rng.normal(size=(2, 3, 5, 4))
    jones[1, 2] = np.nan
    sol = CalibrationSolution(
        jones=jones,
        tiles=[TileInfo(antenna=i, tile_id=i + 11, name=f"Tile{i + 11:03d}", rx=1, slot=i + 1) for i in range(3)],
        freqs_hz=np.arange(5) * 40e3 + 150e6,
        times_gps=[(1000.0, 1010.0), (1010.0, 1020.5)],
        cal_obsid=1000,
    )
    raw = write_aocal(sol)
    assert raw[:8] == b"MWAOCAL\0"
    assert struct.unpack("<6I2d", raw[8:48]) == (0, 0, 2, 3, 5, 4, 1000.0, 1020.5)
    assert len(raw) == 48 + 64 * 3 * 5 * 2
    # interval 1, antenna 0, channel 4, pol YY (3) -- independent offset arithmetic
    offset = 48 + 16 * (((1 * 3 + 0) * 5 + 4) * 4 + 3)
    assert struct.unpack("<2d", raw[offset : offset + 16]) == (jones[1, 0, 4, 3].real, jones[1, 0, 4, 3].imag)
    back = read_aocal(raw)
    np.testing.assert_array_equal(back.jones, jones)  # NaN positions included


def test_every_nan_is_written_as_the_standard_quiet_nan() -> None:
    jones = np.ones((1, 1, 1, 4), dtype=np.complex128)
    floats = jones.view(np.float64).reshape(-1)
    floats[0] = np.uint64(0xFFF8000000000001).view(np.float64)  # a negative NaN with a payload
    floats[1] = np.nan
    sol = CalibrationSolution(
        jones=jones,
        tiles=[TileInfo(antenna=0, tile_id=11, name="Tile011", rx=1, slot=1)],
        freqs_hz=[150e6],
        times_gps=[(0.0, 1.0)],
        cal_obsid=1,
    )
    values = struct.unpack("<8Q", write_aocal(sol)[48:])
    assert values[0] == values[1] == 0x7FF8000000000000
    assert struct.unpack("<d", struct.pack("<Q", values[2]))[0] == 1.0


def test_write_256_tiles_768_channels_is_fast() -> None:
    rng = np.random.default_rng(1)
    shape = (1, 256, 768, 4)
    sol = CalibrationSolution(
        jones=rng.normal(size=shape) + 1j * rng.normal(size=shape),
        tiles=[TileInfo(antenna=i, tile_id=i, name=f"T{i}", rx=1, slot=1) for i in range(256)],
        freqs_hz=np.arange(768) * 40e3 + 100e6,
        times_gps=[(0.0, 1.0)],
        cal_obsid=1,
    )
    timings = []
    for _ in range(3):
        t0 = time.perf_counter()
        raw = write_aocal(sol)
        timings.append(time.perf_counter() - t0)
    assert len(raw) == 48 + 64 * 256 * 768
    assert min(timings) < 0.1  # vectorised: a few ms; a per-value loop takes seconds


def test_a_read_file_says_only_what_ao_cal_holds() -> None:
    """AO-cal names no tiles, frequencies or observation: the reader leaves them unknown, never invented."""
    raw = mwa_file("1454343616", "1454343616_256_0032_109_calfile.bin").read_bytes()
    start, end = struct.unpack("<2d", raw[32:48])
    sol = read_aocal(raw)
    assert [t.antenna for t in sol.tiles] == list(range(256))
    assert {(t.name, t.tile_id, t.rx, t.slot, t.flagged) for t in sol.tiles} == {("", None, None, None, False)}
    assert np.isnan(sol.freqs_hz).all() and sol.freqs_hz.shape == (32,)
    assert sol.cal_obsid is None and sol.times_gps == [(start, end)]
    assert sol.results is None and sol.chanblock_flags is None


@pytest.mark.parametrize(
    "mutate",
    [
        lambda b: b"NOTAOCAL" + b[8:],  # wrong magic
        lambda b: b[:-16],  # truncated
        lambda b: b[:28] + struct.pack("<I", 2) + b[32:],  # polarizationCount 2
        lambda b: b[:20],  # shorter than the header
    ],
)
def test_malformed_files_are_refused(mutate) -> None:
    raw = mwa_file("1454343616", "1454343616_256_0032_109_calfile.bin").read_bytes()
    with pytest.raises(ValueError):
        read_aocal(mutate(raw))
