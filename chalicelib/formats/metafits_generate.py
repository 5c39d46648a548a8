"""Generating a metafits file from the database when no stored one exists (get_calfile_for_obsid).

``generate_metafits(obs, ...)`` builds PRIMARY + TILEDATA from the database rows of an observation;
``metafits_calib.apply_calibration`` then writes the fit into it. The database has no pointing,
cable lengths, positions or correlator settings, so those keys and columns are *synthetic*;
``SYNTHETIC_KEYS`` / ``SYNTHETIC_COLUMNS`` name them and the file says so in its COMMENT cards. They
are chosen so mwalib opens the file (zenith pointing, MWAX correlator at 10 kHz / 0.5 s, tiles at
the array centre, unit digital gains). Times (DATE-OBS, UNIXTIME, MJD, LST) come from the obsid
through ``gpstime`` (leap seconds counted).

astropy is imported inside the functions (cold starts that never write a metafits stay cheap).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from chalicelib import gpstime
from chalicelib.formats.metafits_calib import tile_name_format
from chalicelib.instrument import COARSE_CHAN_HZ, MWA_LATITUDE_DEG
from chalicelib.records import Observation
from chalicelib.solutions import TileInfo

# Primary keys of a generated metafits that the database cannot supply (see module docstring).
SYNTHETIC_KEYS = ("FINECHAN", "INTTIME", "NCHANS", "NSCANS", "NAV_FREQ", "RA", "DEC", "RAPHASE", "DECPHASE",
                  "AZIMUTH", "ALTITUDE", "HA", "DELAYS", "CABLEDEL", "GEODEL", "CALIBDEL",
                  "QUACKTIM", "RAWSCALE", "DERIPPLE", "OVERSAMP")
SYNTHETIC_COLUMNS = ("Input", "Length", "North", "East", "Height", "Gains", "Delays", "Flavors")
GENERATED_FINECHAN_KHZ = 10.0
GENERATED_INTTIME_S = 0.5
GENERATED_MODE = "MWAX_CORRELATOR"


def generate_metafits(obs: Observation, tiles: Sequence[TileInfo] | None = None) -> Any:
    """A metafits HDUList (PRIMARY + TILEDATA) for an observation known only from the database.

    ``tiles`` defaults to ``obs.tiles``. Keys named in SYNTHETIC_KEYS and columns in SYNTHETIC_COLUMNS
    are not in the database: they are set to neutral values so readers (mwalib) open the file.
    """
    from astropy.io import fits

    tiles = sorted(tiles if tiles is not None else obs.tiles, key=lambda t: t.antenna)
    if not tiles:
        raise ValueError(f"observation {obs.obsid} has no tiles to describe")
    channels = sorted(int(c) for c in obs.channels)
    if not channels:
        raise ValueError(f"observation {obs.obsid} has no receiver channels")
    n_ch = len(channels)
    exposure = max(int(obs.stoptime) - int(obs.obsid), 0)
    unix = gpstime.gps_to_unix(obs.obsid)
    start = gpstime.gps_to_datetime(obs.obsid)
    lst = gpstime.lst_hours(obs.obsid) * 15.0
    nchans = int(round(n_ch * COARSE_CHAN_HZ / (GENERATED_FINECHAN_KHZ * 1000)))
    quack = 3.0

    h = fits.Header()
    h["GPSTIME"] = (int(obs.obsid), "[s] GPS time of observation start")
    h["EXPOSURE"] = (exposure, "[s] duration of observation")
    h["FILENAME"] = (obs.obsname or "", "Name of observation")
    h["MJD"] = (unix / 86400.0 + 40587.0, "[days] MJD of observation")
    h["DATE-OBS"] = (start.strftime("%Y-%m-%dT%H:%M:%S"), "[UT] Date and time of observation")
    h["LST"] = (lst, "[deg] LST")
    h["HA"] = ("00:00:00.00", "[hours] hour angle of pointing center")
    h["AZIMUTH"] = (0.0, "[deg] Azimuth of pointing center")
    h["ALTITUDE"] = (90.0, "[deg] Altitude of pointing center")
    h["RA"] = (lst, "[deg] RA of pointing center")
    h["DEC"] = (MWA_LATITUDE_DEG, "[deg] Dec of pointing center")
    h["RAPHASE"] = (lst, "[deg] RA of desired phase center")
    h["DECPHASE"] = (MWA_LATITUDE_DEG, "[deg] DEC of desired phase center")
    h["CABLEDEL"] = (0, "Cable delays applied (0 = none)")
    h["GEODEL"] = (0, "Geometric delays applied (0 = none)")
    h["CALIBDEL"] = (0, "Calibration delays applied (0 = none)")
    h["ATTEN_DB"] = (_finite(obs.gain_control_value), "[dB] global analogue attenuation, in dB")
    h["CREATOR"] = (obs.creator or "", "Observation creator")
    h["PROJECT"] = (obs.projectid or "", "Project ID")
    h["MODE"] = (obs.mode or GENERATED_MODE, "Observation mode")
    h["RECVRS"] = (",".join(str(r) for r in sorted({t.rx for t in tiles})), "Active receivers")
    h["DELAYS"] = (",".join(["0"] * 16), "Beamformer delays")
    h["CALIBRAT"] = (bool(obs.calibration), "Intended for calibration")
    h["CALIBSRC"] = (obs.calibrators or "", "Calibrator source")
    h["CENTCHAN"] = (channels[n_ch // 2], "Center coarse channel")
    h["CHANNELS"] = (",".join(str(c) for c in channels), "Coarse channels")
    h["FINECHAN"] = (GENERATED_FINECHAN_KHZ, "[kHz] Fine channel width - correlator freq_res")
    h["INTTIME"] = (GENERATED_INTTIME_S, "[s] Individual integration time")
    h["NAV_FREQ"] = (int(GENERATED_FINECHAN_KHZ * 1000 / 200), "# of 200Hz chans avgd to make each fine chan")
    h["NSCANS"] = (int(exposure / GENERATED_INTTIME_S), "Number of time instants in correlation products")
    h["NINPUTS"] = (2 * len(tiles), "Number of inputs into the correlation products")
    h["NCHANS"] = (nchans, "Number of (averaged) fine channels in spectrum")
    h["BANDWDTH"] = (round(n_ch * COARSE_CHAN_HZ / 1e6, 6), "[MHz] Total bandwidth")
    h["FREQCENT"] = (round((channels[0] + channels[-1]) / 2 * COARSE_CHAN_HZ / 1e6, 6),
                     "[MHz] Center frequency of observation")
    h["DERIPPLE"] = (0, "Deripple: 0=OFF, 1=ON")
    h["OVERSAMP"] = (0, "Oversampling: 0=OFF, 1=ON")
    h["DATESTRT"] = (h["DATE-OBS"], "[UT] Date and time of correlations start")
    h["UNIXTIME"] = (int(unix), "[s] Unix timestamp of observation start")
    h["RAWSCALE"] = (1.0, "Raw visibilities multiplied by this value")
    h["VERSION"] = (2.0, "METAFITS version number")
    h["TELESCOP"] = "MWA"
    h["INSTRUME"] = "MWAX"
    h["QUACKTIM"] = (quack, "Seconds of bad data after observation starts")
    h["GOODTIME"] = (unix + quack, "OBSID+QUACKTIME as Unix timestamp")
    h["DATE"] = (gpstime.now().strftime("%Y-%m-%dT%H:%M:%S"), "UT Date of file creation")
    h.add_comment("Generated by mwa-calib-service from the schedule database: no stored metafits was found.")
    h.add_comment("Synthetic (not from the database): " + ", ".join(SYNTHETIC_KEYS) + ";")
    h.add_comment("TILEDATA columns " + ", ".join(SYNTHETIC_COLUMNS) + ". Pointing is zenith, tiles sit at")
    h.add_comment("the array centre, digital gains are unity. Use /metadata/fits for the real metafits.")
    primary = fits.PrimaryHDU(header=h)
    return fits.HDUList([primary, _generated_tiledata(tiles, n_ch)])


def _finite(value: float | None) -> float:
    return float(value) if value is not None and math.isfinite(float(value)) else 0.0


def _generated_tiledata(tiles: Sequence[TileInfo], n_ch: int) -> Any:
    from astropy.io import fits

    rows = [(t, pol) for t in tiles for pol in ("X", "Y")]
    n = len(rows)
    names = [t.name for t, _ in rows]
    cols = [
        fits.Column(name="Input", format="I", array=np.arange(n, dtype=np.int16)),
        fits.Column(name="Antenna", format="I", array=np.array([t.antenna for t, _ in rows], dtype=np.int16)),
        fits.Column(name="Tile", format="I", array=np.array([t.tile_id for t, _ in rows], dtype=np.int16)),
        fits.Column(name="TileName", format=tile_name_format(names), array=names),
        fits.Column(name="Pol", format="A", array=[p for _, p in rows]),
        fits.Column(name="Rx", format="I", array=np.array([t.rx for t, _ in rows], dtype=np.int16)),
        fits.Column(name="Slot", format="I", array=np.array([t.slot for t, _ in rows], dtype=np.int16)),
        fits.Column(name="Flag", format="I", array=np.array([int(t.flagged) for t, _ in rows], dtype=np.int16)),
        fits.Column(name="Length", format="14A", array=["EL_0.0"] * n),
        fits.Column(name="North", format="E", unit="m", array=np.zeros(n, np.float32)),
        fits.Column(name="East", format="E", unit="m", array=np.zeros(n, np.float32)),
        fits.Column(name="Height", format="E", unit="m", array=np.zeros(n, np.float32)),
        fits.Column(name="Gains", format=f"{n_ch}I", array=np.full((n, n_ch), 64, np.int16)),
        fits.Column(name="Delays", format="16I", array=np.zeros((n, 16), np.int16)),
        fits.Column(name="Flavors", format="10A", array=[""] * n),
    ]
    return fits.BinTableHDU.from_columns(cols, name="TILEDATA")
