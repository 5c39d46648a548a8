"""The metafits reader on real MWA metafits files (expected values read independently with astropy)."""

from __future__ import annotations

import math
import subprocess
import sys
from collections import Counter
from datetime import datetime, timezone

import numpy as np
import pytest
from astropy.io import fits

from chalicelib.formats.metafits import (
    calibdata_rows, fit_from_metafits, observation_from_metafits, parse_channels, read_metafits,
)
from chalicelib.records import SOLUTION_COLUMNS
from tests.mwa_files import PROJECT_ROOT, mwa_file


def _metafits(obsid: int):
    return mwa_file(str(obsid), f"{obsid}_metafits.fits")


def _tiledata(obsid: int):
    with fits.open(_metafits(obsid)) as hdus:
        return hdus[0].header.copy(), hdus["TILEDATA"].data.copy()


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


def test_module_import_does_not_import_astropy():
    code = ("import sys; import chalicelib.formats.metafits; "
            "sys.exit(1 if any(m == 'astropy' or m.startswith('astropy.') for m in sys.modules) else 0)")
    assert subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT).returncode == 0


def test_256_tile_metafits_header_and_tiles():
    info = read_metafits(_metafits(1457904016))
    header, tiledata = _tiledata(1457904016)
    assert info.obsid == 1457904016 == header["GPSTIME"]
    assert info.exposure == 600
    assert info.obsname == "_PSR_J1453-6413_Ch121"
    assert info.channels == list(range(109, 133))
    assert info.centchan == 121
    assert info.finechan_khz == 10.0
    assert info.atten_db == 1.0
    assert info.calibrator is False and info.calibsrc is None
    assert (info.project, info.mode, info.creator) == ("C001", "MWAX_BEAMFORMER", "andrew")

    assert len(info.tiles) == 256
    assert [t.antenna for t in info.tiles] == list(range(256))
    # tile ids ascend with the Antenna index, as in real metafits
    assert [t.tile_id for t in info.tiles] == sorted(t.tile_id for t in info.tiles)
    receivers = Counter(t.rx for t in info.tiles)
    assert len(receivers) == 32
    assert 12 not in receivers and 16 not in receivers
    assert set(receivers.values()) == {8}
    for rx in receivers:
        assert sorted(t.slot for t in info.tiles if t.rx == rx) == list(range(1, 9))

    flagged_ids = {int(t) for t, f in zip(tiledata["Tile"], tiledata["Flag"]) if f != 0}
    assert {t.tile_id for t in info.tiles if t.flagged} == flagged_ids
    assert sum(t.flagged for t in info.tiles) == len(flagged_ids) > 0
    # each tile's identity matches its TILEDATA rows
    for t in info.tiles:
        rows = tiledata[tiledata["Antenna"] == t.antenna]
        assert len(rows) == 2
        assert set(rows["Tile"]) == {t.tile_id}
        assert set(rows["TileName"]) == {t.name}
        assert set(rows["Rx"]) == {t.rx} and set(rows["Slot"]) == {t.slot}


def test_calibdata_header():
    info = read_metafits(_metafits(1457904016))
    cal = info.calib
    assert cal is not None
    assert cal.fitid == 1773831785589944
    assert cal.cal_obsid == 1457865688
    assert cal.target_obsid == 1457904016
    assert cal.code_version == "1.1.3"
    assert cal.creator == "calvin"
    assert cal.fit_time == datetime(2026, 3, 18, 11, 3, 5, 588925, tzinfo=timezone.utc)
    assert cal.fit_niter == 3 and cal.fit_limit == 0.0

    fit = fit_from_metafits(info)
    assert (fit.fitid, fit.obsid, fit.creator, fit.code_version) == (1773831785589944, 1457865688, "calvin", "1.1.3")
    assert fit.fit_time == cal.fit_time


def test_calibdata_rows_equal_the_cells():
    info = read_metafits(_metafits(1457904016))
    rows = calibdata_rows(info)
    with fits.open(_metafits(1457904016)) as hdus:
        table = hdus["CALIBDATA"].data.copy()
    assert len(rows) == 256
    assert [r.tileid for r in rows] == [t.tile_id for t in info.tiles]
    mapping = {"Calib_Delay": "delay_m", "intercept": "intercept", "phase_fit_quality": "phase_fit_quality",
               "gains_fit_quality": "gains_fit_quality"}
    arrays = {"Calib_Gains": "gains", "gains_pol0": "gains_pol0", "gains_pol1": "gains_pol1"}
    by_key = {(r.tileid, p): r for r in rows for p in "xy"}
    checked = 0
    for cell in table:
        row = by_key[(int(cell["Tile"]), cell["Pol"].strip().lower())]
        prefix = cell["Pol"].strip().lower() + "_"
        for column, stem in mapping.items():
            value = getattr(row, prefix + stem)
            assert type(value) is float
            assert _same(value, float(cell[column])), (row.tileid, column)
            checked += 1
        for column, stem in arrays.items():
            values = getattr(row, prefix + stem)
            assert len(values) == 24 and all(type(v) is float for v in values)
            assert all(_same(a, float(b)) for a, b in zip(values, cell[column])), (row.tileid, column)
            checked += 1
    assert checked == 512 * 7
    for row in rows:  # CALIBDATA has no residuals: those stay unset
        assert row.x_phase_chi2dof is None and row.y_gains_sigma_resid is None
        assert set(vars(row)) == set(SOLUTION_COLUMNS)

    # the reference tile (lowest unflagged tile id) has delay 0 and intercept 0; flagged fits are NaN rows
    nan_tiles = {r.tileid for r in rows if math.isnan(r.x_delay_m)}
    expected_nan = {int(t) for t, d in zip(table["Tile"], table["Calib_Delay"]) if np.isnan(d)}
    assert nan_tiles == expected_nan and len(nan_tiles) > 0
    ref = min(r.tileid for r in rows if r.tileid not in nan_tiles)
    ref_row = next(r for r in rows if r.tileid == ref)
    assert (ref_row.x_delay_m, ref_row.x_intercept, ref_row.y_delay_m, ref_row.y_intercept) == (0.0, 0.0, 0.0, 0.0)


def test_read_from_bytes_is_the_same():
    path = _metafits(1457904016)
    a = read_metafits(path)
    b = read_metafits(path.read_bytes())
    assert a.tiles == b.tiles and a.channels == b.channels and a.calib.fitid == b.calib.fitid
    with open(path, "rb") as fh:
        assert read_metafits(fh).obsid == a.obsid


def test_picket_fence_hyda_metafits():
    info = read_metafits(_metafits(1369821496))
    header, tiledata = _tiledata(1369821496)
    assert info.obsid == 1369821496
    assert info.channels == list(range(55, 171, 5))
    assert len(info.channels) == 24
    assert info.calibrator is True and info.calibsrc == "HydA"
    assert info.obsname == "AllSky_cal_HydA"
    assert info.finechan_khz == 40.0 and info.atten_db == 1.0
    assert len(info.tiles) == 144
    assert sum(t.flagged for t in info.tiles) == 18
    assert sum(t.flagged for t in info.tiles) == len({int(t) for t, f in zip(tiledata["Tile"], tiledata["Flag"]) if f})
    assert len({t.rx for t in info.tiles}) == 18
    assert info.calib is None
    with pytest.raises(ValueError):
        calibdata_rows(info)


@pytest.mark.parametrize("obsid, source, channels, n_tiles", [
    (1347318488, "J063633-204225", list(range(145, 169)), 136),
    (1365977896, "3C444", list(range(157, 181)), 144),
])
def test_calibrator_metafits(obsid, source, channels, n_tiles):
    info = read_metafits(_metafits(obsid))
    header, tiledata = _tiledata(obsid)
    assert info.obsid == obsid
    assert info.calibrator is True and info.calibsrc == source
    assert info.channels == channels
    assert info.exposure == header["EXPOSURE"]
    assert info.obsname == header["FILENAME"]
    assert len(info.tiles) == n_tiles == len(tiledata) // 2
    flagged = {int(t) for t, f in zip(tiledata["Tile"], tiledata["Flag"]) if f}
    assert {t.tile_id for t in info.tiles if t.flagged} == flagged
    assert [t.antenna for t in info.tiles] == list(range(n_tiles))

    obs = observation_from_metafits(info)
    assert obs.obsid == obsid and obs.stoptime == obsid + header["EXPOSURE"]
    assert obs.calibration is True and obs.calibrators == source
    assert obs.channels == channels and obs.gain_control_value == header["ATTEN_DB"]
    assert obs.projectid == header["PROJECT"] and obs.mode == header["MODE"]
    assert obs.tiles == info.tiles


def test_observation_of_a_target():
    obs = observation_from_metafits(read_metafits(_metafits(1457904016)))
    assert (obs.obsid, obs.stoptime, obs.obsname) == (1457904016, 1457904616, "_PSR_J1453-6413_Ch121")
    assert obs.calibration is False and obs.calibrators is None
    assert obs.gain_control_value == 1.0 and len(obs.tiles) == 256


def test_parse_channels():
    assert parse_channels("3, 1,2") == [1, 2, 3]
    assert parse_channels("") == []
