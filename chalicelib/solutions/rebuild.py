"""Rebuild per-fine-channel Jones matrices from ``calibration_solutions`` rows (phase and gain fits).

``rebuild_jones`` is the formula on arrays; ``assemble`` lays a fit out for a target observation
(its tiles in its Antenna order, its coarse channels) as a CalibrationSolution.

For tile t, coarse channel k (receiver channels sorted ascending = the order of the gains
columns) and fine-channel frequency nu (Hz) inside that coarse channel, c = 299792458 m/s:

    phi_x(nu) = x_intercept - 2 pi nu x_delay_m / c
    G_x(nu)   = x_gains_pol0[k] + x_gains_pol1[k] * nu   if pol0/pol1 are not both 0 for (t, k)
              = x_gains[k]                               otherwise (older rows store zeros)
    J_xx = exp(i phi_x) / G_x ;  J_yy likewise ;  J_xy = J_yx = 0

This is the "data to model" convention of hyperdrive and AO-cal files. Any NaN among a tile's
inputs for a coarse channel (X or Y: delay, intercept, gains[k], pol0[k], pol1[k]) makes all
four Jones terms NaN in every fine channel of that coarse channel; so does a zero or infinite
G (an amplitude that cannot be inverted). Everything is whole-array numpy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from chalicelib.instrument import COARSE_CHAN_HZ, SPEED_OF_LIGHT
from chalicelib.solutions.solution import CalibrationSolution, TileInfo


def fine_channels_per_coarse(fine_chan_hz: float) -> int:
    """Number of fine channels in one 1.28 MHz coarse channel; raises unless ``fine_chan_hz`` divides it exactly."""
    df = float(fine_chan_hz)
    if not np.isfinite(df) or df <= 0 or df > COARSE_CHAN_HZ:
        raise ValueError(f"fine channel width must be in (0, 1.28e6] Hz, got {fine_chan_hz}")
    n = round(COARSE_CHAN_HZ / df)
    if abs(n * df - COARSE_CHAN_HZ) > 1e-6:
        raise ValueError(f"fine channel width {fine_chan_hz} Hz does not divide 1.28 MHz")
    return int(n)


def _sorted_coarse(coarse_channels: Sequence[int]) -> np.ndarray:
    """Receiver channel numbers sorted ascending (the solution order); refuses repeats and negatives."""
    chans = np.sort(np.asarray(list(coarse_channels), dtype=np.int64))
    if chans.size and chans[0] < 0:
        raise ValueError("receiver channel numbers must be non-negative")
    if np.any(np.diff(chans) == 0):
        raise ValueError(f"repeated receiver channel in {list(coarse_channels)}")
    return chans


def _fine_freqs_2d(coarse: np.ndarray, fine_chan_hz: float) -> np.ndarray:
    """Fine-channel centres, shape (n_coarse, n_fine), Hz."""
    n_fine = fine_channels_per_coarse(fine_chan_hz)
    df = float(fine_chan_hz)
    i = np.arange(n_fine, dtype=np.float64)
    centre = coarse.astype(np.float64)[:, None] * COARSE_CHAN_HZ
    if n_fine % 2 == 0:
        # MWAX: nu_i = n*1.28e6 - 640e3 + i*df, so fine channel N/2 sits on the coarse centre.
        return centre - COARSE_CHAN_HZ / 2 + i[None, :] * df
    # Odd N (e.g. N=1 at 1280 kHz): the same rule "channel floor(N/2) on the coarse centre",
    # which is also the symmetric choice: the middle channel is centred on n*1.28e6.
    return centre + (i[None, :] - n_fine // 2) * df


def fine_channel_freqs(coarse_channels: Sequence[int], fine_chan_hz: float) -> np.ndarray:
    """Centre frequency (Hz) of every fine channel, coarse channels ascending, so solutions line up with data.

    Even N = 1.28 MHz / df fine channels per coarse channel n: nu_i = n*1.28e6 - 640e3 + i*df
    (the MWAX rule in domain.md; matches hyperdrive's CHANBLOCKS Freq). Odd N (including N = 1
    at 1280 kHz): nu_i = n*1.28e6 + (i - (N-1)/2)*df, i.e. symmetric about the coarse centre.
    """
    return _fine_freqs_2d(_sorted_coarse(coarse_channels), fine_chan_hz).reshape(-1)


def _as_1d(value: Any, n_tiles: int | None, name: str) -> np.ndarray:
    """One float per tile; None entries become NaN."""
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim != 1 or (n_tiles is not None and arr.shape[0] != n_tiles):
        raise ValueError(f"{name} must have shape ({n_tiles},), got {arr.shape}")
    return arr


def _as_2d(value: Any, shape: tuple[int, int], name: str) -> np.ndarray:
    """A (tile, coarse channel) float array; None entries become NaN."""
    arr = np.asarray(value, dtype=np.float64)
    if arr.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {arr.shape}")
    return arr


@dataclass(kw_only=True)
class SolutionArrays:
    """The phase/gain fits of one calibration fit as numpy arrays, one row per tile (in output order)."""

    x_delay_m: np.ndarray  # (n_tiles,) metres of light travel
    x_intercept: np.ndarray  # (n_tiles,) radians
    x_gains: np.ndarray  # (n_tiles, n_coarse), amplitude stored as 1/|J|
    y_delay_m: np.ndarray
    y_intercept: np.ndarray
    y_gains: np.ndarray
    x_gains_pol0: np.ndarray | None = None  # (n_tiles, n_coarse) or None; zeros = "no fit"
    x_gains_pol1: np.ndarray | None = None
    y_gains_pol0: np.ndarray | None = None
    y_gains_pol1: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.x_gains = np.asarray(self.x_gains, dtype=np.float64)
        if self.x_gains.ndim != 2:
            raise ValueError(f"x_gains must be (n_tiles, n_coarse), got {self.x_gains.shape}")
        shape = self.x_gains.shape
        self.y_gains = _as_2d(self.y_gains, shape, "y_gains")
        for name in ("x_delay_m", "x_intercept", "y_delay_m", "y_intercept"):
            setattr(self, name, _as_1d(getattr(self, name), shape[0], name))
        for name in ("x_gains_pol0", "x_gains_pol1", "y_gains_pol0", "y_gains_pol1"):
            if getattr(self, name) is not None:
                setattr(self, name, _as_2d(getattr(self, name), shape, name))

    @property
    def n_tiles(self) -> int:
        return self.x_gains.shape[0]

    @property
    def n_coarse(self) -> int:
        return self.x_gains.shape[1]

    @classmethod
    def from_rows(cls, rows: Sequence[Mapping[str, Any]], n_coarse: int) -> SolutionArrays:
        """Stack calibration_solutions rows (dicts keyed by column name), so DB results feed ``rebuild_jones``.

        A NULL scalar or gains array becomes NaN (flagged); a NULL or empty pol0/pol1 array becomes zeros (no fit).
        """

        def scalars(key: str) -> np.ndarray:
            return np.array([np.nan if r.get(key) is None else r[key] for r in rows], dtype=np.float64).reshape(-1)

        def arrays(key: str, missing: float) -> np.ndarray:
            out = np.full((len(rows), n_coarse), missing, dtype=np.float64)
            for t, r in enumerate(rows):
                v = r.get(key)
                if v is None or len(v) == 0:
                    continue
                if len(v) != n_coarse:
                    raise ValueError(f"{key} of row {t} has {len(v)} values, expected {n_coarse}")
                out[t] = np.asarray(v, dtype=np.float64)
            return out

        return cls(
            x_delay_m=scalars("x_delay_m"),
            x_intercept=scalars("x_intercept"),
            x_gains=arrays("x_gains", np.nan),
            x_gains_pol0=arrays("x_gains_pol0", 0.0),
            x_gains_pol1=arrays("x_gains_pol1", 0.0),
            y_delay_m=scalars("y_delay_m"),
            y_intercept=scalars("y_intercept"),
            y_gains=arrays("y_gains", np.nan),
            y_gains_pol0=arrays("y_gains_pol0", 0.0),
            y_gains_pol1=arrays("y_gains_pol1", 0.0),
        )


def _fill_pol(
    out: np.ndarray,
    delay: np.ndarray,
    intercept: np.ndarray,
    gains: np.ndarray,
    pol0: np.ndarray | None,
    pol1: np.ndarray | None,
    nu: np.ndarray,
) -> np.ndarray:
    """Write one pol's diagonal term into ``out`` (tile, coarse, fine, re/im); return its (tile, coarse) bad mask.

    The phase is evaluated exactly as written in the formula (not factorised per coarse
    channel), so results agree with a direct evaluation to the last bit of the phase.
    """
    p0 = np.zeros_like(gains) if pol0 is None else pol0
    p1 = np.zeros_like(gains) if pol1 is None else pol1
    bad = np.isnan(delay)[:, None] | np.isnan(intercept)[:, None] | np.isnan(gains) | np.isnan(p0) | np.isnan(p1)
    use_fit = (p0 != 0) | (p1 != 0)

    # phi = intercept - 2 pi nu delay / c, in place to avoid big temporaries
    phi = np.multiply((2 * np.pi) * nu[None, :, :], delay[:, None, None])
    phi /= SPEED_OF_LIGHT
    np.subtract(intercept[:, None, None], phi, out=phi)

    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if use_fit.any():
            amp = np.where(use_fit[:, :, None], p0[:, :, None] + p1[:, :, None] * nu[None, :, :], gains[:, :, None])
        else:
            amp = np.broadcast_to(gains[:, :, None], phi.shape)
        bad = bad | np.any((amp == 0) | ~np.isfinite(amp), axis=2)
        part = np.cos(phi)
        np.divide(part, amp, out=part)
        out[..., 0] = part
        np.sin(phi, out=part)
        np.divide(part, amp, out=part)
        out[..., 1] = part
    return bad


def rebuild_jones(rows: SolutionArrays, coarse_channels: Sequence[int], fine_chan_hz: float) -> np.ndarray:
    """Jones (n_tiles, n_coarse * n_fine, 4) complex128, XX XY YX YY, from the fits, so any format can be written.

    Channels run over ``sorted(coarse_channels)`` (the order of the gains columns), each split
    into 1.28 MHz / ``fine_chan_hz`` fine channels at ``fine_channel_freqs``.
    """
    coarse = _sorted_coarse(coarse_channels)
    if coarse.size != rows.n_coarse:
        raise ValueError(f"{coarse.size} coarse channels given, the gains have {rows.n_coarse}")
    nu = _fine_freqs_2d(coarse, fine_chan_hz)  # (coarse, fine)

    n_tiles, n_coarse, n_fine = rows.n_tiles, coarse.size, nu.shape[1]
    out = np.zeros((n_tiles, n_coarse, n_fine, 4), dtype=np.complex128)
    floats = out.view(np.float64)  # (tile, coarse, fine, 8): re/im of XX, XY, YX, YY
    bad_x = _fill_pol(
        floats[..., 0:2], rows.x_delay_m, rows.x_intercept, rows.x_gains, rows.x_gains_pol0, rows.x_gains_pol1, nu
    )
    bad_y = _fill_pol(
        floats[..., 6:8], rows.y_delay_m, rows.y_intercept, rows.y_gains, rows.y_gains_pol0, rows.y_gains_pol1, nu
    )
    out[bad_x | bad_y] = complex(np.nan, np.nan)
    return out.reshape(n_tiles, n_coarse * n_fine, 4)


def assemble(rows: Sequence[Mapping], cal_channels: Sequence[int], tiles: Sequence[TileInfo],
             target_channels: Sequence[int], fine_chan_hz: float, times_gps: tuple[float, float],
             cal_obsid: int, fitid: int) -> CalibrationSolution:
    """Jones for the target: its tiles in its Antenna order, its coarse channels, one interval.

    ``rows`` are calibration_solutions rows of the calibrator (gains over ``cal_channels``
    ascending). A target tile the fit lacks is NaN; gains columns are cut to the target's channels.
    """
    cal_sorted = sorted(cal_channels)
    target_sorted = sorted(target_channels)
    arrays = SolutionArrays.from_rows(rows, len(cal_sorted))
    by_tile = {int(r["tileid"]): i for i, r in enumerate(rows)}
    tile_idx = np.array([by_tile.get(t.tile_id, -1) for t in tiles], dtype=int)
    col = {ch: k for k, ch in enumerate(cal_sorted)}
    chan_idx = np.array([col[ch] for ch in target_sorted], dtype=int)
    jones = rebuild_jones(_subset(arrays, tile_idx, chan_idx), target_sorted, fine_chan_hz)
    return CalibrationSolution(jones=jones[np.newaxis], tiles=list(tiles),
                               freqs_hz=fine_channel_freqs(target_sorted, fine_chan_hz),
                               times_gps=[times_gps], cal_obsid=cal_obsid, fitid=fitid)


def _subset(a: SolutionArrays, tile_idx: np.ndarray, chan_idx: np.ndarray) -> SolutionArrays:
    """Rows picked by tile_idx (-1 = missing tile -> NaN) and gains columns by chan_idx."""
    missing = tile_idx < 0
    safe = np.where(missing, 0, tile_idx)

    def one(v: np.ndarray) -> np.ndarray:
        out = v[safe].astype(np.float64, copy=True)
        out[missing] = np.nan
        return out

    def two(v: np.ndarray | None, fill: float) -> np.ndarray | None:
        if v is None:
            return None
        out = v[np.ix_(safe, chan_idx)].astype(np.float64, copy=True)
        out[missing] = fill
        return out

    return SolutionArrays(
        x_delay_m=one(a.x_delay_m), x_intercept=one(a.x_intercept), x_gains=two(a.x_gains, np.nan),
        x_gains_pol0=two(a.x_gains_pol0, 0.0), x_gains_pol1=two(a.x_gains_pol1, 0.0),
        y_delay_m=one(a.y_delay_m), y_intercept=one(a.y_intercept), y_gains=two(a.y_gains, np.nan),
        y_gains_pol0=two(a.y_gains_pol0, 0.0), y_gains_pol1=two(a.y_gains_pol1, 0.0),
    )
