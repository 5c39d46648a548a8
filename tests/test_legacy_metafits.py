"""Metafits with a calibration fit applied (formats.metafits_calib), on stored and generated
(formats.metafits_generate) files: astropy and mwalib read them back."""

from __future__ import annotations

import io
import math
from collections.abc import Iterable
from dataclasses import asdict
from datetime import datetime, timezone

import numpy as np
import pytest
from astropy.io import fits

from chalicelib.formats import metafits_calib as calib
from chalicelib.formats import metafits_generate as gen
from chalicelib.formats.metafits import calibdata_rows, fit_from_metafits, read_metafits
from chalicelib.records import Observation
from chalicelib.solutions import TileInfo
from tests import factories
from tests.mwa_files import mwa_file

REAL_TARGET = 1457904016
CAL = 1_399_999_000
FIT = calib.AppliedFit(fitid=1_700_000_000_123_456, cal_obsid=CAL, target_obsid=1_400_000_000, code_version="1.1.3",
                    fit_time=datetime(2023, 11, 14, 22, 13, 20, 123456, tzinfo=timezone.utc), creator="calvin",
                    fit_niter=3, fit_limit=0.0, filename="fits/x/hyp_soln.fits")


def _obs(channels: Iterable[int] = range(109, 133), tiles: list[TileInfo] | None = None,
         mode: str | None = None) -> Observation:
    """The target 1400000000 by 'tester' in G0009, of 8 tiles unless given."""
    return factories.observation(1_400_000_000, channels=channels, creator="tester", projectid="G0009", mode=mode,
                                 tiles=tiles if tiles is not None else factories.tiles(8))


def _row(tileid: int, k: int) -> dict:
    """The k-th tile's calibration_solutions row as the database returns it (a dict), with X pols and qualities."""
    return asdict(factories.solution_row(tileid, k, y_gain_slope=0.001, x_gains_pol0=[0.5] * 24,
                                         x_gains_pol1=[1e-9 * c for c in range(24)], x_phase_fit_quality=0.9,
                                         x_gains_fit_quality=1.0, y_phase_fit_quality=0.8, y_gains_fit_quality=0.75))


def _open_mwalib(data: bytes, tmp_path):
    import mwalib

    path = tmp_path / "x.metafits"
    path.write_bytes(data)
    return mwalib.MetafitsContext(str(path), None)


def test_short_fit_id():
    assert calib.short_fitid(1773831785589944) == 1773831785  # microseconds -> seconds, as CALFITID
    assert calib.short_fitid(1_500_000_000) == 1_500_000_000  # old fit ids already fit in 32 bits


@pytest.mark.parametrize("obsid, date_obs, unixtime", [
    (1457904016, "2026-03-18T21:19:58", 1773868798),  # the real 1457904016 metafits' DATE-OBS and UNIXTIME
    (1120493008, "2015-07-09T16:03:11", 1436457791),  # 2015: GPS - UTC = 17 s
    (1060000000, "2013-08-08T12:26:24", 1375964784),  # 2013: GPS - UTC = 16 s
])
def test_generated_metafits_times_count_the_leap_seconds(obsid, date_obs, unixtime):
    """DATE-OBS / UNIXTIME / MJD of a generated file: a real metafits, and astropy's
    Time(obsid, format='gps').utc for the older ones."""
    h = gen.generate_metafits(factories.observation(obsid))[0].header
    assert h["GPSTIME"] == obsid
    assert h["DATE-OBS"] == date_obs == h["DATESTRT"]
    assert h["UNIXTIME"] == unixtime
    assert h["MJD"] == pytest.approx(unixtime / 86400 + 40587, abs=1e-9)


def test_generated_metafits_opens_in_mwalib_with_the_fit(tmp_path):
    tiles = factories.tiles(8)
    rows = [_row(t.tile_id, k) for k, t in enumerate(tiles) if t.tile_id != 15]  # tile 15 missing from the fit
    hdus = calib.apply_calibration(gen.generate_metafits(_obs(tiles=tiles)), FIT, rows, range(109, 133),
                                failed_tiles={15})
    data = calib.to_bytes(hdus)

    with fits.open(io.BytesIO(data)) as f:
        h = f[0].header
        assert (h["GPSTIME"], h["EXPOSURE"], h["FILENAME"], h["CENTCHAN"], h["NINPUTS"]) == (
            1_400_000_000, 120, "EoR0_121", 121, 16)
        assert h["CHANNELS"] == ",".join(str(c) for c in range(109, 133))
        assert h["DATE-OBS"] == "2024-05-17T16:53:02"
        assert any("Synthetic" in str(c) for c in h["COMMENT"])
        cd = f["CALIBDATA"]
        assert cd.header["CALFIT"] == FIT.fitid and cd.header["CALFITID"] == 1_700_000_000
        assert cd.header["CALDTIME"] == "2023-11-14T22:13:20.123456+00:00"
        assert cd.header["FILENAME"] == "fits/x/hyp_soln.fits" and cd.header["CALITLIM"] == 0
        assert [c.name for c in cd.columns] == ["Antenna", "Tile", "TileName", "Pol", "Calib_Delay", "intercept",
                                                "Calib_Gains", "gains_pol1", "gains_pol0", "phase_fit_quality",
                                                "gains_fit_quality"]
        td = f["TILEDATA"].data
        assert list(cd.data["Tile"]) == list(td["Tile"]) and list(cd.data["Pol"]) == list(td["Pol"])
        assert np.all(td["Flag"][td["Tile"] == 15] == 1) and np.all(td["Flag"][td["Tile"] != 15] == 0)
        np.testing.assert_array_equal(td["Calib_Delay"], cd.data["Calib_Delay"])
        np.testing.assert_array_equal(td["Calib_Gains"], cd.data["Calib_Gains"])
        y = (cd.data["Tile"] == 12) & (cd.data["Pol"] == "Y")
        np.testing.assert_array_equal(cd.data["gains_pol0"][y][0], np.zeros(24))  # NULL polynomial -> zeros

    ctx = _open_mwalib(data, tmp_path)
    assert ctx.obs_id == 1_400_000_000 and ctx.num_rf_inputs == 16 and ctx.num_metafits_coarse_chans == 24
    assert (ctx.best_cal_fit_id, ctx.best_cal_obs_id, ctx.best_cal_code_ver, ctx.best_cal_creator,
            ctx.best_cal_fit_iters, ctx.best_cal_fit_iter_limit) == (1_700_000_000, CAL, "1.1.3", "calvin", 3, 0)
    by_tile = {r["tileid"]: r for r in rows}
    for rf in ctx.rf_inputs:
        p = str(rf.pol)[-1].lower()
        row = by_tile.get(rf.tile_id)
        if row is None:
            assert rf.flagged and rf.calib_delay is None and all(math.isnan(g) for g in rf.calib_gains)
            continue
        assert not rf.flagged
        assert rf.calib_delay == np.float32(row[f"{p}_delay_m"])
        np.testing.assert_array_equal(np.float32(rf.calib_gains), np.float32(row[f"{p}_gains"]))
    fits_by_input = {(f.rf_input.tile_id, str(f.rf_input.pol)[-1]): f for f in ctx.calibration_fits}
    assert len(fits_by_input) == 16
    f = fits_by_input[(13, "X")]
    assert f.delay_metres == np.float32(1.0) and f.phase_fit_quality == np.float32(0.9)


def test_gains_follow_the_files_channels_and_missing_channels_are_nan():
    tiles = factories.tiles(2)
    cal_channels = list(range(57, 69)) + list(range(121, 133))  # picket fence, ascending
    rows = [_row(t.tile_id, k) for k, t in enumerate(tiles)]
    target_channels = [62, 121, 140]  # 140 is not a calibrator channel
    hdus = calib.apply_calibration(gen.generate_metafits(_obs(channels=target_channels, tiles=tiles)), FIT, rows,
                                cal_channels)
    gains = hdus["CALIBDATA"].data["Calib_Gains"]
    assert gains.shape == (4, 3)
    x0 = rows[0]["x_gains"]
    np.testing.assert_array_equal(gains[0, :2], np.float32([x0[cal_channels.index(62)], x0[cal_channels.index(121)]]))
    assert np.isnan(gains[:, 2]).all()


def test_real_metafits_rebuilt_from_its_own_fit_is_identical_and_keeps_every_hdu(tmp_path):
    path = mwa_file(str(REAL_TARGET), f"{REAL_TARGET}_metafits.fits")
    info = read_metafits(path)
    f = fit_from_metafits(info)
    fit = calib.AppliedFit(fitid=f.fitid, cal_obsid=f.obsid, target_obsid=REAL_TARGET, code_version=f.code_version,
                        fit_time=f.fit_time, creator=f.creator, fit_niter=f.fit_niter, fit_limit=f.fit_limit)
    rows = [asdict(r) for r in calibdata_rows(info)]
    out = calib.apply_calibration_bytes(path.read_bytes(), fit, rows, info.channels, failed_tiles=())
    with fits.open(path) as real, fits.open(io.BytesIO(out)) as ours:
        assert [h.name for h in ours] == [h.name for h in real]
        for name in ("VOLTAGEBEAMS", "SIGCHAINDATA", "ALTAZ"):
            assert ours[name].data.tobytes() == real[name].data.tobytes()
        np.testing.assert_array_equal(ours["BEAMALTAZ"].data, real["BEAMALTAZ"].data)
        for key in ("GPSTIME", "CHANNELS", "MODE", "RA", "DEC", "FINECHAN"):
            assert ours[0].header[key] == real[0].header[key]
        for col in real["CALIBDATA"].columns.names:
            a, b = real["CALIBDATA"].data[col], ours["CALIBDATA"].data[col]
            if a.dtype.kind == "f":
                np.testing.assert_array_equal(a, b)
            else:
                assert [str(v).strip() for v in a] == [str(v).strip() for v in b], col
        for key in ("CALFIT", "CALFITID", "CALOBSID", "TAROBSID", "CALCDVER", "CALDTIME", "CALCRTR", "CALITERS",
                    "CALITLIM"):
            assert ours["CALIBDATA"].header[key] == real["CALIBDATA"].header[key], key
        np.testing.assert_array_equal(ours["TILEDATA"].data["Flag"], real["TILEDATA"].data["Flag"])


@pytest.mark.parametrize("mode", [None, "MWAX_CORRELATOR", "MWAX_VCS", "HW_LFILES"])
def test_generated_modes_open_in_mwalib(tmp_path, mode):
    hdus = calib.apply_calibration(gen.generate_metafits(_obs(mode=mode)), FIT, [_row(11, 0)], range(109, 133))
    ctx = _open_mwalib(calib.to_bytes(hdus), tmp_path)
    assert ctx.best_cal_obs_id == CAL
