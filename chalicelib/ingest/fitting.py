"""Turn one calibrator's hyperdrive solutions into ``calibration_solutions`` rows (the science of an ingest).

Input (:class:`FitInputs`, read from the files by :mod:`chalicelib.ingest.fit_inputs`): the Jones
solutions of every tile over all fine-channel blocks ("chanblocks") of the fit, the chanblock
frequencies, the coarse channel (0..23, receiver channels ascending) of each chanblock, a weight
per chanblock, the metafits tile ids and flags. Output: one :class:`~chalicelib.records.SolutionRow`
per tile, in tile-id order, with the conventions of ``shared/docs/domain.md``. The line fits
themselves are in :mod:`chalicelib.ingest.linefits`.

Phase (per tile and polarisation, XX -> ``x_*``, YY -> ``y_*``)
    The solution is first divided by the reference tile -- the lowest tile id that is not
    flagged (metafits or hyperdrive TILES Flag) and has usable solutions in both pols -- i.e. the
    phase of ``J_tile * conj(J_ref)`` per chanblock, and a line ``intercept - 2 pi nu delay_m / c``
    is fitted to it. The reference tile's row has delay and intercept exactly 0. On obs
    1369821496 the rebuilt phases match the reference-divided originals to 0.04-0.18 rad rms,
    except for the 14 unflagged long-baseline tiles (LBF*/LBG*): they share one curved phase of
    up to ~2 rad relative to the core (steepest at the low end of the band, the same on LBF and
    LBG within ~0.1 rad, so a common response of their signal path), which no straight line fits
    better than ~0.56-0.61 rad rms; this fit is within a few per cent of that least-squares
    optimum (clipping trades a little total rms for robustness).

Amplitude (the raw, *not* reference-divided, solutions)
    ``x_gains[k]`` = mean over the usable chanblocks of coarse channel k of ``1/|J_xx|``, and
    ``x_gains_pol0[k] + x_gains_pol1[k] * nu`` its straight-line fit inside channel k. Raw
    amplitudes, because domain.md defines the stored gain as 1/|J| with ``J_xx = exp(i phi) / G``,
    i.e. ``|J| x gain = 1``: on obs 1369821496 the median of ``|J_original| x x_gains[k]`` is
    0.9994 (dividing by the reference amplitude first would give ~|J_ref|, ~0.7). "Divide by the
    reference" is a phase convention only.

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

Everything is whole-array numpy over all tiles and both pols at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from chalicelib.ingest.linefits import FitOptions, channel_layout, fit_phase_lines, gain_fits
from chalicelib.records import SolutionRow


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
    lay = channel_layout(inputs.coarse_index, freqs, n_coarse)
    gains, pol0, pol1, gsig = gain_fits(amp_inv, w, freqs, lay, opts)
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

