"""A fit's own hyperdrive solutions laid out for a target, exactly: the file's Jones, bit for bit, cut and ordered.

``exact_solution`` takes the read solution files (one per coarse channel, per band or for the
whole band) and gives the target's tiles in its Antenna order, matched by tile identity (the
calibrator's tile rows give each tile id its name and Antenna; never by position in the file), over
the target's coarse channels picked from the files' chanblocks by frequency. No re-referencing and
no model: a value is the file's, or NaN where

- the file has NaN (element by element, as the file has it),
- the file flags the tile (TILES Flag) or the chanblock (CHANBLOCKS Flag),
- any element's |value| exceeds the fit's ``gain_max_cutoff`` (as the site pipeline does before it fits),
- the fit lacks the target tile, or no file holds the chanblock (all four terms).

At the native chanblock width nothing else happens. A width ``k`` times the native one averages:
each output channel is the NaN-aware complex mean of the ``k`` native chanblocks inside it (native
chanblock i of coarse channel n goes to output channel i // k), at the output channel frequencies
of :func:`chalicelib.solutions.rebuild.fine_channel_freqs`.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

from chalicelib.instrument import COARSE_CHAN_HZ, receiver_channel_of
from chalicelib.solutions.files import native_width_hz
from chalicelib.solutions.rebuild import fine_channel_freqs, fine_channels_per_coarse
from chalicelib.solutions.solution import CalibrationSolution, TileInfo

NAN = complex(np.nan, np.nan)


def file_rows(target: Sequence[TileInfo], cal_tiles: Sequence[TileInfo], file_tiles: Sequence[TileInfo]) -> np.ndarray:
    """For each target tile, its row in the file (-1 when the fit lacks it), matched by tile identity.

    The calibrator's tile rows name each tile id (and give its Antenna); the file's TILES are
    matched by TileName, or by that Antenna when the file names no tiles. Without calibrator tile
    rows the target's own names are matched with the file's.
    """
    by_name = {t.name: i for i, t in enumerate(file_tiles) if t.name}
    by_antenna = {t.antenna: i for i, t in enumerate(file_tiles)}
    cal_by_id = {t.tile_id: t for t in cal_tiles if t.tile_id is not None}
    out = np.full(len(target), -1, dtype=np.int64)
    for k, t in enumerate(target):
        cal = cal_by_id.get(t.tile_id) if cal_by_id else t
        if cal is None:
            continue
        if by_name:
            out[k] = by_name.get(cal.name, -1)
        elif cal_by_id:
            out[k] = by_antenna.get(cal.antenna, -1)
    return out


def nearest_timeblock(sol: CalibrationSolution, span: tuple[float, float]) -> int:
    """The timeblock whose average time is nearest the middle of ``span`` (GPS s); the first when times are unknown."""
    averages = sol.timeblocks()[:, 2]
    if not np.isfinite(averages).any():
        return 0
    middle = (float(span[0]) + float(span[1])) / 2.0
    return int(np.nanargmin(np.abs(averages - middle)))


def _flagged_values(sol: CalibrationSolution, times: np.ndarray, rows: np.ndarray, chans: np.ndarray,
                    cutoff: float | None) -> np.ndarray:
    """The file's Jones (time, target tile, chanblock, 4) for the picked rows and chanblocks, with the flags as NaN."""
    have = rows >= 0
    jones = sol.jones[np.ix_(times, np.where(have, rows, 0), chans)]  # a copy: the file's values as they are
    bad = ~have
    tile_flag = np.array([t.flagged for t in sol.tiles], dtype=bool)
    bad = bad | (have & tile_flag[np.where(have, rows, 0)])
    jones[:, bad] = NAN
    if sol.chanblock_flags is not None:
        jones[:, :, sol.chanblock_flags[chans]] = NAN
    if cutoff is not None and np.isfinite(cutoff):
        with np.errstate(invalid="ignore"):
            jones[np.any(np.abs(jones) > cutoff, axis=-1)] = NAN
    return jones


def exact_solution(files: Sequence[CalibrationSolution], *, target_tiles: Sequence[TileInfo],
                   cal_tiles: Sequence[TileInfo], target_channels: Sequence[int], width_hz: float,
                   gain_max_cutoff: float | None, timeblock: int | None, cal_obsid: int, fitid: int,
                   fallback_times: tuple[float, float]) -> CalibrationSolution:
    """The target's solution from the fit's files (see the module docstring); ``timeblock`` None keeps them all.

    Raises ValueError when the files disagree on their timeblocks or chanblock width, or
    ``width_hz`` is not a whole multiple of the native width that divides 1.28 MHz.
    """
    if not files:
        raise ValueError("no solution file holds the target's channels")
    n_times = {f.n_times for f in files}
    if len(n_times) != 1:
        raise ValueError(f"the fit's solution files have different timeblock counts {sorted(n_times)}")
    native = {native_width_hz(f.freqs_hz) for f in files}
    if len(native) != 1:
        raise ValueError(f"the fit's solution files have different chanblock widths {sorted(native)} Hz")
    native_hz = native.pop()
    n_native = fine_channels_per_coarse(native_hz)
    n_out = fine_channels_per_coarse(width_hz)
    factor = n_native // n_out
    if factor < 1 or factor * n_out != n_native:
        raise ValueError(f"{width_hz:g} Hz is not a whole multiple of the native chanblock width {native_hz:g} Hz")

    channels = np.array(sorted(int(c) for c in target_channels), dtype=np.int64)
    first = min(files, key=lambda f: float(np.nanmin(f.freqs_hz)))
    times = np.arange(first.n_times) if timeblock is None else np.array([timeblock])
    n_t, n_a = times.size, len(target_tiles)
    grid = np.full((n_t, n_a, channels.size * n_native, 4), NAN, dtype=np.complex128)
    grid_freqs = fine_channel_freqs(channels.tolist(), native_hz)
    for sol in files:
        rx = receiver_channel_of(sol.freqs_hz)
        pos = np.searchsorted(channels, rx)
        inside = (pos < channels.size) & (channels[np.minimum(pos, channels.size - 1)] == rx)
        index = np.rint((sol.freqs_hz - (rx * COARSE_CHAN_HZ - COARSE_CHAN_HZ / 2)) / native_hz).astype(np.int64)
        inside &= (index >= 0) & (index < n_native)
        chans = np.flatnonzero(inside)
        if chans.size == 0:
            continue
        cols = pos[chans] * n_native + index[chans]
        rows = file_rows(target_tiles, cal_tiles, sol.tiles)
        grid[:, :, cols] = _flagged_values(sol, times, rows, chans, gain_max_cutoff)
        grid_freqs[cols] = sol.freqs_hz[chans]

    if factor == 1:
        jones, freqs = grid, grid_freqs
    else:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Mean of empty slice", category=RuntimeWarning)
            jones = np.nanmean(grid.reshape(n_t, n_a, channels.size * n_out, factor, 4), axis=3)
        freqs = fine_channel_freqs(channels.tolist(), width_hz)

    blocks = first.timeblocks()[times]
    known = np.isfinite(blocks[:, :2]).all()
    return CalibrationSolution(
        jones=jones, tiles=list(target_tiles), freqs_hz=freqs,
        times_gps=[(float(s), float(e)) for s, e in blocks[:, :2]] if known else [fallback_times] * n_t,
        cal_obsid=cal_obsid, fitid=fitid, software=first.software,
        header=dict(first.header), time_averages_gps=blocks[:, 2] if known else None,
    )
