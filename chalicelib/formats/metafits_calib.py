"""Applying a calibration fit to a metafits file (the deprecated get_calfile_for_obsid).

"A metafits file with the calibration solution applied" (domain.md) means what the MWA's own
metafits service writes today, as in the real fixture 1457904016: a CALIBDATA table with one row
per input in TILEDATA order (Antenna, Tile, TileName, Pol, Calib_Delay, intercept, Calib_Gains,
gains_pol1, gains_pol0, phase_fit_quality, gains_fit_quality) whose header names the fit (CALFIT,
CALFITID, CALOBSID, TAROBSID, FILENAME, CALCDVER, CALDTIME, CALCRTR, CALITERS, CALITLIM). Older
metafits carried the delays and gains in TILEDATA columns Calib_Delay and Calib_Gains; both are
written, so readers of either generation find them. Tiles whose solution failed are flagged in
TILEDATA (Flag = 1 on both inputs), on top of any flag the file already had.

``apply_calibration(hdus, fit, rows, cal_channels, failed_tiles)`` works on any metafits (the
observation's stored file from the products bucket, or one ``metafits_generate`` built) and returns
a new HDUList; every other HDU and header card is kept as it was.

Values are written as float32 ('E'), the real files' type: CALIBDATA read back from such a file and
seeded into the database reproduces the same file cell for cell.

astropy is imported inside the functions (cold starts that never write a metafits stay cheap).
"""

from __future__ import annotations

import io
import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from chalicelib.formats.metafits import parse_channels
from chalicelib.gpstime import as_utc


@dataclass(frozen=True)
class AppliedFit:
    """The fit written into CALIBDATA's header: the calibration_fits row and who it is for."""

    fitid: int
    cal_obsid: int
    target_obsid: int
    code_version: str | None = None
    fit_time: datetime | None = None
    creator: str | None = None
    fit_niter: int | None = None
    fit_limit: float | None = None
    filename: str | None = None  # the fit's hyperdrive solutions file, when one is known

    @classmethod
    def from_record(cls, record: Mapping[str, Any], target_obsid: int, filename: str | None = None) -> AppliedFit:
        """From a calibration_fits row (a dict)."""
        return cls(fitid=int(record["fitid"]), cal_obsid=int(record["obsid"]), target_obsid=int(target_obsid),
                   code_version=record.get("code_version"), fit_time=record.get("fit_time"),
                   creator=record.get("creator"), fit_niter=record.get("fit_niter"),
                   fit_limit=record.get("fit_limit"), filename=filename)


def short_fitid(fitid: int) -> int:
    """CALFITID: the fit id, divided by 1e6 (to Unix seconds) when it does not fit in 32 bits."""
    return int(fitid) // 1_000_000 if int(fitid) > 2**31 - 1 else int(fitid)


def apply_calibration(hdus: Any, fit: AppliedFit, rows: Sequence[Mapping[str, Any]], cal_channels: Sequence[int],
                      failed_tiles: Collection[int] = ()) -> Any:
    """A copy of the metafits ``hdus`` with the fit applied.

    ``rows`` are the fit's calibration_solutions rows (dicts with tileid, x_/y_ delay_m, intercept,
    gains, gains_pol0, gains_pol1, phase_fit_quality, gains_fit_quality), gains over
    ``cal_channels`` ascending; they are cut to the file's CHANNELS. A TILEDATA tile the fit lacks
    gets NaN. ``failed_tiles`` (tile ids) are flagged in TILEDATA.
    """
    from astropy.io import fits

    primary = hdus[0]
    tiledata = hdus["TILEDATA"]
    channels = parse_channels(primary.header.get("CHANNELS", ""))
    if not channels:
        raise ValueError("the metafits has no CHANNELS")
    table = _calib_table(tiledata.data, rows, cal_channels, channels)
    calibdata = _calibdata_hdu(tiledata.data, table, len(channels), fit)
    new_tiledata = _tiledata_with_calib(tiledata, table, len(channels), set(int(t) for t in failed_tiles))

    out = fits.HDUList()
    replaced = False
    for hdu in hdus:
        name = hdu.name.upper()
        if name == "TILEDATA":
            out.append(new_tiledata)
        elif name == "CALIBDATA":
            if not replaced:
                out.append(calibdata)
                replaced = True
        else:
            out.append(hdu.copy())
    if not replaced:
        out.append(calibdata)
    header = out[0].header
    header.add_history(f"Calibration fit {fit.fitid} of calibrator {fit.cal_obsid} applied (CALIBDATA) "
                       f"by mwa-calib-service")
    if failed_tiles:
        header.add_history(f"{len(set(failed_tiles))} tile(s) that failed to calibrate flagged in TILEDATA")
    return out


def apply_calibration_bytes(metafits: bytes, fit: AppliedFit, rows: Sequence[Mapping[str, Any]],
                            cal_channels: Sequence[int], failed_tiles: Collection[int] = ()) -> bytes:
    """``apply_calibration`` on a metafits file's bytes; returns the new file's bytes."""
    from astropy.io import fits

    with fits.open(io.BytesIO(metafits), memmap=False) as hdus:
        return to_bytes(apply_calibration(hdus, fit, rows, cal_channels, failed_tiles))


def to_bytes(hdus: Any) -> bytes:
    """Serialise an HDUList (checksums added, so a corrupted download is detectable)."""
    buf = io.BytesIO()
    hdus.writeto(buf, checksum=True, output_verify="silentfix")
    return buf.getvalue()


@dataclass
class _CalibTable:
    delay: np.ndarray  # (n_inputs,)
    intercept: np.ndarray
    gains: np.ndarray  # (n_inputs, n_chans)
    pol0: np.ndarray
    pol1: np.ndarray
    phase_quality: np.ndarray
    gains_quality: np.ndarray


def _calib_table(tiledata: Any, rows: Sequence[Mapping[str, Any]], cal_channels: Sequence[int],
                 channels: Sequence[int]) -> _CalibTable:
    """One calibration row per TILEDATA input, gains on the file's channels (ascending)."""
    n_in, n_ch = len(tiledata), len(channels)
    col = {int(ch): k for k, ch in enumerate(sorted(int(c) for c in cal_channels))}
    pick = np.array([col.get(int(ch), -1) for ch in sorted(channels)], dtype=int)
    by_tile = {int(r["tileid"]): r for r in rows}
    out = _CalibTable(
        delay=np.full(n_in, np.nan), intercept=np.full(n_in, np.nan), gains=np.full((n_in, n_ch), np.nan),
        pol0=np.zeros((n_in, n_ch)), pol1=np.zeros((n_in, n_ch)),
        phase_quality=np.full(n_in, np.nan), gains_quality=np.full(n_in, np.nan),
    )
    for i, (tile, pol) in enumerate(zip(np.asarray(tiledata["Tile"]).tolist(), tiledata["Pol"])):
        row = by_tile.get(int(tile))
        p = str(pol).strip().lower()
        if row is None or p not in ("x", "y"):
            continue
        out.delay[i] = _scalar(row.get(f"{p}_delay_m"))
        out.intercept[i] = _scalar(row.get(f"{p}_intercept"))
        out.gains[i] = _per_channel(row.get(f"{p}_gains"), pick, len(col), np.nan)
        out.pol0[i] = _per_channel(row.get(f"{p}_gains_pol0"), pick, len(col), 0.0)
        out.pol1[i] = _per_channel(row.get(f"{p}_gains_pol1"), pick, len(col), 0.0)
        out.phase_quality[i] = _scalar(row.get(f"{p}_phase_fit_quality"))
        out.gains_quality[i] = _scalar(row.get(f"{p}_gains_fit_quality"))
    return out


def _scalar(value: Any) -> float:
    return math.nan if value is None else float(value)


def _per_channel(values: Any, pick: np.ndarray, n_cal: int, missing: float) -> np.ndarray:
    """The values of the picked calibrator channels; -1 (a channel the fit lacks) -> NaN.

    A NULL or empty array is ``missing`` throughout (zeros for an absent gain polynomial, as the
    real files have them)."""
    if values is None or len(values) == 0:
        return np.full(len(pick), missing)
    arr = np.asarray(values, dtype=np.float64)
    if arr.shape != (n_cal,):
        raise ValueError(f"a solution row has {arr.size} channel values, the calibrator has {n_cal} channels")
    out = arr[np.where(pick < 0, 0, pick)]
    out[pick < 0] = np.nan
    return out


def tile_name_format(names: Sequence[str]) -> str:
    """The FITS format of a TileName column holding these names (at least 8 characters, as real files)."""
    return f"{max([8, *(len(n) for n in names)])}A"


def _calibdata_hdu(tiledata: Any, t: _CalibTable, n_ch: int, fit: AppliedFit) -> Any:
    from astropy.io import fits

    names = [str(n).strip() for n in tiledata["TileName"]]
    cols = [
        fits.Column(name="Antenna", format="I", array=np.asarray(tiledata["Antenna"], dtype=np.int16)),
        fits.Column(name="Tile", format="I", array=np.asarray(tiledata["Tile"], dtype=np.int16)),
        fits.Column(name="TileName", format=tile_name_format(names), array=names),
        fits.Column(name="Pol", format="A", array=[str(p).strip() for p in tiledata["Pol"]]),
        fits.Column(name="Calib_Delay", format="E", unit="m", array=t.delay.astype(np.float32)),
        fits.Column(name="intercept", format="E", unit="rad", array=t.intercept.astype(np.float32)),
        fits.Column(name="Calib_Gains", format=f"{n_ch}E", array=t.gains.astype(np.float32)),
        fits.Column(name="gains_pol1", format=f"{n_ch}E", array=t.pol1.astype(np.float32)),
        fits.Column(name="gains_pol0", format=f"{n_ch}E", array=t.pol0.astype(np.float32)),
        fits.Column(name="phase_fit_quality", format="E", array=t.phase_quality.astype(np.float32)),
        fits.Column(name="gains_fit_quality", format="E", array=t.gains_quality.astype(np.float32)),
    ]
    hdu = fits.BinTableHDU.from_columns(cols, name="CALIBDATA")
    h = hdu.header
    h["CALFIT"] = (int(fit.fitid), "Full Calibration fit ID")
    h["CALFITID"] = (short_fitid(fit.fitid), "Calibration fit ID, /1000000 if >32 bits")
    h["CALOBSID"] = (int(fit.cal_obsid), "Calibration observation ID")
    h["TAROBSID"] = (int(fit.target_obsid), "Target observation ID the fit was applied to")
    h["FILENAME"] = (fit.filename or None, "Hyperdrive fit filename")
    _optional(h, "CALCDVER", fit.code_version, "Calibration fit code version")
    _optional(h, "CALDTIME", _iso(fit.fit_time), "Calibration fit timestamp")
    _optional(h, "CALCRTR", fit.creator, "Calibration fit creator")
    _optional(h, "CALITERS", None if fit.fit_niter is None else int(fit.fit_niter), "Calibration fit iterations")
    _optional(h, "CALITLIM", _number(fit.fit_limit), "Calibration fit iteration limit")
    return hdu


def _optional(header: Any, key: str, value: Any, comment: str) -> None:
    """Write the key only when there is a value (mwalib reads these as optional keys)."""
    if value is not None:
        header[key] = (value, comment)


def _iso(stamp: datetime | None) -> str | None:
    return None if stamp is None else as_utc(stamp).isoformat()


def _number(value: float | None) -> int | float | None:
    """An integral float as an int (mwalib reads CALITLIM as an integer, as the real files write it)."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return None
    return int(value) if float(value).is_integer() else float(value)


def _tiledata_with_calib(tiledata: Any, t: _CalibTable, n_ch: int, failed_tiles: set[int]) -> Any:
    """TILEDATA with Calib_Delay / Calib_Gains columns (added or overwritten) and failed tiles flagged."""
    from astropy.io import fits

    data = tiledata.data
    keep = [c for c in tiledata.columns if c.name not in ("Calib_Delay", "Calib_Gains")]
    cols = []
    for c in keep:
        array = np.array(data[c.name], copy=True)
        if c.name == "Flag" and failed_tiles:
            failed = np.isin(np.asarray(data["Tile"], dtype=int), list(failed_tiles))
            array = np.where(failed, 1, array).astype(array.dtype)
        cols.append(fits.Column(name=c.name, format=c.format, unit=c.unit, dim=c.dim, null=c.null,
                                disp=c.disp, array=array))
    cols.append(fits.Column(name="Calib_Delay", format="E", unit="m", array=t.delay.astype(np.float32)))
    cols.append(fits.Column(name="Calib_Gains", format=f"{n_ch}E", array=t.gains.astype(np.float32)))
    header = tiledata.header.copy()
    for key in [k for k in header if k.startswith(("TTYPE", "TFORM", "TUNIT", "TDIM", "TNULL", "TDISP"))]:
        del header[key]
    return fits.BinTableHDU.from_columns(cols, header=header, name="TILEDATA")
