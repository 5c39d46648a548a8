"""The one calibration-solution type: every reader in ``chalicelib.formats`` returns it, every writer takes it.

A solution holds Jones matrices for each time block, tile (in metafits Antenna order) and fine
channel ("chanblock"), with the tile identities, channel frequencies and time ranges needed to
write any of the supported file formats (AO-cal ``.bin``, hyperdrive FITS). A solution read from a
hyperdrive file also carries what only such a file holds (chanblock flags, RESULTS, the TIMEBLOCKS
averages, the PRIMARY header), so the writer can give back what was read; one rebuilt from the
database leaves those None and the writer derives them from the Jones.

What a file does not say stays unknown rather than invented: a tile read from a file has no
tile id, receiver or slot (None), a tile of an AO-cal file (which names no tiles) has the empty
name, and AO-cal channel frequencies are NaN.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

SOFTWARE = "mwa-calib-service"  # what a solution built here says made it (hyperdrive PRIMARY SOFTWARE)


def canonical_nan(values: np.ndarray) -> np.ndarray:
    """``values`` with every NaN as the standard quiet NaN, so identical solutions give identical files."""
    nan = np.isnan(values)
    if nan.any():
        values = values.copy()
        values[nan] = np.nan
    return values


@dataclass(frozen=True)
class TileInfo:
    """One tile of an observation, as the metafits TILEDATA describes it (a file's TILES tell less: see module doc)."""

    antenna: int  # 0-based metafits Antenna index (the order of solution files)
    tile_id: int | None  # metafits Tile, e.g. 11, 1017, 2049 (the database tileid); None when read from a file
    name: str  # metafits TileName, e.g. "Tile011", "HexS32"; "" when the file names no tiles
    rx: int | None  # receiver number; None when read from a file
    slot: int | None  # slot on the receiver, 1..8; None when read from a file
    flagged: bool = False  # flagged in the metafits (either pol), or in a hyperdrive file's TILES Flag


def unnamed_tiles(n_tiles: int) -> list[TileInfo]:
    """Tiles 0..n-1 known only by their Antenna index (an AO-cal file, a hyperdrive file without TILES)."""
    return [TileInfo(antenna=a, tile_id=None, name="", rx=None, slot=None) for a in range(n_tiles)]


@dataclass
class CalibrationSolution:
    """Jones solutions of one calibrator fit, laid out for a target observation (or as a file holds them).

    ``jones`` has shape (n_times, n_tiles, n_chans, 4), complex128, pols XX, XY, YX, YY; a flagged
    tile/channel is NaN in all four. ``tiles`` are in output order (the target's Antenna order),
    ``freqs_hz`` the fine-channel centres, ``times_gps`` one (start, end) pair per time block.
    """

    jones: np.ndarray
    tiles: list[TileInfo]
    freqs_hz: np.ndarray
    times_gps: list[tuple[float, float]]
    cal_obsid: int | None  # None: the file does not say (AO-cal)
    fitid: int | None = None
    software: str | None = SOFTWARE
    # PRIMARY header keys (no COMMENT/HISTORY): all of a read hyperdrive file's; a writer adds them
    # after OBSID, SOFTWARE and FITID, which it takes from the fields above
    header: dict[str, object] = field(default_factory=dict)
    chanblock_flags: np.ndarray | None = None  # (n_chans,) bool, hyperdrive CHANBLOCKS Flag; None: from the NaNs
    results: np.ndarray | None = None  # (n_times, n_chans) hyperdrive convergence, NaN = failed; None: unknown
    time_averages_gps: np.ndarray | None = None  # (n_times,) hyperdrive TIMEBLOCKS Average; None: midpoints

    def __post_init__(self) -> None:
        j = np.asarray(self.jones)
        if j.ndim != 4 or j.shape[3] != 4:
            raise ValueError(f"jones must be (times, tiles, chans, 4), got {j.shape}")
        n_times, n_tiles, n_chans, _ = j.shape
        if n_times != len(self.times_gps):
            raise ValueError("one (start, end) time pair per time block is required")
        if n_tiles != len(self.tiles):
            raise ValueError("one TileInfo per tile is required")
        if n_chans != len(self.freqs_hz):
            raise ValueError("one frequency per channel is required")
        self.jones = j.astype(np.complex128, copy=False)  # complex128 in: the same array, bit for bit
        self.freqs_hz = np.asarray(self.freqs_hz, dtype=np.float64)
        if self.chanblock_flags is not None:
            self.chanblock_flags = _shaped(self.chanblock_flags, bool, (n_chans,), "chanblock_flags")
        if self.results is not None:
            self.results = _shaped(self.results, np.float64, (n_times, n_chans), "results")
        if self.time_averages_gps is not None:
            self.time_averages_gps = _shaped(self.time_averages_gps, np.float64, (n_times,), "time_averages_gps")

    @property
    def n_times(self) -> int:
        return self.jones.shape[0]

    @property
    def n_tiles(self) -> int:
        return self.jones.shape[1]

    @property
    def n_chans(self) -> int:
        return self.jones.shape[2]

    def flagged_antennas(self) -> list[int]:
        """0-based Antenna indices of tiles whose solution is NaN in every channel and time."""
        nan_tile = np.all(np.isnan(self.jones), axis=(0, 2, 3))
        return [t.antenna for t, bad in zip(self.tiles, nan_tile) if bad]

    def timeblocks(self) -> np.ndarray:
        """(n_times, 3) float64: start, end and average GPS time of each block (average: carried, else midpoint)."""
        out = np.zeros((self.n_times, 3), dtype=np.float64)
        if self.n_times:
            out[:, :2] = np.asarray(self.times_gps, dtype=np.float64)
        out[:, 2] = self.time_averages_gps if self.time_averages_gps is not None else (out[:, 0] + out[:, 1]) / 2.0
        return out


def _shaped(value: object, dtype: type, shape: tuple[int, ...], name: str) -> np.ndarray:
    """``value`` as an array of ``dtype`` and exactly ``shape``; refuses any other shape."""
    arr = np.asarray(value, dtype=dtype)
    if arr.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {arr.shape}")
    return arr
