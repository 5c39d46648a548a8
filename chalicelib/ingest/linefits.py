"""The two line fits of an ingest, per tile and polarisation, whole-array numpy over all rows at once.

Phase (:func:`fit_phase_lines`, on the reference-divided solutions ``z``)
    A line is fitted to the phase of ``z`` against frequency::

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

    The intercept is wrapped to [-pi, pi).

Amplitude (:func:`gain_fits`, on ``1/|J|`` of the raw solutions)
    Per coarse channel k: the mean of ``1/|J|`` over the usable chanblocks of k (NaN if there is
    none), and ``pol0[k] + pol1[k] * nu`` the weighted straight-line fit of ``1/|J|`` against
    frequency (Hz) inside k (with a single usable chanblock the line is flat: pol1 = 0).
    Outliers (``gain_clip_sigma``, default 5; None = keep all): per channel, chanblocks whose
    ``1/|J|`` is more than that many robust sigmas (1.4826 x MAD) from the channel median, then
    from the channel's line, are left out of the mean and the line, iterated until the kept set
    settles (a diverged chanblock otherwise pulls a whole channel's gain).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from chalicelib.angles import wrap_phase
from chalicelib.instrument import SPEED_OF_LIGHT


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
class PhaseLines:
    """The phase line of every row: delay (m), wrapped intercept (rad), residual figures and the kept chanblocks."""

    delay_m: np.ndarray
    intercept: np.ndarray
    sigma_resid: np.ndarray
    chi2dof: np.ndarray
    n_kept: np.ndarray
    kept: np.ndarray
    residual: np.ndarray


def fit_phase_lines(
    z: np.ndarray, weights: np.ndarray, freqs_hz: np.ndarray, opts: FitOptions | None = None
) -> PhaseLines:
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
        return wrap_phase(phase - (intercept[:, None] - two_pi_over_c * freqs[None, :] * delay[:, None]))

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
    return PhaseLines(
        delay_m=np.where(bad, nan, delay),
        intercept=np.where(bad, nan, wrap_phase(intercept)),
        sigma_resid=np.where(bad, nan, sigma_resid),
        chi2dof=np.where(bad, nan, chi2dof),
        n_kept=n_kept,
        kept=keep & ~bad[:, None],
        residual=r,
    )


# --------------------------------------------------------------------------------------------
# amplitude


@dataclass
class ChannelLayout:
    """Where each chanblock sits in a padded (coarse channel, position) grid."""

    k: np.ndarray  # (n_chan,) coarse index
    j: np.ndarray  # (n_chan,) position inside the coarse channel
    n_coarse: int
    width: int  # max chanblocks in one coarse channel
    centre: np.ndarray  # (n_coarse,) mean chanblock frequency of each channel (NaN if empty)


def channel_layout(coarse_index: np.ndarray, freqs: np.ndarray, n_coarse: int) -> ChannelLayout:
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
    return ChannelLayout(coarse_index, j, n_coarse, int(counts.max()) if n_chan else 0, centre)


def gain_fits(
    amp_inv: np.ndarray, w: np.ndarray, freqs: np.ndarray, lay: ChannelLayout, opts: FitOptions
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

