"""Turn one calibrator's hyperdrive solutions into ``calibration_solutions`` rows (the science of an ingest).

Input: the Jones solutions of every tile over all fine-channel blocks ("chanblocks") of the fit
(the per-coarse-channel hyperdrive files concatenated, sorted by frequency), the chanblock
frequencies, the coarse channel (0..23, receiver channels ascending) of each chanblock, a weight
per chanblock, the metafits tile ids and flags. Output: one :class:`~chalicelib.records.SolutionRow`
per tile, in tile-id order, with the conventions of ``shared/docs/domain.md``:

Phase (per tile and polarisation, XX -> ``x_*``, YY -> ``y_*``)
    The solution is first divided by the reference tile -- the lowest tile id that is not
    flagged (metafits or hyperdrive TILES Flag) and has usable solutions in both pols -- i.e. the
    phase of ``J_tile * conj(J_ref)`` per chanblock. A line is fitted to that phase::

        phi(nu) = intercept - 2 pi nu delay_m / c,   c = 299792458 m/s

    1. coarse delay: the peak of ``|sum_nu w u(nu) exp(+2 pi i nu d / c)|`` (``u`` the unit phasor)
       over a grid of delays, computed with one zero-padded FFT of the chanblocks laid on their
       regular frequency grid (the chanblocks of MWA solutions sit on a 40 kHz grid; picket-fence
       gaps are zeros), refined by parabolic interpolation of the peak. This works on phasors, so
       no phase unwrapping is needed and any delay inside +-c/(2 df) (+-3.7 km at 40 kHz) is found.
    2. weighted least squares of the wrapped residual phase (linear in intercept and delay once
       the coarse delay is right), then sigma clipping: chanblocks with ``|residual| > clip_sigma *
       sigma`` (sigma = 1.4826 x median absolute residual of the kept chanblocks, floored at
       ``phase_sigma_floor``) are dropped and the line refitted, until the kept set stops
       changing or ``max_iter`` fits have run.

    The intercept is wrapped to [-pi, pi). The reference tile's row has delay and intercept
    exactly 0. On obs 1369821496 the rebuilt phases match the reference-divided originals to
    0.04-0.18 rad rms, except for the 14 unflagged long-baseline tiles (LBF*/LBG*): they share
    one curved phase of up to ~2 rad relative to the core (steepest at the low end of the band,
    the same on LBF and LBG within ~0.1 rad, so a common response of their signal path), which no
    straight line fits better than ~0.56-0.61 rad rms; this fit is within a few per cent of that
    least-squares optimum (clipping trades a little total rms for robustness).

Amplitude (the raw, *not* reference-divided, solutions)
    ``x_gains[k]`` = mean over the usable chanblocks of coarse channel k of ``1/|J_xx|`` (NaN if
    there is none), and ``x_gains_pol0[k] + x_gains_pol1[k] * nu`` the weighted straight-line fit
    of ``1/|J_xx|`` against frequency (Hz) inside channel k (with a single usable chanblock the
    line is flat: pol1 = 0). Raw amplitudes, because domain.md defines the stored gain as 1/|J|
    with ``J_xx = exp(i phi) / G``, i.e. ``|J| x gain = 1``: on obs 1369821496 the median of
    ``|J_original| x x_gains[k]`` is 0.9994 (dividing by the reference amplitude first would
    give ~|J_ref|, ~0.7). "Divide by the reference" is a phase convention only. Outliers
    (``gain_clip_sigma``, default 5; None = keep all): per channel, chanblocks whose ``1/|J|`` is
    more than that many robust sigmas (1.4826 x MAD) from the channel median, then from the
    channel's line, are left out of the mean and the line, iterated until the kept set settles
    (a diverged chanblock otherwise pulls a whole channel's gain).

Weights
    One weight per chanblock (or per tile and chanblock), >= 0; 0 = unusable. From hyperdrive
    RESULTS (:func:`weights_from_results`): 1 where the convergence value is finite and the
    CHANBLOCKS Flag is 0, 0 where it is NaN (hyperdrive failed to converge) or flagged. The
    convergence value itself (~1e-9 .. 1e-5) is not used as a weight: every chanblock that
    converged to hyperdrive's thresholds is an equally good solution; a Jones that is NaN for
    one tile is unusable for that tile only.

Quality figures (per pol)
    ``phase_sigma_resid``: weighted rms of the phase residual over the kept chanblocks (rad).
    ``phase_chi2dof``: sum(w r^2) / (n_kept - 2) with w normalised to mean 1 (rad^2).
    ``phase_fit_quality``: kept chanblocks / chanblocks usable array-wide (weight > 0 and the
    reference tile has a solution) -- 1.0 when every chanblock fits within the clipping.
    ``gains_sigma_resid[k]``: weighted rms of ``1/|J|`` about the channel's line.
    ``gains_fit_quality``: coarse channels with a usable gain / all coarse channels.

Flagged tiles
    A tile flagged in the metafits (or the hyperdrive TILES Flag), a tile with fewer than
    ``min_phase_chanblocks`` usable chanblocks in either pol, or with no usable gain channel in
    either pol, gets an all-NaN row: every scalar (delay, intercept and all quality figures) is
    NaN and every array is 24 NaNs, so "any NaN -> flagged" holds for every consumer.

Everything is whole-array numpy over all tiles and both pols at once. File reading
(:func:`load_fit_inputs`) is kept apart from the maths (:func:`fit_solutions`).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from os import PathLike
from typing import Any

import numpy as np

from chalicelib.records import SolutionRow

SPEED_OF_LIGHT = 299_792_458.0  # m/s
COARSE_CHAN_HZ = 1_280_000.0

PathOrBytes = str | PathLike[str] | bytes


@dataclass
class FitInputs:
    """Everything the fit needs, as plain arrays (tiles in any order; rows come out in tile-id order)."""

    jones: np.ndarray  # (n_tiles, n_chanblocks, 4) complex, pols XX, XY, YX, YY; NaN = no solution
    freqs_hz: np.ndarray  # (n_chanblocks,) chanblock centre frequencies, Hz
    coarse_index: np.ndarray  # (n_chanblocks,) int, 0..n_coarse-1, receiver channels ascending
    weights: np.ndarray  # (n_chanblocks,) or (n_tiles, n_chanblocks), >= 0, 0 = unusable
    tile_ids: np.ndarray  # (n_tiles,) metafits Tile (the database tileid)
    tile_flagged: np.ndarray  # (n_tiles,) bool, flagged in the metafits (or hyperdrive TILES)
    n_coarse: int | None = None  # number of coarse channels (gains array length); default max index + 1
    obsid: int | None = None
    coarse_channels: list[int] | None = None  # receiver channel numbers, ascending (informational)
    # the PRIMARY header (no COMMENT/HISTORY) of the lowest-frequency solution file: SOFTWARE,
    # MAXITER, S_THRESH, M_THRESH, CMDLINE, ... (what the fit's calibration_fits row records)
    hyperdrive_header: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        self.jones = np.asarray(self.jones, dtype=np.complex128)
        if self.jones.ndim != 3 or self.jones.shape[2] != 4:
            raise ValueError(f"jones must be (tiles, chanblocks, 4), got {self.jones.shape}")
        n_tiles, n_chan, _ = self.jones.shape
        self.freqs_hz = np.asarray(self.freqs_hz, dtype=np.float64).reshape(-1)
        self.coarse_index = np.asarray(self.coarse_index, dtype=np.int64).reshape(-1)
        self.tile_ids = np.asarray(self.tile_ids, dtype=np.int64).reshape(-1)
        self.tile_flagged = np.asarray(self.tile_flagged, dtype=bool).reshape(-1)
        w = np.asarray(self.weights, dtype=np.float64)
        if w.ndim == 1:
            w = np.broadcast_to(w[None, :], (n_tiles, w.shape[0]))
        self.weights = w
        if self.freqs_hz.shape != (n_chan,) or self.coarse_index.shape != (n_chan,):
            raise ValueError("one frequency and one coarse index per chanblock are required")
        if self.weights.shape != (n_tiles, n_chan):
            raise ValueError(f"weights must be ({n_chan},) or ({n_tiles}, {n_chan}), got {self.weights.shape}")
        if self.tile_ids.shape != (n_tiles,) or self.tile_flagged.shape != (n_tiles,):
            raise ValueError("one tile id and one flag per tile are required")
        if len(np.unique(self.tile_ids)) != n_tiles:
            raise ValueError("tile ids must be unique")
        if n_chan and self.coarse_index.min() < 0:
            raise ValueError("coarse indices must be >= 0")
        if self.n_coarse is None:
            self.n_coarse = int(self.coarse_index.max()) + 1 if n_chan else 0
        if n_chan and self.coarse_index.max() >= self.n_coarse:
            raise ValueError(f"coarse index {self.coarse_index.max()} out of range for {self.n_coarse} channels")


@dataclass(frozen=True)
class FitOptions:
    """Tuning of the phase and gain fits (the defaults are what the service uses)."""

    clip_sigma: float = 3.0  # phase residual clipping threshold, in robust sigmas
    max_iter: int = 8  # phase fits (each followed by a clipping pass) at most
    phase_sigma_floor: float = 1e-3  # rad: the clipping sigma never goes below this (noise-free data)
    min_phase_chanblocks: int = 4  # fewer kept chanblocks than this -> the tile is flagged
    gain_clip_sigma: float | None = 5.0  # 1/|J| outlier rejection inside a channel; None = keep all
    oversample: int = 4  # FFT delay grid: this many points per delay resolution c / bandwidth
    max_fft: int = 1 << 16  # cap on the FFT length of the coarse delay search


@dataclass
class PolFit:
    """The fits of one polarisation for every tile (rows in tile-id order)."""

    delay_m: np.ndarray  # (n,)
    intercept: np.ndarray  # (n,) rad, wrapped to [-pi, pi)
    phase_sigma_resid: np.ndarray  # (n,) rad
    phase_chi2dof: np.ndarray  # (n,) rad^2
    phase_fit_quality: np.ndarray  # (n,) 0..1
    gains: np.ndarray  # (n, n_coarse) 1/|J| channel means
    gains_pol0: np.ndarray  # (n, n_coarse)
    gains_pol1: np.ndarray  # (n, n_coarse) per Hz
    gains_sigma_resid: np.ndarray  # (n, n_coarse)
    gains_fit_quality: np.ndarray  # (n,) 0..1
    phase_kept: np.ndarray  # (n, n_chanblocks) bool: chanblocks the final phase fit used


@dataclass
class FitResult:
    """The fit of all tiles as arrays (tile-id order), before they become rows."""

    tile_ids: np.ndarray  # (n,) ascending
    reference_tile_id: int
    flagged: np.ndarray  # (n,) bool: the all-NaN rows
    x: PolFit
    y: PolFit
    freqs_hz: np.ndarray  # (n_chanblocks,)
    coarse_index: np.ndarray  # (n_chanblocks,)

    def rows(self) -> list[SolutionRow]:
        """One SolutionRow per tile, tile-id order; flagged tiles all NaN."""
        return [_row(self, i) for i in range(len(self.tile_ids))]


# --------------------------------------------------------------------------------------------
# weights


def weights_from_results(
    results: np.ndarray | None, chanblock_flags: np.ndarray | None = None, n_chanblocks: int | None = None
) -> np.ndarray:
    """Chanblock weights from hyperdrive RESULTS (convergence, NaN = failed) and CHANBLOCKS Flag: 1 usable, 0 not.

    ``results`` may be (chanblocks,) or (timeblocks, chanblocks): a chanblock is usable when it
    converged in at least one timeblock. Missing RESULTS -> every unflagged chanblock has weight 1.
    """
    if results is None:
        if chanblock_flags is None and n_chanblocks is None:
            raise ValueError("need results, chanblock flags or a chanblock count")
        n = len(chanblock_flags) if chanblock_flags is not None else int(n_chanblocks or 0)
        ok = np.ones(n, dtype=bool)
    else:
        res = np.asarray(results, dtype=np.float64)
        ok = np.isfinite(res).any(axis=0) if res.ndim == 2 else np.isfinite(res).reshape(-1)
    if chanblock_flags is not None:
        ok = ok & ~np.asarray(chanblock_flags, dtype=bool).reshape(-1)
    return ok.astype(np.float64)


# --------------------------------------------------------------------------------------------
# phase


def _wrap(phase: np.ndarray) -> np.ndarray:
    """Wrap radians to [-pi, pi)."""
    return np.mod(np.asarray(phase) + np.pi, 2 * np.pi) - np.pi


def _masked_median(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Median along the last axis of the entries where ``mask`` is True (NaN where none), without Python loops."""
    n = mask.sum(axis=-1)
    s = np.sort(np.where(mask, values, np.inf), axis=-1)
    lo = np.maximum((n - 1) // 2, 0)[..., None]
    hi = np.maximum(n // 2, 0)[..., None]
    with np.errstate(invalid="ignore"):
        med = 0.5 * (np.take_along_axis(s, lo, axis=-1) + np.take_along_axis(s, hi, axis=-1))[..., 0]
    return np.where(n > 0, med, np.nan)


def _coarse_delay(u: np.ndarray, w: np.ndarray, freqs: np.ndarray, opts: FitOptions) -> np.ndarray:
    """Delay (m) maximising |sum w u exp(+2 pi i nu d / c)| per row, via a zero-padded FFT on the frequency grid."""
    n_rows = u.shape[0]
    used = (w > 0).any(axis=0)
    if used.sum() < 2:
        return np.zeros(n_rows)
    f_used = np.unique(freqs[used])
    steps = np.diff(f_used)
    df = float(steps[steps > 1e-3 * steps.max()].min())  # the finest chanblock spacing
    f0 = float(f_used[0])
    span_bins = int(round((f_used[-1] - f0) / df)) + 1
    want = max(64, opts.oversample * span_bins)
    if want > opts.max_fft:  # irregular or very fine grid: coarsen it (the FFT only needs a first guess)
        df *= math.ceil(want / opts.max_fft)
        want = opts.max_fft
    nfft = 1 << (int(want) - 1).bit_length()
    cols = np.flatnonzero(used)
    idx = np.rint((freqs[cols] - f0) / df).astype(np.int64)
    unique_idx = len(np.unique(idx)) == len(idx)
    vals = (w * u)[:, cols]

    delay = np.empty(n_rows)
    chunk = max(1, (8 << 20) // (16 * nfft))  # ~8 MB of FFT buffer at a time
    for start in range(0, n_rows, chunk):
        stop = min(n_rows, start + chunk)
        grid = np.zeros((stop - start, nfft), dtype=np.complex128)
        if unique_idx:
            grid[:, idx] = vals[start:stop]
        else:
            np.add.at(grid, (slice(None), idx), vals[start:stop])
        amp = np.abs(np.fft.ifft(grid, axis=1))  # ifft: sum_k x_k exp(+2 pi i k m / N) / N
        m = np.argmax(amp, axis=1)
        r = np.arange(stop - start)
        a0, a1, a2 = amp[r, (m - 1) % nfft], amp[r, m], amp[r, (m + 1) % nfft]
        den = a0 - 2 * a1 + a2
        with np.errstate(divide="ignore", invalid="ignore"):
            frac = np.where(den < 0, 0.5 * (a0 - a2) / den, 0.0)
        pos = (m + np.clip(frac, -0.5, 0.5)) / nfft  # cycles per grid step
        pos = np.mod(pos + 0.5, 1.0) - 0.5  # to [-0.5, 0.5): negative delays
        delay[start:stop] = pos * SPEED_OF_LIGHT / df
    return delay


@dataclass
class _PhaseLines:
    delay_m: np.ndarray
    intercept: np.ndarray
    sigma_resid: np.ndarray
    chi2dof: np.ndarray
    n_kept: np.ndarray
    kept: np.ndarray
    residual: np.ndarray


def fit_phase_lines(
    z: np.ndarray, weights: np.ndarray, freqs_hz: np.ndarray, opts: FitOptions | None = None
) -> _PhaseLines:
    """Fit phase(z) = intercept - 2 pi nu delay / c per row of ``z`` (rows, chanblocks), with sigma clipping.

    ``weights`` (rows, chanblocks) >= 0; NaN or zero ``z`` and zero weights are ignored. Rows
    with fewer than ``min_phase_chanblocks`` kept chanblocks get NaN.
    """
    opts = opts or FitOptions()
    z = np.asarray(z, dtype=np.complex128)
    freqs = np.asarray(freqs_hz, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mag = np.abs(z)
        usable = np.isfinite(z) & (mag > 0) & (np.asarray(weights) > 0)
        u = np.where(usable, z / np.where(usable, mag, 1.0), 0)
    w = np.where(usable, weights, 0.0)
    phase = np.angle(u)
    two_pi_over_c = 2 * np.pi / SPEED_OF_LIGHT

    delay = _coarse_delay(u, w, freqs, opts)
    rot = np.exp(1j * two_pi_over_c * freqs[None, :] * delay[:, None])
    intercept = np.angle(np.sum(w * u * rot, axis=1))

    def residual() -> np.ndarray:
        return _wrap(phase - (intercept[:, None] - two_pi_over_c * freqs[None, :] * delay[:, None]))

    def solve(keep: np.ndarray, r: np.ndarray) -> None:
        nonlocal delay, intercept
        ww = np.where(keep, w, 0.0)
        s0 = ww.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            nbar = (ww * freqs).sum(axis=1) / s0
            x = freqs[None, :] - nbar[:, None]
            sxx = (ww * x * x).sum(axis=1)
            slope = (ww * x * r).sum(axis=1) / sxx
            offset = (ww * r).sum(axis=1) / s0
        ok = (s0 > 0) & (sxx > 0)
        slope = np.where(ok, slope, 0.0)
        offset = np.where(s0 > 0, offset, 0.0)
        intercept = intercept + offset - slope * np.where(ok, nbar, 0.0)
        delay = delay - slope / two_pi_over_c

    keep = usable.copy()
    r = residual()
    for _ in range(max(1, opts.max_iter)):
        solve(keep, np.where(keep, r, 0.0))
        r = residual()
        sigma = 1.4826 * _masked_median(np.abs(r), keep)
        sigma = np.fmax(np.nan_to_num(sigma, nan=opts.phase_sigma_floor), opts.phase_sigma_floor)
        new_keep = usable & (np.abs(r) <= opts.clip_sigma * sigma[:, None])
        if np.array_equal(new_keep, keep):
            break
        keep = new_keep
    else:
        solve(keep, np.where(keep, r, 0.0))
        r = residual()

    ww = np.where(keep, w, 0.0)
    n_kept = keep.sum(axis=1)
    s0 = ww.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        chi2 = (ww * r * r).sum(axis=1)
        sigma_resid = np.sqrt(chi2 / s0)
        chi2dof = chi2 / (s0 / n_kept) / (n_kept - 2)
    chi2dof = np.where(n_kept > 2, chi2dof, np.nan)
    bad = n_kept < max(2, opts.min_phase_chanblocks)
    nan = np.full(len(bad), np.nan)
    return _PhaseLines(
        delay_m=np.where(bad, nan, delay),
        intercept=np.where(bad, nan, _wrap(intercept)),
        sigma_resid=np.where(bad, nan, sigma_resid),
        chi2dof=np.where(bad, nan, chi2dof),
        n_kept=n_kept,
        kept=keep & ~bad[:, None],
        residual=r,
    )


# --------------------------------------------------------------------------------------------
# amplitude


@dataclass
class _ChannelLayout:
    """Where each chanblock sits in a padded (coarse channel, position) grid."""

    k: np.ndarray  # (n_chan,) coarse index
    j: np.ndarray  # (n_chan,) position inside the coarse channel
    n_coarse: int
    width: int  # max chanblocks in one coarse channel
    centre: np.ndarray  # (n_coarse,) mean chanblock frequency of each channel (NaN if empty)


def _layout(coarse_index: np.ndarray, freqs: np.ndarray, n_coarse: int) -> _ChannelLayout:
    """Padded grid positions of the chanblocks, so per-channel sums are plain axis reductions."""
    n_chan = len(freqs)
    order = np.lexsort((freqs, coarse_index))
    k_sorted = coarse_index[order]
    starts = np.searchsorted(k_sorted, k_sorted, side="left")
    j = np.empty(n_chan, dtype=np.int64)
    j[order] = np.arange(n_chan) - starts
    counts = np.bincount(coarse_index, minlength=n_coarse)
    with np.errstate(invalid="ignore", divide="ignore"):
        centre = np.bincount(coarse_index, weights=freqs, minlength=n_coarse) / counts
    return _ChannelLayout(coarse_index, j, n_coarse, int(counts.max()) if n_chan else 0, centre)


def _gain_fits(
    amp_inv: np.ndarray, w: np.ndarray, freqs: np.ndarray, lay: _ChannelLayout, opts: FitOptions
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per (row, coarse channel): mean of 1/|J|, line pol0 + pol1*nu and rms about the line."""
    n_rows = amp_inv.shape[0]
    shape = (n_rows, lay.n_coarse, lay.width)
    a = np.zeros(shape)
    ww = np.zeros(shape)
    x = np.zeros((lay.n_coarse, lay.width))
    usable = (w > 0) & np.isfinite(amp_inv)
    a[:, lay.k, lay.j] = np.where(usable, amp_inv, 0.0)
    ww[:, lay.k, lay.j] = np.where(usable, w, 0.0)
    x[lay.k, lay.j] = freqs - lay.centre[lay.k]
    x = np.broadcast_to(x, shape)
    present = ww > 0  # usable chanblock slots (padding and unusable ones are 0)

    def line(weight: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Weighted line per (row, channel): mean, slope, mean offset of x, residual of every usable point."""
        s0 = weight.sum(axis=2)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = (weight * a).sum(axis=2) / s0
            xbar = (weight * x).sum(axis=2) / s0
            xc = x - xbar[..., None]
            sxx = (weight * xc * xc).sum(axis=2)
            slope = np.where(sxx > 0, (weight * xc * a).sum(axis=2) / sxx, 0.0)
            resid = np.where(present, a - (mean[..., None] + slope[..., None] * xc), 0.0)
        return mean, slope, xbar, resid

    keep = present
    if opts.gain_clip_sigma is not None and lay.width > 2:
        # robust start (the channel median: a few outliers cannot drag it), then clip about the
        # weighted line and refit until the kept set settles; a point may come back
        centre = _masked_median(a, keep)
        resid = np.where(keep, a - centre[..., None], 0.0)
        floor = 1e-6 * np.abs(np.nan_to_num(centre))
        for _ in range(4):
            sigma = np.fmax(1.4826 * _masked_median(np.abs(resid), keep), floor)
            new_keep = present & ~(np.abs(resid) > opts.gain_clip_sigma * sigma[..., None])
            if np.array_equal(new_keep, keep):
                break
            keep = new_keep
            mean, slope, xbar, resid = line(np.where(keep, ww, 0.0))
    ww = np.where(keep, ww, 0.0)
    mean, slope, xbar, resid = line(ww)
    resid = np.where(keep, resid, 0.0)

    s0 = ww.sum(axis=2)
    with np.errstate(invalid="ignore", divide="ignore"):
        sigma_resid = np.sqrt((ww * resid * resid).sum(axis=2) / s0)
    empty = s0 <= 0
    nan = np.nan
    gains = np.where(empty, nan, mean)
    # line in absolute frequency: mean + slope * (nu - centre - xbar)
    pol1 = np.where(empty, nan, slope)
    pol0 = np.where(empty, nan, mean - slope * (lay.centre[None, :] + xbar))
    sigma_resid = np.where(empty, nan, sigma_resid)
    return gains, pol0, pol1, sigma_resid


# --------------------------------------------------------------------------------------------
# the whole fit


def choose_reference(inputs: FitInputs, opts: FitOptions | None = None) -> int:
    """Index (into ``inputs``) of the reference tile: the lowest tile id not flagged with usable XX and YY solutions."""
    opts = opts or FitOptions()
    good = np.isfinite(inputs.jones[:, :, [0, 3]]).all(axis=2) & (np.abs(inputs.jones[:, :, [0, 3]]) > 0).all(axis=2)
    n_good = (good & (inputs.weights > 0)).sum(axis=1)
    candidates = np.flatnonzero(~inputs.tile_flagged & (n_good >= max(2, opts.min_phase_chanblocks)))
    if candidates.size == 0:
        raise ValueError("no unflagged tile with usable solutions to use as the reference")
    return int(candidates[np.argmin(inputs.tile_ids[candidates])])


def fit_result(inputs: FitInputs, opts: FitOptions | None = None) -> FitResult:
    """Fit phases and gains of every tile (both pols at once); arrays in tile-id order."""
    opts = opts or FitOptions()
    ref = choose_reference(inputs, opts)
    order = np.argsort(inputs.tile_ids, kind="stable")
    jones = inputs.jones[order]
    weights = inputs.weights[order]
    flagged = inputs.tile_flagged[order].copy()
    tile_ids = inputs.tile_ids[order]
    ref_row = int(np.flatnonzero(order == ref)[0])
    n_tiles, n_chan, _ = jones.shape
    n_coarse = int(inputs.n_coarse or 0)
    freqs = inputs.freqs_hz

    active = np.flatnonzero(~flagged)
    # rows: active tiles x (XX, YY)
    jp = np.concatenate([jones[active, :, 0], jones[active, :, 3]], axis=0)
    jr = np.concatenate([np.broadcast_to(jones[ref_row, :, 0], (len(active), n_chan)),
                         np.broadcast_to(jones[ref_row, :, 3], (len(active), n_chan))], axis=0)
    w = np.concatenate([weights[active], weights[active]], axis=0)
    with np.errstate(invalid="ignore"):
        z = jp * np.conj(jr)
    lines = fit_phase_lines(z, w, freqs, opts)

    ref_ok = np.isfinite(jr) & (jr != 0) & (w > 0)
    n_possible = ref_ok.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        amp_inv = 1.0 / np.abs(jp)
        phase_quality = np.where(n_possible > 0, lines.n_kept / n_possible, np.nan)
    lay = _layout(inputs.coarse_index, freqs, n_coarse)
    gains, pol0, pol1, gsig = _gain_fits(amp_inv, w, freqs, lay, opts)
    gains_quality = np.isfinite(gains).sum(axis=1) / max(1, n_coarse)

    na = len(active)
    delay = lines.delay_m.copy()
    intercept = lines.intercept.copy()
    sigma_resid = lines.sigma_resid.copy()
    chi2dof = lines.chi2dof.copy()
    # the reference tile is exactly zero (its own phase is 0 by construction)
    ref_active = int(np.flatnonzero(active == ref_row)[0])
    for rr in (ref_active, ref_active + na):
        delay[rr] = 0.0
        intercept[rr] = 0.0

    # a tile whose phase cannot be fitted in either pol, or with no gain in either pol, is flagged
    no_phase = ~np.isfinite(delay)
    no_gain = gains_quality == 0
    bad_active = (no_phase | no_gain)[:na] | (no_phase | no_gain)[na:]
    flagged[active[bad_active]] = True

    def pol(sl: slice) -> PolFit:
        def full(values: np.ndarray, extra_shape: tuple[int, ...] = (), fill: float = np.nan) -> np.ndarray:
            out = np.full((n_tiles, *extra_shape), fill, dtype=values.dtype)
            out[active] = values[sl]
            out[flagged] = fill
            return out

        kept = np.zeros((n_tiles, n_chan), dtype=bool)
        kept[active] = lines.kept[sl]
        kept[flagged] = False
        return PolFit(
            delay_m=full(delay),
            intercept=full(intercept),
            phase_sigma_resid=full(sigma_resid),
            phase_chi2dof=full(chi2dof),
            phase_fit_quality=full(phase_quality.astype(np.float64)),
            gains=full(gains, (n_coarse,)),
            gains_pol0=full(pol0, (n_coarse,)),
            gains_pol1=full(pol1, (n_coarse,)),
            gains_sigma_resid=full(gsig, (n_coarse,)),
            gains_fit_quality=full(gains_quality.astype(np.float64)),
            phase_kept=kept,
        )

    return FitResult(
        tile_ids=tile_ids,
        reference_tile_id=int(tile_ids[ref_row]),
        flagged=flagged,
        x=pol(slice(0, na)),
        y=pol(slice(na, 2 * na)),
        freqs_hz=freqs,
        coarse_index=inputs.coarse_index,
    )


def fit_solutions(inputs: FitInputs, opts: FitOptions | None = None) -> list[SolutionRow]:
    """calibration_solutions rows of one fit: one per tile, tile-id order, flagged tiles all NaN."""
    return fit_result(inputs, opts).rows()


def _row(res: FitResult, i: int) -> SolutionRow:
    def f(v: Any) -> float:
        return float(v)

    def lst(v: np.ndarray) -> list[float]:
        return [float(a) for a in v]

    x, y = res.x, res.y
    return SolutionRow(
        tileid=int(res.tile_ids[i]),
        x_delay_m=f(x.delay_m[i]),
        x_intercept=f(x.intercept[i]),
        x_gains=lst(x.gains[i]),
        y_delay_m=f(y.delay_m[i]),
        y_intercept=f(y.intercept[i]),
        y_gains=lst(y.gains[i]),
        x_gains_pol0=lst(x.gains_pol0[i]),
        x_gains_pol1=lst(x.gains_pol1[i]),
        y_gains_pol0=lst(y.gains_pol0[i]),
        y_gains_pol1=lst(y.gains_pol1[i]),
        x_gains_sigma_resid=lst(x.gains_sigma_resid[i]),
        y_gains_sigma_resid=lst(y.gains_sigma_resid[i]),
        x_phase_sigma_resid=f(x.phase_sigma_resid[i]),
        x_phase_chi2dof=f(x.phase_chi2dof[i]),
        x_phase_fit_quality=f(x.phase_fit_quality[i]),
        y_phase_sigma_resid=f(y.phase_sigma_resid[i]),
        y_phase_chi2dof=f(y.phase_chi2dof[i]),
        y_phase_fit_quality=f(y.phase_fit_quality[i]),
        x_gains_fit_quality=f(x.gains_fit_quality[i]),
        y_gains_fit_quality=f(y.gains_fit_quality[i]),
    )


# --------------------------------------------------------------------------------------------
# reading the files


def receiver_channel_of(freqs_hz: np.ndarray) -> np.ndarray:
    """Receiver (coarse) channel number n of each fine-channel frequency: n*1.28 MHz +- 640 kHz contains it."""
    return np.floor((np.asarray(freqs_hz, dtype=np.float64) + COARSE_CHAN_HZ / 2) / COARSE_CHAN_HZ + 1e-9).astype(
        np.int64
    )


@dataclass
class _MetafitsTiles:
    tile_ids: np.ndarray  # per Antenna index 0..N-1
    flagged: np.ndarray
    channels: list[int] | None
    obsid: int | None


def _metafits_tiles(metafits: PathOrBytes | Any) -> _MetafitsTiles:
    """Tile id and flag per metafits Antenna, and the receiver channels, via chalicelib.formats.metafits.

    ``metafits`` is a path, the file's bytes, or an already read
    :class:`~chalicelib.formats.metafits.MetafitsInfo`.
    """
    from chalicelib.formats.metafits import MetafitsInfo, read_metafits

    info = metafits if isinstance(metafits, MetafitsInfo) else read_metafits(metafits)
    tiles = sorted(info.tiles, key=lambda t: t.antenna)
    n = (max(t.antenna for t in tiles) + 1) if tiles else 0
    tile_ids = np.full(n, -1, dtype=np.int64)
    flagged = np.ones(n, dtype=bool)
    for t in tiles:
        tile_ids[t.antenna] = t.tile_id
        flagged[t.antenna] = bool(t.flagged)
    if (tile_ids < 0).any():
        raise ValueError("metafits Antenna indices are not 0..N-1")
    channels = getattr(info, "channels", None)
    obsid = getattr(info, "obsid", None)
    return _MetafitsTiles(tile_ids, flagged, sorted(int(c) for c in channels) if channels else None, obsid)


def load_fit_inputs(
    solutions: Sequence[PathOrBytes],
    metafits: PathOrBytes | Any,
    *,
    timeblock: int | None = None,
    weight_fn: Callable[[Any], np.ndarray] | None = None,
    progress: Callable[[PathOrBytes], None] | None = None,
) -> FitInputs:
    """Read hyperdrive solution files (one per coarse channel, any order) and the metafits into :class:`FitInputs`.

    Each file's TILES Antenna is matched to the metafits Antenna (so tile ids and flags come from
    the metafits Tile / Flag columns; a hyperdrive TILES Flag also flags the tile); chanblocks of
    all files are concatenated and sorted by frequency; the coarse index of a chanblock is the
    position of its receiver channel in the metafits CHANNELS (ascending). ``timeblock`` picks
    one timeblock; None averages the Jones over timeblocks (NaN-aware; the fixture files have
    one). ``weight_fn(HyperdriveSolutions) -> (chanblocks,)`` overrides :func:`weights_from_results`.
    ``metafits`` may also be an already read ``MetafitsInfo``. ``progress(source)`` is called after
    each solution file is read (command-line progress bars). A solution file whose OBSID differs
    from the metafits GPSTIME (or from the other files) is refused with ValueError.
    """
    from chalicelib.formats.hyperdrive import read_hyperdrive

    if not solutions:
        raise ValueError("no hyperdrive solution files given")
    meta = _metafits_tiles(metafits)
    n_ant = len(meta.tile_ids)
    jones_parts: list[np.ndarray] = []
    freq_parts: list[np.ndarray] = []
    weight_parts: list[np.ndarray] = []
    headers: list[tuple[float, dict[str, Any]]] = []
    hyp_flag = np.zeros(n_ant, dtype=bool)
    obsid = meta.obsid
    for source in solutions:
        sol = read_hyperdrive(source)
        if sol.chanblock_freqs is None:
            raise ValueError("hyperdrive solutions without CHANBLOCKS frequencies cannot be fitted")
        if sol.obsid is not None and obsid is not None and sol.obsid != obsid:
            raise ValueError(f"a solution file is of observation {sol.obsid}, not {obsid}")
        if obsid is None:
            obsid = sol.obsid
        freqs_here = np.asarray(sol.chanblock_freqs, dtype=np.float64)
        headers.append((float(freqs_here.min()) if freqs_here.size else math.inf, dict(sol.header)))
        if timeblock is not None:
            j = sol.jones[timeblock]
        elif sol.n_timeblocks == 1:
            j = sol.jones[0]
        else:
            with np.errstate(invalid="ignore"), _quiet_mean_warnings():
                j = np.nanmean(sol.jones, axis=0)
        ant = sol.tile_antennas.astype(np.int64)
        if ant.size and (ant.min() < 0 or ant.max() >= n_ant):
            raise ValueError(f"hyperdrive Antenna {int(ant.max())} is not in the metafits ({n_ant} tiles)")
        full = np.full((n_ant, sol.n_chanblocks, 4), complex(np.nan, np.nan), dtype=np.complex128)
        full[ant] = j
        hyp_flag[ant[sol.tile_flags]] = True
        jones_parts.append(full)
        freq_parts.append(freqs_here)
        if weight_fn is not None:
            wt = np.asarray(weight_fn(sol), dtype=np.float64)
        else:
            res = sol.results if timeblock is None or sol.results is None else sol.results[timeblock]
            wt = weights_from_results(res, sol.chanblock_flags, sol.n_chanblocks)
        weight_parts.append(wt)
        if progress is not None:
            progress(source)

    jones = np.concatenate(jones_parts, axis=1)
    freqs = np.concatenate(freq_parts)
    weights = np.concatenate(weight_parts)
    order = np.argsort(freqs, kind="stable")
    jones, freqs, weights = jones[:, order], freqs[order], weights[order]
    if np.any(np.diff(freqs) <= 0):
        raise ValueError("two solution files hold the same chanblock frequency")

    rx = receiver_channel_of(freqs)
    channels = meta.channels
    if channels:
        chans = np.asarray(channels, dtype=np.int64)
        k = np.searchsorted(chans, rx)
        if np.any(k >= len(chans)) or np.any(chans[np.minimum(k, len(chans) - 1)] != rx):
            missing = sorted(set(rx.tolist()) - set(chans.tolist()))
            raise ValueError(f"solution channels {missing} are not among the metafits CHANNELS {channels}")
        n_coarse = len(chans)
    else:
        chans_found = np.unique(rx)
        k = np.searchsorted(chans_found, rx)
        channels = chans_found.tolist()
        n_coarse = len(chans_found)
    return FitInputs(
        jones=jones,
        freqs_hz=freqs,
        coarse_index=k,
        weights=weights,
        tile_ids=meta.tile_ids,
        tile_flagged=meta.flagged | hyp_flag,
        n_coarse=n_coarse,
        obsid=obsid,
        coarse_channels=[int(c) for c in channels],
        hyperdrive_header=min(headers, key=lambda h: h[0])[1],
    )


@contextmanager
def _quiet_mean_warnings() -> Iterator[None]:
    """Silence numpy's 'Mean of empty slice' (a tile NaN in every timeblock stays NaN)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Mean of empty slice", category=RuntimeWarning)
        yield


def ingest_fit(
    solutions: Sequence[PathOrBytes], metafits: PathOrBytes, opts: FitOptions | None = None
) -> list[SolutionRow]:
    """Read the files and fit: the calibration_solutions rows of one calibrator's hyperdrive solutions.

    The pure science only; :mod:`chalicelib.ingest.store` writes them to the database and
    :mod:`chalicelib.ingest.landing` runs the whole ingest of files landed in the calibration bucket.
    """
    return fit_solutions(load_fit_inputs(solutions, metafits), opts)
