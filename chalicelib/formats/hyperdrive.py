"""hyperdrive FITS calibration solutions: write them as mwa_hyperdrive does, and read real ones.

Layout (https://mwatelescope.github.io/mwa_hyperdrive/defs/cal_sols_hyp.html), HDUs in order:

- PRIMARY: keys OBSID (a string, as hyperdrive writes it), SOFTWARE, plus the solution's other keys.
- SOLUTIONS: float64 image, numpy shape (timeblock, tile, chanblock, 8) = re/im of XX, XY, YX, YY.
- TIMEBLOCKS: table Start, End, Average (1D, GPS seconds).
- TILES: table Antenna (1J), Flag (1I), TileName (8A). hyperdrive also writes DipoleGains and
  DipoleDelays; a CalibrationSolution has no dipole data, so we omit those two columns.
- CHANBLOCKS: table Index (1J), Flag (1B), Freq (1D, Hz).
- RESULTS: float64 image (timeblock, chanblock), the convergence precision per chanblock.
- BASELINES: float64 image, one weight per tile pair (i < j): we write 1, or 0 where a tile is
  flagged (hyperdrive writes the weights it used; the reader does not keep them).

astropy is imported inside the functions, never at module import: importing this module must
stay cheap for Lambda cold starts that never write FITS.
"""

from __future__ import annotations

import io
from os import PathLike
from typing import Any

import numpy as np

from chalicelib.solutions.solution import CalibrationSolution, TileInfo, canonical_nan, unnamed_tiles

FORMAT_DOC_URL = "https://mwatelescope.github.io/mwa_hyperdrive/defs/cal_sols_hyp.html"
TILE_NAME_WIDTH = 8  # hyperdrive writes TileName as 8A

# RESULTS value for a chanblock that has a solution. hyperdrive stores the precision each
# chanblock converged to; a solution rebuilt from the database has no such number, so we write
# 0.0 ("solved") and NaN where every tile is NaN ("flagged / failed"), as hyperdrive does.
RESULT_SOLVED = 0.0

# PRIMARY keys the writer sets itself (FITS structure, or from the solution's fields)
_OWN_KEYS = frozenset({"SIMPLE", "BITPIX", "NAXIS", "EXTEND", "OBSID", "SOFTWARE", "FITID"})


def _primary_header(sol: CalibrationSolution) -> Any:
    """Build the PRIMARY header: OBSID as a string like hyperdrive, SOFTWARE, fit id, then the solution's other keys."""
    from astropy.io import fits

    hdr = fits.Header()
    hdr["COMMENT"] = "The contents of this file are documented at:"
    hdr["COMMENT"] = FORMAT_DOC_URL
    if sol.cal_obsid is not None:
        hdr["OBSID"] = (str(int(sol.cal_obsid)), "The MWA observation ID")
    if sol.software:
        hdr["SOFTWARE"] = sol.software
    if sol.fitid is not None:
        hdr["FITID"] = (int(sol.fitid), "calibration_fits.fitid of the solution")
    for key, value in sol.header.items():
        if key.upper() in _OWN_KEYS:
            continue
        if isinstance(value, np.generic):
            value = value.item()
        hdr[key if len(key) <= 8 else f"HIERARCH {key}"] = value  # as hyperdrive writes its long key names
    return hdr


def _baseline_weights(tile_flag: np.ndarray) -> np.ndarray:
    """BASELINES as hyperdrive lays it out: one weight per tile pair (i < j), 0 where a tile is flagged."""
    i, j = np.triu_indices(tile_flag.size, k=1)
    return np.where(tile_flag[i] | tile_flag[j], 0.0, 1.0)


def write_hyperdrive(sol: CalibrationSolution) -> bytes:
    """Encode a solution as a hyperdrive FITS file, so hyperdrive and hyperdrive-reading scripts can apply it.

    A flag is 1 where the solution says so (a tile's ``flagged``, ``chanblock_flags``) and where
    there is no solution: TILES Flag for tiles NaN everywhere, CHANBLOCKS Flag for chanblocks NaN in
    every tile and time block. RESULTS and TIMEBLOCKS Average are the solution's when it carries
    them (read from a file); otherwise RESULTS is NaN where a chanblock is NaN in every tile of
    that time block, else 0.0 (no convergence precision is known), and Average is the middle of
    Start and End.
    """
    from astropy.io import fits

    n_times, n_tiles, n_chans, _ = sol.jones.shape
    nan = np.isnan(sol.jones).any(axis=3)  # (time, tile, chan): a Jones with any NaN is flagged

    floats = np.ascontiguousarray(sol.jones, dtype=np.complex128).view(np.float64)
    solutions = fits.ImageHDU(canonical_nan(floats).reshape(n_times, n_tiles, n_chans, 8), name="SOLUTIONS")

    blocks = sol.timeblocks()
    timeblocks = fits.BinTableHDU.from_columns(
        [fits.Column(name=name, format="1D", array=blocks[:, i]) for i, name in enumerate(("Start", "End", "Average"))],
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
    if sol.chanblock_flags is not None:
        chan_flag = chan_flag | sol.chanblock_flags
    chanblocks = fits.BinTableHDU.from_columns(
        [
            fits.Column(name="Index", format="1J", array=np.arange(n_chans, dtype=np.int32)),
            fits.Column(name="Flag", format="1B", array=chan_flag.astype(np.uint8)),
            fits.Column(name="Freq", format="1D", array=sol.freqs_hz.astype(np.float64)),
        ],
        name="CHANBLOCKS",
    )

    if sol.results is not None:
        results = sol.results
    else:
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


def _tiles(table: Any, n_tiles: int) -> list[TileInfo]:
    """TILES as TileInfo: Antenna, TileName and Flag (0..N-1, unnamed, unflagged where a column is absent)."""
    antennas = _column(table, "Antenna")
    flags = _column(table, "Flag")
    names = _column(table, "TileName")
    if antennas is None and flags is None and names is None:
        return unnamed_tiles(n_tiles)
    antennas = antennas.astype(np.int64) if antennas is not None else np.arange(n_tiles)
    flags = flags.astype(bool) if flags is not None else np.zeros(n_tiles, dtype=bool)
    text = [n.decode("ascii").rstrip() if isinstance(n, bytes) else str(n).rstrip() for n in names] \
        if names is not None else [""] * n_tiles
    return [TileInfo(antenna=int(a), tile_id=None, name=n, rx=None, slot=None, flagged=bool(f))
            for a, n, f in zip(antennas.tolist(), text, flags.tolist())]


def read_hyperdrive(source: str | PathLike[str] | bytes) -> CalibrationSolution:
    """Read a hyperdrive solutions FITS file (path or bytes), so real hyperdrive fits can be ingested and compared.

    The Jones are a view of the SOLUTIONS float64 pairs (bit-exact); TILES give each tile's
    Antenna, TileName and Flag (no tile id, receiver or slot); CHANBLOCKS the frequencies and
    flags; TIMEBLOCKS the times; RESULTS the convergence; every PRIMARY key goes to ``header``.
    A missing optional HDU leaves its part unknown: unnamed tiles 0..N-1, NaN frequencies and
    times, None flags/results/averages.
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

        tiles = _tiles(table("TILES"), n_tiles)
        chans = table("CHANBLOCKS")
        freqs = _column(chans, "Freq")
        chan_flags = _column(chans, "Flag")

        blocks = np.full((n_times, 3), np.nan)
        times = table("TIMEBLOCKS")
        for i, name in enumerate(("Start", "End", "Average")):
            col = _column(times, name)
            if col is not None:
                blocks[:, i] = col.astype(np.float64)
        averages = blocks[:, 2] if _column(times, "Average") is not None else None

        results = None
        if "RESULTS" in hdus and hdus["RESULTS"].data is not None:
            results = np.asarray(hdus["RESULTS"].data, dtype=np.float64).reshape(n_times, n_chans)

        return CalibrationSolution(
            jones=jones,
            tiles=tiles,
            freqs_hz=freqs.astype(np.float64) if freqs is not None else np.full(n_chans, np.nan),
            times_gps=[(float(s), float(e)) for s, e in blocks[:, :2]],
            cal_obsid=_int_key(primary, "OBSID"),
            fitid=_int_key(primary, "FITID"),  # a file this service wrote
            software=primary.get("SOFTWARE"),
            header={k: primary[k] for k in primary if k not in ("COMMENT", "HISTORY", "")},
            chanblock_flags=chan_flags.astype(bool) if chan_flags is not None else None,
            results=results,
            time_averages_gps=averages,
        )


def _int_key(header: Any, key: str) -> int | None:
    """A header key read as an integer (OBSID is a string in hyperdrive files); None when absent or not one."""
    try:
        return int(header.get(key))
    except (TypeError, ValueError):
        return None
