"""The one calibration-solution type every writer in ``chalicelib.formats`` takes.

A solution holds Jones matrices for each time block, tile (in metafits Antenna order) and fine
channel, with the tile identities, channel frequencies and time ranges needed to write any of the
supported file formats (AO-cal ``.bin``, hyperdrive FITS).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


def canonical_nan(values: np.ndarray) -> np.ndarray:
    """``values`` with every NaN as the standard quiet NaN, so identical solutions give identical files."""
    nan = np.isnan(values)
    if nan.any():
        values = values.copy()
        values[nan] = np.nan
    return values


@dataclass(frozen=True)
class TileInfo:
    """One tile of an observation, as the metafits TILEDATA describes it."""

    antenna: int  # 0-based metafits Antenna index (the order of solution files)
    tile_id: int  # metafits Tile, e.g. 11, 1017, 2049 (the database tileid)
    name: str  # metafits TileName, e.g. "Tile011", "HexS32"
    rx: int  # receiver number
    slot: int  # slot on the receiver, 1..8
    flagged: bool = False  # flagged in the metafits (either pol)


@dataclass
class CalibrationSolution:
    """Jones solutions of one calibrator fit, laid out for a target observation.

    ``jones`` has shape (n_times, n_tiles, n_chans, 4), complex128, pols XX, XY, YX, YY; a flagged
    tile/channel is NaN in all four. ``tiles`` are in output order (the target's Antenna order),
    ``freqs_hz`` the fine-channel centres, ``times_gps`` one (start, end) pair per time block.
    """

    jones: np.ndarray
    tiles: list[TileInfo]
    freqs_hz: np.ndarray
    times_gps: list[tuple[float, float]]
    cal_obsid: int
    fitid: int | None = None
    software: str = "mwa-calib-service"
    extra_header: dict[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        j = np.asarray(self.jones)
        if j.ndim != 4 or j.shape[3] != 4:
            raise ValueError(f"jones must be (times, tiles, chans, 4), got {j.shape}")
        if j.shape[0] != len(self.times_gps):
            raise ValueError("one (start, end) time pair per time block is required")
        if j.shape[1] != len(self.tiles):
            raise ValueError("one TileInfo per tile is required")
        if j.shape[2] != len(self.freqs_hz):
            raise ValueError("one frequency per channel is required")
        self.jones = j.astype(np.complex128, copy=False)
        self.freqs_hz = np.asarray(self.freqs_hz, dtype=np.float64)

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
