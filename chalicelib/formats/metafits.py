"""MWA metafits files: the observation they describe, its tiles, and the calibration fit they carry.

A metafits file is a FITS file whose primary header describes one observation (GPSTIME, EXPOSURE,
FILENAME, CHANNELS, CENTCHAN, FINECHAN, ATTEN_DB, CALIBRAT, CALIBSRC, PROJECT, MODE, CREATOR) and
whose TILEDATA table has two rows per tile (one per polarisation) with the tile's Antenna index,
Tile id, TileName, receiver (Rx), Slot and Flag. Newer metafits carry a CALIBDATA table too: the
calibration fit applied to the observation, one row per input (TILEDATA order), with header keys
naming the fit (CALFIT), the calibrator (CALOBSID) and how it was made.

astropy is imported inside the functions, never at module import, so importing this module stays
cheap for Lambda cold starts that never read a metafits file.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field
from datetime import datetime
from os import PathLike
from typing import Any

import numpy as np

from chalicelib.formats.headers import header_text as _text
from chalicelib.gpstime import parse_iso
from chalicelib.records import Fit, Observation, SolutionRow
from chalicelib.solutions import TileInfo

# CALIBDATA column -> SolutionRow field stem (prefixed with "x_" / "y_" by the input's Pol).
CALIBDATA_SCALARS = {
    "Calib_Delay": "delay_m",
    "intercept": "intercept",
    "phase_fit_quality": "phase_fit_quality",
    "gains_fit_quality": "gains_fit_quality",
}
CALIBDATA_ARRAYS = {
    "Calib_Gains": "gains",
    "gains_pol0": "gains_pol0",
    "gains_pol1": "gains_pol1",
}


@dataclass
class CalibData:
    """The CALIBDATA HDU of a metafits file: one calibration fit, one table row per input."""

    fitid: int  # CALFIT (the full fit id: Unix seconds or microseconds)
    cal_obsid: int  # CALOBSID, the calibrator observation that was fitted
    target_obsid: int | None  # TAROBSID, the observation the fit was chosen for
    code_version: str | None  # CALCDVER
    fit_time: datetime | None  # CALDTIME, timezone-aware
    creator: str | None  # CALCRTR
    fit_niter: int | None  # CALITERS
    fit_limit: float | None  # CALITLIM
    # The table, one entry per input (row), in the file's order.
    antenna: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0, int))
    tile: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0, int))
    tile_name: list[str] = field(repr=False, default_factory=list)
    pol: list[str] = field(repr=False, default_factory=list)
    columns: dict[str, np.ndarray] = field(repr=False, default_factory=dict)  # CALIBDATA column -> values


@dataclass
class MetafitsInfo:
    """What the service needs from a metafits file."""

    obsid: int  # GPSTIME
    exposure: int  # EXPOSURE, seconds
    obsname: str  # FILENAME
    channels: list[int]  # CHANNELS, ascending
    centchan: int | None
    finechan_khz: float | None
    atten_db: float | None
    calibrator: bool  # CALIBRAT
    calibsrc: str | None  # CALIBSRC
    project: str | None
    mode: str | None
    creator: str | None
    tiles: list[TileInfo]  # one per tile, ordered by Antenna
    calib: CalibData | None = None
    date_obs: str | None = None  # DATE-OBS, UTC ISO string as written


def read_metafits(path_or_bytes: str | PathLike | bytes | bytearray | Any) -> MetafitsInfo:
    """Read a metafits file (a path, its bytes, or a binary file object)."""
    from astropy.io import fits

    source = io.BytesIO(bytes(path_or_bytes)) if isinstance(path_or_bytes, (bytes, bytearray)) else path_or_bytes
    with fits.open(source, memmap=False) as hdus:
        header = hdus[0].header
        if "TILEDATA" not in hdus:
            raise ValueError("not a metafits file: no TILEDATA HDU")
        tiles = _tiles(hdus["TILEDATA"].data)
        calib = _calibdata(hdus["CALIBDATA"]) if "CALIBDATA" in hdus else None
        return MetafitsInfo(
            obsid=int(header["GPSTIME"]),
            exposure=int(header.get("EXPOSURE", 0)),
            obsname=_text(header.get("FILENAME")) or "",
            channels=parse_channels(header.get("CHANNELS", "")),
            centchan=_int(header.get("CENTCHAN")),
            finechan_khz=_float(header.get("FINECHAN")),
            atten_db=_float(header.get("ATTEN_DB")),
            calibrator=bool(header.get("CALIBRAT", False)),
            calibsrc=_text(header.get("CALIBSRC")),
            project=_text(header.get("PROJECT")),
            mode=_text(header.get("MODE")),
            creator=_text(header.get("CREATOR")),
            tiles=tiles,
            calib=calib,
            date_obs=_text(header.get("DATE-OBS")),
        )


def parse_channels(value: object) -> list[int]:
    """The CHANNELS header value ("109,110,...") as ascending receiver channel numbers."""
    text = str(value or "")
    return sorted(int(part) for part in text.replace(" ", "").split(",") if part)


def observation_from_metafits(info: MetafitsInfo) -> Observation:
    """The observation a metafits file describes, as the database stores it."""
    return Observation(
        obsid=info.obsid,
        stoptime=info.obsid + info.exposure,
        obsname=info.obsname,
        channels=list(info.channels),
        gain_control_value=info.atten_db if info.atten_db is not None else float("nan"),
        calibration=info.calibrator,
        calibrators=info.calibsrc,
        creator=info.creator,
        projectid=info.project,
        mode=info.mode,
        tiles=list(info.tiles),
    )


def fit_from_metafits(info: MetafitsInfo) -> Fit:
    """The calibration_fits row of the fit in a metafits CALIBDATA HDU (of the calibrator obsid)."""
    cal = _require_calib(info)
    return Fit(fitid=cal.fitid, obsid=cal.cal_obsid, fit_time=cal.fit_time, creator=cal.creator or "",
               code_version=cal.code_version, fit_niter=cal.fit_niter, fit_limit=cal.fit_limit)


def calibdata_rows(info: MetafitsInfo) -> list[SolutionRow]:
    """The CALIBDATA table as calibration_solutions rows: one per tile (X and Y inputs merged),
    ordered by Antenna. Values are the cells as Python floats (float32 widened exactly; NaN kept).
    CALIBDATA has no residuals or chi^2, so those fields are None."""
    cal = _require_calib(info)
    by_tile: dict[int, dict[str, int]] = {}
    antenna_of: dict[int, int] = {}
    for i, (tile, pol) in enumerate(zip(cal.tile.tolist(), cal.pol)):
        p = pol.strip().upper()
        if p not in ("X", "Y"):
            raise ValueError(f"CALIBDATA row {i}: unknown Pol {pol!r}")
        slot = by_tile.setdefault(int(tile), {})
        if p in slot:
            raise ValueError(f"CALIBDATA has two {p} rows for tile {tile}")
        slot[p] = i
        antenna_of[int(tile)] = int(cal.antenna[i])
    rows = []
    for tile in sorted(by_tile, key=lambda t: (antenna_of[t], t)):
        pols = by_tile[tile]
        if set(pols) != {"X", "Y"}:
            raise ValueError(f"CALIBDATA tile {tile} lacks a {'X' if 'X' not in pols else 'Y'} row")
        values: dict[str, Any] = {"tileid": tile}
        for p, i in pols.items():
            prefix = p.lower() + "_"
            for column, stem in CALIBDATA_SCALARS.items():
                if column in cal.columns:
                    values[prefix + stem] = float(cal.columns[column][i])
            for column, stem in CALIBDATA_ARRAYS.items():
                if column in cal.columns:
                    values[prefix + stem] = [float(v) for v in np.ravel(cal.columns[column][i])]
        for required in ("x_delay_m", "x_intercept", "x_gains", "y_delay_m", "y_intercept", "y_gains"):
            if required not in values:
                raise ValueError(f"CALIBDATA lacks the column for {required}")
        rows.append(SolutionRow(**values))
    return rows


def _require_calib(info: MetafitsInfo) -> CalibData:
    if info.calib is None:
        raise ValueError(f"metafits of {info.obsid} has no CALIBDATA HDU")
    return info.calib


def _tiles(data: Any) -> list[TileInfo]:
    antenna = np.asarray(data["Antenna"]).astype(int)
    tile = np.asarray(data["Tile"]).astype(int)
    names = [str(n).strip() for n in data["TileName"]]
    rx = np.asarray(data["Rx"]).astype(int)
    slot = np.asarray(data["Slot"]).astype(int)
    flag = np.asarray(data["Flag"]).astype(int) != 0
    seen: dict[int, TileInfo] = {}
    for i in range(len(antenna)):
        a = int(antenna[i])
        prev = seen.get(a)
        if prev is None:
            seen[a] = TileInfo(antenna=a, tile_id=int(tile[i]), name=names[i], rx=int(rx[i]), slot=int(slot[i]),
                               flagged=bool(flag[i]))
        elif flag[i] and not prev.flagged:
            seen[a] = TileInfo(antenna=a, tile_id=prev.tile_id, name=prev.name, rx=prev.rx, slot=prev.slot,
                               flagged=True)
    return [seen[a] for a in sorted(seen)]


def _calibdata(hdu: Any) -> CalibData:
    h = hdu.header
    data = hdu.data
    names = list(data.columns.names) if data is not None else []
    columns = {}
    for name in (*CALIBDATA_SCALARS, *CALIBDATA_ARRAYS):
        if name in names:
            columns[name] = np.array(data[name], dtype=np.float64)  # float32 -> float64 is exact
    fitid = h.get("CALFIT", h.get("CALFITID"))
    if fitid is None:
        raise ValueError("CALIBDATA has no CALFIT / CALFITID key")
    return CalibData(
        fitid=int(fitid),
        cal_obsid=int(h["CALOBSID"]),
        target_obsid=_int(h.get("TAROBSID")),
        code_version=_text(h.get("CALCDVER")),
        fit_time=_timestamp(h.get("CALDTIME")),
        creator=_text(h.get("CALCRTR")),
        fit_niter=_int(h.get("CALITERS")),
        fit_limit=_float(h.get("CALITLIM")),
        antenna=np.array(data["Antenna"], dtype=int) if data is not None else np.zeros(0, int),
        tile=np.array(data["Tile"], dtype=int) if data is not None else np.zeros(0, int),
        tile_name=[str(n).strip() for n in data["TileName"]] if "TileName" in names else [],
        pol=[str(p).strip() for p in data["Pol"]] if data is not None else [],
        columns=columns,
    )


def _int(value: object) -> int | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return int(value)


def _float(value: object) -> float | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    out = float(value)
    return out if not math.isinf(out) else None


def _timestamp(value: object) -> datetime | None:
    text = _text(value)
    if text is None:
        return None
    return parse_iso(text)
