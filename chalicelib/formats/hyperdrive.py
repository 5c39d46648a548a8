"""hyperdrive FITS calibration solutions: write them as mwa_hyperdrive does, and read real ones.

Layout (https://mwatelescope.github.io/mwa_hyperdrive/defs/cal_sols_hyp.html), HDUs in order:

- PRIMARY: keys OBSID (a string, as hyperdrive writes it), SOFTWARE, plus our extras.
- SOLUTIONS: float64 image, numpy shape (timeblock, tile, chanblock, 8) = re/im of XX, XY, YX, YY.
- TIMEBLOCKS: table Start, End, Average (1D, GPS seconds).
- TILES: table Antenna (1J), Flag (1I), TileName (8A). hyperdrive also writes DipoleGains and
  DipoleDelays; a CalibrationSolution has no dipole data, so we omit those two columns.
- CHANBLOCKS: table Index (1J), Flag (1B), Freq (1D, Hz).
- RESULTS: float64 image (timeblock, chanblock), the convergence precision per chanblock.
- BASELINES (baseline weights): hyperdrive marks it optional; we have no weights and omit it.

astropy is imported inside the functions, never at module import: importing this module must
stay cheap for Lambda cold starts that never write FITS.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from os import PathLike
from typing import Any

import numpy as np

from chalicelib.solution import CalibrationSolution, canonical_nan

HDU_ORDER = ("PRIMARY", "SOLUTIONS", "TIMEBLOCKS", "TILES", "CHANBLOCKS", "RESULTS")
FORMAT_DOC_URL = "https://mwatelescope.github.io/mwa_hyperdrive/defs/cal_sols_hyp.html"
TILE_NAME_WIDTH = 8  # hyperdrive writes TileName as 8A

# RESULTS value for a chanblock that has a solution. hyperdrive stores the precision each
# chanblock converged to; a solution rebuilt from the database has no such number, so we write
# 0.0 ("solved") and NaN where every tile is NaN ("flagged / failed"), as hyperdrive does.
RESULT_SOLVED = 0.0


@dataclass
class HyperdriveSolutions:
    """The contents of one hyperdrive solutions file; HDUs that hyperdrive marks optional may be absent (None)."""

    obsid: int | None
    jones: np.ndarray  # (timeblock, tile, chanblock, 4) complex128, pols XX, XY, YX, YY
    tile_antennas: np.ndarray  # (tile,) int, metafits Antenna index
    tile_flags: np.ndarray  # (tile,) bool
    tile_names: list[str] | None
    chanblock_indices: np.ndarray  # (chanblock,) int
    chanblock_flags: np.ndarray  # (chanblock,) bool
    chanblock_freqs: np.ndarray | None  # (chanblock,) Hz
    timeblocks: np.ndarray | None  # (timeblock, 3) float64: Start, End, Average GPS seconds
    results: np.ndarray | None  # (timeblock, chanblock) float64, NaN = flagged/failed
    software: str | None = None
    header: dict[str, Any] = field(default_factory=dict)  # all PRIMARY keys (no COMMENT/HISTORY)

    @property
    def n_timeblocks(self) -> int:
        return self.jones.shape[0]

    @property
    def n_tiles(self) -> int:
        return self.jones.shape[1]

    @property
    def n_chanblocks(self) -> int:
        return self.jones.shape[2]


def _primary_header(sol: CalibrationSolution) -> Any:
    """Build the PRIMARY header: OBSID as a string like hyperdrive, SOFTWARE, fit id and any extra keys."""
    from astropy.io import fits

    hdr = fits.Header()
    hdr["COMMENT"] = "The contents of this file are documented at:"
    hdr["COMMENT"] = FORMAT_DOC_URL
    hdr["OBSID"] = (str(int(sol.cal_obsid)), "The MWA observation ID")
    hdr["SOFTWARE"] = sol.software
    if sol.fitid is not None:
        hdr["FITID"] = (int(sol.fitid), "calibration_fits.fitid of the solution")
    for key, value in sol.extra_header.items():
        if isinstance(value, np.generic):
            value = value.item()
        hdr[key] = value
    return hdr


def _baseline_weights(tile_flag: np.ndarray) -> np.ndarray:
    """BASELINES as hyperdrive lays it out: one weight per tile pair (i < j), 0 where a tile is flagged."""
    i, j = np.triu_indices(tile_flag.size, k=1)
    return np.where(tile_flag[i] | tile_flag[j], 0.0, 1.0)


def write_hyperdrive(sol: CalibrationSolution) -> bytes:
    """Encode a solution as a hyperdrive FITS file, so hyperdrive and hyperdrive-reading scripts can apply it.

    TILES Flag is 1 for tiles flagged in the metafits or NaN everywhere; CHANBLOCKS Flag is 1 for
    chanblocks NaN in every tile and time block; RESULTS is NaN where a chanblock is NaN in every
    tile of that time block, else 0.0 (we hold no convergence precision).
    """
    from astropy.io import fits

    n_times, n_tiles, n_chans, _ = sol.jones.shape
    nan = np.isnan(sol.jones).any(axis=3)  # (time, tile, chan): a Jones with any NaN is flagged

    floats = np.ascontiguousarray(sol.jones, dtype=np.complex128).view(np.float64)
    solutions = fits.ImageHDU(canonical_nan(floats).reshape(n_times, n_tiles, n_chans, 8), name="SOLUTIONS")

    starts = np.array([t[0] for t in sol.times_gps], dtype=np.float64)
    ends = np.array([t[1] for t in sol.times_gps], dtype=np.float64)
    timeblocks = fits.BinTableHDU.from_columns(
        [
            fits.Column(name="Start", format="1D", array=starts),
            fits.Column(name="End", format="1D", array=ends),
            fits.Column(name="Average", format="1D", array=(starts + ends) / 2.0),
        ],
        name="TIMEBLOCKS",
    )

    tile_nan = nan.all(axis=(0, 2)) if n_times and n_chans else np.zeros(n_tiles, dtype=bool)
    tile_flag = np.array([t.flagged for t in sol.tiles], dtype=bool) | tile_nan
    names = [t.name for t in sol.tiles]
    width = max([TILE_NAME_WIDTH] + [len(n.encode("ascii")) for n in names])
    tiles = fits.BinTableHDU.from_columns(
        [
            fits.Column(name="Antenna", format="1J", array=np.array([t.antenna for t in sol.tiles], dtype=np.int32)),
            fits.Column(name="Flag", format="1I", array=tile_flag.astype(np.int16)),
            fits.Column(name="TileName", format=f"{width}A", array=np.array(names, dtype=f"S{width}")),
        ],
        name="TILES",
    )

    chan_nan_per_time = nan.all(axis=1)  # (time, chan)
    chan_flag = chan_nan_per_time.all(axis=0) if n_times else np.zeros(n_chans, dtype=bool)
    chanblocks = fits.BinTableHDU.from_columns(
        [
            fits.Column(name="Index", format="1J", array=np.arange(n_chans, dtype=np.int32)),
            fits.Column(name="Flag", format="1B", array=chan_flag.astype(np.uint8)),
            fits.Column(name="Freq", format="1D", array=sol.freqs_hz.astype(np.float64)),
        ],
        name="CHANBLOCKS",
    )

    results = np.where(chan_nan_per_time, np.nan, RESULT_SOLVED).astype(np.float64)
    hdus = fits.HDUList(
        [
            fits.PrimaryHDU(header=_primary_header(sol)),
            solutions,
            timeblocks,
            tiles,
            chanblocks,
            fits.ImageHDU(results, name="RESULTS"),
            fits.ImageHDU(_baseline_weights(tile_flag), name="BASELINES"),
        ]
    )
    buf = io.BytesIO()
    hdus.writeto(buf, output_verify="exception")
    return buf.getvalue()


def _column(table: Any, name: str) -> np.ndarray | None:
    """Return a table column as a native-endian array, or None when the column is absent."""
    if table is None or name not in table.columns.names:
        return None
    return np.asarray(table.data[name]).astype(table.data[name].dtype.newbyteorder("="))


def read_hyperdrive(source: str | PathLike[str] | bytes) -> HyperdriveSolutions:
    """Read a hyperdrive solutions FITS file (path or bytes), so real hyperdrive fits can be ingested and compared.

    Missing optional HDUs give defaults: antennas 0..N-1, flags False, names/freqs/timeblocks/results None.
    """
    from astropy.io import fits

    opened = io.BytesIO(source) if isinstance(source, (bytes, bytearray, memoryview)) else source
    with fits.open(opened, memmap=False) as hdus:
        primary = hdus[0].header
        raw = np.asarray(hdus["SOLUTIONS"].data, dtype=np.float64)
        if raw.ndim != 4 or raw.shape[3] != 8:
            raise ValueError(f"SOLUTIONS must be (timeblock, tile, chanblock, 8), got {raw.shape}")
        jones = np.ascontiguousarray(raw).view(np.complex128)  # re/im pairs -> complex, bit-exact
        n_times, n_tiles, n_chans, _ = jones.shape

        def table(name: str) -> Any:
            return hdus[name] if name in hdus else None

        tiles = table("TILES")
        antennas = _column(tiles, "Antenna")
        tile_flags = _column(tiles, "Flag")
        names = _column(tiles, "TileName")

        chans = table("CHANBLOCKS")
        indices = _column(chans, "Index")
        chan_flags = _column(chans, "Flag")
        freqs = _column(chans, "Freq")

        times = table("TIMEBLOCKS")
        timeblocks = None
        if times is not None:
            cols = [_column(times, c) for c in ("Start", "End", "Average")]
            timeblocks = np.stack(
                [c.astype(np.float64) if c is not None else np.zeros(n_times) for c in cols], axis=1
            )

        results = None
        if "RESULTS" in hdus and hdus["RESULTS"].data is not None:
            results = np.asarray(hdus["RESULTS"].data, dtype=np.float64).reshape(n_times, n_chans)

        try:
            obsid = int(primary.get("OBSID"))
        except (TypeError, ValueError):
            obsid = None
        header = {k: primary[k] for k in primary if k not in ("COMMENT", "HISTORY", "")}
        return HyperdriveSolutions(
            obsid=obsid,
            jones=jones,
            tile_antennas=antennas.astype(np.int64) if antennas is not None else np.arange(n_tiles),
            tile_flags=tile_flags.astype(bool) if tile_flags is not None else np.zeros(n_tiles, dtype=bool),
            tile_names=[n.decode("ascii").rstrip() if isinstance(n, bytes) else str(n).rstrip() for n in names]
            if names is not None
            else None,
            chanblock_indices=indices.astype(np.int64) if indices is not None else np.arange(n_chans),
            chanblock_flags=chan_flags.astype(bool) if chan_flags is not None else np.zeros(n_chans, dtype=bool),
            chanblock_freqs=freqs.astype(np.float64) if freqs is not None else None,
            timeblocks=timeblocks,
            results=results,
            software=primary.get("SOFTWARE"),
            header=header,
        )
